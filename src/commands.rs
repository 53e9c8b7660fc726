//! Command implementations that need more than a line in `main`: `admin import-key`.

use std::io::BufRead;

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, TransactionTrait};

use crate::{
    audit,
    cli::ImportKeyArgs,
    config::Settings,
    entities::tenants as tenant_rows,
    error::{Error, Result},
    ids::{KeyId, TenantId},
    keys::{self, NewKey, cache::KeyCache, events::KeyEvents, limits::Limits},
    kv::Redis,
    tenancy::Principal,
    tenants::{self, TenantName},
};

/// Environment variable holding the secret for `admin import-key`.
pub const IMPORT_SECRET_ENV: &str = "TOLLGATE_IMPORT_SECRET";

/// `tollgate admin import-key`: resolves (or creates) the tenant, imports the secret as an
/// audited `system` action, and describes the result.
pub async fn import_key(
    db: &DatabaseConnection,
    settings: &Settings,
    args: ImportKeyArgs,
) -> Result<String> {
    let secret = read_secret()?;
    let audit = audit::Context::system("cli");
    let tenant = match (&args.tenant, &args.create_tenant) {
        (Some(id_or_slug), _) => find_tenant(db, id_or_slug).await?,
        (None, Some(name)) => find_or_create_tenant(db, &audit, name).await?,
        (None, None) => return Err(Error::bad_request("give --tenant or --create-tenant")),
    };
    let scope = Principal::system(tenant).tenant_scope()?;
    let events = key_events(settings)?;
    let ctx = keys::Ctx {
        db,
        scope: &scope,
        audit: &audit,
        defaults: &settings.limits,
        events: &events,
    };
    let limits = Limits {
        per_minute: args.per_minute,
        per_hour: args.per_hour,
        per_day: args.per_day,
        per_month: args.per_month,
    };
    let new = NewKey {
        name: args.name,
        description: None,
        limits,
        expires_at: None,
    };
    let key = keys::import(&ctx, new, &secret).await?;
    Ok(format!(
        "imported key {} ({}) into tenant {tenant}",
        KeyId::from(key.id),
        key.prefix
    ))
}

/// Serving nodes may have cached the secret as unknown: with Redis they hear of the import
/// at once; in embedded mode (another process) their negative entry expires within
/// `keys.negative_ttl_secs`.
fn key_events(settings: &Settings) -> Result<KeyEvents> {
    let cache = KeyCache::new(&settings.keys, &settings.limits);
    if settings.redis.url.is_empty() {
        return Ok(KeyEvents::local(cache));
    }
    let redis = Redis::connect(&settings.redis).map_err(Error::internal)?;
    KeyEvents::new(cache, Some(&redis), &settings.redis).map_err(Error::internal)
}

fn read_secret() -> Result<String> {
    if let Ok(secret) = std::env::var(IMPORT_SECRET_ENV) {
        return Ok(secret.trim().to_owned());
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::bad_request("could not read the secret from stdin").with_source(e))?;
    Ok(line.trim().to_owned())
}

async fn find_tenant(db: &DatabaseConnection, id_or_slug: &str) -> Result<TenantId> {
    let by_id = id_or_slug.parse::<TenantId>().ok();
    let mut query = tenant_rows::Entity::find();
    query = match by_id {
        Some(id) => query.filter(tenant_rows::Column::Id.eq(id.0)),
        None => query.filter(tenant_rows::Column::Slug.eq(id_or_slug)),
    };
    let tenant = query.one(db).await?;
    tenant.map(|t| TenantId::from(t.id)).ok_or_else(|| {
        Error::not_found(format!(
            "No tenant `{id_or_slug}` (use --create-tenant to create one)."
        ))
    })
}

async fn find_or_create_tenant(
    db: &DatabaseConnection,
    audit: &audit::Context,
    name: &str,
) -> Result<TenantId> {
    let name = TenantName::parse(name, "--create-tenant")?;
    let existing = tenant_rows::Entity::find()
        .filter(tenant_rows::Column::Name.eq(name.as_str()))
        .one(db)
        .await?;
    if let Some(tenant) = existing {
        return Ok(tenant.id.into());
    }
    let txn = db.begin().await?;
    let tenant = tenants::create(&txn, audit, &name).await?;
    txn.commit().await?;
    Ok(tenant.id.into())
}
