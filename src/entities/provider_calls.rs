//! `provider_calls`: one row per outbound provider call, with its cost and attribution.

use sea_orm::entity::prelude::*;

/// An outbound call through the provider proxy.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "provider_calls")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub occurred_at: DateTimeUtc,
    pub provider_id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    #[sea_orm(column_type = "Text")]
    pub feature: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub region: String,
    #[sea_orm(column_type = "Text")]
    pub endpoint: String,
    /// `None` when no response arrived.
    pub status_code: Option<i32>,
    /// `success`, `error` or `timeout`.
    #[sea_orm(column_type = "Text")]
    pub outcome: String,
    pub latency_us: i64,
    pub units: i64,
    /// In 1e-9 of `currency`.
    pub cost_nanos: i64,
    #[sea_orm(column_type = "String(StringLen::N(3))")]
    pub currency: String,
    /// On a failover: the provider whose failure led to this call.
    pub failover_from: Option<Uuid>,
    #[sea_orm(column_type = "Text")]
    pub error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::providers::Entity",
        from = "Column::ProviderId",
        to = "super::providers::Column::Id",
        on_delete = "Cascade"
    )]
    Providers,
}

impl Related<super::providers::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Providers.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
