//! Tollgate's database schema as an ordered list of SeaORM migrations.
//!
//! Migrations are append-only: never edit one that has shipped, add a new file and list it
//! at the end of [`Migrator::migrations`]. Every migration works on SQLite and PostgreSQL
//! through [`SchemaManager`]; PostgreSQL-only features sit behind a backend check.

pub use sea_orm_migration::prelude::*;

mod fillfactor;
mod m20261123_000001_accounts;
mod m20261123_000002_api_keys;
mod m20261123_000003_usage;
mod m20261123_000004_quota_requests;
mod m20261123_000005_providers;
mod m20261123_000006_alerts;
mod m20261123_000007_audit_idempotency;
mod m20261123_000008_rollups_by_status_class;
mod m20261123_000009_usage_utilization;
mod m20261123_000010_rollup_totals;
mod m20261123_000011_rollups_tenant_endpoint_index;
mod m20261123_000012_rollup_totals_endpoints;
mod m20261123_000013_rollups_fillfactor;
mod m20261124_000014_api_keys_fillfactor;
mod m20261125_000015_rollup_pending;

/// Sums `usage_rollups` into `usage_rollup_totals` with each row's endpoint set (what
/// migrations 000010 and 000012 do to existing rows; public for their test).
pub async fn backfill_rollup_totals(db: &impl sea_orm::ConnectionTrait) -> Result<(), DbErr> {
    m20261123_000010_rollup_totals::backfill(db).await?;
    m20261123_000012_rollup_totals_endpoints::backfill(db).await
}

/// Runs Tollgate's migrations in order (`Migrator::up(&db, None)`).
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_accounts::Migration),
            Box::new(m20261123_000002_api_keys::Migration),
            Box::new(m20261123_000003_usage::Migration),
            Box::new(m20261123_000004_quota_requests::Migration),
            Box::new(m20261123_000005_providers::Migration),
            Box::new(m20261123_000006_alerts::Migration),
            Box::new(m20261123_000007_audit_idempotency::Migration),
            Box::new(m20261123_000008_rollups_by_status_class::Migration),
            Box::new(m20261123_000009_usage_utilization::Migration),
            Box::new(m20261123_000010_rollup_totals::Migration),
            Box::new(m20261123_000011_rollups_tenant_endpoint_index::Migration),
            Box::new(m20261123_000012_rollup_totals_endpoints::Migration),
            Box::new(m20261123_000013_rollups_fillfactor::Migration),
            Box::new(m20261124_000014_api_keys_fillfactor::Migration),
            Box::new(m20261125_000015_rollup_pending::Migration),
        ]
    }
}
