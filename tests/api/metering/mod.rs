//! Metering: the recorder -> buffer -> batch writer -> `usage_events` pipeline (fields,
//! key counters, spooling, database failures, shutdown), and `POST /v1/events`.

use std::{sync::Arc, time::Duration};

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    sea_query::{Asterisk, Expr, ExprTrait, Query},
};
use serde_json::json;
use tollgate::{
    entities::{api_keys, usage_events},
    ids::{KeyId, TenantId},
    metering::{Source, UsageEvent, event::method},
};

use crate::helpers::{Member, TestApp};

mod ingest;
mod pipeline;
mod retention;
mod rollups;
mod shutdown;

/// A key created through the API by `owner`: its id and secret.
async fn create_key(app: &TestApp, owner: &Member) -> (KeyId, String) {
    let key = crate::helpers::create_key(app, owner, json!({"name": "metered"})).await;
    (key.id.parse().unwrap(), key.secret)
}

/// An event with every field set; times at microsecond precision (what PostgreSQL keeps).
fn event(tenant: TenantId, key: Option<KeyId>, n: i64) -> UsageEvent {
    use chrono::SubsecRound;
    let mut e = UsageEvent::new(
        Source::Middleware,
        tenant,
        key,
        Arc::from("/v1/things/{id}"),
        method("POST"),
        201,
    );
    e.occurred_at = (chrono::Utc::now() - chrono::Duration::seconds(n)).trunc_subsecs(6);
    e.received_at = e.occurred_at;
    e.latency_us = 1500 + n;
    e.bytes_in = 10 + n;
    e.bytes_out = 20 + n;
    e.tokens_in = 30 + n;
    e.tokens_out = 40 + n;
    e.cost_nanos = 1_200_000 + n;
    e.ip = Some("203.0.113.7".parse().unwrap());
    e.user_agent = Some(Arc::from("metering-test/1.0"));
    e
}

async fn count_events(db: &DatabaseConnection) -> u64 {
    usage_events::Entity::find().count(db).await.unwrap()
}

/// Pending rollup rows (of `key` only, if given): stored events' rollups, key counters and
/// peaks the compactor has not added yet.
async fn pending_rows(db: &DatabaseConnection, key: Option<KeyId>) -> i64 {
    let mut pending = Query::select()
        .expr(Expr::col(Asterisk).count())
        .from("usage_rollup_pending")
        .to_owned();
    if let Some(key) = key {
        pending.and_where(Expr::col("key_id").eq(key.0));
    }
    let pending = db.get_database_backend().build(&pending);
    let row = db.query_one_raw(pending).await.unwrap().unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// The key's row once its counters are up to date: when none of its stored events' rollups
/// is still pending (the compactor adds them, with the counters, right after each batch;
/// panics after 10 s).
async fn key_row(db: &DatabaseConnection, key: KeyId) -> api_keys::Model {
    let mut left = 0;
    for _ in 0..200 {
        left = pending_rows(db, Some(key)).await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, 0, "pending rollup rows of {key} after 10 s");
    api_keys::Entity::find()
        .filter(api_keys::Column::Id.eq(key.0))
        .one(db)
        .await
        .unwrap()
        .unwrap()
}

/// Polls until `usage_events` holds `expected` rows (panics after 20 s).
async fn wait_for_events(db: &DatabaseConnection, expected: u64) {
    let mut seen = 0;
    for _ in 0..400 {
        seen = count_events(db).await;
        if seen == expected {
            return;
        }
        assert!(
            seen < expected,
            "more events stored ({seen}) than recorded ({expected})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("expected {expected} stored events, found {seen}");
}

/// Makes every write to `usage_events` fail for real (the table is renamed away) or restores
/// it.
pub(crate) async fn break_events_table(db: &DatabaseConnection, broken: bool) {
    let (from, to) = match broken {
        true => ("usage_events", "usage_events_away"),
        false => ("usage_events_away", "usage_events"),
    };
    db.execute_unprepared(&format!("ALTER TABLE {from} RENAME TO {to}"))
        .await
        .unwrap();
}

/// The value of a counter or gauge on `/metrics` (0 when absent).
pub(crate) async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}
