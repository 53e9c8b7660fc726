//! The PostgreSQL batch write, in one transaction either way:
//!
//! - fast path: binary `COPY` straight into `usage_events`. Live events carry fresh UUIDv7
//!   ids, so this is the usual case, and it runs at nearly raw-`COPY` speed.
//! - when that hits a stored id (a replay, a re-sent batch, a retry after a timeout), the
//!   transaction is rolled back and the batch goes the idempotent way: `COPY` into a
//!   per-connection temporary staging table, then one statement that inserts what is new
//!   (`ON CONFLICT (id, occurred_at) DO NOTHING`) and returns the new ids.
//!
//! Either way the minute buckets of exactly the inserted events are appended to
//! `usage_rollup_pending` in the same transaction (`pending.rs`); [`compact`] adds them to the
//! rollup tables (`rollups.rs`), the utilization peaks and the keys' counters later.

use std::{
    collections::{HashMap, HashSet},
    sync::LazyLock,
};

use chrono::Utc;
use sea_orm::{
    DbErr,
    sqlx::{self, Connection, Executor, PgConnection, PgPool, Row},
};
use uuid::Uuid;

use super::{
    COLUMNS, acquire_err, copy, exec_err,
    pending::{self, Cursor, Locked, PendingRow, Taken},
    rollups::{self, Deltas, Part},
};
use crate::metering::{
    UsageEvent,
    utilization::{self, PeakKey, PerMille},
};

/// Created once per connection; emptied at every commit. `client_min_messages` keeps the
/// "already exists" notice out of the log.
const CREATE_STAGING: &str = "SET LOCAL client_min_messages = warning; \
     CREATE TEMP TABLE IF NOT EXISTS usage_events_staging (\
     id uuid, occurred_at timestamptz, tenant_id uuid, key_id uuid, endpoint text, \
     method text, status_code int2, latency_us int8, bytes_in int8, bytes_out int8, \
     tokens_in int8, tokens_out int8, cost_nanos int8, ip text, user_agent text, \
     source text, received_at timestamptz) ON COMMIT DELETE ROWS";

static COPY_DIRECT: LazyLock<String> = LazyLock::new(|| copy_into("usage_events"));
static COPY_STAGING: LazyLock<String> = LazyLock::new(|| copy_into("usage_events_staging"));

/// Adds per-key totals (`$1` ids, `$2` counts, `$3` latest times) to the keys.
const BUMP_KEYS: &str = "UPDATE api_keys k SET usage_count = k.usage_count + v.n, \
     last_used_at = GREATEST(k.last_used_at, v.last) \
     FROM unnest($1::uuid[], $2::int8[], $3::timestamptz[]) AS v(id, n, last) \
     WHERE k.id = v.id";

/// Inserts what is new from staging, returning the new ids.
static MERGE: LazyLock<String> = LazyLock::new(|| {
    let columns = COLUMNS.join(", ");
    format!(
        "INSERT INTO usage_events ({columns}) SELECT {columns} FROM usage_events_staging \
         ON CONFLICT (id, occurred_at) DO NOTHING RETURNING id"
    )
});

/// Appends pending rollup rows from arrays, one per column of [`pending::COLUMNS`].
static INSERT_PENDING: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO usage_rollup_pending ({}) SELECT * FROM unnest($1::timestamptz[], \
         $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::int2[], $7::int8[], $8::text[], \
         $9::int8[], $10::int8[], $11::int8[], $12::int8[], $13::int8[], $14::int8[], \
         $15::int8[], $16::bytea[], $17::timestamptz[], $18::int4[], $19::int4[], \
         $20::int4[], $21::int4[])",
        pending::COLUMNS.join(", ")
    )
});

/// Takes up to `$3` pending rows after `($1, $2)` in `(key_id, seq)` order, locked: the
/// compactors of other nodes skip them (or, [`Locked::Wait`], wait for them and find them
/// gone).
static TAKE_PENDING: LazyLock<[String; 2]> = LazyLock::new(|| {
    [Locked::Skip, Locked::Wait].map(|locked| {
        format!(
            "SELECT seq, {} FROM usage_rollup_pending WHERE (key_id, seq) > ($1, $2) \
             ORDER BY key_id, seq LIMIT $3 FOR UPDATE{}",
            pending::COLUMNS.join(", "),
            match locked {
                Locked::Skip => " SKIP LOCKED",
                Locked::Wait => "",
            }
        )
    })
});

const DELETE_PENDING: &str = "DELETE FROM usage_rollup_pending WHERE seq = ANY($1::int8[])";

fn copy_into(table: &str) -> String {
    let columns = COLUMNS.join(", ");
    format!("COPY {table} ({columns}) FROM STDIN (FORMAT binary)")
}

pub async fn insert(pool: &PgPool, events: &[UsageEvent]) -> Result<u64, DbErr> {
    let payload = copy::encode(events);
    let mut conn = pool.acquire().await.map_err(acquire_err)?;
    let stored = match insert_fresh(&mut conn, events, &payload).await {
        Err(err) if is_unique_violation(&err) => {
            insert_idempotent(&mut conn, events, &payload).await
        }
        other => other.map_err(exec_err),
    };
    // A batch's statements (its rollups bound as arrays, the rows they return) grow the
    // connection's buffers to megabytes, which it would otherwise keep for good.
    conn.shrink_buffers();
    stored
}

/// The fast path: every event is new, or the whole transaction fails with 23505.
async fn insert_fresh(
    conn: &mut PgConnection,
    events: &[UsageEvent],
    payload: &[u8],
) -> Result<u64, sqlx::Error> {
    let mut tx = conn.begin().await?;
    let copied = send_copy(&mut tx, &COPY_DIRECT, payload).await?;
    add_pending(&mut tx, &pending::of(events)).await?;
    tx.commit().await?;
    Ok(copied)
}

/// The idempotent path through the staging table.
async fn insert_idempotent(
    conn: &mut PgConnection,
    events: &[UsageEvent],
    payload: &[u8],
) -> Result<u64, DbErr> {
    let mut tx = conn.begin().await.map_err(exec_err)?;
    (&mut *tx).execute(CREATE_STAGING).await.map_err(exec_err)?;
    send_copy(&mut tx, &COPY_STAGING, payload)
        .await
        .map_err(exec_err)?;
    // Built once from the constant column list.
    let mut inserted: HashSet<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(MERGE.as_str()))
        .fetch_all(&mut *tx)
        .await
        .map_err(exec_err)?
        .into_iter()
        .collect();
    let count = inserted.len() as u64;
    // The first copy of each inserted id (a batch may hold the same event twice).
    let stored = events.iter().filter(|e| inserted.remove(&e.id));
    add_pending(&mut tx, &pending::of(stored))
        .await
        .map_err(exec_err)?;
    tx.commit().await.map_err(exec_err)?;
    Ok(count)
}

/// Upserts the rollups into `table` from arrays, one per column of [`rollups::columns`] but
/// `updated_at` (`$18`, the update time); the totals' endpoint sets are `$19`.
fn upsert_rollups(table: &str) -> String {
    let (endpoints, array, name) = if table == rollups::TOTALS {
        (", ends::jsonb", ", $19::text[]", ", ends")
    } else {
        ("", "", "")
    };
    format!(
        "INSERT INTO {table} ({columns}) \
         SELECT g, b, t, k, e, m, c, n, codes::jsonb, bi, bo, ti, tou, cost, ls, lm, sk, $18\
         {endpoints} \
         FROM unnest($1::text[], $2::timestamptz[], $3::uuid[], $4::uuid[], $5::text[], \
           $6::text[], $7::int2[], $8::int8[], $9::text[], $10::int8[], $11::int8[], \
           $12::int8[], $13::int8[], $14::int8[], $15::int8[], $16::int8[], $17::bytea[]{array}) \
         AS v(g, b, t, k, e, m, c, n, codes, bi, bo, ti, tou, cost, ls, lm, sk{name}) {}",
        rollups::on_conflict(
            table,
            "GREATEST",
            |stored, added| format!("{stored} || {added}"),
            ", ctid::text AS tid"
        ),
        columns = rollups::columns(table).join(", "),
    )
}

/// Writes back merged status codes and sketches of rows of `table` that existed, found by
/// the physical address the upsert returned (a TID scan: this transaction holds their row
/// locks, so the address is still theirs). Matching on the seven key columns instead let the
/// planner pick the narrower tenant index and filter hundreds of rows per lookup.
fn merge_rollups(table: &str) -> String {
    format!(
        "UPDATE {table} r SET status_codes = v.codes::jsonb, latency_sketch = v.sk \
         FROM unnest($1::text[], $2::text[], $3::bytea[]) AS v(tid, codes, sk) \
         WHERE r.ctid = v.tid::tid"
    )
}

/// The upsert and the write-back of each rollup table, built once.
static STATEMENTS: LazyLock<HashMap<&'static str, (String, String)>> = LazyLock::new(|| {
    rollups::TABLES
        .into_iter()
        .map(|table| (table, (upsert_rollups(table), merge_rollups(table))))
        .collect()
});

/// Keeps the larger utilization of each window, from arrays (one per column).
static UPSERT_PEAKS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO usage_utilization ({}) SELECT * FROM unnest($1::text[], \
         $2::timestamptz[], $3::uuid[], $4::uuid[], $5::int4[], $6::int4[], $7::int4[], \
         $8::int4[]) {}",
        utilization::COLUMNS.join(", "),
        utilization::on_conflict("GREATEST"),
    )
});

/// Adds `deltas` to `usage_rollups` and `usage_rollup_totals` (see [`rollups`]) and its
/// peaks to `usage_utilization`.
async fn add_rollups(conn: &mut PgConnection, deltas: &Deltas) -> Result<(), sqlx::Error> {
    if deltas.detail.rows.is_empty() {
        return Ok(());
    }
    add_peaks(conn, &deltas.peaks).await?;
    add_part(conn, &deltas.detail).await?;
    add_part(conn, &deltas.totals).await
}

/// Adds one table's rows.
async fn add_part(conn: &mut PgConnection, part: &Part) -> Result<(), sqlx::Error> {
    let (upsert, merge_back) = &STATEMENTS[part.table];
    let rows = &part.rows;
    let column = |f: fn(&rollups::Row) -> i64| rows.iter().map(f).collect::<Vec<i64>>();
    let mut upsert = sqlx::query(sqlx::AssertSqlSafe(upsert.as_str()))
        .bind(
            rows.iter()
                .map(|(k, _)| k.granularity.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|(k, _)| k.bucket_start).collect::<Vec<_>>())
        .bind(rows.iter().map(|(k, _)| k.tenant_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|(k, _)| k.key_id).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|(k, _)| k.endpoint.as_ref())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|(k, _)| k.method.as_ref())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|(k, _)| k.status_class).collect::<Vec<_>>())
        .bind(column(|(_, t)| t.count))
        .bind(
            rows.iter()
                .map(|(_, t)| t.status_codes_json().to_string())
                .collect::<Vec<_>>(),
        )
        .bind(column(|(_, t)| t.bytes_in))
        .bind(column(|(_, t)| t.bytes_out))
        .bind(column(|(_, t)| t.tokens_in))
        .bind(column(|(_, t)| t.tokens_out))
        .bind(column(|(_, t)| t.cost_nanos))
        .bind(column(|(_, t)| t.latency_sum_us))
        .bind(column(|(_, t)| t.latency_max_us))
        .bind(&part.sketches)
        .bind(Utc::now());
    if let Some(endpoints) = &part.endpoints {
        upsert = upsert.bind(endpoints);
    }
    let returned = upsert.fetch_all(&mut *conn).await?;
    let mut merges: Vec<(String, (String, Vec<u8>))> = Vec::new();
    for row in returned {
        let key = rollups::returned_key(&row)?;
        let codes: serde_json::Value = row.try_get("status_codes")?;
        let sketch: Vec<u8> = row.try_get("latency_sketch")?;
        let count: i64 = row.try_get("count")?;
        if let Some(merged) = part
            .merged(&key, count, &codes, &sketch)
            .map_err(|detail| sqlx::Error::Protocol(format!("{}: {detail}", part.table)))?
        {
            merges.push((row.try_get("tid")?, merged));
        }
    }
    if merges.is_empty() {
        return Ok(());
    }
    sqlx::query(sqlx::AssertSqlSafe(merge_back.as_str()))
        .bind(
            merges
                .iter()
                .map(|(tid, _)| tid.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(merges.iter().map(|(_, m)| m.0.as_str()).collect::<Vec<_>>())
        .bind(
            merges
                .iter()
                .map(|(_, m)| m.1.as_slice())
                .collect::<Vec<_>>(),
        )
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn add_peaks(
    conn: &mut PgConnection,
    peaks: &[(PeakKey, PerMille)],
) -> Result<(), sqlx::Error> {
    if peaks.is_empty() {
        return Ok(());
    }
    let window = |i: usize| {
        peaks
            .iter()
            .map(|(_, p)| i32::from(p[i]))
            .collect::<Vec<_>>()
    };
    sqlx::query(sqlx::AssertSqlSafe(UPSERT_PEAKS.as_str()))
        .bind(
            peaks
                .iter()
                .map(|(k, _)| k.granularity.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            peaks
                .iter()
                .map(|(k, _)| k.bucket_start)
                .collect::<Vec<_>>(),
        )
        .bind(peaks.iter().map(|(k, _)| k.tenant_id).collect::<Vec<_>>())
        .bind(peaks.iter().map(|(k, _)| k.key_id).collect::<Vec<_>>())
        .bind(window(0))
        .bind(window(1))
        .bind(window(2))
        .bind(window(3))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn send_copy(
    conn: &mut PgConnection,
    statement: &str,
    payload: &[u8],
) -> Result<u64, sqlx::Error> {
    let mut copy_in = conn.copy_in_raw(statement).await?;
    if let Err(err) = copy_in.send(payload).await {
        copy_in.abort("sending failed").await.ok();
        return Err(err);
    }
    copy_in.finish().await
}

/// Appends `rows` to `usage_rollup_pending`.
async fn add_pending(conn: &mut PgConnection, rows: &[PendingRow]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&PendingRow) -> i64| rows.iter().map(f).collect::<Vec<i64>>();
    let peak = |i: usize| {
        rows.iter()
            .map(|r| i32::from(r.peaks[i]))
            .collect::<Vec<_>>()
    };
    sqlx::query(sqlx::AssertSqlSafe(INSERT_PENDING.as_str()))
        .bind(rows.iter().map(|r| r.key.bucket_start).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.key.tenant_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.key.key_id).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.key.endpoint.as_ref())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.key.method.as_ref())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.key.status_class).collect::<Vec<_>>())
        .bind(column(|r| r.totals.count))
        .bind(
            rows.iter()
                .map(|r| r.totals.status_codes_json().to_string())
                .collect::<Vec<_>>(),
        )
        .bind(column(|r| r.totals.bytes_in))
        .bind(column(|r| r.totals.bytes_out))
        .bind(column(|r| r.totals.tokens_in))
        .bind(column(|r| r.totals.tokens_out))
        .bind(column(|r| r.totals.cost_nanos))
        .bind(column(|r| r.totals.latency_sum_us))
        .bind(column(|r| r.totals.latency_max_us))
        .bind(
            rows.iter()
                .map(|r| r.totals.latency.encode())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.last_at).collect::<Vec<_>>())
        .bind(peak(0))
        .bind(peak(1))
        .bind(peak(2))
        .bind(peak(3))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Takes up to `most` pending rows from `cursor` on, adds them to the rollup tables, the
/// peaks and the keys' counters, and deletes them, in one transaction; returns how many it
/// took.
pub async fn compact(
    pool: &PgPool,
    cursor: &mut Cursor,
    most: usize,
    locked: Locked,
) -> Result<usize, DbErr> {
    let mut conn = pool.acquire().await.map_err(acquire_err)?;
    let taken = compact_on(&mut conn, *cursor, most, locked)
        .await
        .map_err(exec_err);
    conn.shrink_buffers();
    let taken = taken?;
    cursor.advance(&taken, most);
    Ok(taken.len())
}

async fn compact_on(
    conn: &mut PgConnection,
    cursor: Cursor,
    most: usize,
    locked: Locked,
) -> Result<Vec<Taken>, sqlx::Error> {
    let mut tx = conn.begin().await?;
    let (key_id, seq) = cursor.after();
    let take = TAKE_PENDING[locked as usize].as_str();
    let taken = sqlx::query(sqlx::AssertSqlSafe(take))
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
    add_rollups(&mut tx, &deltas).await?;
    if !keys.is_empty() {
        sqlx::query(BUMP_KEYS)
            .bind(keys.iter().map(|(id, _)| *id).collect::<Vec<_>>())
            .bind(keys.iter().map(|(_, (n, _))| *n).collect::<Vec<_>>())
            .bind(keys.iter().map(|(_, (_, last))| *last).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(DELETE_PENDING)
        .bind(taken.iter().map(|(seq, _)| *seq).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(taken)
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.code().as_deref() == Some("23505"))
}
