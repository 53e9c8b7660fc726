//! `usage_rollups`: per-minute, -hour and -day aggregates of `usage_events`, maintained by the
//! metering compactor from the pending rows each batch appends with its events.

use sea_orm::entity::prelude::*;

/// One bucket of one (tenant, key, endpoint, method, status class); the first seven fields
/// are the key.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_rollups")]
pub struct Model {
    /// `minute`, `hour` or `day`.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub granularity: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub bucket_start: DateTimeUtc,
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    /// `Uuid::nil()` for events without a key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub key_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub endpoint: String,
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub method: String,
    /// 1–5 for 1xx–5xx.
    #[sea_orm(primary_key, auto_increment = false)]
    pub status_class: i16,
    pub count: i64,
    /// Count per status code: `{"200": 17, "204": 2}`.
    #[sea_orm(column_type = "JsonBinary")]
    pub status_codes: Json,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost_nanos: i64,
    pub latency_sum_us: i64,
    pub latency_max_us: i64,
    /// Serialized mergeable latency sketch (`metering::sketch`).
    #[sea_orm(column_type = "Blob")]
    pub latency_sketch: Vec<u8>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
