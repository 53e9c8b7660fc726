//! The live feed behind `GET /v1/live`: committed usage events, per tenant, folded into
//! per-second counters for the last minute and an activity feed, sent once a second to the
//! tenant's subscribers.
//!
//! The writer (and the ingestion API) call [`LiveHub::publish`] after a batch commits — off
//! the request path. The batch is folded into one [`Delta`] per watched tenant and merged into
//! the tenant's state; tenants nobody watches cost one map lookup per batch. Each subscriber
//! reads a bounded broadcast channel; one that falls behind misses frames and is dropped by
//! its connection, never slowing anything else.
//!
//! Across nodes (with Redis): every node that has subscribers for a tenant lists it in the
//! sorted set `<prefix>live:{watched}` (member `tenant/process`, score = until when, refreshed
//! every 500 ms and at once when a tenant gains its first subscriber here; the set itself
//! expires). Each node reads that set every 500 ms and sends the deltas of tenants watched by
//! *other* processes over the `live` channel (`kv::bus`); every node merges the deltas it
//! receives for tenants it watches. So each frame counts the whole deployment's calls, at the
//! cost of one `PUBLISH` per watched tenant per committed batch. Relaying never blocks the
//! writer: deltas wait in a bounded queue and are dropped (counted in
//! `tollgate_live_relay_dropped_total`) when Redis cannot keep up or is down.

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{UsageEvent, sketch::LatencySketch};
use crate::{
    ids::KeyId,
    kv::bus::{Bus, Listener},
};

/// Seconds of history kept per watched tenant.
const SECONDS: i64 = 60;
/// Seconds the request rate is averaged over.
const RATE_SECONDS: i64 = 10;
/// Calls in one frame's activity feed, at most (the newest).
const FEED: usize = 50;
/// Frames a subscriber may fall behind before it is dropped.
pub const BACKLOG: usize = 8;
/// How often a node renews its watched tenants in Redis and reads the others'.
const WATCH_REFRESH: Duration = Duration::from_millis(500);
/// How long a node's listing of a watched tenant lasts without renewal.
const WATCH_TTL_MS: i64 = 3_000;
/// Deltas waiting to be sent to Redis; more are dropped.
const RELAY_QUEUE: usize = 256;

/// One second of one tenant's calls.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Second {
    requests: i64,
    errors: i64,
    #[serde(with = "encoded_sketch")]
    latency: LatencySketch,
    per_key: HashMap<Uuid, i64>,
}

impl Second {
    fn add(&mut self, other: &Second) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.latency.merge(&other.latency);
        for (key, n) in &other.per_key {
            *self.per_key.entry(*key).or_default() += n;
        }
    }
}

/// One process's newly committed calls of one tenant: what every hub watching the tenant
/// merges (this process's, and other nodes' through Redis).
#[derive(Serialize, Deserialize)]
pub struct Delta {
    tenant: Uuid,
    /// The calls per second (Unix time), in order (pairs: bus messages need string map keys).
    seconds: Vec<(i64, Second)>,
    /// The newest calls, newest first (at most [`FEED`]).
    feed: Vec<FeedCall>,
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
    relay: Option<Relay>,
}

/// Sends deltas to the other nodes (with Redis).
#[derive(Clone)]
struct Relay {
    bus: Bus,
    outbox: mpsc::Sender<Delta>,
    /// Tenants other processes watch, as last read from Redis.
    elsewhere: Arc<Mutex<HashSet<Uuid>>>,
    /// Woken when a tenant gains its first subscriber here.
    joined: Arc<Notify>,
}

/// A call in the activity feed.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
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
    /// A hub whose frames are sent every second until `cancel` fires; with `bus` (Redis), it
    /// also relays to and merges from the other nodes.
    pub fn start(cancel: CancellationToken, bus: Option<Bus>) -> Self {
        let mut hub = Self::default();
        if let Some(bus) = bus {
            let (outbox, queued) = mpsc::channel(RELAY_QUEUE);
            let relay = Relay {
                bus,
                outbox,
                elsewhere: Default::default(),
                joined: Default::default(),
            };
            hub.relay = Some(relay.clone());
            relay.bus.spawn_listener(hub.clone(), cancel.clone());
            tokio::spawn(relay.run(hub.clone(), queued, cancel.clone()));
        }
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
        let entry = tenants.entry(tenant).or_insert_with(|| {
            if let Some(relay) = &self.relay {
                relay.joined.notify_one();
            }
            Tenant {
                tx: broadcast::channel(BACKLOG).0,
                state: Watched::default(),
            }
        });
        let now = entry.state.counters(Utc::now());
        (entry.tx.subscribe(), to_json(&now))
    }

    /// Adds committed events to the counters of the tenants being watched, here and (with
    /// Redis) on other nodes.
    pub fn publish(&self, events: &[UsageEvent]) {
        let mut tenants = self.tenants.lock().expect("live hub lock");
        // Lock order: the hub, then the relay's set (`Relay::refresh` never holds both).
        let elsewhere = self
            .relay
            .as_ref()
            .map(|relay| relay.elsewhere.lock().expect("live relay lock"));
        let watched_elsewhere =
            |tenant: &Uuid| elsewhere.as_ref().is_some_and(|e| e.contains(tenant));
        if tenants.is_empty() && elsewhere.as_ref().is_none_or(|e| e.is_empty()) {
            return;
        }
        let deltas = fold(events, |tenant| {
            tenants.contains_key(tenant) || watched_elsewhere(tenant)
        });
        for delta in deltas.into_values() {
            if let Some(watched) = tenants.get_mut(&delta.tenant) {
                watched.state.apply(&delta);
            }
            if let Some(relay) = &self.relay
                && watched_elsewhere(&delta.tenant)
                && relay.outbox.try_send(delta).is_err()
            {
                metrics::counter!("tollgate_live_relay_dropped_total").increment(1);
            }
        }
    }

    /// Merges another node's delta, if its tenant is watched here.
    fn merge(&self, delta: &Delta) {
        let mut tenants = self.tenants.lock().expect("live hub lock");
        if let Some(watched) = tenants.get_mut(&delta.tenant) {
            watched.state.apply(delta);
        }
    }

    /// The tenants with subscribers here.
    fn watched_here(&self) -> Vec<Uuid> {
        let tenants = self.tenants.lock().expect("live hub lock");
        tenants
            .iter()
            .filter(|(_, t)| t.tx.receiver_count() > 0)
            .map(|(id, _)| *id)
            .collect()
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

impl Listener for LiveHub {
    type Event = Delta;

    const WHILE_DOWN: &'static str = "live frames count only this node's calls until it is back";

    async fn subscribed(&self) {}

    async fn receive(&self, delta: Delta) {
        self.merge(&delta);
    }
}

impl Relay {
    /// Sends queued deltas and keeps the watched set, until `cancel` fires.
    async fn run(self, hub: LiveHub, mut outbox: mpsc::Receiver<Delta>, cancel: CancellationToken) {
        let key = self.bus.redis().key("live", "watched");
        let mut refresh = tokio::time::interval(WATCH_REFRESH);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            let result = tokio::select! {
                _ = cancel.cancelled() => break,
                Some(delta) = outbox.recv() => self.bus.publish(&delta).await,
                _ = refresh.tick() => self.refresh(&hub, &key).await,
                _ = self.joined.notified() => self.refresh(&hub, &key).await,
            };
            match result {
                Err(err) if !failing => {
                    failing = true;
                    tracing::warn!(error = %err, "live feed relay failing; frames count only this node's calls");
                }
                Err(_) => {}
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("live feed relay working again");
                }
                Ok(()) => {}
            }
        }
    }

    /// Lists this node's watched tenants in Redis, drops expired listings and reads the
    /// tenants other processes watch.
    async fn refresh(&self, hub: &LiveHub, key: &str) -> redis::RedisResult<()> {
        let origin = self.bus.origin().to_string();
        let now_ms = Utc::now().timestamp_millis();
        let mut pipe = redis::pipe();
        pipe.atomic();
        for tenant in hub.watched_here() {
            pipe.zadd(key, format!("{tenant}/{origin}"), now_ms + WATCH_TTL_MS)
                .ignore();
        }
        pipe.zrembyscore(key, "-inf", now_ms)
            .ignore()
            .pexpire(key, WATCH_TTL_MS)
            .ignore()
            .zrangebyscore(key, now_ms, "+inf");
        let (listed,): (Vec<String>,) = pipe.query_async(&mut self.bus.redis().conn()).await?;
        let elsewhere = listed
            .iter()
            .filter_map(|member| member.split_once('/'))
            .filter(|(_, process)| *process != origin)
            .filter_map(|(tenant, _)| tenant.parse().ok())
            .collect();
        *self.elsewhere.lock().expect("live relay lock") = elsewhere;
        Ok(())
    }
}

/// The deltas of the `wanted` tenants' calls among `events` (in commit order), one per tenant.
fn fold(events: &[UsageEvent], wanted: impl Fn(&Uuid) -> bool) -> HashMap<Uuid, Delta> {
    let oldest = Utc::now().timestamp() - SECONDS;
    let mut folded: HashMap<Uuid, (BTreeMap<i64, Second>, Vec<FeedCall>)> = HashMap::new();
    for e in events.iter().rev() {
        let tenant = e.tenant_id.0;
        let second = e.occurred_at.timestamp();
        if second <= oldest || !wanted(&tenant) {
            continue;
        }
        let (seconds, feed) = folded.entry(tenant).or_default();
        let bucket = seconds.entry(second).or_default();
        bucket.requests += 1;
        bucket.errors += i64::from(e.status_code >= 400);
        bucket.latency.record(e.latency_us);
        *bucket
            .per_key
            .entry(e.key_id.map_or(Uuid::nil(), |k| k.0))
            .or_default() += 1;
        // Walking from the newest: the feed fills newest first.
        if feed.len() < FEED {
            feed.push(FeedCall {
                occurred_at: e.occurred_at,
                key_id: e.key_id,
                endpoint: e.endpoint.to_string(),
                method: e.method.to_string(),
                status_code: e.status_code,
                latency_ms: e.latency_us as f64 / 1000.0,
            });
        }
    }
    folded
        .into_iter()
        .map(|(tenant, (seconds, feed))| {
            let seconds = seconds.into_iter().collect();
            (
                tenant,
                Delta {
                    tenant,
                    seconds,
                    feed,
                },
            )
        })
        .collect()
}

fn to_json(frame: &Frame) -> Arc<str> {
    serde_json::to_string(frame)
        .expect("frames serialize")
        .into()
}

impl Watched {
    /// Merges a delta: its seconds still in the window, its calls at the front of the feed.
    fn apply(&mut self, delta: &Delta) {
        let oldest = Utc::now().timestamp() - SECONDS;
        for (second, calls) in &delta.seconds {
            if *second > oldest {
                self.seconds.entry(*second).or_default().add(calls);
            }
        }
        for call in delta.feed.iter().rev() {
            self.feed.push_front(call.clone());
        }
        self.feed.truncate(FEED);
    }

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
        let mut minute = Second::default();
        let (mut recent, mut recent_errors) = (0, 0);
        for (second, bucket) in self.seconds.range(oldest + 1..) {
            minute.add(bucket);
            if *second > now_s - RATE_SECONDS {
                recent += bucket.requests;
                recent_errors += bucket.errors;
            }
        }
        let mut keys: Vec<KeyCount> = minute
            .per_key
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
            last_minute_requests: minute.requests,
            last_minute_errors: minute.errors,
            last_minute_p95_ms: minute.latency.quantile(0.95).map(|us| us as f64 / 1000.0),
            keys,
            feed: Vec::new(),
        }
    }
}

/// A latency sketch on the wire: its encoded form in base64.
mod encoded_sketch {
    use base64::{Engine as _, engine::general_purpose::STANDARD};
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    use crate::metering::sketch::LatencySketch;

    pub fn serialize<S: Serializer>(sketch: &LatencySketch, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(sketch.encode()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<LatencySketch, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = STANDARD.decode(text).map_err(D::Error::custom)?;
        LatencySketch::decode(&bytes).map_err(D::Error::custom)
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
    async fn a_delta_from_another_node_counts_as_the_local_batch_does() {
        use crate::kv::bus;
        let (here, there) = (LiveHub::default(), LiveHub::default());
        let tenant = Uuid::now_v7();
        let (mut rx_here, _) = here.subscribe(tenant);
        let (mut rx_there, _) = there.subscribe(tenant);
        let mut batch: Vec<UsageEvent> = (0..70).map(|i| call(tenant, 200, 1_000 + i)).collect();
        batch.push(call(tenant, 500, 90_000));
        here.publish(&batch);
        for delta in fold(&batch, |_| true).into_values() {
            let (_, received): (Uuid, Delta) =
                bus::decode(&bus::encode(Uuid::nil(), &delta)).unwrap();
            there.merge(&received);
        }
        let now = Utc::now();
        here.tick(now);
        there.tick(now);
        let frame = rx_here.recv().await.unwrap();
        assert_eq!(frame, rx_there.recv().await.unwrap());
        let frame: serde_json::Value = serde_json::from_str(&frame).unwrap();
        assert_eq!(frame["last_minute_requests"], 71);
        assert_eq!(frame["feed"].as_array().unwrap().len(), FEED);
        assert_eq!(frame["feed"][0]["status_code"], 500, "newest first");
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
