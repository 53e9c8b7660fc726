//! Upstream failures: a timeout is a 504, an unreachable upstream a 502, both problem+json with
//! the rate-limit headers, both metered with their status; an answer that stalls mid-body is
//! cut off; a caller that gives up, or whose
//! upload breaks off, is metered once too (and a broken upload never reaches the upstream as a
//! complete body).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::json;

use super::{assert_rate_limit_headers, call, caller, route, spawn_gateway, upstream::Upstream};
use crate::helpers::{assert_problem, events_of, problem};

#[tokio::test]
async fn an_upstream_slower_than_the_timeout_is_a_504() {
    let upstream = Upstream::start().await;
    let app = spawn_gateway(vec![route("/gw", upstream.url("/api"))], |s| {
        s.gateway.upstream_timeout_ms = 300;
        s.gateway.connect_timeout_ms = 300;
    })
    .await;
    let c = caller(&app, json!({"per_minute": 7})).await;
    let started = Instant::now();
    let response = call(&app, Method::GET, "/gw/slow", &c.secret)
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_millis(1500),
        "answered after {waited:?}"
    );
    assert_rate_limit_headers(&response, 7);
    assert_eq!(
        assert_problem(response, 504).await,
        problem(
            504,
            "gateway_timeout",
            "Gateway timeout",
            "The upstream did not answer within 300 ms"
        )
    );
    let event = events_of(&app, &c.key_id, 1).await.remove(0);
    assert_eq!((event.endpoint.as_str(), event.status_code), ("/gw/*", 504));
    assert!(event.latency_us >= 300_000, "latency {}", event.latency_us);
}

#[tokio::test]
async fn an_answer_that_stalls_longer_than_the_timeout_is_cut_off() {
    let upstream = Upstream::start().await;
    let app = spawn_gateway(vec![route("/gw", upstream.url("/api"))], |s| {
        s.gateway.upstream_timeout_ms = 300;
    })
    .await;
    let c = caller(&app, json!({})).await;
    let path = format!("/gw/stream?size={}&pause_ms=1500", 4 * 64 * 1024);
    let mut response = call(&app, Method::GET, &path, &c.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let first = response.chunk().await.unwrap().unwrap();
    let mut received = first.len();
    let broken = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => received += chunk.len(),
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    assert!(broken, "the stalled answer ended as if complete");
    assert_eq!(received, 64 * 1024);
    let event = events_of(&app, &c.key_id, 1).await.remove(0);
    assert_eq!((event.status_code, event.bytes_out), (200, 64 * 1024));
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502() {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}/api", unused.local_addr().unwrap());
    drop(unused);
    let app = spawn_gateway(vec![route("/gw", down)], |_| {}).await;
    let c = caller(&app, json!({"per_minute": 7})).await;
    for method in [Method::GET, Method::POST] {
        let response = call(&app, method, "/gw/x", &c.secret)
            .body("lost")
            .send()
            .await
            .unwrap();
        assert_rate_limit_headers(&response, 7);
        assert_eq!(
            assert_problem(response, 502).await,
            problem(
                502,
                "bad_gateway",
                "Bad gateway",
                "The upstream could not be reached"
            )
        );
    }
    let events = events_of(&app, &c.key_id, 2).await;
    assert!(
        events
            .iter()
            .all(|e| e.status_code == 502 && e.endpoint == "/gw/*")
    );
    assert!(events.iter().all(|e| e.bytes_out > 0));
}

#[tokio::test]
async fn a_caller_that_gives_up_is_metered_once() {
    let upstream = Upstream::start().await;
    let app = spawn_gateway(vec![route("/gw", upstream.url("/api"))], |_| {}).await;
    let c = caller(&app, json!({})).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let gave_up = impatient
        .get(app.url("/gw/slow"))
        .header("X-API-Key", &c.secret)
        .send()
        .await;
    assert!(gave_up.is_err_and(|err| err.is_timeout()));
    // actix notices the closed connection only when it writes the upstream's answer (200, no
    // bytes out); a call dropped while waiting (shutdown) is 499. Either way: one event.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let event = events_of(&app, &c.key_id, 1).await.remove(0);
    assert!(
        [499, 200].contains(&event.status_code),
        "status {}",
        event.status_code
    );
}

#[tokio::test]
async fn a_caller_whose_upload_breaks_off_is_metered_once() {
    let upstream = Upstream::start().await;
    let app = spawn_gateway(vec![route("/gw", upstream.url("/api"))], |_| {}).await;
    let c = caller(&app, json!({})).await;
    let chunks = futures_util::stream::iter([Ok(()), Err(())]).then(|item| async move {
        match item {
            Ok(()) => Ok(vec![7u8; 64 * 1024]),
            Err(()) => {
                // Past admission by now: the body is on its way upstream when it breaks.
                tokio::time::sleep(Duration::from_millis(500)).await;
                Err(std::io::Error::other("the caller's disk failed"))
            }
        }
    });
    let broken = call(&app, Method::POST, "/gw/upload", &c.secret)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    assert!(broken.is_err());
    let event = events_of(&app, &c.key_id, 1).await.remove(0);
    // Recorded as the 400 Tollgate answered (into the closed connection), with what went up.
    assert_eq!((event.status_code, event.bytes_in), (400, 64 * 1024));
    assert_eq!(
        upstream.calls(),
        0,
        "a truncated body was delivered as complete"
    );
}
