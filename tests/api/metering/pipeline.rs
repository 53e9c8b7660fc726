//! The recorder and the batch writer: every field stored, key counters, a full buffer
//! spilling to the spool, and a database failure survived with each event stored once.

use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use tollgate::{entities::usage_events, ids::KeyId, metering::UsageEvent, tenancy::Role};

use super::{
    break_events_table, count_events, create_key, event, key_row, metric, wait_for_events,
};
use crate::helpers::{TestApp, new_tenant_member, spawn_app, spawn_app_with};

#[tokio::test]
async fn recorded_events_are_stored_with_every_field_and_counted_on_their_key() {
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let (key, _) = create_key(&app, &owner).await;
    let recorded = vec![
        event(owner.tenant_id, Some(key), 3),
        event(owner.tenant_id, Some(key), 1),
        event(owner.tenant_id, Some(key), 2),
        event(owner.tenant_id, None, 0),
    ];
    for e in &recorded {
        app.state.recorder.record(e.clone());
    }
    wait_for_events(&app.state.db, 4).await;

    use sea_orm::EntityTrait;
    let mut rows = usage_events::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    rows.sort_by_key(|r| r.id);
    let mut expected = recorded.clone();
    expected.sort_by_key(|e| e.id);
    for (row, e) in rows.iter().zip(&expected) {
        assert_eq!(row.id, e.id);
        assert_eq!(row.occurred_at, e.occurred_at);
        assert_eq!(row.received_at, e.received_at);
        assert_eq!(row.tenant_id, e.tenant_id.0);
        assert_eq!(row.key_id, e.key_id.map(|k| k.0));
        assert_eq!(row.endpoint, "/v1/things/{id}");
        assert_eq!(row.method, "POST");
        assert_eq!(row.status_code, 201);
        assert_eq!(row.latency_us, e.latency_us);
        assert_eq!(
            (row.bytes_in, row.bytes_out, row.tokens_in, row.tokens_out),
            (e.bytes_in, e.bytes_out, e.tokens_in, e.tokens_out)
        );
        assert_eq!(row.cost_nanos, e.cost_nanos);
        assert_eq!(row.ip.as_deref(), Some("203.0.113.7"));
        assert_eq!(row.user_agent.as_deref(), Some("metering-test/1.0"));
        assert_eq!(row.source, "middleware");
        assert_eq!(row.metadata, None);
    }
    let row = key_row(&app.state.db, key).await;
    assert_eq!(row.usage_count, 3, "only the key's events count");
    assert_eq!(
        row.last_used_at,
        Some(recorded[1].occurred_at),
        "the latest event"
    );

    // Recording the same events again (a replay) stores and counts nothing new.
    for e in &recorded {
        app.state.recorder.record(e.clone());
    }
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(count_events(&app.state.db).await, 4);
    assert_eq!(key_row(&app.state.db, key).await.usage_count, 3);
}

#[tokio::test]
async fn a_full_buffer_spools_and_every_event_arrives_once() {
    let app = spawn_app_with(|s| {
        s.metering.buffer_capacity = 4;
        s.metering.batch_size = 4;
        s.metering.flush_interval_ms = 20;
    })
    .await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let (key, _) = create_key(&app, &owner).await;
    let spooled_before = metric(&app, "tollgate_metering_spooled_total").await;
    // The buffer holds 4 events, and the writer (on its own threads) takes them at most every
    // 10 ms while events flow: nearly all of the 500 recorded by this loop go to the spool.
    for n in 0..500 {
        app.state
            .recorder
            .record(event(owner.tenant_id, Some(key), n));
    }
    wait_for_events(&app.state.db, 500).await;
    assert_eq!(key_row(&app.state.db, key).await.usage_count, 500);
    let spooled = metric(&app, "tollgate_metering_spooled_total").await - spooled_before;
    assert!(spooled >= 400.0, "spooled {spooled}");
    assert_eq!(metric(&app, "tollgate_metering_dropped_total").await, 0.0);
    // What the spool thread has yet to write is exported (its value is the process's, shared
    // by the tests running beside this one).
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("\ntollgate_metering_spool_queue_depth "),
        "the spool's queue depth is exported"
    );
    let spool = &app.state.settings.metering.spool_dir;
    let leftovers: Vec<_> = std::fs::read_dir(spool)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .filter(|name| name != ".lock")
        .collect();
    assert!(
        leftovers.is_empty(),
        "replayed segments are deleted: {leftovers:?}"
    );
}

#[tokio::test]
async fn the_writer_survives_a_database_failure_and_stores_each_event_once() {
    let app = spawn_app_with(|s| {
        s.metering.buffer_capacity = 20;
        s.metering.batch_size = 10;
        s.metering.flush_interval_ms = 20;
    })
    .await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let (key, _) = create_key(&app, &owner).await;
    let retries_before = metric(&app, "tollgate_metering_retries_total").await;
    let spooled_before = metric(&app, "tollgate_metering_spooled_total").await;

    break_events_table(&app.state.db, true).await;
    record_yielding(&app, (0..100).map(|n| event(owner.tenant_id, Some(key), n))).await;
    // The writer fails, keeps its batch and retries; the buffer fills and spills.
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert!(metric(&app, "tollgate_metering_retries_total").await > retries_before);
    assert!(metric(&app, "tollgate_metering_spooled_total").await > spooled_before);
    assert_eq!(key_row(&app.state.db, key).await.usage_count, 0);

    break_events_table(&app.state.db, false).await;
    wait_for_events(&app.state.db, 100).await;
    assert_eq!(key_row(&app.state.db, key).await.usage_count, 100);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        count_events(&app.state.db).await,
        100,
        "each event exactly once"
    );
    assert_eq!(key_row(&app.state.db, key).await.usage_count, 100);
}

/// Records `events`, letting the writer run after every tenth.
async fn record_yielding(app: &TestApp, events: impl IntoIterator<Item = UsageEvent>) {
    for (n, event) in events.into_iter().enumerate() {
        app.state.recorder.record(event);
        if n % 10 == 0 {
            tokio::task::yield_now().await;
        }
    }
}

/// Records 1,000 events (`keys` cycled; `None` for the first's own key) while the events table
/// is broken, so that the writer falls behind, then mends it and waits for every event. On
/// PostgreSQL, where every batch is one transaction and its rows share one `xmin`: each
/// batch's events and distinct keys.
async fn backlog_batches(keys: &[Option<KeyId>]) -> Option<Vec<(i64, i64)>> {
    let app = spawn_app_with(|s| {
        s.metering.buffer_capacity = 2_000;
        s.metering.batch_size = 10;
        s.metering.max_batch_size = 500;
        s.metering.flush_interval_ms = 20;
    })
    .await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let (own, _) = create_key(&app, &owner).await;
    let retries_before = metric(&app, "tollgate_metering_retries_total").await;

    break_events_table(&app.state.db, true).await;
    let events = (0..1_000).map(|n| {
        event(
            owner.tenant_id,
            keys[n % keys.len()].or(Some(own)),
            n as i64,
        )
    });
    record_yielding(&app, events).await;
    // The first batches fail and are retried; the rest waits in the buffer (not spooled).
    for _ in 0..100 {
        if metric(&app, "tollgate_metering_retries_total").await > retries_before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(metric(&app, "tollgate_metering_retries_total").await > retries_before);
    break_events_table(&app.state.db, false).await;
    wait_for_events(&app.state.db, 1_000).await;
    let own_calls = keys.iter().filter(|k| k.is_none()).count() * 1_000 / keys.len();
    assert_eq!(
        key_row(&app.state.db, own).await.usage_count,
        own_calls as i64
    );

    let db = &app.state.db;
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return None;
    }
    let rows = db
        .query_all_raw(Statement::from_string(
            DatabaseBackend::Postgres,
            "SELECT count(*) AS events, count(DISTINCT key_id) AS keys FROM usage_events \
             GROUP BY xmin::text",
        ))
        .await
        .unwrap();
    Some(
        rows.iter()
            .map(|r| {
                (
                    r.try_get("", "events").unwrap(),
                    r.try_get("", "keys").unwrap(),
                )
            })
            .collect(),
    )
}

/// A writer that falls behind takes everything waiting, up to `max_batch_size`, into one
/// batch: after an outage the backlog goes in a few large batches (in which each key's calls
/// fold into fewer rollup rows), not in a hundred of `batch_size`.
#[tokio::test]
async fn a_writer_that_falls_behind_commits_the_backlog_in_larger_batches() {
    if let Some(batches) = backlog_batches(&[None]).await {
        assert!(batches.len() <= 8, "1,000 events in {batches:?}");
    }
}

/// A batch grows only while it holds at most twice `batch_size` distinct keys (plus the one
/// that reaches the bound): its memory and rows follow its keys.
#[tokio::test]
async fn a_growing_batch_stops_at_twice_batch_size_distinct_keys() {
    let keys: Vec<Option<KeyId>> = (0..100).map(|_| Some(KeyId::new())).collect();
    if let Some(batches) = backlog_batches(&keys).await {
        let most_keys = batches.iter().map(|(_, keys)| *keys).max().unwrap();
        let most_events = batches.iter().map(|(events, _)| *events).max().unwrap();
        assert!(most_keys <= 21, "batches (events, keys): {batches:?}");
        assert!(most_events > 10, "no batch grew: {batches:?}");
    }
}
