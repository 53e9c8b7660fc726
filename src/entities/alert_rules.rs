//! `alert_rules`: conditions that raise alerts, per tenant or platform-wide.

use sea_orm::entity::prelude::*;

/// An alert rule, optionally narrowed to one key, provider or endpoint.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "alert_rules")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `None` = a platform-wide rule.
    pub tenant_id: Option<Uuid>,
    /// `quota`, `rate_limit`, `error_rate`, `latency`, `usage_spike`, `failed_auth`
    /// or `budget`.
    #[sea_orm(column_type = "Text")]
    pub kind: String,
    pub key_id: Option<Uuid>,
    pub provider_id: Option<Uuid>,
    #[sea_orm(column_type = "Text")]
    pub endpoint: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub params: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub channels: Json,
    pub is_enabled: bool,
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
        belongs_to = "super::api_keys::Entity",
        from = "Column::KeyId",
        to = "super::api_keys::Column::Id",
        on_delete = "Cascade"
    )]
    ApiKeys,
    #[sea_orm(
        belongs_to = "super::providers::Entity",
        from = "Column::ProviderId",
        to = "super::providers::Column::Id",
        on_delete = "Cascade"
    )]
    Providers,
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::CreatedBy",
        to = "super::users::Column::Id",
        on_delete = "SetNull"
    )]
    CreatedBy,
    #[sea_orm(has_many = "super::alerts::Entity")]
    Alerts,
}

impl Related<super::tenants::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenants.def()
    }
}

impl Related<super::api_keys::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ApiKeys.def()
    }
}

impl Related<super::providers::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Providers.def()
    }
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::CreatedBy.def()
    }
}

impl Related<super::alerts::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Alerts.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
