//! `quota_requests`: requests for higher limits on a key, and the admin's decision.

use sea_orm::entity::prelude::*;

/// A quota increase request. `current_*` snapshot the effective limits when it was made.
/// `users` is reached through two foreign keys, so there is no `Related<users::Entity>`: use
/// `Relation::RequestedBy` or `Relation::DecidedBy`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "quota_requests")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub key_id: Uuid,
    pub requested_by: Option<Uuid>,
    pub current_per_minute: Option<i64>,
    pub current_per_hour: Option<i64>,
    pub current_per_day: Option<i64>,
    pub current_per_month: Option<i64>,
    pub requested_per_minute: Option<i64>,
    pub requested_per_hour: Option<i64>,
    pub requested_per_day: Option<i64>,
    pub requested_per_month: Option<i64>,
    #[sea_orm(column_type = "Text")]
    pub justification: String,
    #[sea_orm(column_type = "Text")]
    pub status: String,
    pub decided_by: Option<Uuid>,
    pub decided_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text")]
    pub decision_note: Option<String>,
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
        belongs_to = "super::users::Entity",
        from = "Column::RequestedBy",
        to = "super::users::Column::Id",
        on_delete = "SetNull"
    )]
    RequestedBy,
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::DecidedBy",
        to = "super::users::Column::Id",
        on_delete = "SetNull"
    )]
    DecidedBy,
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

impl ActiveModelBehavior for ActiveModel {}
