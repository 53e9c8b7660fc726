//! The Redis connection (production mode) and the one place Redis key names are built.
//! Keys are hash-tagged (`{…}`) by their owner id so Redis Cluster keeps them on one slot.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use redis::{
    AsyncCommands as _, Client, IntoConnectionInfo as _,
    aio::{ConnectionManager, ConnectionManagerConfig},
    io::tcp::TcpSettings,
};

use crate::config::RedisSettings;

pub mod bus;

/// A client for the configured URL whose connections send at once (`TCP_NODELAY`; the redis
/// crate leaves Nagle's algorithm on, which holds pipelined commands back until the previous
/// ones are acknowledged).
pub fn client(settings: &RedisSettings) -> anyhow::Result<Client> {
    let info = settings
        .url
        .expose()
        .into_connection_info()
        .with_context(|| format!("opening {}", settings.url.redacted()))?
        .set_tcp_settings(TcpSettings::default().set_nodelay(true));
    Ok(Client::open(info)?)
}

/// A shared, auto-reconnecting Redis connection plus the configured key prefix.
#[derive(Clone)]
pub struct Redis {
    conn: ConnectionManager,
    prefix: String,
    /// Established subscriptions lost so far (see [`Redis::losses`]).
    losses: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Redis {
    /// Connects lazily: the process boots while Redis is down and reconnects by itself.
    pub fn connect(settings: &RedisSettings) -> anyhow::Result<Self> {
        let client = client(settings)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .context("creating the Redis connection manager")?;
        Ok(Self {
            conn,
            prefix: settings.key_prefix.clone(),
            losses: Arc::new(tokio::sync::watch::Sender::new(0)),
        })
    }

    /// Opens the shared connection now, from a task on the calling runtime, instead of on the
    /// first command. Called by start-up on the main runtime: the connection's I/O task runs
    /// on the runtime that connects, and had a request opened it, it would run on that HTTP
    /// worker's runtime, which stops during a graceful shutdown while other workers still
    /// serve (their limiter calls would then fail over). A failure is only logged: Redis
    /// may come up later.
    pub fn connect_now(&self) {
        let redis = self.clone();
        tokio::spawn(async move {
            if let Err(err) = redis.ping().await {
                tracing::warn!(error = %err, "Redis is not reachable yet; will retry on use");
            }
        });
    }

    /// A connection handle; cheap to clone, multiplexed.
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// `<prefix><kind>:{<owner>}`: every key of one owner shares a cluster slot.
    pub fn key(&self, kind: &str, owner: &str) -> String {
        format!("{}{kind}:{{{owner}}}", self.prefix)
    }

    /// How many times an established pub/sub subscription to this Redis was lost, as a
    /// receiver that sees each change: the first sign that Redis went away (its connection
    /// closes at once), before any command fails. The limiter forfeits its leases on it.
    pub fn losses(&self) -> tokio::sync::watch::Receiver<u64> {
        self.losses.subscribe()
    }

    pub(crate) fn subscription_lost(&self) {
        self.losses.send_modify(|lost| *lost += 1);
    }

    /// `PING`: the readiness check.
    pub async fn ping(&self) -> redis::RedisResult<()> {
        let mut conn = self.conn();
        let _: String = conn.ping().await?;
        Ok(())
    }
}
