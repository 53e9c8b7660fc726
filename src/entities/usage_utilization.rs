//! `usage_utilization`: each key's peak rate-limit utilization per minute, hour and day
//! bucket, kept by the metering compactor beside the rollups.

use sea_orm::entity::prelude::*;

/// One bucket of one key; the first four fields are the key. Utilization is in per mille of
/// the window's limit at the time (0: no limit, or no call decided by the limiter).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_utilization")]
pub struct Model {
    /// `minute`, `hour` or `day`.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub granularity: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub bucket_start: DateTimeUtc,
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub key_id: Uuid,
    pub minute_pm: i32,
    pub hour_pm: i32,
    pub day_pm: i32,
    pub month_pm: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
