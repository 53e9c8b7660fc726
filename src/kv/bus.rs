//! A Redis pub/sub channel shared by every node: messages are JSON with the sending process's
//! id beside the event, so a node skips its own messages coming back. Each subscribing node
//! runs one task ([`Bus::spawn_listener`]) on a dedicated connection that reconnects by
//! itself (doubling delays from 100 ms to 2 s), pings an idle subscription so a silent peer
//! cannot leave it dead, and tells its [`Listener`] every time the subscription is
//! (re)established, since messages may have been missed meanwhile.
//!
//! Used by the key-change broadcast (`keys::events`) and the live feed (`metering::live`).
//! A lost subscription is also announced on the [`Redis`] handle ([`Redis::losses`]): the
//! limiter takes it as a sign that Redis went away.
//! Metrics, labelled by `channel`: `tollgate_pubsub_subscription_failures_total`,
//! `tollgate_pubsub_publish_failures_total`.

use std::{future::Future, time::Duration};

use futures_util::StreamExt as _;
use redis::{AsyncCommands as _, Client, aio::PubSub};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Redis;
use crate::config::RedisSettings;

/// Bounds on connecting and subscribing, and on the liveness ping of an idle subscription.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const PING_EVERY: Duration = Duration::from_secs(15);
/// Reconnection delays: doubling from the first to the last.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// One channel, as one process publishes to and listens on it. Cheap to clone.
#[derive(Clone)]
pub struct Bus {
    redis: Redis,
    client: Client,
    /// `key_changes`, `live`: the metrics label and the channel's owner part.
    name: &'static str,
    channel: String,
    /// This process, so it skips its own messages coming back.
    origin: Uuid,
}

/// What travels over Redis: the event and the process it came from.
#[derive(Serialize, Deserialize)]
struct Wire<T> {
    origin: Uuid,
    #[serde(flatten)]
    event: T,
}

/// What a node does with a channel's messages.
pub trait Listener: Clone + Send + Sync + 'static {
    type Event: DeserializeOwned + Send;

    /// What a lost subscription means for this node, for the warning logged.
    const WHILE_DOWN: &'static str;

    /// The subscription is (re)established: what was published before it is not coming.
    fn subscribed(&self) -> impl Future<Output = ()> + Send;

    /// An event another process published.
    fn receive(&self, event: Self::Event) -> impl Future<Output = ()> + Send;
}

impl Bus {
    /// The channel `<prefix>channel:{<name>}` of the configured Redis.
    pub fn new(
        redis: &Redis,
        settings: &RedisSettings,
        name: &'static str,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            redis: redis.clone(),
            client: super::client(settings)?,
            name,
            channel: redis.key("channel", name),
            origin: Uuid::new_v4(),
        })
    }

    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// This process's id on the channel.
    pub fn origin(&self) -> Uuid {
        self.origin
    }

    /// The shared connection of this bus's Redis.
    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// Publishes `event` to every other process listening; retried once on a fresh
    /// connection. A failure is counted and returned for the caller to log.
    pub async fn publish<T: Serialize>(&self, event: &T) -> redis::RedisResult<()> {
        let payload = encode(self.origin, event);
        let mut conn = self.redis.conn();
        let mut published: redis::RedisResult<i64> = conn.publish(&self.channel, &payload).await;
        if published.is_err() {
            // A dropped connection fails the first command and reconnects; once more.
            published = conn.publish(&self.channel, &payload).await;
        }
        published.map(|_| ()).inspect_err(|_| {
            metrics::counter!("tollgate_pubsub_publish_failures_total", "channel" => self.name)
                .increment(1);
        })
    }

    /// The subscriber task of this process, stopped by `cancel`.
    pub fn spawn_listener<L: Listener>(
        &self,
        listener: L,
        cancel: CancellationToken,
    ) -> JoinHandle<()> {
        let bus = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = bus.subscribe_forever(&listener) => {}
            }
        })
    }

    async fn subscribe_forever<L: Listener>(&self, listener: &L) {
        let mut delay = RETRY_FIRST;
        loop {
            let error = match self.subscription().await {
                Ok(pubsub) => {
                    listener.subscribed().await;
                    tracing::info!(channel = %self.channel, "Redis subscription active");
                    delay = RETRY_FIRST;
                    let lost = self.listen(listener, pubsub).await;
                    self.redis.subscription_lost();
                    lost
                }
                Err(err) => err,
            };
            metrics::counter!("tollgate_pubsub_subscription_failures_total", "channel" => self.name)
                .increment(1);
            let retry_in_ms = delay.as_millis() as u64;
            if delay == RETRY_FIRST {
                tracing::warn!(
                    error = %error,
                    channel = %self.channel,
                    retry_in_ms,
                    "Redis subscription lost; {}",
                    L::WHILE_DOWN
                );
            } else {
                tracing::debug!(error = %error, channel = %self.channel, retry_in_ms, "Redis subscription still down");
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RETRY_MAX);
        }
    }

    /// Hands messages to `listener` until the connection fails; returns why.
    async fn listen<L: Listener>(&self, listener: &L, pubsub: PubSub) -> redis::RedisError {
        let (mut sink, mut stream) = pubsub.split();
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(message) => self.receive(listener, message.get_payload_bytes()).await,
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

    async fn receive<L: Listener>(&self, listener: &L, payload: &[u8]) {
        match decode::<L::Event>(payload) {
            Ok((origin, event)) if origin != self.origin => listener.receive(event).await,
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(error = %err, channel = %self.channel, "ignoring a malformed message");
            }
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

/// A message as published: the event with the sending process's id beside it.
pub(crate) fn encode<T: Serialize>(origin: Uuid, event: &T) -> Vec<u8> {
    serde_json::to_vec(&Wire { origin, event }).expect("bus events serialize")
}

/// A received message: the sending process and the event (an event's fields are flattened
/// into the message, so maps in it must have string keys).
pub(crate) fn decode<T: DeserializeOwned>(payload: &[u8]) -> serde_json::Result<(Uuid, T)> {
    let wire: Wire<T> = serde_json::from_slice(payload)?;
    Ok((wire.origin, wire.event))
}

fn closed(why: &'static str) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, why))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Event {
        key_id: String,
        hashes: Vec<String>,
    }

    #[test]
    fn the_wire_format_carries_the_origin_beside_the_event() {
        let event = Event {
            key_id: "key_1".into(),
            hashes: vec!["n".into()],
        };
        let wire = Wire {
            origin: Uuid::nil(),
            event: &event,
        };
        let json: serde_json::Value = serde_json::to_value(&wire).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"origin": Uuid::nil(), "key_id": "key_1", "hashes": ["n"]})
        );
        let back: Wire<Event> = serde_json::from_value(json).unwrap();
        assert_eq!(back.event, event);
    }
}
