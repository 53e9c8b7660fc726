//! The unit of metering: one [`UsageEvent`] per metered call, built on the request path and
//! carried by value through the buffer, the spool and the writer.

use std::{net::IpAddr, sync::Arc};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::ids::{KeyId, TenantId};

/// Where an event came from (stored in `usage_events.source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// The hot-path middleware in front of an in-process handler.
    Middleware,
    /// The reverse proxy in front of an upstream.
    Gateway,
    /// `POST /v1/verify`: a service that verifies keys and is metered by us.
    Verify,
    /// `POST /v1/events`: a service that meters itself.
    Ingest,
}

impl Source {
    /// Every source, in declaration order (so `source as usize` indexes it).
    pub const ALL: [Source; 4] = [
        Source::Middleware,
        Source::Gateway,
        Source::Verify,
        Source::Ingest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Middleware => "middleware",
            Source::Gateway => "gateway",
            Source::Verify => "verify",
            Source::Ingest => "ingest",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|source| source.as_str() == s)
    }
}

/// One metered call. Strings are shared (`Arc<str>`), so a clone costs a few reference-count
/// increments; money is integer nanos of the tenant's currency, never a float.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageEvent {
    /// UUIDv7 (time-ordered); with `occurred_at` it is the primary key, so replays and
    /// re-sends of the same event are stored once.
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    /// When Tollgate received the event (differs from `occurred_at` for ingested events).
    pub received_at: DateTime<Utc>,
    pub tenant_id: TenantId,
    pub key_id: Option<KeyId>,
    /// The route template (`/v1/users/{id}`), never the raw path.
    pub endpoint: Arc<str>,
    pub method: Arc<str>,
    pub status_code: u16,
    pub latency_us: i64,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    /// Cost in 1e-9 of the tenant's currency.
    pub cost_nanos: i64,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<Arc<str>>,
    pub source: Source,
    /// How full the key's windows were when the limiter decided this call (minute, hour,
    /// day, month; per mille of each limit, 0 when unlimited or not decided here). Kept as
    /// per-bucket peaks (`metering::utilization`), not stored with the raw event.
    pub utilization: [u16; 4],
}

impl UsageEvent {
    /// An event that happened now, with a fresh UUIDv7 and every counter at zero; set the
    /// remaining fields directly.
    pub fn new(
        source: Source,
        tenant_id: TenantId,
        key_id: Option<KeyId>,
        endpoint: Arc<str>,
        method: Arc<str>,
        status_code: u16,
    ) -> Self {
        let now = Utc::now();
        Self {
            id: Uuid::now_v7(),
            occurred_at: now,
            received_at: now,
            tenant_id,
            key_id,
            endpoint,
            method,
            status_code,
            latency_us: 0,
            bytes_in: 0,
            bytes_out: 0,
            tokens_in: 0,
            tokens_out: 0,
            cost_nanos: 0,
            ip: None,
            user_agent: None,
            source,
            utilization: [0; 4],
        }
    }
}

/// A shared method name; the common ones are allocated once per process.
pub fn method(name: &str) -> Arc<str> {
    use std::sync::LazyLock;
    static COMMON: LazyLock<Vec<Arc<str>>> = LazyLock::new(|| {
        ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
            .into_iter()
            .map(Arc::from)
            .collect()
    });
    COMMON
        .iter()
        .find(|common| common.as_ref() == name)
        .cloned()
        .unwrap_or_else(|| Arc::from(name))
}

impl From<crate::entities::usage_events::Model> for UsageEvent {
    /// A stored event read back (an unknown `source` or unparsable `ip` is read as the
    /// middleware's / as none: neither takes part in aggregation).
    fn from(row: crate::entities::usage_events::Model) -> Self {
        Self {
            id: row.id,
            occurred_at: row.occurred_at,
            received_at: row.received_at,
            tenant_id: TenantId(row.tenant_id),
            key_id: row.key_id.map(KeyId),
            endpoint: Arc::from(row.endpoint),
            method: method(&row.method),
            status_code: row.status_code as u16,
            latency_us: row.latency_us,
            bytes_in: row.bytes_in,
            bytes_out: row.bytes_out,
            tokens_in: row.tokens_in,
            tokens_out: row.tokens_out,
            cost_nanos: row.cost_nanos,
            ip: row.ip.and_then(|ip| ip.parse().ok()),
            user_agent: row.user_agent.map(Arc::from),
            source: Source::parse(&row.source).unwrap_or(Source::Middleware),
            utilization: [0; 4],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Source;

    #[test]
    fn every_source_is_listed_at_its_own_index_and_parses_back() {
        for (at, source) in Source::ALL.into_iter().enumerate() {
            assert_eq!(source as usize, at);
            assert_eq!(Source::parse(source.as_str()), Some(source));
        }
    }
}
