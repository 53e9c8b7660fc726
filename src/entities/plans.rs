//! `plans`: named rate-limit and quota packages tenants are put on.

use sea_orm::entity::prelude::*;

/// A plan: per-window request limits and an optional monthly quota.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "plans")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(column_type = "Text", unique)]
    pub name: String,
    pub per_minute: i64,
    pub per_hour: i64,
    pub per_day: i64,
    /// `None` = no monthly quota.
    pub per_month: Option<i64>,
    /// The plan new tenants get.
    pub is_default: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::tenants::Entity")]
    Tenants,
}

impl Related<super::tenants::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenants.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
