//! `usage_utilization`: the peak rate-limit utilization of each key per minute, hour and day
//! bucket (per mille of the limit, per window), kept by the metering writer beside the
//! rollups. Per key only: utilization belongs to the key's windows, not to an endpoint.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(UsageUtilization::Table)
                    .col(text(UsageUtilization::Granularity))
                    .col(timestamp_with_time_zone(UsageUtilization::BucketStart))
                    .col(uuid(UsageUtilization::TenantId))
                    .col(uuid(UsageUtilization::KeyId))
                    .col(integer(UsageUtilization::MinutePm))
                    .col(integer(UsageUtilization::HourPm))
                    .col(integer(UsageUtilization::DayPm))
                    .col(integer(UsageUtilization::MonthPm))
                    .primary_key(
                        Index::create()
                            .col(UsageUtilization::Granularity)
                            .col(UsageUtilization::BucketStart)
                            .col(UsageUtilization::TenantId)
                            .col(UsageUtilization::KeyId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("usage_utilization_tenant")
                    .table(UsageUtilization::Table)
                    .col(UsageUtilization::TenantId)
                    .col(UsageUtilization::Granularity)
                    .col(UsageUtilization::BucketStart)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UsageUtilization::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum UsageUtilization {
    Table,
    Granularity,
    BucketStart,
    TenantId,
    KeyId,
    MinutePm,
    HourPm,
    DayPm,
    MonthPm,
}
