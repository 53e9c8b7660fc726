//! `budgets`: spending limits per provider (or across all providers) and period.

use sea_orm::entity::prelude::*;

/// A budget; unique per (provider, period, currency), with one all-provider budget per
/// (period, currency).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "budgets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `None` = all providers.
    pub provider_id: Option<Uuid>,
    #[sea_orm(column_type = "Text")]
    pub name: String,
    #[sea_orm(column_type = "Text")]
    pub period: String,
    /// In 1e-9 of `currency`.
    pub amount_nanos: i64,
    #[sea_orm(column_type = "String(StringLen::N(3))")]
    pub currency: String,
    /// Alert thresholds in percent, e.g. `[70, 85, 95]`.
    #[sea_orm(column_type = "JsonBinary")]
    pub thresholds: Json,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
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
