//! Demo data for the embedded mode: a plan, the "Acme Demo" tenant, an owner, a platform admin,
//! API keys with known secrets and 30 days of their traffic (`history`). Idempotent: running
//! it again changes nothing.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, QueryFilter,
};
use uuid::Uuid;

use crate::{
    audit,
    auth::users,
    entities::{api_keys, memberships, plans, tenants, usage_events},
    error::Result,
    keys::secret::KeySecret,
    tenancy::Role,
};

pub const TENANT_SLUG: &str = "acme-demo";
pub const OWNER_EMAIL: &str = "owner@acme.example";
pub const ADMIN_EMAIL: &str = "admin@tollgate.example";
/// Demo logins share one password; the demo is for laptops, never for production data.
pub const PASSWORD: &str = "tollgate-demo-password";

/// The demo keys: name, secret, per-minute limit.
pub(crate) const KEYS: [(&str, &str, i64); 3] = [
    (
        "render-farm",
        "tg_live_demoRenderFarm0000000000000000000000000",
        100,
    ),
    (
        "checkout-web",
        "tg_live_demoCheckoutWeb000000000000000000000000",
        600,
    ),
    (
        "mobile-app",
        "tg_live_demoMobileApp00000000000000000000000000",
        300,
    ),
];

/// What was seeded, for printing.
pub struct Demo {
    pub tenant_id: Uuid,
    /// The demo keys: name and id.
    pub keys: Vec<(&'static str, Uuid)>,
}

impl Demo {
    pub fn describe(&self, base_url: &str) -> String {
        let keys: Vec<String> = KEYS
            .iter()
            .map(|(name, secret, _)| format!("    {name:<13} {secret}"))
            .collect();
        format!(
            "Demo tenant `{TENANT_SLUG}` ({}) is ready.\n  \
             Dashboard: {base_url}/dashboard/\n  \
             API docs: {base_url}/docs/   Health: {base_url}/readyz\n  \
             Merchant login: {OWNER_EMAIL} / {PASSWORD}\n  \
             Platform admin: {ADMIN_EMAIL} / {PASSWORD}\n  \
             API keys (X-API-Key):\n{}",
            crate::ids::TenantId::from(self.tenant_id),
            keys.join("\n")
        )
    }
}

pub mod history;

/// The demo logins, for the dashboard's login page.
pub fn login_hint() -> String {
    format!("Demo: {OWNER_EMAIL} (merchant) or {ADMIN_EMAIL} (platform admin), password {PASSWORD}")
}

pub async fn seed(db: &DatabaseConnection) -> Result<Demo> {
    // The plan first: new tenants take the default plan.
    ensure_plan(db).await?;
    let tenant_id = ensure_tenant(db).await?;
    let owner = match users::find_by_email(db, OWNER_EMAIL).await? {
        Some(user) => user,
        None => users::insert(db, OWNER_EMAIL, PASSWORD, Some("Ada Owner".into()), false).await?,
    };
    ensure_membership(db, tenant_id, owner.id, Role::Owner).await?;
    if users::find_by_email(db, ADMIN_EMAIL).await?.is_none() {
        users::insert(
            db,
            ADMIN_EMAIL,
            PASSWORD,
            Some("Platform Admin".into()),
            true,
        )
        .await?;
    }
    let mut keys = Vec::new();
    for (name, secret, per_minute) in KEYS {
        let secret = KeySecret::from_existing(secret);
        let id = ensure_key(db, tenant_id, owner.id, name, &secret, per_minute).await?;
        keys.push((name, id));
    }
    Ok(Demo { tenant_id, keys })
}

/// [`seed`], plus the 30-day traffic history ([`ensure_history`]): what `tollgate demo` runs.
pub async fn seed_with_history(db: &DatabaseConnection) -> Result<Demo> {
    let demo = seed(db).await?;
    ensure_history(db, &demo, history::DAYS).await?;
    Ok(demo)
}

/// Stores `days` of the demo tenant's traffic history (30 for the demo) unless it has usage
/// already (`serve --demo` runs this in the background). Newest first: cut short, the recent
/// days exist.
pub async fn ensure_history(db: &DatabaseConnection, demo: &Demo, days: i64) -> Result<()> {
    let has_history = usage_events::Entity::find()
        .filter(usage_events::Column::TenantId.eq(demo.tenant_id))
        .one(db)
        .await?
        .is_some();
    if has_history {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let stored = history::generate(db, demo.tenant_id, &demo.keys, Utc::now(), days).await?;
    tracing::info!(
        events = stored,
        seconds = started.elapsed().as_secs_f64(),
        "demo traffic history stored"
    );
    Ok(())
}

async fn ensure_plan(db: &impl ConnectionTrait) -> Result<Uuid> {
    let existing = plans::Entity::find()
        .filter(plans::Column::Name.eq("Starter"))
        .one(db)
        .await?;
    if let Some(plan) = existing {
        return Ok(plan.id);
    }
    let now = Utc::now();
    let plan = plans::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set("Starter".into()),
        per_minute: Set(100),
        per_hour: Set(1000),
        per_day: Set(10_000),
        per_month: Set(Some(200_000)),
        is_default: Set(true),
        created_at: Set(now),
        updated_at: Set(now),
    };
    Ok(plan.insert(db).await?.id)
}

/// The demo tenant, created like any other (on the default plan, audited as the system).
async fn ensure_tenant(db: &impl ConnectionTrait) -> Result<Uuid> {
    let existing = tenants::Entity::find()
        .filter(tenants::Column::Slug.eq(TENANT_SLUG))
        .one(db)
        .await?;
    if let Some(tenant) = existing {
        return Ok(tenant.id);
    }
    let name = crate::tenants::TenantName::parse("Acme Demo", "/name")?;
    let tenant = crate::tenants::create(db, &audit::Context::system("demo"), &name).await?;
    Ok(tenant.id)
}

async fn ensure_membership(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    user_id: Uuid,
    role: Role,
) -> Result<()> {
    let existing = memberships::Entity::find()
        .filter(memberships::Column::TenantId.eq(tenant_id))
        .filter(memberships::Column::UserId.eq(user_id))
        .one(db)
        .await?;
    if existing.is_some() {
        return Ok(());
    }
    let now = Utc::now();
    let membership = memberships::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        user_id: Set(user_id),
        role: Set(role.as_str().into()),
        created_at: Set(now),
        updated_at: Set(now),
    };
    membership.insert(db).await?;
    Ok(())
}

async fn ensure_key(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    created_by: Uuid,
    name: &str,
    secret: &KeySecret,
    per_minute: i64,
) -> Result<Uuid> {
    let hash = secret.hash();
    let existing = api_keys::Entity::find()
        .filter(api_keys::Column::KeyHash.eq(&hash))
        .one(db)
        .await?;
    if let Some(key) = existing {
        return Ok(key.id);
    }
    let now = Utc::now();
    let key = api_keys::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        name: Set(name.into()),
        description: Set(Some("Demo key".into())),
        key_hash: Set(hash),
        prefix: Set(secret.display_prefix()),
        last4: Set(secret.last4()),
        source: Set("imported".into()),
        status: Set("active".into()),
        limit_per_minute: Set(Some(per_minute)),
        created_by: Set(Some(created_by)),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    Ok(key.insert(db).await?.id)
}
