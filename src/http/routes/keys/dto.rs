//! Request and response bodies of `/v1/keys`. Request bodies reject unknown fields, so
//! `tenant_id`, `status`, `usage_count` and the like cannot be smuggled in.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::double_option;
use crate::{ids::KeyId, keys::limits::Limits};

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyIn {
    /// A name to recognise the key by, 1–100 characters.
    pub name: String,
    pub description: Option<String>,
    /// Per-window overrides; omitted windows inherit the plan's.
    #[serde(default)]
    pub limits: Option<Limits>,
    /// When the key stops working; must be in the future.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportIn {
    pub name: String,
    /// The existing secret, at least 24 characters, no whitespace. Stored only as a hash.
    pub secret: String,
    pub description: Option<String>,
    #[serde(default)]
    pub limits: Option<Limits>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyPatch {
    pub name: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// `false` deactivates the key (403 `API key is inactive`), `true` reactivates it.
    pub is_active: Option<bool>,
    pub limits: Option<LimitsPatch>,
    /// `null` removes the expiry.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub expires_at: Option<Option<DateTime<Utc>>>,
}

/// Limit overrides to change; `null` makes a window inherit the plan's again.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsPatch {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub per_minute: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub per_hour: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub per_day: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub per_month: Option<Option<i64>>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateIn {
    /// Seconds the old secret keeps working (0–604800, default 0).
    #[serde(default)]
    pub grace_seconds: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyOut {
    pub id: KeyId,
    pub name: String,
    pub description: Option<String>,
    /// The secret's first characters, for recognising it (`tg_live_AbCd`).
    pub prefix: String,
    /// The secret's last four characters.
    pub last4: String,
    /// `active`, `inactive`, `expired` or `revoked`.
    pub status: &'static str,
    /// `generated` or `imported`.
    pub source: String,
    /// The limits in force: overrides, else the tenant's plan. `per_month: null` = no quota.
    pub limits: Limits,
    /// The overrides set on this key (`null` = inherited).
    pub limit_overrides: Limits,
    /// Calls served with this key.
    pub usage_count: i64,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub rotated_at: Option<DateTime<Utc>>,
    /// Until when the secret replaced by the last rotation still works.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A key with its secret: returned only by create and rotate.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyCreatedOut {
    #[serde(flatten)]
    pub key: KeyOut,
    /// The secret to send as `X-API-Key`. Store it now: it is never shown again.
    pub secret: String,
}
