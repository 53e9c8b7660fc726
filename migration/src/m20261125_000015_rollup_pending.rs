//! `usage_rollup_pending`: the rollups of stored events that are not yet added to
//! `usage_rollups`, `usage_rollup_totals`, `usage_utilization` and the keys' counters. The
//! metering writer appends one row per (minute, tenant, key, endpoint, method, status class)
//! of a batch in the events' transaction — an insert, where adding to the rollup tables meant
//! about seven upserts and write-backs per distinct key — and a compactor folds them into
//! those tables later, many batches at once, taking them in key order so that a key's rows of
//! many batches become one upsert per bucket. `seq` orders the rows of a key; the index on
//! `(key_id, seq)` is the compactor's way through.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Pending::Table)
                    .col(big_pk_auto(Pending::Seq))
                    .col(timestamp_with_time_zone(Pending::BucketStart))
                    .col(uuid(Pending::TenantId))
                    .col(uuid(Pending::KeyId))
                    .col(text(Pending::Endpoint))
                    .col(text(Pending::Method))
                    .col(small_integer(Pending::StatusClass))
                    .col(big_integer(Pending::Count))
                    .col(text(Pending::StatusCodes))
                    .col(big_integer(Pending::BytesIn))
                    .col(big_integer(Pending::BytesOut))
                    .col(big_integer(Pending::TokensIn))
                    .col(big_integer(Pending::TokensOut))
                    .col(big_integer(Pending::CostNanos))
                    .col(big_integer(Pending::LatencySumUs))
                    .col(big_integer(Pending::LatencyMaxUs))
                    .col(blob(Pending::LatencySketch))
                    .col(timestamp_with_time_zone(Pending::LastAt))
                    .col(integer(Pending::MinutePm))
                    .col(integer(Pending::HourPm))
                    .col(integer(Pending::DayPm))
                    .col(integer(Pending::MonthPm))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("usage_rollup_pending_key_seq")
                    .table(Pending::Table)
                    .col(Pending::KeyId)
                    .col(Pending::Seq)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Pending::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Pending {
    #[sea_orm(iden = "usage_rollup_pending")]
    Table,
    Seq,
    BucketStart,
    TenantId,
    KeyId,
    Endpoint,
    Method,
    StatusClass,
    Count,
    StatusCodes,
    BytesIn,
    BytesOut,
    TokensIn,
    TokensOut,
    CostNanos,
    LatencySumUs,
    LatencyMaxUs,
    LatencySketch,
    LastAt,
    MinutePm,
    HourPm,
    DayPm,
    MonthPm,
}
