//! Resolving a presented secret to its key: by SHA-256 hash, current secret or one still in
//! rotation grace. Unknown -> 401 `Invalid API key`; revoked, inactive or expired -> 403
//! `API key is inactive` (the exact texts clients match on).
//!
//! [`check`] is the one place these rules live. It runs on every call, whether the key came
//! from the database or from the cache (`keys::cache`), so an expiry or the end of a grace
//! period takes effect at once, never a cache lifetime later.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, Select};

use super::{
    limits::{self, Limits},
    secret::{Digest, digest},
};
use crate::{
    config::LimitSettings,
    entities::{api_keys, tenants},
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
        let grace_until = (row.key_hash != hash).then(|| {
            // A replaced secret without a grace deadline is as dead as one past it.
            row.previous_expires_at.unwrap_or(DateTime::<Utc>::MIN_UTC)
        });
        Self {
            id: row.id.into(),
            tenant_id: row.tenant_id.into(),
            name: row.name.clone(),
            status: KeyStatus::parse(&row.status),
            expires_at: row.expires_at,
            grace_until,
            quota: Quota::from_limits(&limits),
            timezone,
        }
    }
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
    // The key and its tenant in one query (a cache miss is on the request path).
    let Some((row, tenant)) = find_rows(hash)
        .find_also_related(tenants::Entity)
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let tenant = tenant.ok_or_else(|| Error::not_found(format!("No tenant {}.", row.tenant_id)))?;
    let policy = limits::policy_of(db, &tenant, defaults).await?;
    let effective = Limits::of_key(&row).or(policy.limits);
    Ok(Some(CachedKey::of(&row, hash, effective, policy.timezone)))
}

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
