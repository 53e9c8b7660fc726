//! Usage: creates `usage_events` (raw metered calls) and `usage_rollups` (minute/hour/day
//! pre-aggregates).
//!
//! On PostgreSQL `usage_events` is a table `PARTITION BY RANGE (occurred_at)` with a DEFAULT
//! partition `usage_events_default`; the application creates the daily partitions at run time.
//! On SQLite it is a plain table with the same columns and key. Both hot tables carry no
//! foreign keys, so writes never wait on a lookup in another table.

use sea_orm_migration::{prelude::*, schema::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_usage_events(manager).await?;
        create_usage_rollups(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UsageRollups::Table).to_owned())
            .await?;
        // On PostgreSQL this drops every partition with the parent.
        manager
            .drop_table(Table::drop().table(UsageEvents::Table).to_owned())
            .await
    }
}

async fn create_usage_events(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let is_postgres = manager.get_database_backend() == DbBackend::Postgres;
    let mut table = Table::create()
        .table(UsageEvents::Table)
        .col(uuid(UsageEvents::Id))
        .col(timestamp_with_time_zone(UsageEvents::OccurredAt))
        .col(uuid(UsageEvents::TenantId))
        .col(uuid_null(UsageEvents::KeyId))
        // The route template, never the raw path.
        .col(text(UsageEvents::Endpoint))
        .col(text(UsageEvents::Method))
        .col(small_integer(UsageEvents::StatusCode))
        .col(big_integer(UsageEvents::LatencyUs))
        .col(big_integer(UsageEvents::BytesIn))
        .col(big_integer(UsageEvents::BytesOut))
        .col(big_integer(UsageEvents::TokensIn))
        .col(big_integer(UsageEvents::TokensOut))
        .col(big_integer(UsageEvents::CostNanos))
        .col(text_null(UsageEvents::Ip))
        .col(text_null(UsageEvents::UserAgent))
        .col(text(UsageEvents::Source))
        .col(json_binary_null(UsageEvents::Metadata))
        .col(timestamp_with_time_zone(UsageEvents::ReceivedAt))
        // A partitioned table's key must contain the partition column.
        .primary_key(
            Index::create()
                .col(UsageEvents::Id)
                .col(UsageEvents::OccurredAt),
        )
        .to_owned();
    if is_postgres {
        table.partition_by_range([UsageEvents::OccurredAt]);
    }
    manager.create_table(table).await?;
    if is_postgres {
        manager
            .get_connection()
            .execute_unprepared(
                r#"CREATE TABLE "usage_events_default" PARTITION OF "usage_events" DEFAULT"#,
            )
            .await?;
    }
    for (name, col) in [
        (
            "idx_usage_events_tenant_id_occurred_at",
            UsageEvents::TenantId,
        ),
        ("idx_usage_events_key_id_occurred_at", UsageEvents::KeyId),
    ] {
        manager
            .create_index(
                Index::create()
                    .name(name)
                    .table(UsageEvents::Table)
                    .col(col)
                    .col(UsageEvents::OccurredAt)
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

pub(crate) async fn create_usage_rollups(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(UsageRollups::Table)
                .col(text(UsageRollups::Granularity))
                .col(timestamp_with_time_zone(UsageRollups::BucketStart))
                .col(uuid(UsageRollups::TenantId))
                // The nil UUID when the events had no key: key columns cannot be NULL.
                .col(uuid(UsageRollups::KeyId))
                .col(text(UsageRollups::Endpoint))
                .col(text(UsageRollups::Method))
                .col(big_integer(UsageRollups::Count))
                .col(big_integer(UsageRollups::Status1xx))
                .col(big_integer(UsageRollups::Status2xx))
                .col(big_integer(UsageRollups::Status3xx))
                .col(big_integer(UsageRollups::Status4xx))
                .col(big_integer(UsageRollups::Status5xx))
                // {"200": 17, "404": 2}
                .col(json_binary(UsageRollups::StatusCodes))
                .col(big_integer(UsageRollups::BytesIn))
                .col(big_integer(UsageRollups::BytesOut))
                .col(big_integer(UsageRollups::TokensIn))
                .col(big_integer(UsageRollups::TokensOut))
                .col(big_integer(UsageRollups::CostNanos))
                .col(big_integer(UsageRollups::LatencySumUs))
                .col(big_integer(UsageRollups::LatencyMaxUs))
                // A serialized mergeable sketch: percentiles over a range merge these.
                .col(blob(UsageRollups::LatencySketch))
                // Peak rate-limit utilisation in the bucket, in thousandths.
                .col(integer_null(UsageRollups::UtilMinutePermille))
                .col(integer_null(UsageRollups::UtilHourPermille))
                .col(integer_null(UsageRollups::UtilDayPermille))
                .col(integer_null(UsageRollups::UtilMonthPermille))
                .col(timestamp_with_time_zone(UsageRollups::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(UsageRollups::Granularity)
                        .col(UsageRollups::BucketStart)
                        .col(UsageRollups::TenantId)
                        .col(UsageRollups::KeyId)
                        .col(UsageRollups::Endpoint)
                        .col(UsageRollups::Method),
                )
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("idx_usage_rollups_tenant_id_granularity_bucket_start")
                .table(UsageRollups::Table)
                .col(UsageRollups::TenantId)
                .col(UsageRollups::Granularity)
                .col(UsageRollups::BucketStart)
                .to_owned(),
        )
        .await
}

#[derive(DeriveIden)]
enum UsageEvents {
    Table,
    Id,
    OccurredAt,
    TenantId,
    KeyId,
    Endpoint,
    Method,
    StatusCode,
    LatencyUs,
    BytesIn,
    BytesOut,
    TokensIn,
    TokensOut,
    CostNanos,
    Ip,
    UserAgent,
    Source,
    Metadata,
    ReceivedAt,
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
    Count,
    #[sea_orm(iden = "status_1xx")]
    Status1xx,
    #[sea_orm(iden = "status_2xx")]
    Status2xx,
    #[sea_orm(iden = "status_3xx")]
    Status3xx,
    #[sea_orm(iden = "status_4xx")]
    Status4xx,
    #[sea_orm(iden = "status_5xx")]
    Status5xx,
    StatusCodes,
    BytesIn,
    BytesOut,
    TokensIn,
    TokensOut,
    CostNanos,
    LatencySumUs,
    LatencyMaxUs,
    LatencySketch,
    UtilMinutePermille,
    UtilHourPermille,
    UtilDayPermille,
    UtilMonthPermille,
    UpdatedAt,
}
