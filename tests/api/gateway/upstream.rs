//! Upstreams for the gateway tests, on 127.0.0.1:0 inside the test process: an actix-web
//! server that echoes what reached it (method, raw path, query, headers, body length and
//! SHA-256, how long the body took to arrive) with slow, streaming and status endpoints, and a
//! raw TCP server that records the request head byte for byte and answers with hop-by-hop
//! headers.

use std::{
    net::{SocketAddr, TcpListener},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, dev::ServerHandle, web};
use futures_util::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The `i`-th byte of every streamed body (both ways), so each end can check the other's.
pub fn pattern(len: usize) -> impl Iterator<Item = u8> {
    (0..len).map(|i| (i % 251) as u8)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The echoing actix-web upstream.
pub struct Upstream {
    pub addr: SocketAddr,
    /// Calls that reached it (echo: with their whole body).
    pub calls: Arc<AtomicUsize>,
    handle: ServerHandle,
}

impl Upstream {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = web::Data::from(calls.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(counter.clone())
                .route("/api/slow", web::to(slow))
                .route("/api/stream", web::get().to(stream))
                .route("/api/status/{code}", web::to(status))
                .default_service(web::to(echo))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            addr,
            calls,
            handle,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        // The stop command is sent on the call; its completion is not awaited.
        drop(self.handle.stop(false));
    }
}

async fn echo(
    req: HttpRequest,
    mut payload: web::Payload,
    calls: web::Data<AtomicUsize>,
) -> HttpResponse {
    let mut hasher = Sha256::new();
    let (mut len, mut first, mut last, mut text) = (0usize, None, None, Vec::new());
    while let Some(chunk) = payload.next().await {
        let Ok(chunk) = chunk else {
            return HttpResponse::BadRequest().body("the body broke off");
        };
        let now = Instant::now();
        first.get_or_insert(now);
        last = Some(now);
        hasher.update(&chunk);
        len += chunk.len();
        if text.len() < 4096 {
            text.extend_from_slice(&chunk);
        }
    }
    // Counted once the body is complete: a broken upload is no call.
    calls.fetch_add(1, Ordering::SeqCst);
    let spread_ms = match (first, last) {
        (Some(first), Some(last)) => (last - first).as_millis() as u64,
        _ => 0,
    };
    let headers: Vec<Value> = req
        .headers()
        .iter()
        .map(|(name, value)| json!([name.as_str(), value.to_str().unwrap_or("<binary>")]))
        .collect();
    HttpResponse::Ok()
        .insert_header(("X-Upstream", "echo"))
        .json(json!({
            "method": req.method().as_str(),
            "path": req.uri().path(),
            "query": req.uri().query(),
            "headers": headers,
            "body": String::from_utf8_lossy(&text),
            "body_len": len,
            "body_sha256": hex::encode(hasher.finalize()),
            "first_to_last_chunk_ms": spread_ms,
        }))
}

/// The values of header `name` in an echo answer.
pub fn echoed<'a>(echo: &'a Value, name: &str) -> Vec<&'a str> {
    echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pair| pair[0].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|pair| pair[1].as_str().unwrap())
        .collect()
}

async fn slow(calls: web::Data<AtomicUsize>) -> HttpResponse {
    calls.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(2)).await;
    HttpResponse::Ok().body("late")
}

#[derive(serde::Deserialize)]
struct StreamQuery {
    size: usize,
    #[serde(default)]
    pause_ms: u64,
}

/// `size` pattern bytes in 64 KiB chunks, chunked (no length), pausing `pause_ms` after the
/// first chunk.
async fn stream(query: web::Query<StreamQuery>, calls: web::Data<AtomicUsize>) -> HttpResponse {
    calls.fetch_add(1, Ordering::SeqCst);
    let body: Vec<u8> = pattern(query.size).collect();
    let pause = Duration::from_millis(query.pause_ms);
    let chunks: Vec<web::Bytes> = body
        .chunks(64 * 1024)
        .map(web::Bytes::copy_from_slice)
        .collect();
    let stream = futures_util::stream::iter(chunks.into_iter().enumerate()).then(
        move |(i, chunk)| async move {
            if i == 1 {
                tokio::time::sleep(pause).await;
            }
            Ok::<_, std::io::Error>(chunk)
        },
    );
    HttpResponse::Ok()
        .content_type("application/octet-stream")
        .streaming(stream)
}

/// Answers `code` with a plain-text body.
async fn status(code: web::Path<u16>, calls: web::Data<AtomicUsize>) -> HttpResponse {
    calls.fetch_add(1, Ordering::SeqCst);
    let status = actix_web::http::StatusCode::from_u16(*code).unwrap();
    HttpResponse::build(status)
        .content_type("text/plain")
        .body(format!("upstream says {code}"))
}

/// A raw HTTP/1.1 upstream: records each request head as received and answers with this
/// exact `response`.
pub struct RawUpstream {
    pub addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

impl RawUpstream {
    pub async fn start(response: &'static str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.ends_with(b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    seen.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&head).into_owned());
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self { addr, heads }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request head received so far.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}
