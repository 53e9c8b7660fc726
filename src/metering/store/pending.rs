//! Rollups waiting to be added (`usage_rollup_pending`): what a batch appends in its events'
//! transaction, and how the compactor folds the rows it takes into the rollup tables' rows,
//! the keys' utilization peaks and their counters, the same way on both backends.
//!
//! A pending row is a batch's minute bucket of one (tenant, key, endpoint, method, status
//! class), with the latest time of its events and their peak utilization; its hour and day
//! buckets follow from its minute, so one row stands for the three rollup rows, three peak
//! rows and the key-counter update that the batch used to write itself.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sqlx::{self, ColumnIndex, Decode, Type};
use uuid::Uuid;

use super::rollups::Deltas;
use crate::metering::{
    UsageEvent,
    rollup::{self, Granularity, RollupKey, Totals},
    sketch::LatencySketch,
    utilization::{self, PeakKey, PerMille},
};

/// One minute bucket of a batch, not yet in the rollup tables.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct PendingRow {
    /// Its minute bucket.
    pub key: RollupKey,
    pub totals: Totals,
    /// The latest `occurred_at` of its events.
    pub last_at: DateTime<Utc>,
    /// The peak utilization of its events' windows ([`crate::metering::utilization`]).
    pub peaks: PerMille,
}

/// A pending row as taken by the compactor: its `seq`, and the row.
pub(super) type Taken = (i64, PendingRow);

/// The columns written, in order (all but `seq`).
pub(super) const COLUMNS: [&str; 21] = [
    "bucket_start",
    "tenant_id",
    "key_id",
    "endpoint",
    "method",
    "status_class",
    "count",
    "status_codes",
    "bytes_in",
    "bytes_out",
    "tokens_in",
    "tokens_out",
    "cost_nanos",
    "latency_sum_us",
    "latency_max_us",
    "latency_sketch",
    "last_at",
    "minute_pm",
    "hour_pm",
    "day_pm",
    "month_pm",
];

/// Where the compactor is in its pass over the pending rows, in `(key_id, seq)` order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    key_id: Uuid,
    seq: i64,
}

impl Cursor {
    pub(super) fn after(&self) -> (Uuid, i64) {
        (self.key_id, self.seq)
    }

    /// Moves past `taken` (in cursor order); back to the start once a take came back short
    /// of `most`, the end of a pass.
    pub(super) fn advance(&mut self, taken: &[Taken], most: usize) {
        *self = match taken.last() {
            Some((seq, row)) if taken.len() >= most => Cursor {
                key_id: row.key.key_id,
                seq: *seq,
            },
            _ => Cursor::default(),
        };
    }
}

/// What a compactor does with pending rows another transaction holds (PostgreSQL; SQLite has
/// one writer at a time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Locked {
    /// Leave them to it: the running compactors of several nodes share the work.
    Skip,
    /// Wait for it to commit: [`super::compact_all`] returns only once nothing is pending.
    Wait,
}

/// The minute buckets of `events` (the batch's stored ones).
pub(super) fn of<'a>(events: impl IntoIterator<Item = &'a UsageEvent>) -> Vec<PendingRow> {
    // The key once (as the map's), and rows built from the map: a batch over thousands of
    // distinct keys holds one entry per bucket here while the events are still held too.
    let mut rows: BTreeMap<RollupKey, (Totals, DateTime<Utc>, PerMille)> = BTreeMap::new();
    for e in events {
        let key = RollupKey {
            granularity: Granularity::Minute,
            bucket_start: Granularity::Minute.truncate(e.occurred_at),
            tenant_id: e.tenant_id.0,
            key_id: e.key_id.map_or(Uuid::nil(), |k| k.0),
            endpoint: e.endpoint.clone(),
            method: e.method.clone(),
            status_class: rollup::status_class(e.status_code),
        };
        let (totals, last_at, peaks) = rows
            .entry(key)
            .or_insert_with(|| (Totals::default(), e.occurred_at, [0; 4]));
        totals.add_event(e);
        *last_at = (*last_at).max(e.occurred_at);
        if e.key_id.is_some() {
            for (p, u) in peaks.iter_mut().zip(e.utilization) {
                *p = (*p).max(u);
            }
        }
    }
    rows.into_iter()
        .map(|(key, (totals, last_at, peaks))| PendingRow {
            key,
            totals,
            last_at,
            peaks,
        })
        .collect()
}

/// Per key: calls and the latest time, in key order (as the keys' counters take them).
pub(super) type KeyTotals = Vec<(Uuid, (i64, DateTime<Utc>))>;

/// What `rows` add: their minute, hour and day buckets with the tenant totals, their keys'
/// peaks per bucket, and their keys' counters.
pub(super) fn fold<'a>(rows: impl IntoIterator<Item = &'a PendingRow>) -> (Deltas, KeyTotals) {
    let mut detail: BTreeMap<RollupKey, Totals> = BTreeMap::new();
    let mut peaks: BTreeMap<PeakKey, PerMille> = BTreeMap::new();
    let mut keys: BTreeMap<Uuid, (i64, DateTime<Utc>)> = BTreeMap::new();
    for row in rows {
        let keyed = !row.key.key_id.is_nil();
        for granularity in Granularity::ALL {
            let bucket_start = granularity.truncate(row.key.bucket_start);
            let key = RollupKey {
                granularity,
                bucket_start,
                ..row.key.clone()
            };
            detail.entry(key).or_default().merge(&row.totals);
            if keyed && row.peaks != [0; 4] {
                let peak = peaks
                    .entry(PeakKey {
                        granularity,
                        bucket_start,
                        tenant_id: row.key.tenant_id,
                        key_id: row.key.key_id,
                    })
                    .or_default();
                for (p, u) in peak.iter_mut().zip(row.peaks) {
                    *p = (*p).max(u);
                }
            }
        }
        if keyed {
            let key = keys.entry(row.key.key_id).or_insert((0, row.last_at));
            key.0 += row.totals.count;
            key.1 = key.1.max(row.last_at);
        }
    }
    (
        Deltas::new(detail, peaks.into_iter().collect()),
        keys.into_iter().collect(),
    )
}

/// A pending row as read back (both backends): `seq` first, then [`COLUMNS`] by name.
pub(super) fn read<'r, R>(row: &'r R) -> Result<Taken, sqlx::Error>
where
    R: sqlx::Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
    Uuid: Decode<'r, R::Database> + Type<R::Database>,
    i16: Decode<'r, R::Database> + Type<R::Database>,
    i32: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    let corrupt = |detail: String| sqlx::Error::Protocol(format!("usage_rollup_pending: {detail}"));
    let codes: String = row.try_get("status_codes")?;
    let codes = serde_json::from_str(&codes).map_err(|err| corrupt(err.to_string()))?;
    let sketch: Vec<u8> = row.try_get("latency_sketch")?;
    let latency = LatencySketch::decode(&sketch).map_err(|err| corrupt(err.to_string()))?;
    let endpoint: String = row.try_get("endpoint")?;
    let method: String = row.try_get("method")?;
    let mut peaks: PerMille = [0; 4];
    for (p, column) in peaks.iter_mut().zip(&utilization::COLUMNS[4..]) {
        let value: i32 = row.try_get(*column)?;
        *p = u16::try_from(value).map_err(|err| corrupt(format!("{column}: {err}")))?;
    }
    let key = RollupKey {
        granularity: Granularity::Minute,
        bucket_start: row.try_get("bucket_start")?,
        tenant_id: row.try_get("tenant_id")?,
        key_id: row.try_get("key_id")?,
        endpoint: endpoint.into(),
        method: method.into(),
        status_class: row.try_get("status_class")?,
    };
    let totals = Totals {
        count: row.try_get("count")?,
        status_codes: rollup::parse_status_codes(&codes).map_err(|err| corrupt(err.to_string()))?,
        bytes_in: row.try_get("bytes_in")?,
        bytes_out: row.try_get("bytes_out")?,
        tokens_in: row.try_get("tokens_in")?,
        tokens_out: row.try_get("tokens_out")?,
        cost_nanos: row.try_get("cost_nanos")?,
        latency_sum_us: row.try_get("latency_sum_us")?,
        latency_max_us: row.try_get("latency_max_us")?,
        latency,
        endpoints: Default::default(),
    };
    let pending = PendingRow {
        key,
        totals,
        last_at: row.try_get("last_at")?,
        peaks,
    };
    Ok((row.try_get("seq")?, pending))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::{
        ids::{KeyId, TenantId},
        metering::{Source, utilization},
    };

    fn event(
        tenant: TenantId,
        key: Option<KeyId>,
        at: DateTime<Utc>,
        status: u16,
        latency_us: i64,
        utilization: PerMille,
    ) -> UsageEvent {
        let mut e = UsageEvent::new(
            Source::Middleware,
            tenant,
            key,
            Arc::from("/v1/x"),
            Arc::from("GET"),
            status,
        );
        e.occurred_at = at;
        e.latency_us = latency_us;
        e.bytes_in = 10;
        e.cost_nanos = 7;
        e.utilization = utilization;
        e
    }

    /// Events spread over two keys, a keyless call, two hours and two status classes, cut
    /// into batches whose pending rows are folded together: the result is what the events
    /// added up at once give (`rollup::aggregate`, `utilization::peaks`, per-key counts).
    #[test]
    fn folding_the_pending_rows_of_many_batches_adds_up_to_their_events() {
        let tenant = TenantId::new();
        let keys = [KeyId::new(), KeyId::new()];
        let start = Utc.with_ymd_and_hms(2026, 11, 25, 9, 58, 3).unwrap();
        let events: Vec<UsageEvent> = (0..60)
            .map(|i| {
                let key = (i % 7 != 0).then_some(keys[i % 2]);
                let status = if i % 5 == 0 { 429 } else { 200 };
                let utilization = [(i * 13 % 1000) as u16, (i * 7 % 1000) as u16, 3, 0];
                let at = start + Duration::seconds(i as i64 * 9);
                event(tenant, key, at, status, 100 + i as i64 * 37, utilization)
            })
            .collect();
        let pending: Vec<PendingRow> = events.chunks(7).flat_map(of).collect();
        let (deltas, key_totals) = fold(&pending);

        let detail = rollup::aggregate(&events);
        let expected = Deltas::new(detail, utilization::peaks(&events).into_iter().collect());
        assert_eq!(deltas.detail.rows, expected.detail.rows);
        assert_eq!(deltas.totals.rows, expected.totals.rows);
        assert_eq!(deltas.peaks, expected.peaks);
        let granularities: Vec<_> = deltas
            .detail
            .rows
            .iter()
            .map(|(k, _)| k.granularity)
            .collect();
        assert!(
            granularities.contains(&Granularity::Hour) && granularities.contains(&Granularity::Day)
        );

        let mut per_key: BTreeMap<Uuid, (i64, DateTime<Utc>)> = BTreeMap::new();
        for e in &events {
            if let Some(key) = e.key_id {
                let entry = per_key.entry(key.0).or_insert((0, e.occurred_at));
                entry.0 += 1;
                entry.1 = entry.1.max(e.occurred_at);
            }
        }
        assert_eq!(key_totals, per_key.into_iter().collect::<KeyTotals>());
        assert_eq!(key_totals.iter().map(|(_, (n, _))| n).sum::<i64>(), 51);
    }

    #[test]
    fn a_pass_moves_on_after_a_full_take_and_starts_over_after_a_short_one() {
        let tenant = TenantId::new();
        let at = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
        let key = KeyId::new();
        let row = of([&event(tenant, Some(key), at, 200, 5, [0; 4])]).remove(0);
        let taken = vec![(3, row.clone()), (9, row)];
        let mut cursor = Cursor::default();
        cursor.advance(&taken, 2);
        assert_eq!(cursor.after(), (key.0, 9));
        cursor.advance(&taken, 3);
        assert_eq!(cursor, Cursor::default());
        cursor.advance(&[], 3);
        assert_eq!(cursor.after(), (Uuid::nil(), 0));
    }
}
