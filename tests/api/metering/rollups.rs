//! Rollups are kept exact: built batch by batch by the writer's store — from random events
//! arriving late, out of order, in random batches, some batches sent twice — they equal the
//! rollups recomputed from the stored raw events, and percentiles merged from bucket sketches
//! are within the stated error of the exact ones.

use std::{collections::BTreeMap, sync::Arc};

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::{
    prelude::*,
    test_runner::{Config, TestRunner},
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use tollgate::{
    entities::{usage_events, usage_rollup_totals, usage_rollups, usage_utilization},
    ids::{KeyId, TenantId},
    metering::{
        Source, UsageEvent,
        event::method,
        rollup::{self, Granularity, RollupKey, Totals},
        sketch::LatencySketch,
        store::{Cursor, Locked, compact, compact_all, insert_events},
        utilization::{self, PeakKey, PerMille},
    },
};

use crate::helpers::{TestApp, spawn_app};

const ENDPOINTS: [&str; 3] = ["/v1/chat", "/v1/users/{id}", "/v1/bulk"];
const METHODS: [&str; 2] = ["GET", "POST"];
const STATUSES: [u16; 7] = [200, 201, 304, 404, 429, 500, 503];

/// One generated event: (second offset over 3 days, key, endpoint, method, status, latency).
type Draw = (i64, usize, usize, usize, usize, i64, i64);

fn draws() -> impl Strategy<Value = Vec<Draw>> {
    let latency = prop_oneof![0i64..300, 300i64..50_000, 50_000i64..30_000_000];
    prop::collection::vec(
        (
            0i64..3 * 86_400,
            0usize..4,
            0usize..3,
            0usize..2,
            0usize..7,
            latency,
            0i64..5_000,
        ),
        1..250,
    )
}

/// Batch sizes, and which batches are sent twice.
fn batching() -> impl Strategy<Value = (Vec<usize>, Vec<bool>)> {
    (
        prop::collection::vec(1usize..60, 1..20),
        prop::collection::vec(any::<bool>(), 20),
    )
}

fn build(tenant: TenantId, keys: &[KeyId; 3], draws: &[Draw]) -> Vec<UsageEvent> {
    let base = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
    draws
        .iter()
        .map(|&(second, key, endpoint, m, status, latency, size)| {
            let mut e = UsageEvent::new(
                Source::Ingest,
                tenant,
                // Index 3: an event without a key.
                keys.get(key).copied(),
                Arc::from(ENDPOINTS[endpoint]),
                method(METHODS[m]),
                STATUSES[status],
            );
            e.occurred_at = base + Duration::seconds(second);
            e.received_at = e.occurred_at;
            e.latency_us = latency;
            e.bytes_in = size;
            e.bytes_out = size * 3;
            e.tokens_in = size / 7;
            e.tokens_out = size / 3;
            e.cost_nanos = size * 1_250;
            e
        })
        .collect()
}

async fn stored_rollups(app: &TestApp, tenant: TenantId) -> BTreeMap<RollupKey, Totals> {
    compact_all(&app.state.db).await.unwrap();
    let rows = usage_rollups::Entity::find()
        .filter(usage_rollups::Column::TenantId.eq(tenant.0))
        .all(&app.state.db)
        .await
        .unwrap();
    by_key(rows)
}

/// The tenant's rows of `usage_rollup_totals`, with their endpoint sets.
async fn stored_totals(app: &TestApp, tenant: TenantId) -> BTreeMap<RollupKey, Totals> {
    compact_all(&app.state.db).await.unwrap();
    let rows = usage_rollup_totals::Entity::find()
        .filter(usage_rollup_totals::Column::TenantId.eq(tenant.0))
        .all(&app.state.db)
        .await
        .unwrap();
    rows.into_iter()
        .map(|row| {
            let endpoints = rollup::parse_endpoints(&row.endpoints)
                .unwrap()
                .map(Arc::from)
                .collect();
            let (key, mut totals) = keyed(row.into());
            totals.endpoints = endpoints;
            (key, totals)
        })
        .collect()
}

fn by_key(rows: Vec<usage_rollups::Model>) -> BTreeMap<RollupKey, Totals> {
    rows.into_iter().map(keyed).collect()
}

fn keyed(row: usage_rollups::Model) -> (RollupKey, Totals) {
    let key = RollupKey {
        granularity: Granularity::parse(&row.granularity).unwrap(),
        bucket_start: row.bucket_start,
        tenant_id: row.tenant_id,
        key_id: row.key_id,
        endpoint: Arc::from(row.endpoint.as_str()),
        method: Arc::from(row.method.as_str()),
        status_class: row.status_class,
    };
    (key, Totals::from_row(&row).unwrap())
}

async fn stored_events(app: &TestApp, tenant: TenantId) -> Vec<UsageEvent> {
    usage_events::Entity::find()
        .filter(usage_events::Column::TenantId.eq(tenant.0))
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(UsageEvent::from)
        .collect()
}

/// The tenant holds `count` raw events, and its rollups and totals equal those recomputed
/// from them.
async fn assert_rollups_match_raw_events(app: &TestApp, tenant: TenantId, count: usize) {
    let raw = stored_events(app, tenant).await;
    assert_eq!(raw.len(), count);
    let expected = rollup::aggregate(&raw);
    assert_eq!(stored_rollups(app, tenant).await, expected);
    assert_eq!(
        stored_totals(app, tenant).await,
        rollup::totals_of(&expected)
    );
}

/// Sends `events` shuffled into the given batches (re-sending some), then checks the
/// rollups against the raw events.
async fn check(app: &TestApp, draws: Vec<Draw>, batching: (Vec<usize>, Vec<bool>), seed: u64) {
    let tenant = TenantId::new();
    let keys = [KeyId::new(), KeyId::new(), KeyId::new()];
    let mut events = build(tenant, &keys, &draws);
    // Out of order: a seeded shuffle.
    let mut state = seed | 1;
    for i in (1..events.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        events.swap(i, (state % (i as u64 + 1)) as usize);
    }
    let (sizes, resend) = batching;
    let mut rest = &events[..];
    let mut sent = 0;
    for (i, size) in sizes.iter().cycle().enumerate() {
        if rest.is_empty() {
            break;
        }
        let (batch, tail) = rest.split_at((*size).min(rest.len()));
        sent += insert_events(&app.state.db, batch).await.unwrap();
        if resend[i % resend.len()] {
            // A replay: nothing is new, nothing may be counted again.
            assert_eq!(insert_events(&app.state.db, batch).await.unwrap(), 0);
        }
        rest = tail;
    }
    assert_eq!(sent, events.len() as u64);

    let raw = stored_events(app, tenant).await;
    assert_eq!(raw.len(), events.len());
    let expected = rollup::aggregate(&raw);
    let stored = stored_rollups(app, tenant).await;
    assert_eq!(stored.len(), expected.len(), "rollup rows");
    for (key, want) in &expected {
        assert_eq!(stored.get(key), Some(want), "bucket {key:?}");
    }
    // The tenant totals: the same events summed over keys and endpoints.
    let expected_totals = rollup::totals_of(&expected);
    let totals = stored_totals(app, tenant).await;
    assert_eq!(totals.len(), expected_totals.len(), "totals rows");
    for (key, want) in &expected_totals {
        assert_eq!(totals.get(key), Some(want), "totals bucket {key:?}");
    }

    // Percentiles over everything, merged from the minute buckets, against the exact ones.
    let mut merged = LatencySketch::new();
    stored
        .iter()
        .filter(|(k, _)| k.granularity == Granularity::Minute)
        .for_each(|(_, t)| merged.merge(&t.latency));
    let mut exact: Vec<i64> = raw.iter().map(|e| e.latency_us).collect();
    exact.sort_unstable();
    for q in [0.5, 0.95, 0.99] {
        let rank = ((q * exact.len() as f64).ceil() as usize).clamp(1, exact.len());
        let (got, want) = (merged.quantile(q).unwrap(), exact[rank - 1]);
        assert!(
            (got - want).abs() as f64 <= 0.01 * want as f64,
            "p{q}: {got} vs exact {want}"
        );
    }
}

#[test]
fn incremental_rollups_equal_rollups_recomputed_from_raw_events() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = runtime.block_on(spawn_app());
    // Each case is a fresh tenant in one database; 24 cases keep this at a few seconds.
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (draws(), batching(), any::<u64>());
    runner
        .run(&strategy, |(draws, batching, seed)| {
            runtime.block_on(check(&app, draws, batching, seed));
            Ok(())
        })
        .unwrap();
}

#[tokio::test]
async fn a_late_event_merges_into_its_existing_bucket() {
    let app = spawn_app().await;
    let tenant = TenantId::new();
    let key = KeyId::new();
    let at: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 11, 22, 9, 30, 15).unwrap();
    let one = |latency: i64, status: u16| {
        let mut e = UsageEvent::new(
            Source::Ingest,
            tenant,
            Some(key),
            Arc::from("/v1/chat"),
            method("POST"),
            status,
        );
        e.occurred_at = at;
        e.latency_us = latency;
        e
    };
    insert_events(&app.state.db, &[one(1_000, 200), one(3_000, 201)])
        .await
        .unwrap();
    // Minutes later, a straggler for the same minute.
    insert_events(&app.state.db, &[one(120_000, 200)])
        .await
        .unwrap();
    let stored = stored_rollups(&app, tenant).await;
    assert_eq!(stored.len(), 3, "one row per granularity: {stored:?}");
    for totals in stored.values() {
        assert_eq!(totals.count, 3);
        assert_eq!(totals.status_codes, BTreeMap::from([(200, 2), (201, 1)]));
        assert_eq!(
            (totals.latency_sum_us, totals.latency_max_us),
            (124_000, 120_000)
        );
        assert_eq!(totals.latency.count(), 3);
    }
}

/// A batch of new events, events stored by an earlier batch and an event sent twice in the
/// same batch, over several insert statements: each event is stored and counted once.
#[tokio::test]
async fn a_batch_mixing_stored_new_and_repeated_events_counts_each_event_once() {
    let app = spawn_app().await;
    let tenant = TenantId::new();
    let keys = [KeyId::new(), KeyId::new(), KeyId::new()];
    let draws: Vec<Draw> = (0..2_500usize)
        .map(|i| (i as i64 * 97, i % 4, i % 3, i % 2, i % 7, 700, 0))
        .collect();
    let events = build(tenant, &keys, &draws);
    let first = insert_events(&app.state.db, &events[..1_200])
        .await
        .unwrap();
    assert_eq!(first, 1_200);
    // 200 stored, 1,300 new, one of them twice in the same statement, and one stored event
    // from the first batch.
    let mut batch = events[1_000..].to_vec();
    batch.insert(1_200, events[2_400].clone());
    batch.push(events[5].clone());
    assert_eq!(insert_events(&app.state.db, &batch).await.unwrap(), 1_300);

    assert_rollups_match_raw_events(&app, tenant, events.len()).await;
}

/// Batches committed at the same time — the writer's `writer_connections`, or several nodes —
/// on the same keys and buckets add up, and a batch racing its own re-send is stored once:
/// each transaction's upserts wait for the other's row locks.
#[tokio::test]
async fn concurrent_batches_on_the_same_buckets_add_up() {
    let app = spawn_app().await;
    let tenant = TenantId::new();
    let keys = [KeyId::new(), KeyId::new(), KeyId::new()];
    // Within a quarter of an hour, so every batch shares minute, hour and day rows.
    let draws: Vec<Draw> = (0..2_000usize)
        .map(|i| {
            (
                (i * 7 % 900) as i64,
                i % 4,
                i % 3,
                i % 2,
                i % 7,
                300 + i as i64,
                64,
            )
        })
        .collect();
    let events = build(tenant, &keys, &draws);
    let batches: Vec<&[UsageEvent]> = events.chunks(250).collect();
    // Every batch at once, and every other batch a second time beside it.
    let sends = batches
        .iter()
        .chain(batches.iter().step_by(2))
        .map(|batch| insert_events(&app.state.db, batch));
    let stored: u64 = futures_util::future::join_all(sends)
        .await
        .into_iter()
        .map(Result::unwrap)
        .sum();
    assert_eq!(stored, events.len() as u64, "each event stored once");

    assert_rollups_match_raw_events(&app, tenant, events.len()).await;
}

/// Compactors running at once — one per node, each taking rows in key order from its own
/// place — while batches keep appending pending rows: each row is added exactly once
/// (PostgreSQL: a row one compactor holds is skipped by the others; SQLite: one writer at a
/// time), and the peaks folded from pending rows equal those of the events.
#[tokio::test]
async fn concurrent_compactors_add_each_pending_row_exactly_once() {
    let app = spawn_app().await;
    let tenant = TenantId::new();
    let keys = [KeyId::new(), KeyId::new(), KeyId::new()];
    let draws: Vec<Draw> = (0..3_000usize)
        .map(|i| {
            let at = (i * 37 % 7_200) as i64;
            (at, i % 4, i % 3, i % 2, i % 7, 300 + i as i64, 64)
        })
        .collect();
    let mut events = build(tenant, &keys, &draws);
    for (i, e) in events.iter_mut().enumerate() {
        e.utilization = [(i * 13 % 1000) as u16, (i % 97) as u16, 2, 1];
    }
    let stop = tokio_util::sync::CancellationToken::new();
    // Small takes, so every pass is many transactions and the compactors overlap.
    let compactors: Vec<_> = (0..3)
        .map(|_| {
            let (db, stop) = (app.state.db.clone(), stop.clone());
            tokio::spawn(async move {
                let mut cursor = Cursor::default();
                let mut taken = 0;
                while !stop.is_cancelled() {
                    taken += compact(&db, &mut cursor, 40, Locked::Skip).await.unwrap();
                    tokio::task::yield_now().await;
                }
                taken
            })
        })
        .collect();
    for batch in events.chunks(100) {
        assert_eq!(insert_events(&app.state.db, batch).await.unwrap(), 100);
    }
    stop.cancel();
    let mut taken = 0;
    for compactor in compactors {
        taken += compactor.await.unwrap();
    }
    assert!(taken > 0, "the test's compactors took part");

    assert_rollups_match_raw_events(&app, tenant, events.len()).await;
    let peaks: Vec<(PeakKey, PerMille)> = usage_utilization::Entity::find()
        .filter(usage_utilization::Column::TenantId.eq(tenant.0))
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|row| {
            let key = PeakKey {
                granularity: Granularity::parse(&row.granularity).unwrap(),
                bucket_start: row.bucket_start,
                tenant_id: row.tenant_id,
                key_id: row.key_id,
            };
            let per_mille = [row.minute_pm, row.hour_pm, row.day_pm, row.month_pm]
                .map(|p| u16::try_from(p).unwrap());
            (key, per_mille)
        })
        .collect();
    let mut peaks = peaks;
    peaks.sort_by_key(|(k, _)| *k);
    let expected: Vec<(PeakKey, PerMille)> = utilization::peaks(&events).into_iter().collect();
    assert_eq!(peaks, expected);
}

/// What migration 000010 does to rollups stored before it: the totals it sums from
/// `usage_rollups` equal those the writer keeps.
#[tokio::test]
async fn the_totals_backfill_sums_the_stored_rollups() {
    let app = spawn_app().await;
    let tenant = TenantId::new();
    let keys = [KeyId::new(), KeyId::new(), KeyId::new()];
    // Spread over three days, every key, endpoint, method and status.
    let draws: Vec<Draw> = (0..300usize)
        .map(|i| {
            let i64 = i as i64;
            (
                i64 * 863,
                i % 4,
                i % 3,
                i % 2,
                i % 7,
                500 + i64 * 37,
                i64 * 11,
            )
        })
        .collect();
    let events = build(tenant, &keys, &draws);
    insert_events(&app.state.db, &events).await.unwrap();
    let kept = stored_totals(&app, tenant).await;
    assert!(!kept.is_empty());
    usage_rollup_totals::Entity::delete_many()
        .exec(&app.state.db)
        .await
        .unwrap();
    migration::backfill_rollup_totals(&app.state.db)
        .await
        .unwrap();
    assert_eq!(stored_totals(&app, tenant).await, kept);
}
