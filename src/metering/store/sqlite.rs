//! The SQLite batch write: multi-row `INSERT … ON CONFLICT DO NOTHING` (chunked under
//! SQLite's bound-parameter limit; `RETURNING` the new ids only for a chunk that held stored
//! ones) and the minute buckets of the inserted events into `usage_rollup_pending`, in one
//! transaction; and [`compact`], which adds pending rows to the rollups, the peaks and the
//! keys' counters.
//!
//! Written with sqlx on the pool's connection, as the PostgreSQL side is, and not through
//! SeaORM's statements: those carry their parameters as `sea_query::Value`s, which SeaORM
//! clones whole before handing them to sqlx, which copies every string once more: each
//! string parameter was allocated and copied three times, and each id and time twice before
//! its encoding. Bound here, an event's shared strings (endpoint, method, user agent, source)
//! are passed by reference count and only its ids, times and address are encoded; the
//! writer's CPU per event halved (`docs/benchmarks.md`, "Eleventh machine").

use std::{
    collections::HashSet,
    sync::{Arc, LazyLock},
};

use chrono::Utc;
use sea_orm::{
    DbErr,
    sqlx::{
        self, Arguments, Connection, Encode, Executor, Row, Sqlite, SqliteConnection, SqlitePool,
        Type, error::BoxDynError, sqlite::SqliteArguments,
    },
};
use uuid::Uuid;

use super::{
    COLUMNS, acquire_err, exec_err,
    pending::{self, Cursor, PendingRow, Taken},
    rollups::{self, Part},
};
use crate::metering::{
    Source, UsageEvent,
    rollup::{RollupKey, Totals},
    utilization::{self, PeakKey, PerMille},
};

/// Rows per statement: 17 parameters each stays well under SQLite's 32,766.
pub(super) const ROWS_PER_STATEMENT: usize = 1000;

/// The row counts a multi-row statement may have: a batch is cut into chunks of these sizes,
/// largest first, so the writer's connection prepares (and its statement cache keeps) at most
/// four texts of each statement. Cutting off whatever was left made every remainder size a
/// statement of its own, kept until sqlx's cache of 100 per connection was full: ~16 MB in 26
/// prepared multi-row statements in a heap profile.
const CHUNK_SIZES: [usize; 4] = [ROWS_PER_STATEMENT, 100, 10, 1];

/// The same for the `UPDATE … FROM (VALUES …)` statements: a prepared statement of 1,000
/// rows of values is a large program for the statement cache to keep, and past 100 rows the
/// statement count (50 for a batch of 5,000 keys) no longer matters.
const UPDATE_CHUNK_SIZES: [usize; 3] = [100, 10, 1];

/// `items` cut into chunks of [`CHUNK_SIZES`], each with the offset of its first item.
fn chunks<T>(items: &[T]) -> impl Iterator<Item = (usize, &[T])> {
    chunks_of(items, &CHUNK_SIZES)
}

/// `items` cut into chunks of `sizes` (descending, ending in 1), largest first, each with
/// the offset of its first item.
fn chunks_of<'a, T>(
    items: &'a [T],
    sizes: &'static [usize],
) -> impl Iterator<Item = (usize, &'a [T])> {
    let mut start = 0;
    std::iter::from_fn(move || {
        let left = items.len() - start;
        let size = sizes.iter().copied().find(|&size| size <= left)?;
        let chunk = (start, &items[start..start + size]);
        start += size;
        Some(chunk)
    })
}

/// Parameters for one statement, added one value after another; the first that fails to
/// encode (none of the types bound here can) fails the statement.
struct Params {
    args: SqliteArguments,
    failed: Option<BoxDynError>,
}

impl Params {
    fn with_capacity(values: usize) -> Self {
        let mut args = SqliteArguments::default();
        args.reserve(values, 0);
        Self { args, failed: None }
    }

    fn add<'t, T: Encode<'t, Sqlite> + Type<Sqlite>>(&mut self, value: T) -> &mut Self {
        if let Err(err) = self.args.add(value) {
            self.failed.get_or_insert(err);
        }
        self
    }

    fn into_arguments(self) -> Result<SqliteArguments, sqlx::Error> {
        match self.failed {
            None => Ok(self.args),
            Some(err) => Err(sqlx::Error::Encode(err)),
        }
    }
}

/// Runs `sql` with `params`.
async fn execute(
    conn: &mut SqliteConnection,
    sql: &str,
    params: Params,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query_with(sqlx::AssertSqlSafe(sql), params.into_arguments()?)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// Runs `update`, which reads `v`, over `rows` (each the values of `columns`, added by
/// `bind`) as `WITH v(…) AS (VALUES (?, …), …) {update}` statements of
/// [`UPDATE_CHUNK_SIZES`] rows: one statement updates many rows, each found through `v`
/// (SQLite's `UPDATE … FROM`). A batch's keys and write-backs were one statement per row,
/// each a round trip to the connection's worker thread; with events spread over many keys
/// those round trips were most of a batch's time.
async fn update_from_values<R>(
    conn: &mut SqliteConnection,
    columns: &[&str],
    rows: &[R],
    bind: impl Fn(&mut Params, &R),
    update: &str,
) -> Result<(), sqlx::Error> {
    let row = format!("({})", vec!["?"; columns.len()].join(", "));
    for (_, chunk) in chunks_of(rows, &UPDATE_CHUNK_SIZES) {
        let sql = format!(
            "WITH v({}) AS (VALUES {}) {update}",
            columns.join(", "),
            vec![row.as_str(); chunk.len()].join(", ")
        );
        let mut params = Params::with_capacity(chunk.len() * columns.len());
        for row in chunk {
            bind(&mut params, row);
        }
        execute(conn, &sql, params).await?;
    }
    Ok(())
}

/// Adds per-key totals (`v`: id, count, latest time) to the keys.
const BUMP_KEYS: &str = "UPDATE api_keys SET usage_count = usage_count + v.n, \
     last_used_at = CASE WHEN api_keys.last_used_at IS NULL OR api_keys.last_used_at < v.last \
     THEN v.last ELSE api_keys.last_used_at END FROM v WHERE api_keys.id = v.id";

pub async fn insert(pool: &SqlitePool, events: &[UsageEvent]) -> Result<u64, DbErr> {
    let mut conn = pool.acquire().await.map_err(acquire_err)?;
    insert_on(&mut conn, events).await.map_err(exec_err)
}

async fn insert_on(conn: &mut SqliteConnection, events: &[UsageEvent]) -> Result<u64, sqlx::Error> {
    let mut tx = conn.begin().await?;
    let mut stored: Vec<&UsageEvent> = Vec::with_capacity(events.len());
    for (_, chunk) in chunks(events) {
        insert_chunk(&mut tx, chunk, &mut stored).await?;
    }
    add_pending(&mut tx, &pending::of(stored.iter().copied())).await?;
    tx.commit().await?;
    Ok(stored.len() as u64)
}

/// Appends `rows` to `usage_rollup_pending`, in chunks of at most 100 rows: the statement
/// cache keeps every size it prepares, and a 1,000-row statement of 21 parameters a row is a
/// program of megabytes, where 100 rows already make a batch's few statements.
async fn add_pending(conn: &mut SqliteConnection, rows: &[PendingRow]) -> Result<(), sqlx::Error> {
    let row = format!("({})", vec!["?"; pending::COLUMNS.len()].join(", "));
    for (_, chunk) in chunks_of(rows, &UPDATE_CHUNK_SIZES) {
        let sql = format!(
            "INSERT INTO usage_rollup_pending ({}) VALUES {}",
            pending::COLUMNS.join(", "),
            vec![row.as_str(); chunk.len()].join(", ")
        );
        let mut params = Params::with_capacity(chunk.len() * pending::COLUMNS.len());
        for r in chunk {
            add_bucket(&mut params, &r.key, &r.totals)
                .add(r.totals.latency.encode())
                .add(r.last_at);
            for p in r.peaks {
                params.add(i32::from(p));
            }
        }
        execute(conn, &sql, params).await?;
    }
    Ok(())
}

/// Takes up to `?3` pending rows after `(?1, ?2)` in `(key_id, seq)` order.
static TAKE_PENDING: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT seq, {} FROM usage_rollup_pending WHERE (key_id, seq) > (?1, ?2) \
         ORDER BY key_id, seq LIMIT ?3",
        pending::COLUMNS.join(", ")
    )
});

/// Takes up to `most` pending rows from `cursor` on, adds them to the rollup tables, the
/// peaks and the keys' counters, and deletes them, in one transaction; returns how many it
/// took.
pub async fn compact(pool: &SqlitePool, cursor: &mut Cursor, most: usize) -> Result<usize, DbErr> {
    let mut conn = pool.acquire().await.map_err(acquire_err)?;
    let taken = compact_on(&mut conn, *cursor, most)
        .await
        .map_err(exec_err)?;
    cursor.advance(&taken, most);
    Ok(taken.len())
}

async fn compact_on(
    conn: &mut SqliteConnection,
    cursor: Cursor,
    most: usize,
) -> Result<Vec<Taken>, sqlx::Error> {
    // The write lock first (waiting for it as any writer does): a transaction that read
    // first could not upgrade once another connection had written, and fails at once.
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let (key_id, seq) = cursor.after();
    let taken = sqlx::query(sqlx::AssertSqlSafe(TAKE_PENDING.as_str()))
        .bind(key_id)
        .bind(seq)
        .bind(i64::try_from(most).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(pending::read)
        .collect::<Result<Vec<Taken>, _>>()?;
    if taken.is_empty() {
        return Ok(taken);
    }
    let (deltas, keys) = pending::fold(taken.iter().map(|(_, row)| row));
    update_from_values(
        &mut tx,
        &["id", "n", "last"],
        &keys,
        |params, (key, (count, last))| {
            params.add(*key).add(*count).add(*last);
        },
        BUMP_KEYS,
    )
    .await?;
    add_rollups(&mut tx, &deltas.detail).await?;
    add_rollups(&mut tx, &deltas.totals).await?;
    add_peaks(&mut tx, &deltas.peaks).await?;
    update_from_values(
        &mut tx,
        &["seq"],
        &taken,
        |params, (seq, _)| {
            params.add(*seq);
        },
        "DELETE FROM usage_rollup_pending WHERE seq IN (SELECT seq FROM v)",
    )
    .await?;
    tx.commit().await?;
    Ok(taken)
}

/// Inserts the events of `chunk` that are not stored yet and appends them (the first copy of
/// each) to `stored`. Nearly every chunk is all new, so it is inserted without `RETURNING`
/// (which hands every id back through the driver) and the count checked; a chunk that held
/// duplicates is rolled back to its savepoint and inserted again, returning the new ids.
async fn insert_chunk<'a>(
    conn: &mut SqliteConnection,
    chunk: &'a [UsageEvent],
    stored: &mut Vec<&'a UsageEvent>,
) -> Result<(), sqlx::Error> {
    conn.execute("SAVEPOINT usage_chunk").await?;
    let sql = insert_sql(chunk.len(), Tail::SkipStored);
    if execute(conn, &sql, values(chunk)).await? != chunk.len() as u64 {
        conn.execute("ROLLBACK TO usage_chunk").await?;
        let sql = insert_sql(chunk.len(), Tail::ReturningNew);
        let returning = sqlx::query_with(sqlx::AssertSqlSafe(sql), values(chunk).into_arguments()?);
        let mut new: HashSet<Uuid> = HashSet::with_capacity(chunk.len());
        for row in returning.fetch_all(&mut *conn).await? {
            new.insert(row.try_get("id")?);
        }
        stored.extend(chunk.iter().filter(|e| new.remove(&e.id)));
    } else {
        stored.extend(chunk);
    }
    conn.execute("RELEASE usage_chunk").await.map(drop)
}

/// Writes back the merged status codes and sketches (`v`: rowid, codes, sketch) of rows of
/// `table` that existed, found by the rowid the upsert returned (nothing else writes in
/// between: this transaction holds SQLite's write lock).
fn merge_rollups(table: &str) -> String {
    format!(
        "UPDATE {table} SET status_codes = v.codes, latency_sketch = v.sketch \
         FROM v WHERE {table}.rowid = v.rid"
    )
}

/// Adds one table's rows of a batch (see [`rollups`]).
async fn add_rollups(conn: &mut SqliteConnection, part: &Part) -> Result<(), sqlx::Error> {
    let now = Utc::now();
    let mut merges: Vec<(i64, (String, Vec<u8>))> = Vec::new();
    let columns = rollups::columns(part.table);
    let row = format!("({})", vec!["?"; columns.len()].join(", "));
    // Rollup rows have 18 or 19 parameters each: a chunk stays under SQLite's 32,766.
    for (start, rows) in chunks(&part.rows) {
        let placeholders = vec![row.as_str(); rows.len()].join(", ");
        let sql = format!(
            "INSERT INTO {} ({}) VALUES {placeholders} {}",
            part.table,
            columns.join(", "),
            rollups::on_conflict(
                part.table,
                "max",
                |stored, added| format!("json_patch({stored}, {added})"),
                ", rowid AS rid"
            )
        );
        let mut params = Params::with_capacity(rows.len() * columns.len());
        for (i, (key, t)) in rows.iter().enumerate() {
            let at = start + i;
            params.add(key.granularity.as_str());
            add_bucket(&mut params, key, t)
                .add(part.sketches[at].as_slice())
                .add(now);
            if let Some(endpoints) = &part.endpoints {
                params.add(endpoints[at].as_str());
            }
        }
        let returned = sqlx::query_with(sqlx::AssertSqlSafe(sql), params.into_arguments()?)
            .fetch_all(&mut *conn)
            .await?;
        for row in returned {
            let key = rollups::returned_key(&row)?;
            let codes: String = row.try_get("status_codes")?;
            let codes = serde_json::from_str(&codes).map_err(|err| corrupt(part, err))?;
            let sketch: Vec<u8> = row.try_get("latency_sketch")?;
            let count: i64 = row.try_get("count")?;
            if let Some(merged) = part
                .merged(&key, count, &codes, &sketch)
                .map_err(|err| corrupt(part, err))?
            {
                merges.push((row.try_get("rid")?, merged));
            }
        }
    }
    update_from_values(
        conn,
        &["rid", "codes", "sketch"],
        &merges,
        |params, (rowid, (codes, sketch))| {
            params
                .add(*rowid)
                .add(codes.as_str())
                .add(sketch.as_slice());
        },
        &merge_rollups(part.table),
    )
    .await
}

/// A bucket's key from its start and its counters (all but the sketch), in the column order
/// rollup rows and pending rows share.
fn add_bucket<'p>(params: &'p mut Params, key: &RollupKey, t: &Totals) -> &'p mut Params {
    params
        .add(key.bucket_start)
        .add(key.tenant_id)
        .add(key.key_id)
        .add(key.endpoint.clone())
        .add(key.method.clone())
        .add(key.status_class)
        .add(t.count)
        .add(t.status_codes_json().to_string())
        .add(t.bytes_in)
        .add(t.bytes_out)
        .add(t.tokens_in)
        .add(t.tokens_out)
        .add(t.cost_nanos)
        .add(t.latency_sum_us)
        .add(t.latency_max_us)
}

/// Keeps the larger utilization of each window (see `metering::utilization`).
async fn add_peaks(
    conn: &mut SqliteConnection,
    peaks: &[(PeakKey, PerMille)],
) -> Result<(), sqlx::Error> {
    for (_, chunk) in chunks(peaks) {
        let placeholders = vec!["(?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        let sql = format!(
            "INSERT INTO usage_utilization ({}) VALUES {placeholders} {}",
            utilization::COLUMNS.join(", "),
            utilization::on_conflict("max")
        );
        let mut params = Params::with_capacity(chunk.len() * utilization::COLUMNS.len());
        for (key, peak) in chunk {
            params
                .add(key.granularity.as_str())
                .add(key.bucket_start)
                .add(key.tenant_id)
                .add(key.key_id);
            for p in peak {
                params.add(i32::from(*p));
            }
        }
        execute(conn, &sql, params).await?;
    }
    Ok(())
}

/// A rollup row read back that cannot be merged.
fn corrupt(part: &Part, detail: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Protocol(format!("{}: {detail}", part.table))
}

/// What follows the rows of an insert into `usage_events`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Tail {
    /// Nothing: a duplicate fails the statement.
    Plain,
    /// Events stored already are skipped.
    SkipStored,
    /// Events stored already are skipped; the new ones' ids are returned.
    ReturningNew,
}

impl Tail {
    const ALL: [Tail; 3] = [Tail::Plain, Tail::SkipStored, Tail::ReturningNew];

    fn sql(self) -> &'static str {
        match self {
            Tail::Plain => "",
            Tail::SkipStored => "ON CONFLICT (id, occurred_at) DO NOTHING",
            Tail::ReturningNew => "ON CONFLICT (id, occurred_at) DO NOTHING RETURNING id",
        }
    }
}

/// `INSERT INTO usage_events (…) VALUES (?, …), … {tail}` for `rows` rows. A full chunk's
/// text is built once per process (and so prepared once per connection by the statement
/// cache).
pub(super) fn insert_sql(rows: usize, tail: Tail) -> std::borrow::Cow<'static, str> {
    static FULL: LazyLock<[String; 3]> =
        LazyLock::new(|| Tail::ALL.map(|tail| build_insert(ROWS_PER_STATEMENT, tail)));
    match rows == ROWS_PER_STATEMENT {
        true => FULL[tail as usize].as_str().into(),
        false => build_insert(rows, tail).into(),
    }
}

fn build_insert(rows: usize, tail: Tail) -> String {
    let row = format!("({})", vec!["?"; COLUMNS.len()].join(", "));
    format!(
        "INSERT INTO usage_events ({}) VALUES {} {}",
        COLUMNS.join(", "),
        vec![row.as_str(); rows].join(", "),
        tail.sql()
    )
}

/// `usage_events.source` of each source, shared: binding one passes a reference count.
fn source_text(source: Source) -> Arc<str> {
    static TEXTS: LazyLock<[Arc<str>; 4]> =
        LazyLock::new(|| Source::ALL.map(|source| Arc::from(source.as_str())));
    TEXTS[source as usize].clone()
}

/// The bound values of `events`, row after row in [`COLUMNS`] order (at most
/// [`ROWS_PER_STATEMENT`] rows per statement).
fn values(events: &[UsageEvent]) -> Params {
    let mut params = Params::with_capacity(events.len() * COLUMNS.len());
    for e in events {
        params
            .add(e.id)
            .add(e.occurred_at)
            .add(e.tenant_id.0)
            .add(e.key_id.map(|k| k.0))
            .add(e.endpoint.clone())
            .add(e.method.clone())
            .add(e.status_code as i16)
            .add(e.latency_us)
            .add(e.bytes_in)
            .add(e.bytes_out)
            .add(e.tokens_in)
            .add(e.tokens_out)
            .add(e.cost_nanos)
            .add(e.ip.map(|ip| ip.to_string()))
            .add(e.user_agent.clone())
            .add(source_text(e.source))
            .add(e.received_at);
    }
    params
}

/// A plain multi-row `INSERT` of `events` (at most [`ROWS_PER_STATEMENT`]), no conflict
/// handling: the ingestion benchmark's raw-`INSERT` baseline.
pub(super) async fn insert_plain(
    conn: &mut SqliteConnection,
    events: &[UsageEvent],
) -> Result<u64, DbErr> {
    let sql = insert_sql(events.len(), Tail::Plain);
    execute(conn, &sql, values(events)).await.map_err(exec_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_cut_into_chunks_of_four_sizes_largest_first() {
        let items: Vec<usize> = (0..2345).collect();
        let cut: Vec<(usize, &[usize])> = chunks(&items).collect();
        let sizes: Vec<usize> = cut.iter().map(|(_, chunk)| chunk.len()).collect();
        assert_eq!(
            sizes,
            [1000, 1000, 100, 100, 100, 10, 10, 10, 10, 1, 1, 1, 1, 1]
        );
        let mut next = 0;
        for (start, chunk) in cut {
            assert_eq!((start, chunk[0]), (next, next));
            next += chunk.len();
        }
        assert_eq!(next, items.len());
        assert_eq!(chunks::<u8>(&[]).count(), 0);
        let updates: Vec<usize> = chunks_of(&items[..253], &UPDATE_CHUNK_SIZES)
            .map(|(_, chunk)| chunk.len())
            .collect();
        assert_eq!(updates, [100, 100, 10, 10, 10, 10, 10, 1, 1, 1]);
    }
}
