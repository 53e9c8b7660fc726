//! Per-key limits: overrides stored on the key, inheriting the tenant's, then the plan's, then
//! the configured defaults. Minute, hour and day always have a value; month may be none.

use sea_orm::{ConnectionTrait, EntityTrait};
use serde::{Deserialize, Serialize};

use crate::{
    config::LimitSettings,
    entities::{api_keys, plans, tenants},
    error::{Error, Result},
    ids::TenantId,
};

/// Largest accepted limit in any window.
pub const MAX_LIMIT: i64 = 1_000_000_000_000;

/// Limits per window; `None` means "inherit" for overrides and "unlimited" for the month of
/// an effective set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub per_minute: Option<i64>,
    pub per_hour: Option<i64>,
    pub per_day: Option<i64>,
    pub per_month: Option<i64>,
}

impl Limits {
    /// The windows by name, for validation messages and comparisons.
    pub fn windows(&self) -> [(&'static str, Option<i64>); 4] {
        [
            ("per_minute", self.per_minute),
            ("per_hour", self.per_hour),
            ("per_day", self.per_day),
            ("per_month", self.per_month),
        ]
    }

    pub fn is_empty(&self) -> bool {
        self.windows().iter().all(|(_, v)| v.is_none())
    }

    /// Each window of `self`, falling back to `base`.
    pub fn or(self, base: Limits) -> Limits {
        Limits {
            per_minute: self.per_minute.or(base.per_minute),
            per_hour: self.per_hour.or(base.per_hour),
            per_day: self.per_day.or(base.per_day),
            per_month: self.per_month.or(base.per_month),
        }
    }

    /// The overrides stored on a key.
    pub fn of_key(key: &api_keys::Model) -> Limits {
        Limits {
            per_minute: key.limit_per_minute,
            per_hour: key.limit_per_hour,
            per_day: key.limit_per_day,
            per_month: key.limit_per_month,
        }
    }

    /// Every value must be between 1 and [`MAX_LIMIT`]; pointers are under `pointer_base`.
    pub fn validate(&self, pointer_base: &str) -> Result<()> {
        for (name, value) in self.windows() {
            if value.is_some_and(|v| !(1..=MAX_LIMIT).contains(&v)) {
                return Err(Error::invalid(
                    format!("{pointer_base}/{name}"),
                    format!("must be between 1 and {MAX_LIMIT}"),
                ));
            }
        }
        Ok(())
    }

    /// 422 when an override exceeds the tenant's limit for that window (a quota increase is
    /// the way past it).
    pub fn check_within(&self, ceiling: &Limits, pointer_base: &str) -> Result<()> {
        for ((name, value), (_, max)) in self.windows().into_iter().zip(ceiling.windows()) {
            if let (Some(value), Some(max)) = (value, max)
                && value > max
            {
                return Err(Error::invalid(
                    format!("{pointer_base}/{name}"),
                    format!("exceeds the plan's limit of {max}; request a quota increase"),
                ));
            }
        }
        Ok(())
    }
}

/// What a tenant imposes on its keys: the limits a key gets when it sets none, and the
/// time zone its calendar months follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TenantPolicy {
    pub limits: Limits,
    pub timezone: chrono_tz::Tz,
}

/// The limits a key of this tenant gets when it sets none: tenant overrides, then its plan,
/// then the configured defaults.
pub async fn tenant_defaults(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    defaults: &LimitSettings,
) -> Result<Limits> {
    Ok(tenant_policy(db, tenant, defaults).await?.limits)
}

/// The tenant's [`TenantPolicy`]. An unreadable stored time zone falls back to UTC.
pub async fn tenant_policy(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    defaults: &LimitSettings,
) -> Result<TenantPolicy> {
    let tenant = tenants::Entity::find_by_id(tenant.0)
        .one(db)
        .await?
        .ok_or_else(|| Error::not_found(format!("No tenant {tenant}.")))?;
    policy_of(db, &tenant, defaults).await
}

/// [`tenant_policy`] of a tenant row already read (its plan, if any, is read here).
pub async fn policy_of(
    db: &impl ConnectionTrait,
    tenant: &tenants::Model,
    defaults: &LimitSettings,
) -> Result<TenantPolicy> {
    let plan = match tenant.plan_id {
        Some(plan) => plans::Entity::find_by_id(plan).one(db).await?,
        None => None,
    };
    let plan = plan.map(|p| Limits {
        per_minute: Some(p.per_minute),
        per_hour: Some(p.per_hour),
        per_day: Some(p.per_day),
        per_month: p.per_month,
    });
    let overrides = Limits {
        per_minute: tenant.limit_per_minute,
        per_hour: tenant.limit_per_hour,
        per_day: tenant.limit_per_day,
        per_month: tenant.limit_per_month,
    };
    Ok(policy(
        tenant.id,
        overrides,
        plan,
        &tenant.timezone,
        defaults,
    ))
}

/// The [`TenantPolicy`] of a tenant with these `overrides` and stored `timezone`, on a plan
/// with these limits (or on none: the configured defaults). An unreadable time zone falls
/// back to UTC.
pub(crate) fn policy(
    tenant: uuid::Uuid,
    overrides: Limits,
    plan: Option<Limits>,
    timezone: &str,
    defaults: &LimitSettings,
) -> TenantPolicy {
    let configured = Limits {
        per_minute: Some(defaults.per_minute as i64),
        per_hour: Some(defaults.per_hour as i64),
        per_day: Some(defaults.per_day as i64),
        per_month: (defaults.per_month > 0).then_some(defaults.per_month as i64),
    };
    let timezone = timezone.parse().unwrap_or_else(|_| {
        tracing::warn!(%tenant, timezone, "unknown time zone; using UTC");
        chrono_tz::Tz::UTC
    });
    TenantPolicy {
        limits: overrides.or(plan.unwrap_or(configured)),
        timezone,
    }
}
