//! Rollups: usage events pre-aggregated per minute, hour and day bucket (UTC) and per
//! (tenant, key, endpoint template, method, status class). The writer appends the minute
//! buckets of the events it stores to `usage_rollup_pending` in the same transaction and the
//! compactor adds those to their buckets, so late and out-of-order events merge into their
//! bucket and a replayed event — not stored twice — is not counted twice.
//! Analytics answer from these rows, merging [`Totals`] (latency sketches included).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{UsageEvent, sketch::LatencySketch};
use crate::entities::usage_rollups;

/// The size of a rollup bucket.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    Minute,
    Hour,
    Day,
}

impl Granularity {
    pub const ALL: [Granularity; 3] = [Granularity::Minute, Granularity::Hour, Granularity::Day];

    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Minute => "minute",
            Granularity::Hour => "hour",
            Granularity::Day => "day",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }

    pub fn step(self) -> Duration {
        match self {
            Granularity::Minute => Duration::minutes(1),
            Granularity::Hour => Duration::hours(1),
            Granularity::Day => Duration::days(1),
        }
    }

    /// The start of the bucket holding `at`.
    pub fn truncate(self, at: DateTime<Utc>) -> DateTime<Utc> {
        // Cannot fail for steps of a day or less on timestamps chrono can represent.
        at.duration_trunc(self.step()).unwrap_or(at)
    }
}

/// 1–5 for 1xx–5xx (codes outside 100–599 are counted with the nearest class).
pub fn status_class(status: u16) -> i16 {
    (status / 100).clamp(1, 5) as i16
}

/// The key of one rollup row.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RollupKey {
    pub granularity: Granularity,
    pub bucket_start: DateTime<Utc>,
    pub tenant_id: Uuid,
    /// `Uuid::nil()` for events without a key.
    pub key_id: Uuid,
    pub endpoint: Arc<str>,
    pub method: Arc<str>,
    pub status_class: i16,
}

/// What a bucket (or any merge of buckets) holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    pub count: i64,
    /// Count per status code.
    pub status_codes: BTreeMap<u16, i64>,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost_nanos: i64,
    pub latency_sum_us: i64,
    pub latency_max_us: i64,
    pub latency: LatencySketch,
    /// The endpoint templates summed into a tenant-totals row ([`totals_of`]); empty on a
    /// per-endpoint row, whose key names its endpoint.
    pub endpoints: BTreeSet<Arc<str>>,
}

impl Totals {
    pub fn add_event(&mut self, e: &UsageEvent) {
        self.count += 1;
        *self.status_codes.entry(e.status_code).or_default() += 1;
        self.bytes_in += e.bytes_in;
        self.bytes_out += e.bytes_out;
        self.tokens_in += e.tokens_in;
        self.tokens_out += e.tokens_out;
        self.cost_nanos += e.cost_nanos;
        self.latency_sum_us += e.latency_us;
        self.latency_max_us = self.latency_max_us.max(e.latency_us);
        self.latency.record(e.latency_us);
    }

    pub fn merge(&mut self, other: &Totals) {
        self.count += other.count;
        for (code, n) in &other.status_codes {
            *self.status_codes.entry(*code).or_default() += n;
        }
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.tokens_in += other.tokens_in;
        self.tokens_out += other.tokens_out;
        self.cost_nanos += other.cost_nanos;
        self.latency_sum_us += other.latency_sum_us;
        self.latency_max_us = self.latency_max_us.max(other.latency_max_us);
        self.latency.merge(&other.latency);
        self.endpoints.extend(other.endpoints.iter().cloned());
    }

    /// Calls answered with a status of 400 or more.
    pub fn failed(&self) -> i64 {
        self.status_codes.range(400..).map(|(_, n)| n).sum()
    }

    /// The stored form of `status_codes`: `{"200": 17}`.
    pub fn status_codes_json(&self) -> serde_json::Value {
        status_codes_json(&self.status_codes)
    }

    /// The totals of one stored row.
    pub fn from_row(row: &usage_rollups::Model) -> Result<Self, RollupError> {
        let mut totals = Self::default();
        totals.add_row(row)?;
        Ok(totals)
    }

    /// Adds one stored row, straight from its stored form (its sketch is merged from its
    /// bytes, its status codes from their JSON).
    pub fn add_row(&mut self, row: &usage_rollups::Model) -> Result<(), RollupError> {
        self.latency
            .merge_encoded(&row.latency_sketch)
            .map_err(|err| RollupError(err.to_string()))?;
        for (code, n) in status_code_entries(&row.status_codes)? {
            *self.status_codes.entry(code?).or_default() += n;
        }
        self.count += row.count;
        self.bytes_in += row.bytes_in;
        self.bytes_out += row.bytes_out;
        self.tokens_in += row.tokens_in;
        self.tokens_out += row.tokens_out;
        self.cost_nanos += row.cost_nanos;
        self.latency_sum_us += row.latency_sum_us;
        self.latency_max_us = self.latency_max_us.max(row.latency_max_us);
        Ok(())
    }

    /// The stored form of `endpoints`: `{"/v1/orders/{id}": 1}` — an object, so that the
    /// databases unite two sets with their JSON object merge.
    pub fn endpoints_json(&self) -> serde_json::Value {
        self.endpoints
            .iter()
            .map(|e| (e.to_string(), serde_json::Value::from(1)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

/// The endpoint templates of a stored `endpoints` object (`usage_rollup_totals`).
pub fn parse_endpoints(
    json: &serde_json::Value,
) -> Result<impl Iterator<Item = &str>, RollupError> {
    let object = json
        .as_object()
        .ok_or_else(|| RollupError("endpoints is not an object".into()))?;
    Ok(object.keys().map(String::as_str))
}

/// Counts per status code in their stored form, `{"200": 17}`.
pub fn status_codes_json(codes: &BTreeMap<u16, i64>) -> serde_json::Value {
    codes
        .iter()
        .map(|(code, n)| (code.to_string(), serde_json::Value::from(*n)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Reads a stored `{"200": 17}` object.
pub fn parse_status_codes(json: &serde_json::Value) -> Result<BTreeMap<u16, i64>, RollupError> {
    status_code_entries(json)?
        .map(|(code, n)| Ok((code?, n)))
        .collect()
}

/// The (code, count) entries of a stored `{"200": 17}` object.
fn status_code_entries(
    json: &serde_json::Value,
) -> Result<impl Iterator<Item = (Result<u16, RollupError>, i64)>, RollupError> {
    let object = json
        .as_object()
        .ok_or_else(|| RollupError("status_codes is not an object".into()))?;
    Ok(object
        .iter()
        .map(|(code, n)| match (code.parse::<u16>(), n.as_i64()) {
            (Ok(code), Some(n)) => (Ok(code), n),
            _ => (
                Err(RollupError(format!("bad status_codes entry {code}: {n}"))),
                0,
            ),
        }))
}

#[derive(Debug, thiserror::Error)]
#[error("corrupt rollup row: {0}")]
pub struct RollupError(String);

/// The three buckets (minute, hour, day) of every event, added up.
pub fn aggregate<'a>(
    events: impl IntoIterator<Item = &'a UsageEvent>,
) -> BTreeMap<RollupKey, Totals> {
    let mut rollups: BTreeMap<RollupKey, Totals> = BTreeMap::new();
    for e in events {
        let class = status_class(e.status_code);
        let key_id = e.key_id.map_or(Uuid::nil(), |k| k.0);
        for granularity in Granularity::ALL {
            let key = RollupKey {
                granularity,
                bucket_start: granularity.truncate(e.occurred_at),
                tenant_id: e.tenant_id.0,
                key_id,
                endpoint: e.endpoint.clone(),
                method: e.method.clone(),
                status_class: class,
            };
            rollups.entry(key).or_default().add_event(e);
        }
    }
    rollups
}

/// The `endpoint` of a tenant-totals row (`usage_rollup_totals`, `key_id` nil).
pub const ALL_ENDPOINTS: &str = "*";

/// The tenant totals of rollups: summed over keys and endpoints, per (granularity, bucket,
/// tenant, method, status class), each with the set of endpoints summed into it.
pub fn totals_of(detail: &BTreeMap<RollupKey, Totals>) -> BTreeMap<RollupKey, Totals> {
    let all: Arc<str> = Arc::from(ALL_ENDPOINTS);
    let mut out: BTreeMap<RollupKey, Totals> = BTreeMap::new();
    for (key, totals) in detail {
        let total = RollupKey {
            key_id: Uuid::nil(),
            endpoint: all.clone(),
            ..key.clone()
        };
        let total = out.entry(total).or_default();
        total.merge(totals);
        total.endpoints.insert(key.endpoint.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn buckets_start_on_utc_boundaries() {
        let at =
            Utc.with_ymd_and_hms(2026, 11, 23, 10, 59, 58).unwrap() + Duration::milliseconds(999);
        assert_eq!(
            Granularity::Minute.truncate(at),
            Utc.with_ymd_and_hms(2026, 11, 23, 10, 59, 0).unwrap()
        );
        assert_eq!(
            Granularity::Hour.truncate(at),
            Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap()
        );
        assert_eq!(
            Granularity::Day.truncate(at),
            Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap()
        );
    }

    #[test]
    fn status_classes() {
        assert_eq!(
            [100, 204, 304, 429, 503, 99, 999].map(status_class),
            [1, 2, 3, 4, 5, 1, 5]
        );
    }
}
