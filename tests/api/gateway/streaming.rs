//! Bodies are streamed, never buffered whole: 8 MiB each way arrive intact and are metered,
//! and a chunk crosses the gateway while the rest of its body is still on its way.

use std::time::{Duration, Instant};

use futures_util::stream;
use reqwest::{Body, Method};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::events_of;

use super::{
    call, caller, header, route, spawn_gateway,
    upstream::{Upstream, pattern, sha256_hex},
};

const EIGHT_MIB: usize = 8 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

/// `bytes` as a chunked request body, sleeping `pause` after the first chunk.
fn chunked(bytes: Vec<u8>, pause: Duration) -> Body {
    let chunks: Vec<Vec<u8>> = bytes.chunks(CHUNK).map(<[u8]>::to_vec).collect();
    let body = stream::unfold((chunks.into_iter(), 0), move |(mut rest, i)| async move {
        let chunk = rest.next()?;
        if i == 1 {
            tokio::time::sleep(pause).await;
        }
        Some((Ok::<_, std::io::Error>(chunk), (rest, i + 1)))
    });
    Body::wrap_stream(body)
}

#[tokio::test]
async fn eight_mib_stream_through_both_ways_and_are_metered() {
    let upstream = Upstream::start().await;
    let app = spawn_gateway(vec![route("/gw", upstream.url("/api"))], |_| {}).await;
    let c = caller(&app, json!({})).await;

    let sent: Vec<u8> = pattern(EIGHT_MIB).collect();
    let expected = sha256_hex(&sent);
    let response = call(&app, Method::PUT, "/gw/upload", &c.secret)
        .body(chunked(sent, Duration::ZERO))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let echo: Value = response.json().await.unwrap();
    assert_eq!(echo["body_len"], EIGHT_MIB);
    assert_eq!(echo["body_sha256"], expected);

    let mut response = call(
        &app,
        Method::GET,
        &format!("/gw/stream?size={EIGHT_MIB}"),
        &c.secret,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        header(&response, "content-type"),
        "application/octet-stream"
    );
    let (mut hasher, mut received) = (Sha256::new(), 0);
    while let Some(chunk) = response.chunk().await.unwrap() {
        received += chunk.len();
        hasher.update(&chunk);
    }
    assert_eq!(received, EIGHT_MIB);
    assert_eq!(hex::encode(hasher.finalize()), expected);

    let events = events_of(&app, &c.key_id, 2).await;
    assert_eq!(
        (events[0].method.as_str(), events[0].bytes_in),
        ("PUT", EIGHT_MIB as i64)
    );
    assert_eq!(
        (events[1].method.as_str(), events[1].bytes_out),
        ("GET", EIGHT_MIB as i64)
    );
    assert!(events.iter().all(|e| e.status_code == 200));
}

#[tokio::test]
async fn chunks_cross_while_the_rest_of_the_body_is_on_its_way() {
    let upstream = Upstream::start().await;
    let app = spawn_gateway(vec![route("/gw", upstream.url("/api"))], |_| {}).await;
    let c = caller(&app, json!({})).await;

    // Upstream to client: the first chunk arrives long before the upstream's pause ends.
    let started = Instant::now();
    let path = format!("/gw/stream?size={}&pause_ms=1000", 4 * CHUNK);
    let mut response = call(&app, Method::GET, &path, &c.secret)
        .send()
        .await
        .unwrap();
    let first = response.chunk().await.unwrap().unwrap();
    let first_after = started.elapsed();
    assert!(!first.is_empty());
    while response.chunk().await.unwrap().is_some() {}
    assert!(
        first_after < Duration::from_millis(700),
        "first chunk after {first_after:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(1000));

    // Client to upstream: the upstream holds the first chunk a second before the last.
    let body: Vec<u8> = pattern(4 * CHUNK).collect();
    let response = call(&app, Method::POST, "/gw/upload", &c.secret)
        .body(chunked(body, Duration::from_millis(1000)))
        .send()
        .await
        .unwrap();
    let echo: Value = response.json().await.unwrap();
    assert_eq!(echo["body_len"], 4 * CHUNK);
    let spread = echo["first_to_last_chunk_ms"].as_u64().unwrap();
    assert!(
        spread >= 700,
        "the upstream got the body in one go ({spread} ms)"
    );
    events_of(&app, &c.key_id, 2).await;
}
