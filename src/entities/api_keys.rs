//! `api_keys`: tenants' API keys, stored as SHA-256 hashes with rotation grace and limit
//! overrides.

use sea_orm::entity::prelude::*;

/// An API key. The secret is never stored: only its hash and display prefix and last 4.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub name: String,
    #[sea_orm(column_type = "Text")]
    pub description: Option<String>,
    /// Hex SHA-256 of the secret.
    #[sea_orm(column_type = "Text", unique)]
    pub key_hash: String,
    #[sea_orm(column_type = "Text")]
    pub prefix: String,
    #[sea_orm(column_type = "Text")]
    pub last4: String,
    /// `generated` or `imported`.
    #[sea_orm(column_type = "Text")]
    pub source: String,
    /// `active`, `inactive` or `revoked`.
    #[sea_orm(column_type = "Text")]
    pub status: String,
    pub expires_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    /// The secret replaced by the last rotation, valid until `previous_expires_at`.
    #[sea_orm(column_type = "Text", unique)]
    pub previous_key_hash: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub previous_prefix: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub previous_last4: Option<String>,
    pub previous_expires_at: Option<DateTimeUtc>,
    pub rotated_at: Option<DateTimeUtc>,
    /// Per-key limits; `None` = inherit the tenant's (or the plan's).
    pub limit_per_minute: Option<i64>,
    pub limit_per_hour: Option<i64>,
    pub limit_per_day: Option<i64>,
    pub limit_per_month: Option<i64>,
    pub usage_count: i64,
    pub last_used_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "JsonBinary")]
    pub metadata: Option<Json>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::tenants::Entity",
        from = "Column::TenantId",
        to = "super::tenants::Column::Id",
        on_delete = "Cascade"
    )]
    Tenants,
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::CreatedBy",
        to = "super::users::Column::Id",
        on_delete = "SetNull"
    )]
    CreatedBy,
    #[sea_orm(has_many = "super::quota_requests::Entity")]
    QuotaRequests,
    #[sea_orm(has_many = "super::alert_rules::Entity")]
    AlertRules,
}

impl Related<super::tenants::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenants.def()
    }
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::CreatedBy.def()
    }
}

impl Related<super::quota_requests::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::QuotaRequests.def()
    }
}

impl Related<super::alert_rules::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AlertRules.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
