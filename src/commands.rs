//! Command implementations that need more than a line in `main`: `admin import-key`,
//! `export`.

use std::{
    io::{BufRead, BufWriter, Write},
    path::{Path, PathBuf},
    pin::pin,
    time::Duration,
};

use chrono::Utc;
use futures_util::TryStreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, TransactionTrait};

use crate::{
    analytics::{Filter, Question, Tenants, Window},
    audit,
    cli::{ExportArgs, ImportKeyArgs},
    config::Settings,
    entities::tenants as tenant_rows,
    error::{Error, Result},
    export::{self, Export, ExportRequest},
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
    lookup_tenant(db, id_or_slug).await?.ok_or_else(|| {
        Error::not_found(format!(
            "No tenant `{id_or_slug}` (use --create-tenant to create one)."
        ))
    })
}

/// The tenant with this id (`tnt_…`) or slug.
async fn lookup_tenant(db: &DatabaseConnection, id_or_slug: &str) -> Result<Option<TenantId>> {
    let by_id = id_or_slug.parse::<TenantId>().ok();
    let mut query = tenant_rows::Entity::find();
    query = match by_id {
        Some(id) => query.filter(tenant_rows::Column::Id.eq(id.0)),
        None => query.filter(tenant_rows::Column::Slug.eq(id_or_slug)),
    };
    Ok(query.one(db).await?.map(|t| TenantId::from(t.id)))
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

/// `tollgate export`: streams one tenant's usage (the code behind `GET /v1/exports/usage`)
/// to `--output` or stdout, with a progress bar on stderr, and says how many rows it wrote.
pub async fn export(db: &DatabaseConnection, args: ExportArgs) -> Result<()> {
    let tenant = lookup_tenant(db, &args.tenant)
        .await?
        .ok_or_else(|| Error::not_found(format!("No tenant `{}`.", args.tenant)))?;
    let window = Window::new(args.from, args.to, Utc::now())?;
    let granularity = match &args.granularity {
        Some(name) => export::parse_granularity(name)?,
        None => window.auto_granularity(),
    };
    let request = ExportRequest {
        question: Question {
            tenants: Tenants::One(tenant),
            window,
            filter: Filter::default(),
        },
        level: args.level.parse()?,
        granularity,
        format: args.format.parse()?,
    };
    let export = export::start(db, request).await?;
    let progress = progress_bar();
    let written = match &args.output {
        Some(path) => write_file(export, path, &progress).await,
        None => write_all(export, BufWriter::new(std::io::stdout()), &progress).await,
    };
    progress.finish_and_clear();
    let rows = written?;
    let target = args
        .output
        .as_deref()
        .map_or("stdout".into(), |p| p.display().to_string());
    eprintln!("exported {rows} rows of tenant {tenant} to {target}");
    Ok(())
}

/// A spinner counting rows; drawn only when stderr is a terminal.
fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} {human_pos} rows written ({per_sec}, {elapsed})")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Writes to `path.partial`, renamed to `path` once the export is complete (removed if not).
async fn write_file(export: Export, path: &Path, progress: &ProgressBar) -> Result<u64> {
    let mut partial = PathBuf::from(path).into_os_string();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let file = std::fs::File::create(&partial).map_err(|e| write_error(&partial, e))?;
    let result = write_all(export, BufWriter::new(file), progress).await;
    let renamed = result.and_then(|rows| {
        std::fs::rename(&partial, path).map_err(|e| write_error(path, e))?;
        Ok(rows)
    });
    if renamed.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    renamed
}

/// Copies the export's chunks to `out`. Blocking writes are fine here: this process does
/// nothing else meanwhile.
async fn write_all(export: Export, mut out: impl Write, progress: &ProgressBar) -> Result<u64> {
    let mut chunks = pin!(export.into_stream());
    let mut rows = 0;
    while let Some(chunk) = chunks.try_next().await? {
        out.write_all(&chunk.bytes)
            .map_err(|e| write_error(Path::new("the output"), e))?;
        rows += chunk.rows;
        progress.set_position(rows);
    }
    out.flush()
        .map_err(|e| write_error(Path::new("the output"), e))?;
    Ok(rows)
}

fn write_error(path: &Path, err: std::io::Error) -> Error {
    Error::bad_request(format!("Could not write {}.", path.display())).with_source(err)
}
