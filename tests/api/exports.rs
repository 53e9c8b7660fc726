//! `GET /v1/exports/usage`: exact CSV and JSON contents at event and bucket level with
//! formula injection escaped (here), who may export what and bad parameters (`access.rs`),
//! and a million-row export streamed with flat memory (`streaming.rs`).

use std::{net::IpAddr, sync::Arc};

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};
use tollgate::{
    export::decimal_millis,
    ids::{KeyId, TenantId},
    metering::{
        Source, UsageEvent, method,
        sketch::LatencySketch,
        store::{compact_all, insert_events},
    },
    tenancy::Role,
};

use crate::helpers::{
    Member, TestApp, create_key, join_tenant, new_tenant, new_tenant_member, spawn_app,
};

mod access;
mod streaming;

const WINDOW: &str = "from=2026-11-23T10:00:00Z&to=2026-11-23T12:00:00Z";
const CSV: &str = "text/csv; charset=utf-8";
const EVENT_HEADER: &str = "id,occurred_at,tenant_id,key_id,key_name,endpoint,method,\
    status_code,latency_ms,bytes_in,bytes_out,tokens_in,tokens_out,cost,currency,ip,\
    user_agent,source\r\n";
const BUCKET_HEADER: &str = "bucket_start,granularity,tenant_id,key_id,key_name,endpoint,\
    method,status_class,requests,bytes_in,bytes_out,tokens_in,tokens_out,cost,currency,\
    latency_avg_ms,latency_max_ms,latency_p50_ms,latency_p95_ms,latency_p99_ms\r\n";
const FORMULA_KEY: &str = "=HYPERLINK(\"http://evil.example\")";

/// The events of the world: (ms after 10:00, key index, endpoint, method, status, latency
/// in µs, cost in nanos).
type Spec = (
    i64,
    Option<usize>,
    &'static str,
    &'static str,
    u16,
    i64,
    i64,
);
const SPECS: [Spec; 4] = [
    (250, Some(0), "/v1/chat", "POST", 200, 12_345, 1_500),
    (
        1_500,
        Some(0),
        "/v1/chat",
        "POST",
        201,
        20_000,
        2_000_000_000,
    ),
    (65_000, Some(1), "-1+2", "GET", 404, 500, 0),
    (3_600_000, None, "/v1/users/{id}", "GET", 503, 7, 3),
];
const AGENTS: [&str; 4] = ["curl/8.0 (x, \"y\")", "+cmd", "@SUM(A1)", "\tcmd"];

/// A tenant with two keys (one named like a formula), its owner and a finance member, and
/// the four events of [`SPECS`] stored, plus events that must not be exported (one just
/// before the window, one of another tenant).
struct World {
    app: TestApp,
    owner: Member,
    finance: Member,
    keys: [KeyId; 2],
    events: Vec<UsageEvent>,
}

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap()
}

fn event(tenant: TenantId, keys: [KeyId; 2], spec: Spec) -> UsageEvent {
    let (ms, key, endpoint, verb, status, latency_us, cost_nanos) = spec;
    let key = key.map(|k| keys[k]);
    let mut e = UsageEvent::new(
        Source::Ingest,
        tenant,
        key,
        Arc::from(endpoint),
        method(verb),
        status,
    );
    let at = base() + Duration::milliseconds(ms);
    (e.occurred_at, e.received_at) = (at, at);
    (e.latency_us, e.cost_nanos) = (latency_us, cost_nanos);
    e
}

async fn world() -> World {
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let finance = join_tenant(&app, owner.tenant_id, Role::Finance).await;
    let prod = create_key(&app, &owner, json!({"name": "Prod key"})).await;
    let evil = create_key(&app, &owner, json!({"name": FORMULA_KEY})).await;
    let keys = [prod.id.parse().unwrap(), evil.id.parse().unwrap()];
    let t = owner.tenant_id;
    let mut events: Vec<UsageEvent> = SPECS.iter().map(|s| event(t, keys, *s)).collect();
    for (e, agent) in events.iter_mut().zip(AGENTS) {
        e.user_agent = Some(Arc::from(agent));
    }
    let [e1, e2, e3, _] = &mut events[..] else {
        unreachable!()
    };
    (e1.bytes_in, e1.bytes_out, e1.tokens_in, e1.tokens_out) = (100, 2_000, 10, 20);
    (e2.bytes_in, e2.bytes_out, e2.tokens_in, e2.tokens_out) = (50, 500, 5, 7);
    e1.ip = Some("203.0.113.7".parse::<IpAddr>().unwrap());
    e3.source = Source::Gateway;
    let early = event(t, keys, (-1, Some(0), "/v1/chat", "POST", 200, 1, 1));
    let other = new_tenant(&app, "Other Co").await;
    let theirs = event(other, keys, (10, None, "/v1/chat", "POST", 200, 1, 1));
    let all = [events.clone(), vec![early, theirs]].concat();
    insert_events(&app.state.db, &all).await.unwrap();
    // Their rollups, as the running compactor would add them.
    compact_all(&app.state.db).await.unwrap();
    World {
        app,
        owner,
        finance,
        keys,
        events,
    }
}

async fn export(app: &TestApp, token: &str, query: &str) -> reqwest::Response {
    app.get_as(&format!("/v1/exports/usage?{query}"), token)
        .await
}

/// The body of a 200 export, checking its content type.
async fn body(response: reqwest::Response, content_type: &str) -> String {
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], content_type);
    response.text().await.unwrap()
}

/// `GET /v1/exports/usage?query` as the world's finance member: the CSV body.
async fn csv_export(w: &World, query: &str) -> String {
    body(export(&w.app, &w.finance.token, query).await, CSV).await
}

fn parse_csv(body: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(body.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

/// The exact event-level CSV of the world: RFC 4180 quoting, formula cells prefixed `'`.
fn event_csv(w: &World) -> String {
    let t = w.owner.tenant_id;
    let [prod, evil] = w.keys;
    let [e1, e2, e3, e4] = [0, 1, 2, 3].map(|i| w.events[i].id);
    format!(
        "{EVENT_HEADER}\
        {e1},2026-11-23T10:00:00.250Z,{t},{prod},Prod key,/v1/chat,POST,200,12.345,100,2000,\
            10,20,0.000001500,USD,203.0.113.7,\"curl/8.0 (x, \"\"y\"\")\",ingest\r\n\
        {e2},2026-11-23T10:00:01.500Z,{t},{prod},Prod key,/v1/chat,POST,201,20,50,500,5,7,\
            2.000000000,USD,,'+cmd,ingest\r\n\
        {e3},2026-11-23T10:01:05Z,{t},{evil},\"'=HYPERLINK(\"\"http://evil.example\"\")\",\
            '-1+2,GET,404,0.5,0,0,0,0,0.000000000,USD,,'@SUM(A1),gateway\r\n\
        {e4},2026-11-23T11:00:00Z,{t},,,/v1/users/{{id}},GET,503,0.007,0,0,0,0,0.000000003,\
            USD,,'\tcmd,ingest\r\n"
    )
}

/// Percentiles 50, 95 and 99 of these latencies as the sketch reports them.
fn percentiles(latencies: &[i64]) -> String {
    let mut sketch = LatencySketch::new();
    latencies.iter().for_each(|l| sketch.record(*l));
    let p = |q| decimal_millis(sketch.quantile(q).unwrap());
    format!("{},{},{}", p(0.5), p(0.95), p(0.99))
}

/// The exact hourly bucket CSV of the world: within a bucket, rows are in key id order.
fn bucket_csv(w: &World) -> String {
    let t = w.owner.tenant_id;
    let [prod, evil] = w.keys;
    let chat = format!(
        "2026-11-23T10:00:00Z,hour,{t},{prod},Prod key,/v1/chat,POST,2xx,2,150,2500,15,27,\
         2.000001500,USD,16.173,20,{}\r\n",
        percentiles(&[12_345, 20_000])
    );
    let missing = format!(
        "2026-11-23T10:00:00Z,hour,{t},{evil},\"'=HYPERLINK(\"\"http://evil.example\"\")\",\
         '-1+2,GET,4xx,1,0,0,0,0,0.000000000,USD,0.5,0.5,{}\r\n",
        percentiles(&[500])
    );
    let users = format!(
        "2026-11-23T11:00:00Z,hour,{t},,,/v1/users/{{id}},GET,5xx,1,0,0,0,0,0.000000003,USD,\
         0.007,0.007,{}\r\n",
        percentiles(&[7])
    );
    let (first, second) = match prod.0 < evil.0 {
        true => (chat, missing),
        false => (missing, chat),
    };
    format!("{BUCKET_HEADER}{first}{second}{users}")
}

#[tokio::test]
async fn event_csv_is_exact_time_ordered_and_formula_safe() {
    let w = world().await;
    let response = export(&w.app, &w.finance.token, &format!("level=event&{WINDOW}")).await;
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"tollgate-usage-20261123T1000Z-20261123T1200Z.csv\""
    );
    let text = body(response, CSV).await;
    assert_eq!(text, event_csv(&w));
    // Parsed back, the escaped cells hold the text with one leading quote.
    let rows = parse_csv(&text);
    assert_eq!(rows[3][4], format!("'{FORMULA_KEY}"));
    assert_eq!([&*rows[3][5], &*rows[4][16]], ["'-1+2", "'\tcmd"]);
}

#[tokio::test]
async fn event_filters_narrow_the_rows() {
    let w = world().await;
    let id = |i: usize| w.events[i].id.to_string();
    for (filter, expected) in [
        ("status_class=4xx", vec![id(2)]),
        ("status_class=2", vec![id(0), id(1)]),
        (&*format!("key_id={}", w.keys[1]), vec![id(2)]),
        ("method=get", vec![id(2), id(3)]),
        ("endpoint=/v1/chat&status_class=2xx", vec![id(0), id(1)]),
    ] {
        let text = csv_export(&w, &format!("level=event&{WINDOW}&{filter}")).await;
        let ids: Vec<String> = parse_csv(&text)[1..].iter().map(|r| r[0].clone()).collect();
        assert_eq!(ids, expected, "{filter}");
    }
}

#[tokio::test]
async fn bucket_csv_is_exact_with_percentiles_from_the_sketches() {
    let w = world().await;
    let text = csv_export(&w, &format!("granularity=hour&{WINDOW}")).await;
    assert_eq!(text, bucket_csv(&w));
    // A two-hour window defaults to minute buckets; a status filter keeps one class.
    let text = csv_export(&w, WINDOW).await;
    let buckets: Vec<String> = parse_csv(&text)[1..]
        .iter()
        .map(|row| format!("{} {}", row[0], row[1]))
        .collect();
    let minute = |m: &str| format!("2026-11-23T{m}:00Z minute");
    assert_eq!(buckets, [minute("10:00"), minute("10:01"), minute("11:00")]);
    let text = csv_export(&w, &format!("granularity=minute&status_class=5xx&{WINDOW}")).await;
    let rows = parse_csv(&text);
    assert_eq!(rows.len(), 2);
    let only = [&*rows[1][0], &*rows[1][1], &*rows[1][7]];
    assert_eq!(only, ["2026-11-23T11:00:00Z", "minute", "5xx"]);
}

/// The JSON objects a CSV export's rows stand for: empty cells null, the `'` guard gone,
/// `numbers` as JSON numbers.
fn as_json(csv: &str, numbers: &[&str]) -> Value {
    let rows = parse_csv(csv);
    let objects = rows[1..].iter().map(|row| {
        let cells = rows[0].iter().zip(row).map(|(name, cell)| {
            let cell = cell.strip_prefix('\'').unwrap_or(cell);
            let value = match cell {
                "" => Value::Null,
                _ if numbers.contains(&name.as_str()) => serde_json::from_str(cell).unwrap(),
                _ => Value::from(cell),
            };
            (name.clone(), value)
        });
        Value::Object(cells.collect())
    });
    Value::Array(objects.collect())
}

#[tokio::test]
async fn json_exports_hold_the_same_rows_with_numbers_as_numbers() {
    let w = world().await;
    let query = format!("format=json&level=event&{WINDOW}");
    let response = export(&w.app, &w.finance.token, &query).await;
    let disposition = &response.headers()["content-disposition"];
    assert!(disposition.to_str().unwrap().ends_with(".json\""));
    let events: Value = serde_json::from_str(&body(response, "application/json").await).unwrap();
    let counters = ["bytes_in", "bytes_out", "tokens_in", "tokens_out"];
    let numbers = [&counters[..], &["status_code", "latency_ms"]].concat();
    assert_eq!(events, as_json(&event_csv(&w), &numbers));
    assert_eq!(events[0]["latency_ms"], json!(12.345));
    assert_eq!(events[0]["cost"], json!("0.000001500"));
    assert_eq!(events[3]["key_id"], Value::Null);

    let query = format!("format=json&granularity=hour&{WINDOW}");
    let buckets: Value = serde_json::from_str(
        &body(
            export(&w.app, &w.finance.token, &query).await,
            "application/json",
        )
        .await,
    )
    .unwrap();
    let latencies = ["avg", "max", "p50", "p95", "p99"].map(|l| format!("latency_{l}_ms"));
    let latencies: Vec<&str> = latencies.iter().map(String::as_str).collect();
    let numbers = [&counters[..], &["requests"], &latencies].concat();
    assert_eq!(buckets, as_json(&bucket_csv(&w), &numbers));
    assert_eq!(buckets[2]["latency_avg_ms"], json!(0.007));
    assert_eq!(buckets[2]["status_class"], json!("5xx"));
}
