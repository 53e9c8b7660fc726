//! `/v1/analytics/…` on a known event set: exact figures, percentiles within the stated
//! error, tenant scoping (merchants never see another tenant's numbers; platform admins see
//! all or one), empty windows answered with zeros, and bad parameters as 400 problems.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};
use tollgate::{
    auth::users,
    ids::{KeyId, TenantId},
    metering::{
        Source, UsageEvent,
        event::method,
        store::{compact_all, insert_events},
    },
    tenancy::Role,
};

use crate::helpers::{
    Member, PASSWORD, TestApp, assert_problem, create_key, join_tenant, new_tenant_member,
    spawn_app,
};

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, h, m, 0).unwrap()
}

/// `n` events of one kind.
#[allow(clippy::too_many_arguments)]
fn events(
    n: usize,
    tenant: TenantId,
    key: Option<KeyId>,
    when: DateTime<Utc>,
    verb: &str,
    endpoint: &str,
    status: u16,
    latency_us: i64,
    bytes: (i64, i64),
    tokens: (i64, i64),
    cost_nanos: i64,
) -> Vec<UsageEvent> {
    (0..n)
        .map(|i| {
            let mut e = UsageEvent::new(
                Source::Ingest,
                tenant,
                key,
                Arc::from(endpoint),
                method(verb),
                status,
            );
            e.occurred_at = when + Duration::seconds(i as i64);
            e.latency_us = latency_us;
            (e.bytes_in, e.bytes_out) = bytes;
            (e.tokens_in, e.tokens_out) = tokens;
            e.cost_nanos = cost_nanos;
            e
        })
        .collect()
}

struct World {
    app: TestApp,
    owner: Member,
    other: Member,
    k1: String,
    k2: String,
}

/// Tenant A: k1 (6 GETs at 10:05, 3 POSTs at 11:30), k2 (a 500 at 11:45, two 429s at
/// 12:10), 4 GETs at 08:00 (the previous window); tenant B: one call at 10:05.
async fn world() -> World {
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let other = new_tenant_member(&app, Role::Owner).await;
    let k1 = create_key(&app, &owner, json!({"name": "web"})).await.id;
    let k2 = create_key(&app, &owner, json!({"name": "batch"})).await.id;
    let (a, b) = (owner.tenant_id, other.tenant_id);
    let (key1, key2) = (Some(k1.parse().unwrap()), Some(k2.parse().unwrap()));
    let users = "/v1/users/{id}";
    let mut all = Vec::new();
    all.extend(events(
        6,
        a,
        key1,
        at(10, 5),
        "GET",
        users,
        200,
        10_000,
        (100, 1000),
        (0, 0),
        1_000_000,
    ));
    all.extend(events(
        3,
        a,
        key1,
        at(11, 30),
        "POST",
        "/v1/chat",
        201,
        100_000,
        (500, 5000),
        (10, 90),
        2_500_000,
    ));
    all.extend(events(
        1,
        a,
        key2,
        at(11, 45),
        "POST",
        "/v1/chat",
        500,
        1_000_000,
        (0, 0),
        (0, 0),
        0,
    ));
    all.extend(events(
        2,
        a,
        key2,
        at(12, 10),
        "GET",
        users,
        429,
        1_000,
        (0, 0),
        (0, 0),
        0,
    ));
    all.extend(events(
        4,
        a,
        key1,
        at(8, 0),
        "GET",
        users,
        200,
        10_000,
        (0, 0),
        (0, 0),
        0,
    ));
    all.extend(events(
        1,
        b,
        None,
        at(10, 5),
        "GET",
        "/v1/other",
        200,
        5_000,
        (1, 1),
        (0, 0),
        7,
    ));
    insert_events(&app.state.db, &all).await.unwrap();
    // Their rollups, as the running compactor would add them.
    compact_all(&app.state.db).await.unwrap();
    World {
        app,
        owner,
        other,
        k1,
        k2,
    }
}

const WINDOW: &str = "from=2026-11-20T10:00:00Z&to=2026-11-20T13:00:00Z";

async fn get(app: &TestApp, token: &str, path: &str) -> Value {
    let response = app.get_as(path, token).await;
    assert_eq!(response.status().as_u16(), 200, "GET {path}");
    response.json().await.unwrap()
}

fn assert_near(value: &Value, exact_ms: f64) {
    let got = value
        .as_f64()
        .unwrap_or_else(|| panic!("{value} is not a number"));
    assert!(
        (got - exact_ms).abs() <= exact_ms * 0.01,
        "{got} ms is not within 1% of {exact_ms} ms"
    );
}

#[tokio::test]
async fn the_summary_has_exact_totals_and_percentiles_within_one_percent() {
    let w = world().await;
    let s = get(
        &w.app,
        &w.owner.token,
        &format!("/v1/analytics/summary?{WINDOW}"),
    )
    .await;
    assert_eq!(
        s["window"],
        json!({"from": "2026-11-20T10:00:00Z", "to": "2026-11-20T13:00:00Z"})
    );
    assert_eq!(s["requests"], 12);
    assert_eq!(
        (s["succeeded"].clone(), s["failed"].clone()),
        (json!(9), json!(3))
    );
    assert_eq!(s["error_rate"], 0.25);
    assert_eq!(
        (s["reads"].clone(), s["writes"].clone()),
        (json!(8), json!(4))
    );
    assert_eq!(s["unique_endpoints"], 2);
    assert_eq!(
        (s["bytes_in"].clone(), s["bytes_out"].clone()),
        (json!(2100), json!(21000))
    );
    assert_eq!(
        (s["tokens_in"].clone(), s["tokens_out"].clone()),
        (json!(30), json!(270))
    );
    assert_eq!(s["cost"], json!([{"currency": "USD", "amount": "0.0135"}]));
    assert_eq!(s["latency_avg_ms"], 113.5);
    assert_eq!(s["latency_max_ms"], 1000.0);
    // Sorted: 1, 1, 10 ×6, 100 ×3, 1000 ms.
    assert_near(&s["latency_p50_ms"], 10.0);
    assert_near(&s["latency_p95_ms"], 1000.0);
    assert_near(&s["latency_p99_ms"], 1000.0);

    // Filters narrow it: the 4xx of key 2 only.
    let path = format!(
        "/v1/analytics/summary?{WINDOW}&status_class=4xx&key_id={}",
        w.k2
    );
    let s = get(&w.app, &w.owner.token, &path).await;
    assert_eq!(
        (s["requests"].clone(), s["failed"].clone()),
        (json!(2), json!(2))
    );
    assert_near(&s["latency_p99_ms"], 1.0);
    assert_eq!(s["unique_endpoints"], 1);
    // A filter the tenant totals answer (their endpoint sets) and one the per-key rows answer.
    let path = format!("/v1/analytics/summary?{WINDOW}&method=post");
    let s = get(&w.app, &w.owner.token, &path).await;
    assert_eq!(
        (s["requests"].clone(), s["unique_endpoints"].clone()),
        (json!(4), json!(1))
    );
    let path = format!("/v1/analytics/summary?{WINDOW}&endpoint=/v1/chat&method=post");
    assert_eq!(get(&w.app, &w.owner.token, &path).await["requests"], 4);
}

#[tokio::test]
async fn a_window_not_on_hour_edges_counts_exactly_what_it_covers() {
    let w = world().await;
    // 10:05:00–11:31: the six GETs at 10:05:00-05 and the POST at 11:30:00 (its minute).
    let path = "/v1/analytics/summary?from=2026-11-20T10:05:00Z&to=2026-11-20T11:30:30Z";
    assert_eq!(get(&w.app, &w.owner.token, path).await["requests"], 9);
    let path = "/v1/analytics/summary?from=2026-11-20T10:06:00Z&to=2026-11-20T11:30:00Z";
    assert_eq!(get(&w.app, &w.owner.token, path).await["requests"], 0);
}

#[tokio::test]
async fn timeseries_have_a_point_per_bucket_and_group_on_request() {
    let w = world().await;
    let t = get(
        &w.app,
        &w.owner.token,
        &format!("/v1/analytics/timeseries?{WINDOW}&granularity=hour"),
    )
    .await;
    assert_eq!(t["granularity"], "hour");
    let points = t["series"][0]["points"].as_array().unwrap();
    let counts: Vec<(String, i64)> = points
        .iter()
        .map(|p| {
            (
                p["t"].as_str().unwrap().to_owned(),
                p["requests"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            ("2026-11-20T10:00:00Z", 6),
            ("2026-11-20T11:00:00Z", 4),
            ("2026-11-20T12:00:00Z", 2)
        ]
        .map(|(t, n)| (t.to_owned(), n))
    );
    assert_eq!(points[1]["failed"], 1);
    assert_eq!(points[2]["error_rate"], 1.0);

    // Three hours choose minutes by default: 180 points.
    let t = get(
        &w.app,
        &w.owner.token,
        &format!("/v1/analytics/timeseries?{WINDOW}"),
    )
    .await;
    assert_eq!(t["granularity"], "minute");
    assert_eq!(t["series"][0]["points"].as_array().unwrap().len(), 180);

    let t = get(
        &w.app,
        &w.owner.token,
        &format!("/v1/analytics/timeseries?{WINDOW}&granularity=hour&group_by=status_code"),
    )
    .await;
    let groups: Vec<(Value, i64)> = t["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let total = s["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["requests"].as_i64().unwrap())
                .sum();
            (s["group"]["status_code"].clone(), total)
        })
        .collect();
    assert_eq!(
        groups,
        vec![
            (json!(200), 6),
            (json!(201), 3),
            (json!(429), 2),
            (json!(500), 1)
        ]
    );

    let t = get(
        &w.app,
        &w.owner.token,
        &format!("/v1/analytics/timeseries?{WINDOW}&granularity=hour&group_by=key"),
    )
    .await;
    let keys: Vec<&Value> = t["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["group"]["key_id"])
        .collect();
    assert_eq!(keys.len(), 2);
    assert!(keys.contains(&&json!(w.k1)) && keys.contains(&&json!(w.k2)));
}

#[tokio::test]
async fn endpoints_keys_and_top_consumers_rank_with_trends() {
    let w = world().await;
    let e = get(
        &w.app,
        &w.owner.token,
        &format!("/v1/analytics/endpoints?{WINDOW}"),
    )
    .await;
    let rows = e["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0]["endpoint"].as_str(), rows[0]["method"].as_str()),
        (Some("/v1/users/{id}"), Some("GET"))
    );
    assert_eq!(rows[0]["requests"], 8);
    assert_eq!(rows[0]["error_rate"], 0.25);
    // 4 calls 07:00–10:00, 8 now.
    assert_eq!(
        (
            rows[0]["previous_requests"].clone(),
            rows[0]["trend_percent"].clone()
        ),
        (json!(4), json!(100.0))
    );
    assert_eq!(
        (rows[1]["endpoint"].as_str(), rows[1]["requests"].as_i64()),
        (Some("/v1/chat"), Some(4))
    );
    assert_eq!(rows[1]["trend_percent"], Value::Null);
    assert_near(&rows[1]["latency_p50_ms"], 100.0);

    let k = get(
        &w.app,
        &w.owner.token,
        &format!("/v1/analytics/keys?{WINDOW}"),
    )
    .await;
    let rows = k["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0]["key_id"].as_str(), rows[0]["name"].as_str()),
        (Some(w.k1.as_str()), Some("web"))
    );
    assert_eq!(
        (rows[0]["requests"].clone(), rows[0]["success_rate"].clone()),
        (json!(9), json!(1.0))
    );
    assert_eq!(
        rows[0]["cost"],
        json!([{"currency": "USD", "amount": "0.0135"}])
    );
    assert_eq!(
        (rows[1]["name"].as_str(), rows[1]["success_rate"].as_f64()),
        (Some("batch"), Some(0.0))
    );
    // Ingested calls were not decided by the limiter: every window is empty now.
    let windows: Vec<(&str, u64)> = rows[0]["rate_limits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["window"].as_str().unwrap(), w["used"].as_u64().unwrap()))
        .collect();
    assert_eq!(windows, vec![("minute", 0), ("hour", 0), ("day", 0)]);

    let path = format!("/v1/analytics/top-consumers?{WINDOW}&by=error_rate&limit=1");
    let top = get(&w.app, &w.owner.token, &path).await;
    assert_eq!(top["ranked_by"], "error_rate");
    assert_eq!(top["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        (
            top["data"][0]["rank"].clone(),
            top["data"][0]["key_id"].as_str()
        ),
        (json!(1), Some(w.k2.as_str()))
    );
    let top = get(
        &w.app,
        &w.owner.token,
        &format!("/v1/analytics/top-consumers?{WINDOW}&by=bandwidth"),
    )
    .await;
    assert_eq!(
        (
            top["data"][0]["key_id"].as_str(),
            top["data"][0]["bandwidth"].as_i64()
        ),
        (Some(w.k1.as_str()), Some(23100))
    );
}

#[tokio::test]
async fn merchants_see_only_their_tenant_and_platform_admins_see_all_or_one() {
    let w = world().await;
    let summary = |token: String, query: String| {
        let app = &w.app;
        async move {
            get(
                app,
                &token,
                &format!("/v1/analytics/summary?{WINDOW}{query}"),
            )
            .await["requests"]
                .clone()
        }
    };
    assert_eq!(summary(w.other.token.clone(), String::new()).await, 1);
    let viewer = join_tenant(&w.app, w.owner.tenant_id, Role::Viewer).await;
    assert_eq!(summary(viewer.token.clone(), String::new()).await, 12);
    let response = w
        .app
        .get_as(
            &format!(
                "/v1/analytics/summary?{WINDOW}&tenant_id={}",
                w.owner.tenant_id
            ),
            &w.other.token,
        )
        .await;
    let problem = assert_problem(response, 403).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("another tenant"),
        "{problem}"
    );
    // A key of tenant A named by tenant B: filtered to B's data, so nothing.
    let path = format!("/v1/analytics/keys?{WINDOW}&key_id={}", w.k1);
    assert_eq!(get(&w.app, &w.other.token, &path).await["data"], json!([]));

    let email = format!("admin-{}@example.com", uuid::Uuid::new_v4().simple());
    users::insert(&w.app.state.db, &email, PASSWORD, None, true)
        .await
        .unwrap();
    let admin = w.app.login_with(&email, PASSWORD, None).await;
    // Other tests' tenants share the database: compare against the two tenants' sum.
    let everyone = summary(admin.clone(), String::new())
        .await
        .as_i64()
        .unwrap();
    assert!(everyone >= 13, "{everyone}");
    assert_eq!(
        summary(admin, format!("&tenant_id={}", w.other.tenant_id)).await,
        1
    );
}

#[tokio::test]
async fn empty_windows_answer_with_zeros_and_empty_lists() {
    let w = world().await;
    let quiet = "from=2025-01-01T00:00:00Z&to=2025-01-02T00:00:00Z";
    let s = get(
        &w.app,
        &w.owner.token,
        &format!("/v1/analytics/summary?{quiet}"),
    )
    .await;
    assert_eq!(
        (s["requests"].clone(), s["error_rate"].clone()),
        (json!(0), json!(0.0))
    );
    assert_eq!(
        (s["latency_p95_ms"].clone(), s["cost"].clone()),
        (Value::Null, json!([]))
    );
    let t = get(
        &w.app,
        &w.owner.token,
        &format!("/v1/analytics/timeseries?{quiet}"),
    )
    .await;
    let points = t["series"][0]["points"].as_array().unwrap();
    assert_eq!(points.len(), 24);
    assert!(points.iter().all(|p| p["requests"] == 0));
    for report in ["endpoints", "keys", "top-consumers"] {
        let body = get(
            &w.app,
            &w.owner.token,
            &format!("/v1/analytics/{report}?{quiet}"),
        )
        .await;
        assert_eq!(body["data"], json!([]), "{report}");
    }
}

#[tokio::test]
async fn bad_parameters_are_400_problems_that_say_why() {
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    for (query, needle) in [
        ("summary?status_class=9xx", "status_class"),
        (
            "summary?from=2026-11-20T10:00:00Z&to=2026-11-20T09:00:00Z",
            "must be before",
        ),
        ("summary?from=yesterday", "from"),
        (
            "timeseries?from=2020-01-01T00:00:00Z&to=2022-01-01T00:00:00Z&granularity=minute",
            "coarser",
        ),
        ("timeseries?group_by=colour", "group_by"),
        ("top-consumers?limit=0", "limit"),
        (
            "summary?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            "at most",
        ),
    ] {
        let response = app
            .get_as(&format!("/v1/analytics/{query}"), &owner.token)
            .await;
        let problem = assert_problem(response, 400).await;
        assert!(
            problem["detail"].as_str().unwrap().contains(needle),
            "{query}: {problem}"
        );
    }
    assert_problem(app.get("/v1/analytics/summary").await, 401).await;
}

#[tokio::test]
async fn errors_slow_requests_and_heatmaps_drill_down() {
    let w = world().await;
    let e = get(
        &w.app,
        &w.owner.token,
        &format!("/v1/analytics/errors?{WINDOW}"),
    )
    .await;
    assert_eq!(
        e["by_status_code"],
        json!([{"status_code": 429, "count": 2}, {"status_code": 500, "count": 1}])
    );
    assert_eq!(
        e["timeseries"],
        json!([
            {"t": "2026-11-20T11:45:00Z", "counts": {"500": 1}},
            {"t": "2026-11-20T12:10:00Z", "counts": {"429": 2}},
        ])
    );
    let recent: Vec<(i64, &str)> = e["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["status_code"].as_i64().unwrap(),
                c["occurred_at"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        recent,
        [
            (429, "2026-11-20T12:10:01Z"),
            (429, "2026-11-20T12:10:00Z"),
            (500, "2026-11-20T11:45:00Z")
        ]
    );

    let slow = get(
        &w.app,
        &w.owner.token,
        &format!("/v1/analytics/slow-requests?{WINDOW}&limit=2"),
    )
    .await;
    let latencies: Vec<f64> = slow["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["latency_ms"].as_f64().unwrap())
        .collect();
    assert_eq!(latencies, [1000.0, 100.0]);
    assert_eq!(slow["data"][0]["key_id"], json!(w.k2));

    // 2026-11-20 is a Friday.
    let h = get(
        &w.app,
        &w.owner.token,
        &format!("/v1/analytics/heatmap?{WINDOW}&kind=weekday_hour"),
    )
    .await;
    assert_eq!(h["rows"][4]["label"], "Friday");
    let friday = h["rows"][4]["cells"].as_array().unwrap();
    assert_eq!(
        (friday[10].clone(), friday[11].clone(), friday[12].clone()),
        (json!(6), json!(4), json!(2))
    );
    assert_eq!(h["max"], 6);
    let h = get(
        &w.app,
        &w.owner.token,
        &format!("/v1/analytics/heatmap?{WINDOW}&bucket=hour"),
    )
    .await;
    assert_eq!(
        h["columns"],
        json!([
            "2026-11-20T10:00:00Z",
            "2026-11-20T11:00:00Z",
            "2026-11-20T12:00:00Z"
        ])
    );
    assert_eq!(
        h["rows"],
        json!([
            {"label": "GET /v1/users/{id}", "cells": [6, 0, 2]},
            {"label": "POST /v1/chat", "cells": [0, 4, 0]},
        ])
    );
    let h = get(
        &w.app,
        &w.owner.token,
        &format!("/v1/analytics/heatmap?{WINDOW}&bucket=week"),
    )
    .await;
    // Day buckets: the window widens to the whole day (the 08:00 calls count too).
    assert_eq!(h["window"]["from"], "2026-11-20T00:00:00Z");
    assert_eq!(h["columns"], json!(["2026-11-16T00:00:00Z"]));
    assert_eq!(h["rows"][0]["cells"], json!([12]));
}
