//! `GET /v1/live`: a WebSocket client sees its tenant's counters move within 2 s of traffic;
//! the handshake is authenticated and tenant-scoped.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
use tollgate::{auth::users, tenancy::Role};

use crate::helpers::{PASSWORD, TestApp, create_key, new_tenant_member, spawn_app};

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
    loop {
        let frame = next_frame(&mut socket).await;
        if frame["last_minute_requests"] == 5 {
            assert!(
                started.elapsed() <= Duration::from_secs(2),
                "counters moved after {:?}",
                started.elapsed()
            );
            assert_eq!(frame["keys"], json!([{"key_id": key.id, "requests": 5}]));
            assert!(frame["requests_per_s"].as_f64().unwrap() > 0.0);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "no movement: {frame}"
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
