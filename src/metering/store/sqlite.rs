//! The SQLite batch write: multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING` (chunked
//! under SQLite's bound-parameter limit), one counter update per key and the rollups of the
//! inserted events, in one transaction.

use std::collections::HashSet;

use chrono::Utc;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, Statement,
    TransactionTrait, Value,
    sea_query::{Alias, Expr, OnConflict, Query},
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
const ROWS_PER_STATEMENT: usize = 1000;

const BUMP_KEY: &str = "UPDATE api_keys SET usage_count = usage_count + ?, \
     last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < ? THEN ? \
     ELSE last_used_at END WHERE id = ?";

pub async fn insert(db: &DatabaseConnection, events: &[UsageEvent]) -> Result<u64, DbErr> {
    let backend = db.get_database_backend();
    let txn = db.begin().await?;
    let mut inserted: HashSet<Uuid> = HashSet::with_capacity(events.len());
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        for row in txn.query_all_raw(backend.build(&statement(chunk))).await? {
            inserted.insert(row.try_get("", "id")?);
        }
    }
    let count = inserted.len() as u64;
    let stored: Vec<&UsageEvent> = match inserted.len() == events.len() {
        true => events.iter().collect(),
        // The first copy of each inserted id (a batch may hold the same event twice).
        false => events.iter().filter(|e| inserted.remove(&e.id)).collect(),
    };
    for (key, (count, last)) in super::per_key(stored.iter().copied()) {
        let values = [count.into(), last.into(), last.into(), key.into()];
        txn.execute_raw(Statement::from_sql_and_values(backend, BUMP_KEY, values))
            .await?;
    }
    let deltas = Deltas::of(stored.iter().copied());
    add_rollups(&txn, &deltas.detail).await?;
    add_rollups(&txn, &deltas.totals).await?;
    add_peaks(&txn, &deltas.peaks).await?;
    txn.commit().await?;
    Ok(count)
}

/// Rollup rows per upsert: 18 or 19 parameters each.
const ROLLUPS_PER_STATEMENT: usize = 1000;

/// Writes back the merged status codes and sketch of one row of `table`.
fn merge_rollup(table: &str) -> String {
    format!(
        "UPDATE {table} SET status_codes = ?, latency_sketch = ? \
         WHERE granularity = ? AND bucket_start = ? AND tenant_id = ? AND key_id = ? \
         AND endpoint = ? AND method = ? AND status_class = ?"
    )
}

/// Adds one table's rows of a batch (see [`rollups`]).
async fn add_rollups(txn: &DatabaseTransaction, part: &Part) -> Result<(), DbErr> {
    let now = Utc::now();
    let mut merges = Vec::new();
    let columns = rollups::columns(part.table);
    let row = format!("({})", vec!["?"; columns.len()].join(", "));
    for (chunk, rows) in part.rows.chunks(ROLLUPS_PER_STATEMENT).enumerate() {
        let placeholders = vec![row.as_str(); rows.len()].join(", ");
        let sql = format!(
            "INSERT INTO {} ({}) VALUES {placeholders} {}",
            part.table,
            columns.join(", "),
            rollups::on_conflict(
                part.table,
                "max",
                |stored, added| format!("json_patch({stored}, {added})"),
                ""
            )
        );
        let mut values: Vec<Value> = Vec::with_capacity(rows.len() * columns.len());
        for (i, (key, t)) in rows.iter().enumerate() {
            let at = chunk * ROLLUPS_PER_STATEMENT + i;
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
                merges.push((key, merged));
            }
        }
    }
    let merge_back = merge_rollup(part.table);
    for ((g, bucket, tenant, key_id, endpoint, method, class), (codes, sketch)) in merges {
        let values: [Value; 9] = [
            codes.into(),
            sketch.into(),
            g.into(),
            bucket.into(),
            tenant.into(),
            key_id.into(),
            endpoint.into(),
            method.into(),
            class.into(),
        ];
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            merge_back.as_str(),
            values,
        ))
        .await?;
    }
    Ok(())
}

/// Keeps the larger utilization of each window (see `metering::utilization`).
async fn add_peaks(txn: &DatabaseTransaction, peaks: &[(PeakKey, PerMille)]) -> Result<(), DbErr> {
    for chunk in peaks.chunks(ROLLUPS_PER_STATEMENT) {
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

fn statement(events: &[UsageEvent]) -> sea_orm::sea_query::InsertStatement {
    let mut insert = Query::insert();
    insert
        .into_table(Alias::new("usage_events"))
        .columns(COLUMNS.map(Alias::new))
        .on_conflict(
            OnConflict::columns([Alias::new("id"), Alias::new("occurred_at")])
                .do_nothing()
                .to_owned(),
        )
        .returning(Query::returning().column(Alias::new("id")));
    for e in events {
        insert.values_panic(row(e));
    }
    insert
}

fn row(e: &UsageEvent) -> [Expr; 17] {
    [
        Expr::value(e.id),
        Expr::value(e.occurred_at),
        Expr::value(e.tenant_id.0),
        Expr::value(e.key_id.map(|k| k.0)),
        Expr::value(e.endpoint.to_string()),
        Expr::value(e.method.to_string()),
        Expr::value(e.status_code as i16),
        Expr::value(e.latency_us),
        Expr::value(e.bytes_in),
        Expr::value(e.bytes_out),
        Expr::value(e.tokens_in),
        Expr::value(e.tokens_out),
        Expr::value(e.cost_nanos),
        Expr::value(e.ip.map(|ip| ip.to_string())),
        Expr::value(e.user_agent.as_deref().map(str::to_owned)),
        Expr::value(e.source.as_str()),
        Expr::value(e.received_at),
    ]
}
