//! Replaces `usage_rollups`' tenant index (tenant, granularity, bucket start) by one that also
//! holds the endpoint, so the distinct endpoints a tenant called in a window are read from
//! the index alone (an index-only scan) instead of one heap page per rollup row. Same number
//! of indexes to maintain on every write.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const OLD: &str = "idx_usage_rollups_by_tenant";
const NEW: &str = "idx_usage_rollups_by_tenant_endpoint";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(NEW)
                    .table(UsageRollups::Table)
                    .col(UsageRollups::TenantId)
                    .col(UsageRollups::Granularity)
                    .col(UsageRollups::BucketStart)
                    .col(UsageRollups::Endpoint)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name(OLD)
                    .table(UsageRollups::Table)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(OLD)
                    .table(UsageRollups::Table)
                    .col(UsageRollups::TenantId)
                    .col(UsageRollups::Granularity)
                    .col(UsageRollups::BucketStart)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name(NEW)
                    .table(UsageRollups::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum UsageRollups {
    Table,
    TenantId,
    Granularity,
    BucketStart,
    Endpoint,
}
