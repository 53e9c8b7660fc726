//! The SQLite batch write: multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING` (chunked
//! under SQLite's bound-parameter limit), the keys' counters and the rollups of the inserted
//! events, in one transaction.

use std::collections::HashSet;

use chrono::Utc;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, Statement,
    TransactionTrait, Value,
};
use uuid::Uuid;

use super::{
    COLUMNS,
    rollups::{self, Deltas, Part, RowKey},
};
use crate::metering::{
    UsageEvent,
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

/// Runs `update`, which reads `v`, over `rows` (each the values of `columns`) as `WITH v(…)
/// AS (VALUES (?, …), …) {update}` statements of [`UPDATE_CHUNK_SIZES`] rows: one statement
/// updates many rows, each found through `v` (SQLite's `UPDATE … FROM`). A batch's keys and
/// write-backs were one statement per row, each a round trip to the connection's worker
/// thread; with events spread over many keys those round trips were most of a batch's time.
async fn update_from_values<const N: usize>(
    txn: &DatabaseTransaction,
    columns: [&str; N],
    rows: Vec<[Value; N]>,
    update: &str,
) -> Result<(), DbErr> {
    let sizes: Vec<usize> = chunks_of(&rows, &UPDATE_CHUNK_SIZES)
        .map(|(_, chunk)| chunk.len())
        .collect();
    let row = format!("({})", vec!["?"; N].join(", "));
    let mut rows = rows.into_iter();
    for size in sizes {
        let sql = format!(
            "WITH v({}) AS (VALUES {}) {update}",
            columns.join(", "),
            vec![row.as_str(); size].join(", ")
        );
        let values: Vec<Value> = rows.by_ref().take(size).flatten().collect();
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            sql,
            values,
        ))
        .await?;
    }
    Ok(())
}

/// Adds per-key totals (`v`: id, count, latest time) to the keys.
const BUMP_KEYS: &str = "UPDATE api_keys SET usage_count = usage_count + v.n, \
     last_used_at = CASE WHEN api_keys.last_used_at IS NULL OR api_keys.last_used_at < v.last \
     THEN v.last ELSE api_keys.last_used_at END FROM v WHERE api_keys.id = v.id";

pub async fn insert(db: &DatabaseConnection, events: &[UsageEvent]) -> Result<u64, DbErr> {
    let txn = db.begin().await?;
    let mut stored: Vec<&UsageEvent> = Vec::with_capacity(events.len());
    for (_, chunk) in chunks(events) {
        insert_chunk(&txn, chunk, &mut stored).await?;
    }
    let count = stored.len() as u64;
    let keys = super::per_key(stored.iter().copied())
        .into_iter()
        .map(|(key, (count, last))| [key.into(), count.into(), last.into()])
        .collect();
    update_from_values(&txn, ["id", "n", "last"], keys, BUMP_KEYS).await?;
    let deltas = Deltas::of(stored.iter().copied());
    add_rollups(&txn, &deltas.detail).await?;
    add_rollups(&txn, &deltas.totals).await?;
    add_peaks(&txn, &deltas.peaks).await?;
    txn.commit().await?;
    Ok(count)
}

/// Inserts the events of `chunk` that are not stored yet and appends them (the first copy of
/// each) to `stored`. Nearly every chunk is all new, so it is inserted without `RETURNING`
/// (which hands every id back through the driver) and the count checked; a chunk that held
/// duplicates is rolled back to its savepoint and inserted again, returning the new ids.
async fn insert_chunk<'a>(
    txn: &DatabaseTransaction,
    chunk: &'a [UsageEvent],
    stored: &mut Vec<&'a UsageEvent>,
) -> Result<(), DbErr> {
    let statement = |tail| {
        let sql = insert_sql(chunk.len(), tail);
        Statement::from_sql_and_values(DbBackend::Sqlite, sql.as_ref(), values(chunk))
    };
    txn.execute_unprepared("SAVEPOINT usage_chunk").await?;
    let inserted = txn.execute_raw(statement(Tail::SkipStored)).await?;
    if inserted.rows_affected() != chunk.len() as u64 {
        txn.execute_unprepared("ROLLBACK TO usage_chunk").await?;
        let mut new: HashSet<Uuid> = HashSet::with_capacity(chunk.len());
        for row in txn.query_all_raw(statement(Tail::ReturningNew)).await? {
            new.insert(row.try_get("", "id")?);
        }
        stored.extend(chunk.iter().filter(|e| new.remove(&e.id)));
    } else {
        stored.extend(chunk);
    }
    txn.execute_unprepared("RELEASE usage_chunk")
        .await
        .map(drop)
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
async fn add_rollups(txn: &DatabaseTransaction, part: &Part) -> Result<(), DbErr> {
    let now = Utc::now();
    let mut merges = Vec::new();
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
        let mut values: Vec<Value> = Vec::with_capacity(rows.len() * columns.len());
        for (i, (key, t)) in rows.iter().enumerate() {
            let at = start + i;
            let sketch = part.sketches[at].clone();
            values.extend([
                key.granularity.as_str().into(),
                key.bucket_start.into(),
                key.tenant_id.into(),
                key.key_id.into(),
                key.endpoint.to_string().into(),
                key.method.to_string().into(),
                key.status_class.into(),
                t.count.into(),
                t.status_codes_json().to_string().into(),
                t.bytes_in.into(),
                t.bytes_out.into(),
                t.tokens_in.into(),
                t.tokens_out.into(),
                t.cost_nanos.into(),
                t.latency_sum_us.into(),
                t.latency_max_us.into(),
                sketch.into(),
                now.into(),
            ]);
            if let Some(endpoints) = &part.endpoints {
                values.push(endpoints[at].clone().into());
            }
        }
        let returned = txn
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                sql,
                values,
            ))
            .await?;
        for row in returned {
            let key: RowKey = (
                row.try_get("", "granularity")?,
                row.try_get("", "bucket_start")?,
                row.try_get("", "tenant_id")?,
                row.try_get("", "key_id")?,
                row.try_get("", "endpoint")?,
                row.try_get("", "method")?,
                row.try_get("", "status_class")?,
            );
            let codes: String = row.try_get("", "status_codes")?;
            let codes = serde_json::from_str(&codes).map_err(|err| corrupt(err.to_string()))?;
            let sketch: Vec<u8> = row.try_get("", "latency_sketch")?;
            let count: i64 = row.try_get("", "count")?;
            if let Some(merged) = part.merged(&key, count, &codes, &sketch).map_err(corrupt)? {
                let rowid: i64 = row.try_get("", "rid")?;
                merges.push((rowid, merged));
            }
        }
    }
    let merges = merges
        .into_iter()
        .map(|(rowid, (codes, sketch))| [rowid.into(), codes.into(), sketch.into()])
        .collect();
    let merge_back = merge_rollups(part.table);
    update_from_values(txn, ["rid", "codes", "sketch"], merges, &merge_back).await
}

/// Keeps the larger utilization of each window (see `metering::utilization`).
async fn add_peaks(txn: &DatabaseTransaction, peaks: &[(PeakKey, PerMille)]) -> Result<(), DbErr> {
    for (_, chunk) in chunks(peaks) {
        let placeholders = vec!["(?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        let sql = format!(
            "INSERT INTO usage_utilization ({}) VALUES {placeholders} {}",
            utilization::COLUMNS.join(", "),
            utilization::on_conflict("max")
        );
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 8);
        for (key, peak) in chunk {
            values.extend([
                key.granularity.as_str().into(),
                key.bucket_start.into(),
                key.tenant_id.into(),
                key.key_id.into(),
            ]);
            values.extend(peak.map(|p| Value::from(i32::from(p))));
        }
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            sql,
            values,
        ))
        .await?;
    }
    Ok(())
}

fn corrupt(detail: String) -> DbErr {
    DbErr::Custom(format!("usage_rollups: {detail}"))
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
    use std::sync::LazyLock;
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

/// The bound values of `events`, row after row in [`COLUMNS`] order (at most
/// [`ROWS_PER_STATEMENT`] rows per statement).
pub(super) fn values(events: &[UsageEvent]) -> Vec<Value> {
    let mut values = Vec::with_capacity(events.len() * COLUMNS.len());
    for e in events {
        values.extend::<[Value; 17]>([
            e.id.into(),
            e.occurred_at.into(),
            e.tenant_id.0.into(),
            e.key_id.map(|k| k.0).into(),
            e.endpoint.as_ref().into(),
            e.method.as_ref().into(),
            (e.status_code as i16).into(),
            e.latency_us.into(),
            e.bytes_in.into(),
            e.bytes_out.into(),
            e.tokens_in.into(),
            e.tokens_out.into(),
            e.cost_nanos.into(),
            e.ip.map(|ip| ip.to_string()).into(),
            e.user_agent.as_deref().into(),
            e.source.as_str().into(),
            e.received_at.into(),
        ]);
    }
    values
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
