//! Resolving a presented secret to its key: by SHA-256 hash, current secret or one still in
//! rotation grace. Unknown -> 401 `Invalid API key`; revoked, inactive or expired -> 403
//! `API key is inactive` (the exact texts clients match on).
//!
//! [`check`] is the one place these rules live. It runs on every call, whether the key came
//! from the database or from the cache (`keys::cache`), so an expiry or the end of a grace
//! period takes effect at once, never a cache lifetime later.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, Select,
    Statement,
};
use uuid::Uuid;

use super::{
    limits::{self, Limits},
    secret::{Digest, digest},
};
use crate::{
    config::LimitSettings,
    entities::api_keys,
    error::{Error, Result},
    ids::{KeyId, TenantId},
    limits::Quota,
};

pub const MISSING: &str = "Missing API key";
pub const INVALID: &str = "Invalid API key";
pub const INACTIVE: &str = "API key is inactive";

/// The stored lifecycle state of a key (expiry is separate: it depends on the time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyStatus {
    Active,
    Inactive,
    Revoked,
}

impl KeyStatus {
    /// The `api_keys.status` column; anything unexpected is treated as inactive (fail closed).
    pub fn parse(stored: &str) -> Self {
        match stored {
            "active" => Self::Active,
            "revoked" => Self::Revoked,
            _ => Self::Inactive,
        }
    }
}

/// What resolution knows about one secret — a key's current secret, or the one a rotation
/// replaced — with everything the hot path needs, limits already made effective.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedKey {
    pub id: KeyId,
    pub tenant_id: TenantId,
    pub name: String,
    pub status: KeyStatus,
    pub expires_at: Option<DateTime<Utc>>,
    /// `None` for the key's current secret; for a secret replaced by a rotation, the end of
    /// its grace period.
    pub grace_until: Option<DateTime<Utc>>,
    /// Effective limits (the key's overrides, else the tenant's, its plan's, the config's), as
    /// the limiter takes them.
    pub quota: Quota,
    /// The tenant's time zone: monthly quotas reset at its month boundary.
    pub timezone: chrono_tz::Tz,
}

impl CachedKey {
    /// The snapshot of `row` for the secret hashing to `hash` (hex), with effective `limits`.
    fn of(row: &api_keys::Model, hash: &str, limits: Limits, timezone: chrono_tz::Tz) -> Self {
        Self {
            id: row.id.into(),
            tenant_id: row.tenant_id.into(),
            name: row.name.clone(),
            status: KeyStatus::parse(&row.status),
            expires_at: row.expires_at,
            grace_until: grace_until(&row.key_hash, row.previous_expires_at, hash),
            quota: Quota::from_limits(&limits),
            timezone,
        }
    }
}

/// `None` when `hash` is the key's current secret's; else (the secret a rotation replaced)
/// the end of its grace. A replaced secret without a grace deadline is as dead as one past
/// it.
fn grace_until(
    key_hash: &str,
    previous_expires_at: Option<DateTime<Utc>>,
    hash: &str,
) -> Option<DateTime<Utc>> {
    (key_hash != hash).then(|| previous_expires_at.unwrap_or(DateTime::<Utc>::MIN_UTC))
}

/// The digest of a presented `X-API-Key` value; missing or blank -> 401 `Missing API key`.
pub fn presented(value: Option<&str>) -> Result<Digest> {
    match value.map(str::trim) {
        Some(secret) if !secret.is_empty() => Ok(digest(secret)),
        _ => Err(Error::unauthorized(MISSING)),
    }
}

/// The rules a resolved secret must pass at `now`: a replaced secret past its grace is as
/// unknown as one never issued (401); a revoked, inactive or expired key is refused (403).
pub fn check(key: &CachedKey, now: DateTime<Utc>) -> Result<()> {
    if key.grace_until.is_some_and(|until| until <= now) {
        return Err(Error::unauthorized(INVALID));
    }
    if key.status != KeyStatus::Active || key.expires_at.is_some_and(|at| at <= now) {
        return Err(Error::forbidden(INACTIVE));
    }
    Ok(())
}

/// The key answering to `hash` (hex SHA-256), as current or previous secret, with its
/// effective limits; `None` when no key has ever answered to it. No rule is applied here.
pub async fn load(
    db: &impl ConnectionTrait,
    hash: &str,
    defaults: &LimitSettings,
) -> Result<Option<CachedKey>> {
    let load = Statement::from_sql_and_values(db.get_database_backend(), LOAD, [hash.into()]);
    let Some(row) = KeyRow::find_by_statement(load).one(db).await? else {
        return Ok(None);
    };
    let plan = row.plan_id.map(|_| Limits {
        per_minute: row.plan_per_minute,
        per_hour: row.plan_per_hour,
        per_day: row.plan_per_day,
        per_month: row.plan_per_month,
    });
    let tenant = Limits {
        per_minute: row.tenant_per_minute,
        per_hour: row.tenant_per_hour,
        per_day: row.tenant_per_day,
        per_month: row.tenant_per_month,
    };
    let policy = limits::policy(row.tenant_id, tenant, plan, &row.timezone, defaults);
    let key = Limits {
        per_minute: row.key_per_minute,
        per_hour: row.key_per_hour,
        per_day: row.key_per_day,
        per_month: row.key_per_month,
    };
    Ok(Some(CachedKey {
        id: row.id.into(),
        tenant_id: row.tenant_id.into(),
        grace_until: grace_until(&row.key_hash, row.previous_expires_at, hash),
        name: row.name,
        status: KeyStatus::parse(&row.status),
        expires_at: row.expires_at,
        quota: Quota::from_limits(&key.or(policy.limits)),
        timezone: policy.timezone,
    }))
}

/// What a cache miss reads ([`LOAD`]): of the key, what the rules and the limiter need; of its
/// tenant, its overrides and time zone; of the tenant's plan (`plan_id` is `None` without
/// one), its limits.
#[derive(FromQueryResult)]
struct KeyRow {
    id: Uuid,
    tenant_id: Uuid,
    name: String,
    status: String,
    expires_at: Option<DateTime<Utc>>,
    key_hash: String,
    previous_expires_at: Option<DateTime<Utc>>,
    key_per_minute: Option<i64>,
    key_per_hour: Option<i64>,
    key_per_day: Option<i64>,
    key_per_month: Option<i64>,
    tenant_per_minute: Option<i64>,
    tenant_per_hour: Option<i64>,
    tenant_per_day: Option<i64>,
    tenant_per_month: Option<i64>,
    timezone: String,
    plan_id: Option<Uuid>,
    plan_per_minute: Option<i64>,
    plan_per_hour: Option<i64>,
    plan_per_day: Option<i64>,
    plan_per_month: Option<i64>,
}

/// The key answering to `$1` as its current or previous secret, with its tenant and plan, in
/// one statement: a cache miss is on the request path. A fixed text (`$1` binds on both
/// backends) and only the columns [`KeyRow`] reads, where the entities' query decoded the
/// key's and the tenant's ~40 columns and read the plan in a second query.
const LOAD: &str = "SELECT k.id, k.tenant_id, k.name, k.status, k.expires_at, k.key_hash, \
    k.previous_expires_at, k.limit_per_minute AS key_per_minute, \
    k.limit_per_hour AS key_per_hour, k.limit_per_day AS key_per_day, \
    k.limit_per_month AS key_per_month, t.limit_per_minute AS tenant_per_minute, \
    t.limit_per_hour AS tenant_per_hour, t.limit_per_day AS tenant_per_day, \
    t.limit_per_month AS tenant_per_month, t.timezone, p.id AS plan_id, \
    p.per_minute AS plan_per_minute, p.per_hour AS plan_per_hour, \
    p.per_day AS plan_per_day, p.per_month AS plan_per_month \
    FROM api_keys k JOIN tenants t ON t.id = k.tenant_id \
    LEFT JOIN plans p ON p.id = t.plan_id \
    WHERE k.key_hash = $1 OR k.previous_key_hash = $1 LIMIT 1";

/// Uncached resolution of a presented secret to its full row, verified usable (for tools and
/// tests; the hot path goes through `keys::cache::KeyCache`).
pub async fn resolve(
    db: &impl ConnectionTrait,
    presented_secret: &str,
    now: DateTime<Utc>,
) -> Result<api_keys::Model> {
    let hash = hex::encode(presented(Some(presented_secret))?);
    let row = find_rows(&hash)
        .one(db)
        .await?
        .ok_or_else(|| Error::unauthorized(INVALID))?;
    // Limits play no part in the rules; the snapshot is only checked.
    check(
        &CachedKey::of(&row, &hash, Limits::default(), chrono_tz::Tz::UTC),
        now,
    )?;
    Ok(row)
}

/// The key answering to `hash` as its current or previous secret.
fn find_rows(hash: &str) -> Select<api_keys::Entity> {
    let matches = Condition::any()
        .add(api_keys::Column::KeyHash.eq(hash))
        .add(api_keys::Column::PreviousKeyHash.eq(hash));
    api_keys::Entity::find().filter(matches)
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn key(status: KeyStatus) -> CachedKey {
        CachedKey {
            id: KeyId::new(),
            tenant_id: TenantId::new(),
            name: "k".into(),
            status,
            expires_at: None,
            grace_until: None,
            quota: Quota::from_limits(&Limits::default()),
            timezone: chrono_tz::Tz::UTC,
        }
    }

    fn detail(result: Result<()>) -> String {
        result.err().map(|e| e.detail).unwrap_or_default()
    }

    #[test]
    fn the_rules_apply_at_the_time_given() {
        let now = Utc::now();
        assert!(check(&key(KeyStatus::Active), now).is_ok());
        assert_eq!(detail(check(&key(KeyStatus::Inactive), now)), INACTIVE);
        assert_eq!(detail(check(&key(KeyStatus::Revoked), now)), INACTIVE);
        let expiring = CachedKey {
            expires_at: Some(now + Duration::seconds(1)),
            ..key(KeyStatus::Active)
        };
        assert!(check(&expiring, now).is_ok());
        assert_eq!(
            detail(check(&expiring, now + Duration::seconds(1))),
            INACTIVE
        );
        let in_grace = CachedKey {
            grace_until: Some(now + Duration::seconds(1)),
            ..key(KeyStatus::Active)
        };
        assert!(check(&in_grace, now).is_ok());
        assert_eq!(
            detail(check(&in_grace, now + Duration::seconds(2))),
            INVALID
        );
    }

    #[test]
    fn a_blank_or_absent_secret_is_missing() {
        for value in [None, Some(""), Some("  ")] {
            assert_eq!(presented(value).unwrap_err().detail, MISSING);
        }
        assert_eq!(presented(Some(" abc ")).unwrap(), digest("abc"));
    }
}
