//! The SQLite batch write: multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING` (chunked
//! under SQLite's bound-parameter limit) and one counter update per key, in one transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbErr, Statement, TransactionTrait,
    sea_query::{Alias, Expr, OnConflict, Query},
};
use uuid::Uuid;

use super::COLUMNS;
use crate::metering::UsageEvent;

/// Rows per statement: 17 parameters each stays well under SQLite's 32,766.
const ROWS_PER_STATEMENT: usize = 1000;

const BUMP_KEY: &str = "UPDATE api_keys SET usage_count = usage_count + ?, \
     last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < ? THEN ? \
     ELSE last_used_at END WHERE id = ?";

pub async fn insert(db: &DatabaseConnection, events: &[UsageEvent]) -> Result<u64, DbErr> {
    let backend = db.get_database_backend();
    let txn = db.begin().await?;
    let mut inserted = 0u64;
    let mut per_key: HashMap<Uuid, (i64, DateTime<Utc>)> = HashMap::new();
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let rows = txn.query_all_raw(backend.build(&statement(chunk))).await?;
        for row in rows {
            inserted += 1;
            let key: Option<Uuid> = row.try_get("", "key_id")?;
            let at: DateTime<Utc> = row.try_get("", "occurred_at")?;
            if let Some(key) = key {
                let entry = per_key.entry(key).or_insert((0, at));
                entry.0 += 1;
                entry.1 = entry.1.max(at);
            }
        }
    }
    for (key, (count, last)) in per_key {
        let values = [count.into(), last.into(), last.into(), key.into()];
        txn.execute_raw(Statement::from_sql_and_values(backend, BUMP_KEY, values))
            .await?;
    }
    txn.commit().await?;
    Ok(inserted)
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
        .returning(Query::returning().columns([Alias::new("key_id"), Alias::new("occurred_at")]));
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
