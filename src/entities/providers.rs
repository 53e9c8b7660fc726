//! `providers`: the external APIs the platform calls through Tollgate's provider proxy.

use sea_orm::entity::prelude::*;

/// An upstream provider in a region, with its failover priority and price.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "providers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub name: String,
    #[sea_orm(column_type = "Text", unique)]
    pub slug: String,
    #[sea_orm(column_type = "Text")]
    pub kind: String,
    #[sea_orm(column_type = "Text")]
    pub region: String,
    /// 1 = primary, 2 = first backup, ...
    pub priority: i32,
    #[sea_orm(column_type = "Text")]
    pub base_url: String,
    /// `per_call`, `per_credit` or `per_1k_tokens`.
    #[sea_orm(column_type = "Text")]
    pub pricing_model: String,
    /// Price of one unit in 1e-9 of `currency`.
    pub unit_price_nanos: i64,
    #[sea_orm(column_type = "String(StringLen::N(3))")]
    pub currency: String,
    pub timeout_ms: i32,
    #[sea_orm(column_type = "Text")]
    pub status: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::provider_credentials::Entity")]
    ProviderCredentials,
    #[sea_orm(has_many = "super::provider_calls::Entity")]
    ProviderCalls,
    #[sea_orm(has_many = "super::budgets::Entity")]
    Budgets,
    #[sea_orm(has_many = "super::alert_rules::Entity")]
    AlertRules,
}

impl Related<super::provider_credentials::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ProviderCredentials.def()
    }
}

impl Related<super::provider_calls::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ProviderCalls.def()
    }
}

impl Related<super::budgets::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Budgets.def()
    }
}

impl Related<super::alert_rules::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AlertRules.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
