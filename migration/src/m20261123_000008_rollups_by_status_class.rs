//! Rollups keyed by status class: recreates `usage_rollups` (never written before this
//! migration) with `status_class` (1–5 for 1xx–5xx) in the key, so every figure — latency
//! percentiles included — can be filtered by status class exactly. The per-class counter
//! columns and the utilisation columns of the first version are gone: a row's class is its
//! key, and rate-limit utilisation is per key, not per (endpoint, method, class).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UsageRollups::Table).to_owned())
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UsageRollups::Table)
                    // `minute`, `hour` or `day`; buckets start on UTC boundaries.
                    .col(text(UsageRollups::Granularity))
                    .col(timestamp_with_time_zone(UsageRollups::BucketStart))
                    .col(uuid(UsageRollups::TenantId))
                    // The nil UUID when the events had no key: key columns cannot be NULL.
                    .col(uuid(UsageRollups::KeyId))
                    .col(text(UsageRollups::Endpoint))
                    .col(text(UsageRollups::Method))
                    .col(small_integer(UsageRollups::StatusClass))
                    .col(big_integer(UsageRollups::Count))
                    // {"200": 17, "204": 2}
                    .col(json_binary(UsageRollups::StatusCodes))
                    .col(big_integer(UsageRollups::BytesIn))
                    .col(big_integer(UsageRollups::BytesOut))
                    .col(big_integer(UsageRollups::TokensIn))
                    .col(big_integer(UsageRollups::TokensOut))
                    .col(big_integer(UsageRollups::CostNanos))
                    .col(big_integer(UsageRollups::LatencySumUs))
                    .col(big_integer(UsageRollups::LatencyMaxUs))
                    // A serialized HDR histogram (V2): percentiles over a range merge these.
                    .col(blob(UsageRollups::LatencySketch))
                    .col(timestamp_with_time_zone(UsageRollups::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(UsageRollups::Granularity)
                            .col(UsageRollups::BucketStart)
                            .col(UsageRollups::TenantId)
                            .col(UsageRollups::KeyId)
                            .col(UsageRollups::Endpoint)
                            .col(UsageRollups::Method)
                            .col(UsageRollups::StatusClass),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_usage_rollups_by_tenant")
                    .table(UsageRollups::Table)
                    .col(UsageRollups::TenantId)
                    .col(UsageRollups::Granularity)
                    .col(UsageRollups::BucketStart)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Back to the first version's (empty) table; its rows cannot be converted back.
        manager
            .drop_table(Table::drop().table(UsageRollups::Table).to_owned())
            .await?;
        crate::m20261123_000003_usage::create_usage_rollups(manager).await
    }
}

#[derive(DeriveIden)]
enum UsageRollups {
    Table,
    Granularity,
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
    UpdatedAt,
}
