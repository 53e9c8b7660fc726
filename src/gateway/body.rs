//! Bodies in flight, never buffered whole: the request body pumped from actix's payload (not
//! `Send`) to the upstream through a small bounded channel, and the upstream's answer relayed
//! chunk by chunk. [`Meter`] records the call's one usage event when the answer is complete,
//! or when it is dropped (client gone, stream broken), so every admitted call is recorded.

use std::{
    error::Error as StdError,
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use actix_web::{
    HttpResponse,
    body::{BodySize, MessageBody},
    web::{self, Bytes},
};
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

use crate::{http::hot_path, metering::UsageEvent, state::AppState};

/// Chunks of the request body waiting for the upstream; beyond that the client is not read.
const UPLOAD_QUEUE: usize = 4;
/// Recorded when the client went away before an answer (nginx's "client closed request").
const CLIENT_CLOSED: u16 = 499;

/// One call's usage event, recorded exactly once: by [`Meter::record`] or on drop.
pub struct Meter {
    state: web::Data<AppState>,
    event: Option<UsageEvent>,
    started: Instant,
    status: u16,
    bytes_out: u64,
    /// Request bytes handed to the upstream (the pump adds to it).
    pub uploaded: Arc<AtomicU64>,
}

impl Meter {
    pub fn new(state: web::Data<AppState>, event: UsageEvent, started: Instant) -> Self {
        Self {
            state,
            event: Some(event),
            started,
            status: CLIENT_CLOSED,
            bytes_out: 0,
            uploaded: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Records `response` (a complete answer of ours) as the call's outcome and returns it.
    pub fn answered(mut self, response: HttpResponse) -> HttpResponse {
        self.status = response.status().as_u16();
        if let BodySize::Sized(n) = response.body().size() {
            self.bytes_out = n;
        }
        self.record();
        response
    }

    fn record(&mut self) {
        let Some(mut event) = self.event.take() else {
            return;
        };
        let uploaded = self.uploaded.load(Ordering::Relaxed);
        if uploaded > 0 {
            event.bytes_in = i64::try_from(uploaded).unwrap_or(i64::MAX);
        }
        let bytes_out = i64::try_from(self.bytes_out).unwrap_or(i64::MAX);
        hot_path::finish(&self.state, event, self.started, self.status, bytes_out);
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.record();
    }
}

/// When the exchange with the upstream last moved (a request chunk taken, or the start).
pub struct Progress {
    origin: tokio::time::Instant,
    last_ms: AtomicU64,
}

impl Progress {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            origin: tokio::time::Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    pub fn touch(&self) {
        let ms = self.origin.elapsed().as_millis();
        self.last_ms
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Completes once nothing has moved for `limit`.
    pub async fn stalled(&self, limit: Duration) {
        loop {
            let last = self.origin + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let due = last + limit;
            if tokio::time::Instant::now() >= due {
                return;
            }
            tokio::time::sleep_until(due).await;
        }
    }
}

/// Streams the rest of `payload` after its `first` chunk to the upstream. A client error
/// sets `broken` and fails the upstream request rather than ending the body early (which
/// would look complete).
pub fn upload(
    mut payload: web::Payload,
    first: Bytes,
    progress: Arc<Progress>,
    uploaded: Arc<AtomicU64>,
    broken: Arc<AtomicBool>,
) -> reqwest::Body {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(UPLOAD_QUEUE);
    actix_web::rt::spawn(async move {
        let mut next = Some(Ok(first));
        loop {
            let chunk = match next.take() {
                Some(chunk) => chunk,
                None => match payload.next().await {
                    Some(chunk) => chunk,
                    None => return,
                },
            };
            let item = chunk.map_err(|err| {
                broken.store(true, Ordering::Relaxed);
                io::Error::other(err.to_string())
            });
            let len = item.as_ref().map_or(0, Bytes::len) as u64;
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                return;
            }
            uploaded.fetch_add(len, Ordering::Relaxed);
            progress.touch();
        }
    });
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    reqwest::Body::wrap_stream(chunks)
}

type Chunks = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>>>>;

/// The upstream's answer body, relayed as it arrives; errors when the upstream pauses for
/// longer than `idle` (the client then sees the answer cut off).
pub struct UpstreamBody {
    chunks: Chunks,
    size: BodySize,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    meter: Meter,
}

impl UpstreamBody {
    pub fn new(
        upstream: reqwest::Response,
        size: BodySize,
        idle: Duration,
        mut meter: Meter,
    ) -> Self {
        meter.status = upstream.status().as_u16();
        Self {
            chunks: Box::pin(upstream.bytes_stream()),
            size,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            meter,
        }
    }
}

impl MessageBody for UpstreamBody {
    type Error = Box<dyn StdError>;

    fn size(&self) -> BodySize {
        self.size
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        match this.chunks.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.meter.bytes_out += chunk.len() as u64;
                let next = tokio::time::Instant::now() + this.idle;
                this.deadline.as_mut().reset(next);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(err))) => {
                let err = err.without_url();
                tracing::warn!(error.cause = %format!("{err:#}"), "upstream answer broke off");
                this.meter.record();
                Poll::Ready(Some(Err(Box::new(err))))
            }
            Poll::Ready(None) => {
                this.meter.record();
                Poll::Ready(None)
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    tracing::warn!(
                        idle_ms = this.idle.as_millis() as u64,
                        "upstream answer stalled; cut off"
                    );
                    this.meter.record();
                    Poll::Ready(Some(Err(
                        "the upstream stalled while sending its answer".into()
                    )))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}
