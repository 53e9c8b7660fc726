//! API keys: create (the secret is returned once), list, get, update, revoke, rotate with a
//! grace period, and import of secrets issued elsewhere. Every change is one transaction with
//! its audit entry and, once committed, a [`events::KeyChanged`] broadcast so every node's key
//! cache drops what it held.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DatabaseConnection, TransactionTrait,
};
use serde_json::json;

use crate::{
    audit::{self, Entry},
    config::LimitSettings,
    entities::api_keys,
    error::{Error, Result},
    ids::KeyId,
    tenancy::{Permission, TenantScope},
};

pub mod cache;
pub mod events;
pub mod limits;
pub mod resolve;
pub mod secret;
pub mod store;

use events::{KeyChanged, KeyEvents};
use limits::Limits;
use secret::KeySecret;

/// Longest rotation grace period: one week.
pub const MAX_GRACE_SECONDS: u64 = 7 * 24 * 3600;
/// Shortest secret accepted by import.
pub const MIN_IMPORTED_SECRET_LEN: usize = 24;

/// The lifecycle state shown to callers, derived from the stored status and the expiry.
pub fn status_of(key: &api_keys::Model, now: DateTime<Utc>) -> &'static str {
    match key.status.as_str() {
        "revoked" => "revoked",
        _ if key.expires_at.is_some_and(|at| at <= now) => "expired",
        "inactive" => "inactive",
        _ => "active",
    }
}

/// What a new key is made of.
pub struct NewKey {
    pub name: String,
    pub description: Option<String>,
    pub limits: Limits,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Changes to a key; `None` leaves a field alone. `limits` sets overrides window by window
/// (`Some(None)` in a window clears it back to inheriting).
#[derive(Default)]
pub struct KeyChanges {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub is_active: Option<bool>,
    pub limits: Option<LimitChanges>,
    pub expires_at: Option<Option<DateTime<Utc>>>,
}

#[derive(Clone, Copy, Default)]
pub struct LimitChanges {
    pub per_minute: Option<Option<i64>>,
    pub per_hour: Option<Option<i64>>,
    pub per_day: Option<Option<i64>>,
    pub per_month: Option<Option<i64>>,
}

impl LimitChanges {
    fn apply(&self, current: Limits) -> Limits {
        Limits {
            per_minute: self.per_minute.unwrap_or(current.per_minute),
            per_hour: self.per_hour.unwrap_or(current.per_hour),
            per_day: self.per_day.unwrap_or(current.per_day),
            per_month: self.per_month.unwrap_or(current.per_month),
        }
    }
}

/// Context every key operation needs besides the scope.
pub struct Ctx<'a> {
    pub db: &'a DatabaseConnection,
    pub scope: &'a TenantScope,
    pub audit: &'a audit::Context,
    pub defaults: &'a LimitSettings,
    /// Where committed changes are announced (key caches on every node listen).
    pub events: &'a KeyEvents,
}

/// Creates a key with a fresh secret; the secret is returned here and never again.
pub async fn create(ctx: &Ctx<'_>, new: NewKey) -> Result<(api_keys::Model, KeySecret)> {
    ctx.scope.require(Permission::ManageKeys)?;
    let secret = KeySecret::generate();
    let key = insert(ctx, new, &secret, "generated", "key.create").await?;
    Ok((key, secret))
}

/// Registers a secret issued by another gateway so existing clients keep working.
pub async fn import(ctx: &Ctx<'_>, new: NewKey, secret: &str) -> Result<api_keys::Model> {
    ctx.scope.require(Permission::ManageLimits)?;
    if secret.chars().count() < MIN_IMPORTED_SECRET_LEN || secret.chars().any(char::is_whitespace) {
        return Err(Error::invalid(
            "/secret",
            format!("must be at least {MIN_IMPORTED_SECRET_LEN} characters without whitespace"),
        ));
    }
    let secret = KeySecret::from_existing(secret);
    if store::hash_in_use(ctx.db, &secret.hash()).await? {
        return Err(Error::conflict(
            "This secret is already registered to an API key.",
        ));
    }
    insert(ctx, new, &secret, "imported", "key.import").await
}

async fn insert(
    ctx: &Ctx<'_>,
    new: NewKey,
    secret: &KeySecret,
    source: &str,
    action: &str,
) -> Result<api_keys::Model> {
    validate_name(&new.name)?;
    check_limits(ctx, &new.limits).await?;
    if new.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(Error::invalid("/expires_at", "must be in the future"));
    }
    let now = Utc::now();
    let row = api_keys::ActiveModel {
        id: Set(KeyId::new().0),
        tenant_id: Set(ctx.scope.tenant_id().0),
        name: Set(new.name),
        description: Set(new.description),
        key_hash: Set(secret.hash()),
        prefix: Set(secret.display_prefix()),
        last4: Set(secret.last4()),
        source: Set(source.to_owned()),
        status: Set("active".to_owned()),
        expires_at: Set(new.expires_at),
        limit_per_minute: Set(new.limits.per_minute),
        limit_per_hour: Set(new.limits.per_hour),
        limit_per_day: Set(new.limits.per_day),
        limit_per_month: Set(new.limits.per_month),
        usage_count: Set(0),
        // The acting user; none for the command line.
        created_by: Set(ctx
            .audit
            .actor_id
            .filter(|_| ctx.audit.actor_type == "user")),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    let txn = ctx.db.begin().await?;
    let key = row.insert(&txn).await?;
    record(&txn, ctx, action, &key, None, Some(snapshot(&key))).await?;
    txn.commit().await?;
    // An imported secret may have been cached as unknown.
    ctx.events.publish(KeyChanged::between(None, &key)).await;
    Ok(key)
}

/// Applies changes; a revoked key cannot change (409).
pub async fn update(ctx: &Ctx<'_>, id: KeyId, changes: KeyChanges) -> Result<api_keys::Model> {
    ctx.scope.require(Permission::ManageKeys)?;
    let key = store::find(ctx.db, ctx.scope, id).await?;
    if key.status == "revoked" {
        return Err(Error::conflict(
            "This API key is revoked and can no longer change.",
        ));
    }
    let mut row: api_keys::ActiveModel = key.clone().into();
    if let Some(name) = changes.name {
        validate_name(&name)?;
        row.name = Set(name);
    }
    if let Some(description) = changes.description {
        row.description = Set(description);
    }
    if let Some(active) = changes.is_active {
        row.status = Set(if active { "active" } else { "inactive" }.to_owned());
    }
    if let Some(expires_at) = changes.expires_at {
        if expires_at.is_some_and(|at| at <= Utc::now()) {
            return Err(Error::invalid("/expires_at", "must be in the future"));
        }
        row.expires_at = Set(expires_at);
    }
    if let Some(limit_changes) = changes.limits {
        // Clearing an override is a limit change too.
        ctx.scope.require(Permission::ManageLimits)?;
        let limits = limit_changes.apply(Limits::of_key(&key));
        check_limits(ctx, &limits).await?;
        row.limit_per_minute = Set(limits.per_minute);
        row.limit_per_hour = Set(limits.per_hour);
        row.limit_per_day = Set(limits.per_day);
        row.limit_per_month = Set(limits.per_month);
    }
    row.updated_at = Set(Utc::now());
    save(ctx, "key.update", &key, row).await
}

/// Revokes a key for good; its secrets (current and in grace) stop working.
pub async fn revoke(ctx: &Ctx<'_>, id: KeyId) -> Result<api_keys::Model> {
    ctx.scope.require(Permission::ManageKeys)?;
    let key = store::find(ctx.db, ctx.scope, id).await?;
    if key.status == "revoked" {
        return Ok(key);
    }
    let now = Utc::now();
    let mut row: api_keys::ActiveModel = key.clone().into();
    row.status = Set("revoked".to_owned());
    row.revoked_at = Set(Some(now));
    row.previous_key_hash = Set(None);
    row.previous_expires_at = Set(None);
    row.updated_at = Set(now);
    save(ctx, "key.revoke", &key, row).await
}

/// Issues a new secret; the current one keeps working for `grace_seconds` (0 = stops now).
/// A secret still in grace from an earlier rotation stops at once.
pub async fn rotate(
    ctx: &Ctx<'_>,
    id: KeyId,
    grace_seconds: u64,
) -> Result<(api_keys::Model, KeySecret)> {
    ctx.scope.require(Permission::ManageKeys)?;
    if grace_seconds > MAX_GRACE_SECONDS {
        return Err(Error::invalid(
            "/grace_seconds",
            format!("must be at most {MAX_GRACE_SECONDS}"),
        ));
    }
    let key = store::find(ctx.db, ctx.scope, id).await?;
    if key.status == "revoked" {
        return Err(Error::conflict(
            "This API key is revoked and cannot be rotated.",
        ));
    }
    let secret = KeySecret::generate();
    let now = Utc::now();
    let mut row: api_keys::ActiveModel = key.clone().into();
    let in_grace = grace_seconds > 0;
    row.previous_key_hash = Set(in_grace.then(|| key.key_hash.clone()));
    row.previous_prefix = Set(in_grace.then(|| key.prefix.clone()));
    row.previous_last4 = Set(in_grace.then(|| key.last4.clone()));
    row.previous_expires_at = Set(in_grace.then(|| now + Duration::seconds(grace_seconds as i64)));
    row.key_hash = Set(secret.hash());
    row.prefix = Set(secret.display_prefix());
    row.last4 = Set(secret.last4());
    row.rotated_at = Set(Some(now));
    row.updated_at = Set(now);
    let key = save(ctx, "key.rotate", &key, row).await?;
    Ok((key, secret))
}

async fn save(
    ctx: &Ctx<'_>,
    action: &str,
    before: &api_keys::Model,
    row: api_keys::ActiveModel,
) -> Result<api_keys::Model> {
    let txn = ctx.db.begin().await?;
    let after = row.update(&txn).await?;
    record(
        &txn,
        ctx,
        action,
        &after,
        Some(snapshot(before)),
        Some(snapshot(&after)),
    )
    .await?;
    txn.commit().await?;
    ctx.events
        .publish(KeyChanged::between(Some(before), &after))
        .await;
    Ok(after)
}

async fn record(
    db: &impl ConnectionTrait,
    ctx: &Ctx<'_>,
    action: &str,
    key: &api_keys::Model,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> Result<()> {
    let entry = Entry {
        tenant_id: Some(ctx.scope.tenant_id()),
        action,
        target_type: "api_key",
        target_id: Some(KeyId::from(key.id).to_string()),
        before,
        after,
    };
    audit::record(db, ctx.audit, entry).await
}

/// What the audit log keeps of a key: everything a person changes, never a hash or secret.
fn snapshot(key: &api_keys::Model) -> serde_json::Value {
    json!({
        "name": key.name,
        "description": key.description,
        "status": key.status,
        "prefix": key.prefix,
        "last4": key.last4,
        "expires_at": key.expires_at,
        "limits": Limits::of_key(key),
        "rotated_at": key.rotated_at,
        "previous_expires_at": key.previous_expires_at,
    })
}

fn validate_name(name: &str) -> Result<()> {
    let length = name.trim().chars().count();
    if length == 0 || length > 100 {
        return Err(Error::invalid("/name", "must be 1 to 100 characters"));
    }
    Ok(())
}

/// Limits need the limits permission and, except for platform admins, must stay within the
/// tenant's plan.
async fn check_limits(ctx: &Ctx<'_>, limits: &Limits) -> Result<()> {
    if limits.is_empty() {
        return Ok(());
    }
    ctx.scope.require(Permission::ManageLimits)?;
    limits.validate("/limits")?;
    if !ctx.scope.is_platform_admin() {
        let ceiling = limits::tenant_defaults(ctx.db, ctx.scope.tenant_id(), ctx.defaults).await?;
        limits.check_within(&ceiling, "/limits")?;
    }
    Ok(())
}
