//! Writing batches of usage events: one transaction that inserts the events that are not
//! stored yet (`ON CONFLICT (id, occurred_at) DO NOTHING`) and adds exactly the inserted ones
//! to their keys' `usage_count` / `last_used_at` and to their rollup buckets
//! (`rollups.rs`), so replays and re-sends never double count.
//! Both write with sqlx on the pool's connection: PostgreSQL by binary `COPY` (`postgres.rs`:
//! straight into `usage_events`, through a staging table when a batch holds a stored id),
//! SQLite by multi-row `INSERT`s (`sqlite.rs`: `RETURNING` only for a chunk that held one).

use sea_orm::{ConnAcquireErr, DatabaseBackend, DatabaseConnection, DbErr, RuntimeErr, sqlx};

use super::UsageEvent;

mod copy;
mod postgres;
mod rollups;
mod sqlite;

/// Stores `events` in one transaction; returns how many were new (the rest were duplicates,
/// of stored rows or of each other).
pub async fn insert_events(db: &DatabaseConnection, events: &[UsageEvent]) -> Result<u64, DbErr> {
    if events.is_empty() {
        return Ok(0);
    }
    match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            postgres::insert(db.get_postgres_connection_pool(), events).await
        }
        _ => sqlite::insert(db.get_sqlite_connection_pool(), events).await,
    }
}

/// Per key: how many of `events` it made and the latest time, sorted by key id (so
/// concurrent writers usually lock shared key rows in the same order; a deadlock fails the
/// batch, which is then retried).
fn per_key<'a>(
    events: impl IntoIterator<Item = &'a UsageEvent>,
) -> Vec<(uuid::Uuid, (i64, chrono::DateTime<chrono::Utc>))> {
    let mut totals: std::collections::HashMap<_, (i64, _)> = Default::default();
    for e in events {
        if let Some(key) = e.key_id {
            let entry = totals.entry(key.0).or_insert((0, e.occurred_at));
            entry.0 += 1;
            entry.1 = entry.1.max(e.occurred_at);
        }
    }
    let mut rows: Vec<_> = totals.into_iter().collect();
    rows.sort_unstable_by_key(|(id, _)| *id);
    rows
}

/// The binary `COPY` payload of `events` in [`COLUMNS`] order (public for the ingestion
/// benchmark's raw-`COPY` baseline).
pub fn copy_payload(events: &[UsageEvent]) -> Vec<u8> {
    copy::encode(events)
}

/// Rows per multi-row `INSERT` on SQLite.
pub const SQLITE_ROWS_PER_STATEMENT: usize = sqlite::ROWS_PER_STATEMENT;

/// A plain multi-row `INSERT` of `events` (at most [`SQLITE_ROWS_PER_STATEMENT`]) into
/// `usage_events` on SQLite, bound as the writer binds them but with no conflict handling
/// (public for the ingestion benchmark's raw-`INSERT` baseline).
pub async fn sqlite_insert(
    conn: &mut sea_orm::sqlx::SqliteConnection,
    events: &[UsageEvent],
) -> Result<u64, DbErr> {
    sqlite::insert_plain(conn, events).await
}

fn acquire_err(err: sqlx::Error) -> DbErr {
    match err {
        sqlx::Error::PoolTimedOut => DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
        sqlx::Error::PoolClosed => DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
        other => DbErr::Conn(RuntimeErr::SqlxError(other.into())),
    }
}

fn exec_err(err: sqlx::Error) -> DbErr {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => acquire_err(err),
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => DbErr::Conn(RuntimeErr::SqlxError(err.into())),
        other => DbErr::Exec(RuntimeErr::SqlxError(other.into())),
    }
}

/// The columns written, in the order of the staging table and of every row.
pub const COLUMNS: [&str; 17] = [
    "id",
    "occurred_at",
    "tenant_id",
    "key_id",
    "endpoint",
    "method",
    "status_code",
    "latency_us",
    "bytes_in",
    "bytes_out",
    "tokens_in",
    "tokens_out",
    "cost_nanos",
    "ip",
    "user_agent",
    "source",
    "received_at",
];
