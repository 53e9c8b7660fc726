//! `usage_events`: one row per metered call (partitioned by `occurred_at` on PostgreSQL).
//! No foreign keys: this is the hot insert path.

use sea_orm::entity::prelude::*;

/// A metered call. Keyed by (`id`, `occurred_at`) so replays never double count.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub occurred_at: DateTimeUtc,
    pub tenant_id: Uuid,
    pub key_id: Option<Uuid>,
    /// The route template, never the raw path.
    #[sea_orm(column_type = "Text")]
    pub endpoint: String,
    #[sea_orm(column_type = "Text")]
    pub method: String,
    pub status_code: i16,
    pub latency_us: i64,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    /// In 1e-9 of the tenant's currency.
    pub cost_nanos: i64,
    #[sea_orm(column_type = "Text")]
    pub ip: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub user_agent: Option<String>,
    /// `middleware`, `gateway`, `verify` or `ingest`.
    #[sea_orm(column_type = "Text")]
    pub source: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub metadata: Option<Json>,
    pub received_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
