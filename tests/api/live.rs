//! `GET /v1/live`: a WebSocket client sees its tenant's counters move within 2 s of traffic;
//! the handshake is authenticated and tenant-scoped.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
use tollgate::{auth::users, tenancy::Role};

use crate::helpers::{
    Backends, PASSWORD, TestApp, create_key, new_tenant_member, require_or_skip, spawn_app,
    spawn_second_app,
};

fn ws_url(app: &TestApp, query: &str) -> String {
    app.url(&format!("/v1/live?{query}"))
        .replacen("http://", "ws://", 1)
}

/// The HTTP status a refused handshake answers with.
async fn refused(url: String) -> u16 {
    let request = url.into_client_request().unwrap();
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        other => panic!("the handshake was not refused: {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn a_websocket_client_sees_counters_move_within_two_seconds_of_traffic() {
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let key = create_key(&app, &owner, json!({"name": "live"})).await;
    let url = ws_url(&app, &format!("access_token={}", owner.token));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();

    // A quiet first frame: nothing happened yet.
    let first = next_frame(&mut socket).await;
    assert_eq!(first["type"], "counters");
    assert_eq!(first["last_minute_requests"], 0);

    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(app.ping(&key.secret).await.status().as_u16(), 200);
    }
    let frame = frame_counting(&mut socket, 5, started).await;
    assert_eq!(frame["keys"], json!([{"key_id": key.id, "requests": 5}]));
    assert!(frame["requests_per_s"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn a_watcher_on_one_node_sees_the_calls_served_by_another() {
    let test = "a_watcher_on_one_node_sees_the_calls_served_by_another";
    if require_or_skip("redis", Backends::from_env().redis, test).is_none() {
        return;
    }
    let first = spawn_app().await;
    let second = spawn_second_app(&first).await;
    let owner = new_tenant_member(&first, Role::Owner).await;
    let key = create_key(&first, &owner, json!({"name": "cluster"})).await;
    let url = ws_url(&first, &format!("access_token={}", owner.token));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(next_frame(&mut socket).await["last_minute_requests"], 0);

    // The watch is listed in Redis at once; the other node reads the list every 500 ms.
    let tenant = owner.tenant_id.0;
    let redis = first.state.redis.as_ref().unwrap();
    let watched = redis.key("live", "watched");
    let mut conn = redis.conn();
    let started = Instant::now();
    loop {
        let listed: Vec<String> = redis::cmd("ZRANGE")
            .arg(&watched)
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .unwrap();
        if listed.iter().any(|m| m.starts_with(&tenant.to_string())) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "watch not listed: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&watched)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0, "the watched set expires (PTTL {ttl})");
    tokio::time::sleep(Duration::from_millis(600)).await;

    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(second.ping(&key.secret).await.status().as_u16(), 200);
    }
    for _ in 0..3 {
        assert_eq!(first.ping(&key.secret).await.status().as_u16(), 200);
    }
    let frame = frame_counting(&mut socket, 8, started).await;
    assert_eq!(frame["keys"], json!([{"key_id": key.id, "requests": 8}]));
    drop(second);
}

/// The first frame counting `requests` calls in the last minute, asserting it came within 2 s
/// of `started` (the first call).
async fn frame_counting<S>(socket: &mut S, requests: i64, started: Instant) -> Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let frame = next_frame(socket).await;
        if frame["last_minute_requests"] == requests {
            assert!(
                started.elapsed() <= Duration::from_secs(2),
                "counters moved after {:?}",
                started.elapsed()
            );
            return frame;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "no movement to {requests} calls: {frame}"
        );
    }
}

async fn next_frame<S>(socket: &mut S) -> Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = tokio::time::timeout(Duration::from_secs(3), socket.next())
            .await
            .expect("a frame within 3 s")
            .expect("the socket is open")
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

#[tokio::test]
async fn the_handshake_needs_a_token_and_stays_in_the_callers_tenant() {
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let other = new_tenant_member(&app, Role::Owner).await;
    assert_eq!(refused(ws_url(&app, "")).await, 401);
    assert_eq!(refused(ws_url(&app, "access_token=not-a-token")).await, 401);
    let foreign = format!("access_token={}&tenant_id={}", owner.token, other.tenant_id);
    assert_eq!(refused(ws_url(&app, &foreign)).await, 403);

    let email = format!("admin-{}@example.com", uuid::Uuid::new_v4().simple());
    users::insert(&app.state.db, &email, PASSWORD, None, true)
        .await
        .unwrap();
    let admin = app.login_with(&email, PASSWORD, None).await;
    assert_eq!(
        refused(ws_url(&app, &format!("access_token={admin}"))).await,
        400
    );
    let named = format!("access_token={admin}&tenant_id={}", other.tenant_id);
    assert!(
        tokio_tungstenite::connect_async(ws_url(&app, &named))
            .await
            .is_ok()
    );

    // A plain GET (no upgrade) is a 400 problem.
    let response = app.get_as("/v1/live", &owner.token).await;
    assert_eq!(response.status().as_u16(), 400);
}
