//! `usage_rollup_totals`: `usage_rollups` summed over keys and endpoints, per tenant, method
//! and status class — what questions about a tenant's whole traffic read.

use sea_orm::entity::prelude::*;

/// One bucket of one (tenant, method, status class); `key_id` is always nil and `endpoint`
/// `*`, so a row reads as a `usage_rollups` row (`From`, which leaves out `endpoints`).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_rollup_totals")]
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
    /// The endpoint templates summed into this row, as the keys of an object:
    /// `{"/v1/orders/{id}": 1}` (migration 000012).
    #[sea_orm(column_type = "JsonBinary")]
    pub endpoints: Json,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl From<Model> for super::usage_rollups::Model {
    fn from(m: Model) -> Self {
        Self {
            granularity: m.granularity,
            bucket_start: m.bucket_start,
            tenant_id: m.tenant_id,
            key_id: m.key_id,
            endpoint: m.endpoint,
            method: m.method,
            status_class: m.status_class,
            count: m.count,
            status_codes: m.status_codes,
            bytes_in: m.bytes_in,
            bytes_out: m.bytes_out,
            tokens_in: m.tokens_in,
            tokens_out: m.tokens_out,
            cost_nanos: m.cost_nanos,
            latency_sum_us: m.latency_sum_us,
            latency_max_us: m.latency_max_us,
            latency_sketch: m.latency_sketch,
            updated_at: m.updated_at,
        }
    }
}
