//! The live feed behind `GET /v1/live`: committed usage events, per tenant, folded into
//! per-second counters for the last minute and an activity feed, sent once a second to the
//! tenant's subscribers.
//!
//! The writer (and the ingestion API) call [`LiveHub::publish`] after a batch commits — off
//! the request path. Tenants nobody watches cost one map lookup per batch. Each subscriber
//! reads a bounded broadcast channel; one that falls behind misses frames and is dropped by
//! its connection, never slowing anything else. Counters are this process's traffic: behind
//! a load balancer each node reports the calls it served.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{UsageEvent, sketch::LatencySketch};
use crate::ids::KeyId;

/// Seconds of history kept per watched tenant.
const SECONDS: i64 = 60;
/// Seconds the request rate is averaged over.
const RATE_SECONDS: i64 = 10;
/// Calls in one frame's activity feed, at most (the newest).
const FEED: usize = 50;
/// Frames a subscriber may fall behind before it is dropped.
pub const BACKLOG: usize = 8;

/// One second of one tenant's calls.
#[derive(Default)]
struct Second {
    requests: i64,
    errors: i64,
    latency: LatencySketch,
    per_key: HashMap<Uuid, i64>,
}

#[derive(Default)]
struct Watched {
    seconds: BTreeMap<i64, Second>,
    feed: VecDeque<FeedCall>,
}

struct Tenant {
    tx: broadcast::Sender<Arc<str>>,
    state: Watched,
}

/// The per-process hub; cheap to clone.
#[derive(Clone, Default)]
pub struct LiveHub {
    tenants: Arc<Mutex<HashMap<Uuid, Tenant>>>,
}

/// A call in the activity feed.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FeedCall {
    pub occurred_at: DateTime<Utc>,
    pub key_id: Option<KeyId>,
    pub endpoint: String,
    pub method: String,
    pub status_code: u16,
    pub latency_ms: f64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct KeyCount {
    pub key_id: Option<KeyId>,
    pub requests: i64,
}

/// What a subscriber receives once a second (as a JSON text message).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Frame {
    /// Always `counters`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub t: DateTime<Utc>,
    /// Calls per second over the last 10 seconds.
    pub requests_per_s: f64,
    /// Failed calls (status ≥ 400) per second over the last 10 seconds.
    pub errors_per_s: f64,
    pub last_minute_requests: i64,
    pub last_minute_errors: i64,
    /// P95 latency of the last minute's calls, ms; `null` without calls.
    pub last_minute_p95_ms: Option<f64>,
    /// Calls per key in the last minute, busiest first.
    pub keys: Vec<KeyCount>,
    /// Calls committed since the previous frame, newest first (at most 50).
    pub feed: Vec<FeedCall>,
}

impl LiveHub {
    /// A hub whose frames are sent every second until `cancel` fires.
    pub fn start(cancel: CancellationToken) -> Self {
        let hub = Self::default();
        let ticker = hub.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = every.tick() => ticker.tick(Utc::now()),
                }
            }
        });
        hub
    }

    /// Frames for `tenant`, from the next second on, and the counters as they are now (an
    /// empty feed), so a new subscriber has something to show at once.
    pub fn subscribe(&self, tenant: Uuid) -> (broadcast::Receiver<Arc<str>>, Arc<str>) {
        let mut tenants = self.tenants.lock().expect("live hub lock");
        let entry = tenants.entry(tenant).or_insert_with(|| Tenant {
            tx: broadcast::channel(BACKLOG).0,
            state: Watched::default(),
        });
        let now = entry.state.counters(Utc::now());
        (entry.tx.subscribe(), to_json(&now))
    }

    /// Adds committed events to the counters of the tenants being watched.
    pub fn publish(&self, events: &[UsageEvent]) {
        let mut tenants = self.tenants.lock().expect("live hub lock");
        if tenants.is_empty() {
            return;
        }
        let oldest = Utc::now().timestamp() - SECONDS;
        for e in events {
            let Some(tenant) = tenants.get_mut(&e.tenant_id.0) else {
                continue;
            };
            let second = e.occurred_at.timestamp();
            if second <= oldest {
                continue;
            }
            let bucket = tenant.state.seconds.entry(second).or_default();
            bucket.requests += 1;
            bucket.errors += i64::from(e.status_code >= 400);
            bucket.latency.record(e.latency_us);
            *bucket
                .per_key
                .entry(e.key_id.map_or(Uuid::nil(), |k| k.0))
                .or_default() += 1;
            let feed = &mut tenant.state.feed;
            feed.push_front(FeedCall {
                occurred_at: e.occurred_at,
                key_id: e.key_id,
                endpoint: e.endpoint.to_string(),
                method: e.method.to_string(),
                status_code: e.status_code,
                latency_ms: e.latency_us as f64 / 1000.0,
            });
            feed.truncate(FEED);
        }
    }

    /// Sends every watched tenant its frame; forgets tenants nobody watches any more.
    fn tick(&self, now: DateTime<Utc>) {
        let mut tenants = self.tenants.lock().expect("live hub lock");
        tenants.retain(|_, tenant| tenant.tx.receiver_count() > 0);
        for tenant in tenants.values_mut() {
            let frame = tenant.state.frame(now);
            // Err = no receiver left; it is removed at the next tick.
            let _ = tenant.tx.send(to_json(&frame));
        }
    }
}

fn to_json(frame: &Frame) -> Arc<str> {
    serde_json::to_string(frame)
        .expect("frames serialize")
        .into()
}

impl Watched {
    /// The frame of this second: the counters, and the calls since the previous frame.
    fn frame(&mut self, now: DateTime<Utc>) -> Frame {
        self.seconds = self.seconds.split_off(&(now.timestamp() - SECONDS + 1));
        let mut frame = self.counters(now);
        frame.feed = self.feed.drain(..).collect();
        frame
    }

    /// The counters over the seconds kept (the feed left alone).
    fn counters(&self, now: DateTime<Utc>) -> Frame {
        let now_s = now.timestamp();
        let oldest = now_s - SECONDS;
        let mut sketch = LatencySketch::new();
        let (mut requests, mut errors, mut recent, mut recent_errors) = (0, 0, 0, 0);
        let mut per_key: HashMap<Uuid, i64> = HashMap::new();
        for (second, bucket) in self.seconds.range(oldest + 1..) {
            requests += bucket.requests;
            errors += bucket.errors;
            if *second > now_s - RATE_SECONDS {
                recent += bucket.requests;
                recent_errors += bucket.errors;
            }
            sketch.merge(&bucket.latency);
            for (key, n) in &bucket.per_key {
                *per_key.entry(*key).or_default() += n;
            }
        }
        let mut keys: Vec<KeyCount> = per_key
            .into_iter()
            .map(|(key, requests)| KeyCount {
                key_id: (!key.is_nil()).then_some(KeyId(key)),
                requests,
            })
            .collect();
        keys.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.key_id.cmp(&b.key_id)));
        Frame {
            kind: "counters",
            t: now,
            requests_per_s: recent as f64 / RATE_SECONDS as f64,
            errors_per_s: recent_errors as f64 / RATE_SECONDS as f64,
            last_minute_requests: requests,
            last_minute_errors: errors,
            last_minute_p95_ms: sketch.quantile(0.95).map(|us| us as f64 / 1000.0),
            keys,
            feed: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        ids::TenantId,
        metering::{Source, event::method},
    };

    fn call(tenant: Uuid, status: u16, latency_us: i64) -> UsageEvent {
        let mut e = UsageEvent::new(
            Source::Middleware,
            TenantId(tenant),
            None,
            Arc::from("/v1/ping"),
            method("GET"),
            status,
        );
        e.latency_us = latency_us;
        e
    }

    #[tokio::test]
    async fn frames_count_the_watched_tenant_and_a_reader_that_falls_behind_lags() {
        let hub = LiveHub::default();
        let (watched, other) = (Uuid::now_v7(), Uuid::now_v7());
        let (mut rx, _) = hub.subscribe(watched);
        let mut batch: Vec<UsageEvent> = (0..9).map(|_| call(watched, 200, 2_000)).collect();
        batch.push(call(watched, 503, 40_000));
        batch.push(call(other, 200, 1));
        hub.publish(&batch);
        hub.tick(Utc::now());
        let frame: serde_json::Value = serde_json::from_str(&rx.recv().await.unwrap()).unwrap();
        assert_eq!(frame["last_minute_requests"], 10);
        assert_eq!(frame["last_minute_errors"], 1);
        assert_eq!(frame["requests_per_s"], 1.0);
        assert_eq!(frame["feed"].as_array().unwrap().len(), 10);
        assert_eq!(
            frame["keys"],
            serde_json::json!([{"key_id": null, "requests": 10}])
        );

        // Nobody reads: the hub never waits, and the reader learns it missed frames.
        for _ in 0..BACKLOG + 2 {
            hub.publish(&batch);
            hub.tick(Utc::now());
        }
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(_))
        ));
        // Once the last subscriber is gone the tenant is forgotten.
        drop(rx);
        hub.tick(Utc::now());
        assert!(hub.tenants.lock().unwrap().is_empty());
    }
}
