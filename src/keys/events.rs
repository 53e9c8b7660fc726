//! Key-change broadcast: every change that affects how a secret resolves (status, expiry,
//! limits, rotation, a new secret) publishes a [`KeyChanged`] after its transaction commits,
//! and every node drops its cached copies.
//!
//! - The publishing node invalidates its own cache before the call returns (read-your-writes)
//!   and hands the event to in-process listeners through a tokio broadcast channel — the
//!   whole story in embedded mode, which is one node.
//! - With Redis, the event is also `PUBLISH`ed on `<prefix>channel:{key_changes}`
//!   (`kv::bus`); each node's subscriber task applies events from other nodes and flushes the
//!   whole cache every time its subscription is (re)established, since events may have been
//!   missed meanwhile; while it is disconnected, `keys.cache_ttl_secs` bounds how stale an
//!   entry can be.

use serde::{Deserialize, Serialize};
use tokio::{sync::broadcast, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use super::cache::KeyCache;
use crate::{
    config::RedisSettings,
    entities::api_keys,
    ids::KeyId,
    kv::{
        Redis,
        bus::{Bus, Listener},
    },
};

/// In-process listeners that fall this far behind lose events (and should flush).
const LOCAL_CAPACITY: usize = 1024;

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

/// Publishes key changes and applies them to this node's cache. Cheap to clone.
#[derive(Clone)]
pub struct KeyEvents {
    cache: KeyCache,
    local: broadcast::Sender<KeyChanged>,
    redis: Option<Bus>,
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
            events.redis = Some(Bus::new(redis, settings, "key_changes")?);
        }
        Ok(events)
    }

    /// The Redis channel events travel on (none in-process).
    pub fn channel(&self) -> Option<&str> {
        self.redis.as_ref().map(Bus::channel)
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
        if let Some(bus) = &self.redis
            && let Err(err) = bus.publish(&event).await
        {
            tracing::warn!(
                error = %err,
                key_id = %event.key_id,
                "could not broadcast a key change; other nodes catch up within keys.cache_ttl_secs"
            );
        }
        // No listener is not an error.
        let _ = self.local.send(event);
    }

    /// The subscriber task of this node (none without Redis), stopped by `cancel`.
    pub fn spawn_subscriber(&self, cancel: CancellationToken) -> Option<JoinHandle<()>> {
        let bus = self.redis.as_ref()?;
        Some(bus.spawn_listener(self.clone(), cancel))
    }
}

impl Listener for KeyEvents {
    type Event = KeyChanged;

    const WHILE_DOWN: &'static str = "other nodes' key changes now reach this node within \
        keys.cache_ttl_secs, and the key cache is flushed on reconnection";

    async fn subscribed(&self) {
        // Whatever happened before is flushed, what follows arrives.
        self.cache.invalidate_all();
    }

    async fn receive(&self, event: KeyChanged) {
        self.cache.invalidate(&event.hashes).await;
        let _ = self.local.send(event);
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use uuid::Uuid;

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
}
