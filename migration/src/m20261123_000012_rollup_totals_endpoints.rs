//! `usage_rollup_totals.endpoints`: the set of endpoint templates summed into each tenant-totals
//! row, as a JSON object whose keys are the templates (`{"/v1/orders/{id}": 1}`). The writer
//! unites it on conflict in SQL (`||` on PostgreSQL, `json_patch` on SQLite), so the distinct
//! endpoints a tenant called in a window come from the few totals rows a summary reads anyway,
//! instead of a scan of the per-key rollups. Existing rows are filled from `usage_rollups`.

use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let column = match db.get_database_backend() {
            DbBackend::Postgres => "jsonb NOT NULL DEFAULT '{}'::jsonb",
            _ => "jsonb_text NOT NULL DEFAULT '{}'",
        };
        db.execute_unprepared(&format!(
            "ALTER TABLE usage_rollup_totals ADD COLUMN endpoints {column}"
        ))
        .await?;
        backfill(db).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE usage_rollup_totals DROP COLUMN endpoints")
            .await
            .map(|_| ())
    }
}

/// Sets every totals row's `endpoints` to the templates of its `usage_rollups` rows (read by
/// the (tenant, granularity, bucket, endpoint) index).
pub async fn backfill(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    let object = match db.get_database_backend() {
        DbBackend::Postgres => "jsonb_object_agg(d.endpoint, 1)",
        _ => "json_group_object(d.endpoint, 1)",
    };
    db.execute_unprepared(&format!(
        "UPDATE usage_rollup_totals SET endpoints = COALESCE((SELECT {object} FROM \
         (SELECT DISTINCT r.endpoint FROM usage_rollups r \
          WHERE r.tenant_id = usage_rollup_totals.tenant_id \
            AND r.granularity = usage_rollup_totals.granularity \
            AND r.bucket_start = usage_rollup_totals.bucket_start \
            AND r.method = usage_rollup_totals.method \
            AND r.status_class = usage_rollup_totals.status_class) d), '{{}}')"
    ))
    .await
    .map(|_| ())
}
