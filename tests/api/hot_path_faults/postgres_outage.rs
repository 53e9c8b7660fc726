//! PostgreSQL stopped for 30 s under a steady stream of calls (a private cluster, stopped
//! with `pg_ctl stop -m fast`; the shared server is never touched): every call is answered
//! 200 and quickly, though the key's cache entry expires many times over and each reload
//! fails (the last good copy is served); after the restart every call's event is stored
//! exactly once and counted on its key.

use std::time::{Duration, Instant};

use serde_json::json;
use tollgate::{config::SecretUrl, tenancy::Role};

use super::{Calls, assert_each_answer_metered_once, events_by_agent, key_uuid, usage_count};
use crate::helpers::{
    Backends, PrivatePostgres, create_key, new_tenant_member, require_or_skip, spawn_app_with,
};
use crate::metering::metric;

const OUTAGE: Duration = Duration::from_secs(30);
/// Calls per second, before, during and after the outage.
const RATE: u32 = 50;
/// Far above what a cached key costs; catches a call waiting on the database (the pool's
/// acquire timeout is 5 s).
const SLOWEST_ALLOWED: Duration = Duration::from_secs(1);

#[tokio::test]
async fn calls_keep_succeeding_while_postgres_is_stopped_and_every_event_is_stored_after() {
    let test = "calls_keep_succeeding_while_postgres_is_stopped_and_every_event_is_stored_after";
    // The shared server's presence says PostgreSQL is installed here.
    if require_or_skip("postgres", Backends::from_env().postgres, test).is_none() {
        return;
    }
    let Some(pg) = PrivatePostgres::start() else {
        assert!(
            !Backends::from_env().require_all,
            "{test}: PostgreSQL's server programs (pg_config --bindir) are required"
        );
        eprintln!("skipped: {test} needs PostgreSQL's server programs (initdb, pg_ctl)");
        return;
    };
    let app = spawn_app_with(|s| {
        s.database.url = SecretUrl::new(pg.url());
        // The key's entry expires every 2 s: reloads fail all through the outage.
        s.keys.cache_ttl_secs = 2;
        s.limits.per_minute = 100_000;
        s.limits.per_hour = 1_000_000;
        s.limits.per_day = 10_000_000;
        // A small buffer, so the events of the outage go through the spool too.
        s.metering.buffer_capacity = 256;
        s.metering.batch_size = 64;
    })
    .await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let created = create_key(&app, &owner, json!({"name": "through-a-pg-outage"})).await;
    let key = key_uuid(&created.id);
    let mut calls = Calls::new(&app, &created.secret, "pg-outage");
    let stale_before = metric(&app, "tollgate_key_cache_stale_served_total").await;
    paced(&mut calls, Duration::from_secs(2), "before").await;

    let stop = tokio::task::spawn_blocking(move || {
        pg.stop();
        pg
    });
    let pg = stop.await.unwrap();
    paced(&mut calls, OUTAGE, "while PostgreSQL is stopped").await;
    let stale_served = metric(&app, "tollgate_key_cache_stale_served_total").await - stale_before;
    assert!(
        stale_served >= 5.0,
        "reloads failed and the last good copy was served again ({stale_served} times)"
    );

    pg.start_again();
    paced(&mut calls, Duration::from_secs(3), "after the restart").await;
    let total = calls.answers.statuses.len();
    let events = events_by_agent(&app.state.db, key, total).await;
    assert_each_answer_metered_once(&events, &calls.answers);
    assert_eq!(usage_count(&app.state.db, key).await, total as i64);
}

/// `RATE` calls a second for `span`, each of which must be answered 200 within
/// [`SLOWEST_ALLOWED`].
async fn paced(calls: &mut Calls<'_>, span: Duration, phase: &str) {
    let started = Instant::now();
    let count = (span.as_secs_f64() * f64::from(RATE)) as u32;
    for n in 0..count {
        let sent = Instant::now();
        let status = calls.ping().await.status().as_u16();
        let took = sent.elapsed();
        assert_eq!(status, 200, "call {n} {phase}");
        assert!(took < SLOWEST_ALLOWED, "call {n} {phase} took {took:?}");
        tokio::time::sleep_until((started + span * (n + 1) / count).into()).await;
    }
}
