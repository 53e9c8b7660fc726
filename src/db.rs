//! Database connection (SQLite or PostgreSQL through SeaORM), migrations, time partitions of
//! `usage_events` on PostgreSQL, and the one place database errors are classified.

use std::time::Duration;

use anyhow::Context;
use chrono::{Days, NaiveDate, Utc};
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DbErr, SqlErr,
    Statement,
};

use crate::{
    config::DatabaseSettings,
    error::{Error, ErrorKind},
};

/// A pooled connection idle this long is pinged before it is handed out (a database restart
/// meanwhile would have broken it); one used more recently is handed out as it is.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Daily partitions of `usage_events` kept ready ahead of today (PostgreSQL only).
const PARTITION_DAYS_AHEAD: u64 = 7;

/// SQLite's private page cache of each connection of the main pool, in KiB. SQLite's default,
/// 2 MiB each, came to ~30 MB across a pool of 16 once 100,000 keys had been loaded through
/// it; the file's pages stay in the operating system's page cache, shared, so a smaller
/// private cache costs a re-read a system call instead of a disk access. The writer's own
/// connection keeps the default: its inserts walk the events' and rollups' indexes.
const POOL_PAGE_CACHE_KIB: u32 = 512;

/// Opens the pool. SQLite gets WAL and a busy timeout so the writer and readers coexist.
pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<DatabaseConnection> {
    open(settings, Some(POOL_PAGE_CACHE_KIB)).await
}

/// Opens a pool; on SQLite with `page_cache_kib` (or SQLite's default) of page cache per
/// connection.
async fn open(
    settings: &DatabaseSettings,
    page_cache_kib: Option<u32>,
) -> anyhow::Result<DatabaseConnection> {
    let url = settings.url.expose();
    if let Some(parent) = sqlite_path(url).and_then(|p| std::path::Path::new(p).parent()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating the data directory {}", parent.display()))?;
    }
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(settings.max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(settings.acquire_timeout_secs))
        .connect_timeout(Duration::from_secs(settings.acquire_timeout_secs))
        // sqlx pings a pooled connection (a round trip) on every acquire by default, on top
        // of the ping on every release; a connection in steady use needs no check.
        .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR)
        .sqlx_logging(false);
    if sqlite_path(url).is_some() {
        options.map_sqlx_sqlite_opts(|opts| {
            opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
        });
        if let Some(kib) = page_cache_kib {
            // Negative: a size in KiB rather than in pages.
            options.map_sqlx_sqlite_opts(move |opts| opts.pragma("cache_size", format!("-{kib}")));
        }
    }
    let db = Database::connect(options)
        .await
        .with_context(|| format!("connecting to {}", settings.url.redacted()))?;
    Ok(db)
}

/// The pool the usage-event writer commits its batches on, its own on either backend:
///
/// - SQLite takes one writer at a time anyway, so one connection (the batches and the rollup
///   compactor take turns); every connection the batches ran on held several MB more,
///   most likely its cached prepared 1,000-row insert (see `docs/benchmarks.md`, "Memory").
/// - PostgreSQL: one per batch committed at once (`batches`, `metering.writer_connections`),
///   one for the rollup compactor, and one more (a write abandoned at its timeout may still
///   hold one while it is closed).
///   A connection is tied to the Tokio runtime of the task that opened it; in
///   the main pool those are HTTP workers' runtimes, which stop before the writer's last
///   flush and spool replay at shutdown, taking their connections with them. `metering::start`
///   opens this pool from the pipeline's own runtime.
pub async fn writer_connection(
    settings: &DatabaseSettings,
    batches: usize,
) -> anyhow::Result<DatabaseConnection> {
    let connections = match sqlite_path(settings.url.expose()) {
        Some(_) => 1,
        None => u32::try_from(batches).unwrap_or(u32::MAX).saturating_add(2),
    };
    let settings = DatabaseSettings {
        max_connections: connections,
        ..settings.clone()
    };
    open(&settings, None).await
}

/// The file path of a `sqlite://` URL, if it is one.
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://")?;
    Some(rest.split('?').next().unwrap_or(rest))
}

/// Applies pending migrations (idempotent) and makes sure upcoming event partitions exist.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(db, None)
        .await
        .context("applying migrations")?;
    ensure_event_partitions(db, Utc::now().date_naive()).await
}

/// Creates daily `usage_events` partitions from `today` up to [`PARTITION_DAYS_AHEAD`] days
/// ahead. A no-op on SQLite. Safe to call repeatedly and from several processes.
pub async fn ensure_event_partitions(
    db: &DatabaseConnection,
    today: NaiveDate,
) -> anyhow::Result<()> {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(());
    }
    for offset in 0..=PARTITION_DAYS_AHEAD {
        let day = today + Days::new(offset);
        let next = day + Days::new(1);
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS usage_events_{name} PARTITION OF usage_events \
             FOR VALUES FROM ('{day} 00:00:00+00') TO ('{next} 00:00:00+00')",
            name = day.format("%Y%m%d"),
        );
        if let Err(err) = db.execute_unprepared(&sql).await {
            // Another node created it between our check and our statement.
            if !matches!(db_code(&err).as_deref(), Some("42P07") | Some("23505")) {
                return Err(err).with_context(|| format!("creating partition for {day}"));
            }
        }
    }
    Ok(())
}

/// Runs `SELECT 1`: the readiness check.
pub async fn ping(db: &DatabaseConnection) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    db.query_one_raw(Statement::from_string(backend, "SELECT 1"))
        .await
        .map(|_| ())
}

/// The one classification of database errors into domain errors.
pub fn classify(err: DbErr) -> Error {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => Error::new(
            ErrorKind::Conflict,
            "A resource with these values already exists.",
        )
        .with_source(err),
        Some(SqlErr::ForeignKeyConstraintViolation(_)) => Error::new(
            ErrorKind::Validation,
            "A referenced resource does not exist.",
        )
        .with_source(err),
        _ => match err {
            DbErr::RecordNotFound(detail) => Error::not_found(detail),
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => {
                Error::unavailable("The database is unavailable. Try again shortly.", err)
            }
            other => Error::internal(other),
        },
    }
}

/// The SQLSTATE code of a database error, when the driver reported one.
fn db_code(err: &DbErr) -> Option<String> {
    match err {
        DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
        | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e)) => e
            .as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.into_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::ConnectionTrait;

    use super::*;
    use crate::config::SecretUrl;

    async fn page_cache(db: &DatabaseConnection) -> i64 {
        let row = db
            .query_one_raw(Statement::from_string(
                DatabaseBackend::Sqlite,
                "PRAGMA cache_size",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index(0).unwrap()
    }

    /// The bundled SQLite is compiled as `.cargo/config.toml` says: plans independent of
    /// bound values (else every `LIMIT ?` statement is prepared again at each execution), no
    /// global memory statistics, a page cache per connection.
    #[tokio::test]
    async fn sqlite_is_built_for_many_connections() {
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        let rows = db
            .query_all_raw(Statement::from_string(
                DatabaseBackend::Sqlite,
                "PRAGMA compile_options",
            ))
            .await
            .unwrap();
        let options: Vec<String> = rows
            .iter()
            .map(|row| row.try_get_by_index(0).unwrap())
            .collect();
        for wanted in ["ENABLE_QPSG", "DEFAULT_MEMSTATUS=0"] {
            assert!(
                options.iter().any(|o| o == wanted),
                "{wanted} in {options:?}"
            );
        }
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "ENABLE_MEMORY_MANAGEMENT in {options:?}"
        );
    }

    /// The main pool's connections keep a small private page cache; the writer's keeps
    /// SQLite's default (2,000 KiB).
    #[tokio::test]
    async fn the_pool_s_sqlite_connections_cache_few_pages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tollgate.db");
        let settings = DatabaseSettings {
            url: SecretUrl::new(format!("sqlite://{}?mode=rwc", path.display())),
            max_connections: 2,
            acquire_timeout_secs: 5,
            migrate_on_start: false,
        };
        let pool = connect(&settings).await.unwrap();
        assert_eq!(page_cache(&pool).await, -i64::from(POOL_PAGE_CACHE_KIB));
        let writer = writer_connection(&settings, 1).await.unwrap();
        assert_eq!(page_cache(&writer).await, -2000);
    }
}
