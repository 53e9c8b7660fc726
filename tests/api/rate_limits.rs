//! `GET /v1/analytics/rate-limits`: utilization now (from the limiter, counting nothing),
//! peaks and history from the calls' recorded utilization, recommendations at the threshold,
//! tenant scoping, and parameter errors.

use std::sync::Arc;

use chrono::{Duration, Utc};
use serde_json::{Value, json};
use tollgate::{
    metering::{
        Source, UsageEvent,
        event::method,
        store::{compact_all, insert_events},
    },
    tenancy::Role,
};

use crate::helpers::{assert_problem, create_key, events_of, new_tenant_member, spawn_app};

fn window<'a>(key: &'a Value, name: &str) -> &'a Value {
    key["windows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["window"] == name)
        .unwrap_or_else(|| panic!("no {name} window in {key}"))
}

#[tokio::test]
async fn a_key_near_its_minute_limit_is_reported_now_and_in_its_history() {
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let other = new_tenant_member(&app, Role::Owner).await;
    let busy = create_key(
        &app,
        &owner,
        json!({"name": "render-farm", "limits": {"per_minute": 10}}),
    )
    .await;
    let idle = create_key(&app, &owner, json!({"name": "idle"})).await;
    for _ in 0..8 {
        assert_eq!(app.ping(&busy.secret).await.status().as_u16(), 200);
    }
    events_of(&app, &busy.id, 8).await;

    let answer = app
        .get_json_as("/v1/analytics/rate-limits", &owner.token)
        .await;
    assert_eq!(answer["threshold_percent"], 80);
    let keys = answer["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "both keys of the tenant: {answer}");
    let first = &keys[0];
    assert_eq!(first["key_id"], busy.id.as_str(), "fullest first");
    let minute = window(first, "minute");
    assert_eq!(
        (minute["limit"].as_u64(), minute["used"].as_u64()),
        (Some(10), Some(8))
    );
    assert_eq!(minute["percent"], 80.0);
    assert_eq!(minute["peak_percent"], 80.0, "the 8th call saw 8/10");
    assert_eq!(first["over_threshold"], true);
    assert_eq!(keys[1]["key_id"], idle.id.as_str());
    assert_eq!(keys[1]["over_threshold"], false);
    assert_eq!(window(&keys[1], "minute")["used"], 0);
    assert_eq!(
        answer["recommendations"],
        json!(["Key 'render-farm' is at 8/10 req/min"])
    );
    let history = answer["history"].as_array().unwrap();
    assert_eq!(history.len(), 1, "one bucket of one key: {answer}");
    assert_eq!(history[0]["key_id"], busy.id.as_str());
    assert_eq!(history[0]["minute_percent"], 80.0);

    // The keys report carries the same windows.
    let report = app.get_json_as("/v1/analytics/keys", &owner.token).await;
    let row = &report["data"][0];
    assert_eq!(row["key_id"], busy.id.as_str());
    let minute = window(&json!({"windows": row["rate_limits"]}), "minute").clone();
    assert_eq!(
        (minute["used"].as_u64(), minute["peak_percent"].as_f64()),
        (Some(8), Some(80.0))
    );

    // Asking counted nothing: the limit still admits exactly two more calls.
    for _ in 0..2 {
        assert_eq!(app.ping(&busy.secret).await.status().as_u16(), 200);
    }
    assert_eq!(app.ping(&busy.secret).await.status().as_u16(), 429);

    // A higher threshold: no longer "near", but the peak is still reported.
    let strict = app
        .get_json_as("/v1/analytics/rate-limits?threshold=100", &owner.token)
        .await;
    assert_eq!(
        strict["recommendations"],
        json!(["Key 'render-farm' is at 10/10 req/min"])
    );

    // Another tenant sees none of it; naming this tenant is refused.
    let theirs = app
        .get_json_as("/v1/analytics/rate-limits", &other.token)
        .await;
    assert_eq!(theirs["keys"], json!([]));
    assert_eq!(theirs["history"], json!([]));
    assert_eq!(theirs["recommendations"], json!([]));
    let path = format!("/v1/analytics/rate-limits?tenant_id={}", owner.tenant_id);
    assert_problem(app.get_as(&path, &other.token).await, 403).await;
}

#[tokio::test]
async fn a_refused_call_records_the_window_as_full() {
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let key = create_key(
        &app,
        &owner,
        json!({"name": "batch", "limits": {"per_minute": 4}}),
    )
    .await;
    for _ in 0..4 {
        app.ping(&key.secret).await;
    }
    assert_eq!(app.ping(&key.secret).await.status().as_u16(), 429);
    events_of(&app, &key.id, 5).await;
    let answer = app
        .get_json_as("/v1/analytics/rate-limits?threshold=90", &owner.token)
        .await;
    assert_eq!(window(&answer["keys"][0], "minute")["peak_percent"], 100.0);
    assert_eq!(
        answer["recommendations"],
        json!(["Key 'batch' is at 4/4 req/min"])
    );
}

#[tokio::test]
async fn a_past_peak_is_recommended_when_the_window_is_quiet_now() {
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let key = create_key(
        &app,
        &owner,
        json!({"name": "nightly", "limits": {"per_hour": 200}}),
    )
    .await;
    // Two hours ago the key used 97 % of its hour, later 40 %, and an hour before the
    // window (older than 24 h) it was full: that one is out of range.
    let now = Utc::now();
    let stored = |hours_ago: i64, hour_pm: u16| {
        let mut e = UsageEvent::new(
            Source::Middleware,
            owner.tenant_id,
            Some(key.id.parse().unwrap()),
            Arc::from("/v1/ping"),
            method("GET"),
            200,
        );
        e.occurred_at = now - Duration::hours(hours_ago);
        e.utilization = [10, hour_pm, 5, 0];
        e
    };
    let events = [stored(2, 970), stored(1, 400), stored(25, 1000)];
    insert_events(&app.state.db, &events).await.unwrap();
    // Their rollups, as the running compactor would add them.
    compact_all(&app.state.db).await.unwrap();

    let answer = app
        .get_json_as("/v1/analytics/rate-limits", &owner.token)
        .await;
    let hour = window(&answer["keys"][0], "hour");
    assert_eq!(
        (hour["used"].as_u64(), hour["percent"].as_f64()),
        (Some(0), Some(0.0))
    );
    assert_eq!(hour["peak_percent"], 97.0);
    assert_eq!(answer["keys"][0]["over_threshold"], false);
    assert_eq!(
        answer["recommendations"],
        json!(["Key 'nightly' peaked at 97% of its 200 req/hour limit in this range"])
    );
    let history: Vec<f64> = answer["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["hour_percent"].as_f64().unwrap())
        .collect();
    assert_eq!(history, vec![97.0, 40.0], "hourly buckets, oldest first");
}

#[tokio::test]
async fn bad_thresholds_are_400_problems() {
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    for bad in ["0", "101", "high"] {
        let path = format!("/v1/analytics/rate-limits?threshold={bad}");
        let problem = assert_problem(app.get_as(&path, &owner.token).await, 400).await;
        assert!(
            problem["detail"].as_str().unwrap().contains("threshold"),
            "{problem}"
        );
    }
}
