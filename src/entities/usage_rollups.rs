//! `usage_rollups`: per-minute, -hour and -day aggregates of `usage_events`.

use sea_orm::entity::prelude::*;

/// One bucket of one (tenant, key, endpoint, method); the first six fields are the key.
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
    pub count: i64,
    pub status_1xx: i64,
    pub status_2xx: i64,
    pub status_3xx: i64,
    pub status_4xx: i64,
    pub status_5xx: i64,
    /// Count per status code: `{"200": 17, "404": 2}`.
    #[sea_orm(column_type = "JsonBinary")]
    pub status_codes: Json,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost_nanos: i64,
    pub latency_sum_us: i64,
    pub latency_max_us: i64,
    /// Serialized mergeable latency sketch.
    #[sea_orm(column_type = "Blob")]
    pub latency_sketch: Vec<u8>,
    /// Peak rate-limit utilisation in the bucket, in thousandths of the limit.
    pub util_minute_permille: Option<i32>,
    pub util_hour_permille: Option<i32>,
    pub util_day_permille: Option<i32>,
    pub util_month_permille: Option<i32>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
