//! The run uses the backends it was asked to: under `TOLLGATE_TEST_REQUIRE_ALL=1` a missing
//! PostgreSQL or Redis fails here instead of silently testing SQLite only.

use sea_orm::DatabaseBackend;

use crate::helpers::{Backends, require_or_skip, spawn_app};

#[tokio::test]
async fn postgres_backend_is_used_when_configured() {
    let backends = Backends::from_env();
    let app = spawn_app().await;
    let backend = app.state.db.get_database_backend();
    match require_or_skip(
        "postgres",
        backends.postgres,
        "postgres_backend_is_used_when_configured",
    ) {
        Some(_) => assert_eq!(backend, DatabaseBackend::Postgres),
        None => assert_eq!(backend, DatabaseBackend::Sqlite),
    }
}

#[tokio::test]
async fn redis_is_required_when_asked() {
    if require_or_skip(
        "redis",
        Backends::from_env().redis,
        "redis_is_required_when_asked",
    )
    .is_some()
    {
        let app = spawn_app().await;
        let redis = app.state.redis.as_ref().expect("redis configured");
        redis.ping().await.expect("redis answers PING");
    }
}
