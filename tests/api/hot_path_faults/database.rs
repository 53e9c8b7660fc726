//! The database refuses the event writer's inserts for five seconds (this test's own
//! `usage_events` table is renamed away; the shared server is never touched) while calls keep
//! coming: every call is served, and once the table is back each is stored exactly once.

use std::time::{Duration, Instant};

use serde_json::json;
use tollgate::tenancy::Role;

use super::{Calls, assert_each_answer_metered_once, events_by_agent, key_uuid, usage_count};
use crate::helpers::create_key;
use crate::{
    helpers::{new_tenant_member, spawn_app_with},
    metering::{break_events_table, metric},
};

const OUTAGE: Duration = Duration::from_secs(5);
const CALLS: u32 = 200;

#[tokio::test]
async fn calls_are_served_while_event_writes_fail_and_each_is_stored_once_after() {
    let app = spawn_app_with(|s| {
        // Keys inherit 1000 a minute; a small buffer makes the pipeline spool too.
        s.limits.per_minute = 1000;
        s.metering.buffer_capacity = 64;
        s.metering.batch_size = 32;
    })
    .await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let created = create_key(&app, &owner, json!({"name": "through-an-outage"})).await;
    let key = key_uuid(&created.id);
    let mut calls = Calls::new(&app, &created.secret, "db-outage");
    let retries_before = metric(&app, "tollgate_metering_retries_total").await;
    let spooled_before = metric(&app, "tollgate_metering_spooled_total").await;

    break_events_table(&app.state.db, true).await;
    let broken_at = Instant::now();
    for n in 0..CALLS {
        assert_eq!(calls.ping().await.status().as_u16(), 200, "call {n}");
        let next = broken_at + OUTAGE * (n + 1) / CALLS;
        tokio::time::sleep_until(next.into()).await;
    }
    assert_eq!(
        usage_count(&app.state.db, key).await,
        0,
        "nothing written yet"
    );
    assert!(metric(&app, "tollgate_metering_retries_total").await > retries_before);
    assert!(metric(&app, "tollgate_metering_spooled_total").await > spooled_before);

    break_events_table(&app.state.db, false).await;
    let events = events_by_agent(&app.state.db, key, CALLS as usize).await;
    assert_each_answer_metered_once(&events, &calls.answers);
    assert_eq!(usage_count(&app.state.db, key).await, i64::from(CALLS));
}
