//! Writing batches of usage events: one transaction that inserts the events that are not
//! stored yet (`ON CONFLICT (id, occurred_at) DO NOTHING`) and appends the minute buckets of
//! exactly the inserted ones to `usage_rollup_pending` (`pending.rs`), so replays and re-sends
//! never double count. [`compact`] later adds pending rows to their rollup buckets
//! (`rollups.rs`), their keys' peaks and their keys' `usage_count` / `last_used_at`, and
//! deletes them, in one transaction, so each is added exactly once.
//! Both write with sqlx on the pool's connection: PostgreSQL by binary `COPY` (`postgres.rs`:
//! straight into `usage_events`, through a staging table when a batch holds a stored id),
//! SQLite by multi-row `INSERT`s (`sqlite.rs`: `RETURNING` only for a chunk that held one).

use sea_orm::{ConnAcquireErr, DatabaseBackend, DatabaseConnection, DbErr, RuntimeErr, sqlx};

use super::UsageEvent;

mod copy;
mod pending;
mod postgres;
mod rollups;
mod sqlite;

pub use pending::{Cursor, Locked};

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

/// Adds up to `most` pending rollup rows, from `cursor` on in key order, to the rollup
/// tables, the keys' peaks and counters, and deletes them; returns how many it took (fewer
/// than `most`: the pass is over and `cursor` is back at the start). On PostgreSQL the rows
/// another transaction holds (another node's compactor) are skipped or waited for, as
/// `locked` says.
pub async fn compact(
    db: &DatabaseConnection,
    cursor: &mut Cursor,
    most: usize,
    locked: Locked,
) -> Result<usize, DbErr> {
    match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            postgres::compact(db.get_postgres_connection_pool(), cursor, most, locked).await
        }
        _ => sqlite::compact(db.get_sqlite_connection_pool(), cursor, most).await,
    }
}

/// Adds every pending rollup row (passes from the start until one finds nothing, waiting for
/// rows a running compactor holds): for what stores events outside the pipeline (the demo's
/// history, benchmarks, tests) before it reads rollups. Returns the rows it added.
pub async fn compact_all(db: &DatabaseConnection) -> Result<usize, DbErr> {
    let mut cursor = Cursor::default();
    let mut total = 0;
    loop {
        let taken = compact(db, &mut cursor, COMPACT_ALL_TAKE, Locked::Wait).await?;
        total += taken;
        if taken == 0 && cursor == Cursor::default() {
            return Ok(total);
        }
    }
}

/// Rows per transaction of [`compact_all`].
const COMPACT_ALL_TAKE: usize = 5_000;

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
