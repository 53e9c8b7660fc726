//! Leaves room in the rollup tables' pages (PostgreSQL `fillfactor = 70`) so the writer's
//! updates of a bucket — every batch adds to the rows of the buckets it touches — are HOT
//! updates: the new row version goes on the same page and no index entry is written, since no
//! indexed column changes. With full pages every update also inserted entries into each
//! index. Applies to pages written from now on. SQLite has no such setting.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: [&str; 3] = ["usage_rollups", "usage_rollup_totals", "usage_utilization"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::fillfactor::set(manager, &TABLES, "fillfactor = 70").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::fillfactor::set(manager, &TABLES, "fillfactor = 100").await
    }
}
