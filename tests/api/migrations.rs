//! Migrations create every table and are idempotent, on SQLite and on PostgreSQL.

use migration::{Migrator, MigratorTrait, SchemaManager};
use sea_orm::DatabaseBackend;
use tollgate::db;

use crate::helpers::test_settings;

pub const TABLES: [&str; 19] = [
    "plans",
    "tenants",
    "users",
    "memberships",
    "auth_attempts",
    "api_keys",
    "quota_requests",
    "usage_events",
    "usage_rollups",
    "providers",
    "provider_credentials",
    "provider_calls",
    "budgets",
    "alert_rules",
    "alerts",
    "notifications",
    "webhook_endpoints",
    "audit_log",
    "idempotency_keys",
];

#[tokio::test]
async fn migrations_run_twice_and_create_every_table() {
    let (settings, _dir, _pg) = test_settings().await;
    let settings = settings.finalize().unwrap();
    let conn = db::connect(&settings.database).await.unwrap();
    db::migrate(&conn).await.expect("first run");
    db::migrate(&conn).await.expect("second run is a no-op");
    let schema = SchemaManager::new(&conn);
    for table in TABLES {
        assert!(
            schema.has_table(table).await.unwrap(),
            "table {table} missing"
        );
    }
    if conn.get_database_backend() == DatabaseBackend::Postgres {
        let today = chrono::Utc::now().format("usage_events_%Y%m%d").to_string();
        assert!(schema.has_table("usage_events_default").await.unwrap());
        assert!(
            schema.has_table(&today).await.unwrap(),
            "today's partition {today} missing"
        );
    }
    assert!(
        Migrator::get_pending_migrations(&conn)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn migrations_roll_back_and_reapply() {
    let (settings, _dir, _pg) = test_settings().await;
    let settings = settings.finalize().unwrap();
    let conn = db::connect(&settings.database).await.unwrap();
    db::migrate(&conn).await.unwrap();
    Migrator::down(&conn, None)
        .await
        .expect("every migration reverts");
    assert!(
        !SchemaManager::new(&conn)
            .has_table("api_keys")
            .await
            .unwrap()
    );
    // Re-applied from a new pool, as `tollgate migrate` would: on SQLite a pooled connection
    // may still hold a read snapshot from before the rollback (seen once under a loaded
    // machine: "index idx_tenants_slug already exists").
    conn.close().await.unwrap();
    let conn = db::connect(&settings.database).await.unwrap();
    db::migrate(&conn)
        .await
        .expect("re-applies after a full rollback");
    assert!(
        SchemaManager::new(&conn)
            .has_table("api_keys")
            .await
            .unwrap()
    );
}
