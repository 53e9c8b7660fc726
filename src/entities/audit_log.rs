//! `audit_log`: append-only record of administrative actions. No foreign keys: the trail
//! outlives its tenant and actors.

use sea_orm::entity::prelude::*;

/// One audited action; `id` is a UUIDv7, so ids sort by time.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    /// `user`, `api_key` or `system`.
    #[sea_orm(column_type = "Text")]
    pub actor_type: String,
    pub actor_id: Option<Uuid>,
    #[sea_orm(column_type = "Text")]
    pub actor_label: String,
    /// E.g. `key.create`.
    #[sea_orm(column_type = "Text")]
    pub action: String,
    #[sea_orm(column_type = "Text")]
    pub target_type: String,
    #[sea_orm(column_type = "Text")]
    pub target_id: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub before: Option<Json>,
    #[sea_orm(column_type = "JsonBinary")]
    pub after: Option<Json>,
    #[sea_orm(column_type = "Text")]
    pub ip: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub user_agent: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub request_id: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
