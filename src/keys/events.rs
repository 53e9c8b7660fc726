//! Key-change broadcast: every change that affects how a secret resolves (status, expiry,
//! limits, rotation, a new secret) publishes a [`KeyChanged`] after its transaction commits,
//! and every node drops its cached copies.
//!
//! - The publishing node invalidates its own cache before the call returns (read-your-writes)
//!   and hands the event to in-process listeners through a tokio broadcast channel — the
//!   whole story in embedded mode, which is one node.
//! - With Redis, the event is also `PUBLISH`ed on `<prefix>channel:{key_changes}`; each node
//!   runs one subscriber task (see [`KeyEvents::spawn_subscriber`]) that applies events from
//!   other nodes. The subscriber reconnects by itself and flushes the whole cache every time
//!   its subscription is (re)established, since events may have been missed meanwhile; while
//!   it is disconnected, `keys.cache_ttl_secs` bounds how stale an entry can be.

use std::time::Duration;

use futures_util::StreamExt as _;
use redis::{AsyncCommands as _, Client, aio::PubSub};
use serde::{Deserialize, Serialize};
use tokio::{sync::broadcast, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::cache::KeyCache;
use crate::{config::RedisSettings, entities::api_keys, ids::KeyId, kv::Redis};

/// In-process listeners that fall this far behind lose events (and should flush).
const LOCAL_CAPACITY: usize = 1024;
/// Bounds on connecting and subscribing, and on the liveness ping of an idle subscription.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const PING_EVERY: Duration = Duration::from_secs(15);
/// Reconnection delays: doubling from the first to the last.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// A key whose resolution changed, with every secret digest (hex SHA-256) that may be cached
/// for it: its current and previous secrets before and after the change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyChanged {
    pub key_id: KeyId,
    pub hashes: Vec<String>,
}

impl KeyChanged {
    /// The change from `before` (none for a new key) to `after`.
    pub fn between(before: Option<&api_keys::Model>, after: &api_keys::Model) -> Self {
        let mut hashes = Vec::with_capacity(4);
        for row in before.into_iter().chain([after]) {
            let secrets = [Some(&row.key_hash), row.previous_key_hash.as_ref()];
            for hash in secrets.into_iter().flatten() {
                if !hashes.contains(hash) {
                    hashes.push(hash.clone());
                }
            }
        }
        Self {
            key_id: after.id.into(),
            hashes,
        }
    }
}

/// What travels over Redis: the event and the node it came from.
#[derive(Serialize, Deserialize)]
struct Wire {
    origin: Uuid,
    #[serde(flatten)]
    event: KeyChanged,
}

/// Publishes key changes and applies them to this node's cache. Cheap to clone.
#[derive(Clone)]
pub struct KeyEvents {
    cache: KeyCache,
    local: broadcast::Sender<KeyChanged>,
    redis: Option<RedisBus>,
}

#[derive(Clone)]
struct RedisBus {
    redis: Redis,
    client: Client,
    channel: String,
    /// This process, so it skips its own events coming back.
    origin: Uuid,
}

impl KeyEvents {
    /// In-process only (embedded mode, or tools without Redis).
    pub fn local(cache: KeyCache) -> Self {
        let (local, _) = broadcast::channel(LOCAL_CAPACITY);
        Self {
            cache,
            local,
            redis: None,
        }
    }

    /// Over Redis pub/sub when `redis` is configured, in-process otherwise.
    pub fn new(
        cache: KeyCache,
        redis: Option<&Redis>,
        settings: &RedisSettings,
    ) -> anyhow::Result<Self> {
        let mut events = Self::local(cache);
        if let Some(redis) = redis {
            events.redis = Some(RedisBus {
                redis: redis.clone(),
                client: Client::open(settings.url.expose())?,
                channel: redis.key("channel", "key_changes"),
                origin: Uuid::new_v4(),
            });
        }
        Ok(events)
    }

    /// The Redis channel events travel on (none in-process).
    pub fn channel(&self) -> Option<&str> {
        self.redis.as_ref().map(|bus| bus.channel.as_str())
    }

    /// Every event from now on, from this node or (with Redis) any other.
    pub fn subscribe(&self) -> broadcast::Receiver<KeyChanged> {
        self.local.subscribe()
    }

    /// Call after the change committed. Invalidates this node's cache at once, then tells
    /// the others; a Redis failure is logged, not returned (the change itself stands, and
    /// other nodes catch up within `keys.cache_ttl_secs`).
    pub async fn publish(&self, event: KeyChanged) {
        self.cache.invalidate(&event.hashes).await;
        if let Some(bus) = &self.redis {
            bus.publish(&event).await;
        }
        // No listener is not an error.
        let _ = self.local.send(event);
    }

    /// The subscriber task of this node (none without Redis), stopped by `cancel`.
    pub fn spawn_subscriber(&self, cancel: CancellationToken) -> Option<JoinHandle<()>> {
        let bus = self.redis.clone()?;
        let events = self.clone();
        Some(tokio::spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = events.subscribe_forever(&bus) => {}
            }
        }))
    }

    async fn subscribe_forever(&self, bus: &RedisBus) {
        let mut delay = RETRY_FIRST;
        loop {
            let error = match bus.subscription().await {
                Ok(pubsub) => {
                    // Subscribed: whatever happened before is flushed, what follows arrives.
                    self.cache.invalidate_all();
                    tracing::info!(channel = %bus.channel, "key change subscription active");
                    delay = RETRY_FIRST;
                    self.listen(bus, pubsub).await
                }
                Err(err) => err,
            };
            metrics::counter!("tollgate_key_events_subscription_failures_total").increment(1);
            let retry_in_ms = delay.as_millis() as u64;
            if delay == RETRY_FIRST {
                tracing::warn!(
                    error = %error,
                    retry_in_ms,
                    "key change subscription lost; other nodes' changes now reach this node \
                     within keys.cache_ttl_secs, and the key cache is flushed on reconnection"
                );
            } else {
                tracing::debug!(error = %error, retry_in_ms, "key change subscription still down");
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RETRY_MAX);
        }
    }

    /// Applies events until the connection fails; returns why.
    async fn listen(&self, bus: &RedisBus, pubsub: PubSub) -> redis::RedisError {
        let (mut sink, mut stream) = pubsub.split();
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(message) => self.receive(bus, message.get_payload_bytes()).await,
                    None => return closed("the subscription connection closed"),
                },
                _ = ping.tick() => {
                    // A silent peer (no FIN) would otherwise leave a dead subscription.
                    match tokio::time::timeout(CONNECT_TIMEOUT, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(err)) => return err,
                        Err(_) => return closed("the subscription stopped answering PING"),
                    }
                }
            }
        }
    }

    async fn receive(&self, bus: &RedisBus, payload: &[u8]) {
        let wire: Wire = match serde_json::from_slice(payload) {
            Ok(wire) => wire,
            Err(err) => {
                tracing::warn!(error = %err, "ignoring a malformed key change message");
                return;
            }
        };
        if wire.origin == bus.origin {
            return;
        }
        self.cache.invalidate(&wire.event.hashes).await;
        let _ = self.local.send(wire.event);
    }
}

impl RedisBus {
    async fn publish(&self, event: &KeyChanged) {
        let wire = Wire {
            origin: self.origin,
            event: event.clone(),
        };
        let payload = serde_json::to_string(&wire).expect("a key change serializes");
        let mut conn = self.redis.conn();
        let mut published: redis::RedisResult<i64> = conn.publish(&self.channel, &payload).await;
        if published.is_err() {
            // A dropped connection fails the first command and reconnects; once more.
            published = conn.publish(&self.channel, &payload).await;
        }
        if let Err(err) = published {
            metrics::counter!("tollgate_key_events_publish_failures_total").increment(1);
            tracing::warn!(
                error = %err,
                key_id = %event.key_id,
                "could not broadcast a key change; other nodes catch up within keys.cache_ttl_secs"
            );
        }
    }

    /// A dedicated pub/sub connection subscribed to the channel.
    async fn subscription(&self) -> redis::RedisResult<PubSub> {
        let subscribe = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(&self.channel).await?;
            Ok(pubsub)
        };
        tokio::time::timeout(CONNECT_TIMEOUT, subscribe)
            .await
            .unwrap_or_else(|_| Err(closed("connecting timed out")))
    }
}

fn closed(why: &'static str) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, why))
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn row(current: &str, previous: Option<&str>) -> api_keys::Model {
        let now = Utc::now();
        api_keys::Model {
            id: Uuid::now_v7(),
            tenant_id: Uuid::now_v7(),
            name: "k".into(),
            description: None,
            key_hash: current.into(),
            prefix: "tg_live_abcd".into(),
            last4: "wxyz".into(),
            source: "generated".into(),
            status: "active".into(),
            expires_at: None,
            revoked_at: None,
            previous_key_hash: previous.map(Into::into),
            previous_prefix: None,
            previous_last4: None,
            previous_expires_at: None,
            rotated_at: None,
            limit_per_minute: None,
            limit_per_hour: None,
            limit_per_day: None,
            limit_per_month: None,
            usage_count: 0,
            last_used_at: None,
            metadata: None,
            created_by: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn a_change_names_every_secret_before_and_after_once() {
        let before = row("b", Some("a"));
        let mut after = row("c", Some("b"));
        after.id = before.id;
        let event = KeyChanged::between(Some(&before), &after);
        assert_eq!(event.key_id, KeyId::from(before.id));
        assert_eq!(event.hashes, ["b", "a", "c"]);
        assert_eq!(KeyChanged::between(None, &row("n", None)).hashes, ["n"]);
    }

    #[test]
    fn the_wire_format_carries_the_origin_beside_the_event() {
        let event = KeyChanged::between(None, &row("n", None));
        let wire = Wire {
            origin: Uuid::nil(),
            event: event.clone(),
        };
        let json: serde_json::Value = serde_json::to_value(&wire).unwrap();
        assert_eq!(json["hashes"], serde_json::json!(["n"]));
        assert_eq!(json["key_id"], event.key_id.to_string());
        let back: Wire = serde_json::from_value(json).unwrap();
        assert_eq!(back.event, event);
    }
}
