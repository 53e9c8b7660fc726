//! Rate-limit utilization history: how full each window of a key was when the limiter
//! decided its calls (per mille of the limit; minute, hour, day, month), kept as the peak per
//! key and minute, hour and day bucket in `usage_utilization`. A batch's pending rollup rows
//! carry their events' peaks, and the compactor adds them, taking the larger value on
//! conflict, so the order and the node events arrive from do not matter.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{UsageEvent, rollup::Granularity};

/// The key of one row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PeakKey {
    pub granularity: Granularity,
    pub bucket_start: DateTime<Utc>,
    pub tenant_id: Uuid,
    pub key_id: Uuid,
}

/// Per mille of each window's limit: minute, hour, day, month.
pub type PerMille = [u16; 4];

/// The peak utilization of every (key, bucket) among `events`; events without a key or
/// without a limiter decision are left out.
pub fn peaks<'a>(events: impl IntoIterator<Item = &'a UsageEvent>) -> BTreeMap<PeakKey, PerMille> {
    let mut out: BTreeMap<PeakKey, PerMille> = BTreeMap::new();
    for e in events {
        let Some(key) = e.key_id else { continue };
        if e.utilization == [0; 4] {
            continue;
        }
        for granularity in Granularity::ALL {
            let peak = out
                .entry(PeakKey {
                    granularity,
                    bucket_start: granularity.truncate(e.occurred_at),
                    tenant_id: e.tenant_id.0,
                    key_id: key.0,
                })
                .or_default();
            for (p, u) in peak.iter_mut().zip(e.utilization) {
                *p = (*p).max(u);
            }
        }
    }
    out
}

/// The columns of the upsert, in order.
pub const COLUMNS: [&str; 8] = [
    "granularity",
    "bucket_start",
    "tenant_id",
    "key_id",
    "minute_pm",
    "hour_pm",
    "day_pm",
    "month_pm",
];

/// What the upsert does on conflict: keep the larger value of each window; `max` is the
/// backend's two-argument maximum.
pub fn on_conflict(max: &str) -> String {
    let keep = COLUMNS[4..]
        .iter()
        .map(|c| format!("{c} = {max}(usage_utilization.{c}, excluded.{c})"))
        .collect::<Vec<_>>()
        .join(", ");
    // A row no window of which rises is left alone: no new row version, no write.
    let rises = COLUMNS[4..]
        .iter()
        .map(|c| format!("excluded.{c} > usage_utilization.{c}"))
        .collect::<Vec<_>>()
        .join(" OR ");
    format!(
        "ON CONFLICT (granularity, bucket_start, tenant_id, key_id) DO UPDATE SET {keep} \
         WHERE {rises}"
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::{
        ids::{KeyId, TenantId},
        metering::Source,
    };

    #[test]
    fn the_peak_of_each_window_is_kept_per_key_and_bucket() {
        let key = KeyId::new();
        let tenant = TenantId::new();
        let at = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 5).unwrap();
        let event = |secs: i64, utilization: PerMille| {
            let mut e = UsageEvent::new(
                Source::Middleware,
                tenant,
                Some(key),
                Arc::from("/v1/x"),
                Arc::from("GET"),
                200,
            );
            e.occurred_at = at + Duration::seconds(secs);
            e.utilization = utilization;
            e
        };
        let events = [
            event(0, [500, 10, 1, 0]),
            event(1, [200, 30, 2, 0]),
            event(70, [900, 40, 3, 0]),
            event(2, [0; 4]),
        ];
        let peaks = peaks(&events);
        let minutes: Vec<PerMille> = peaks
            .iter()
            .filter(|(k, _)| k.granularity == Granularity::Minute)
            .map(|(_, p)| *p)
            .collect();
        assert_eq!(minutes, vec![[500, 30, 2, 0], [900, 40, 3, 0]]);
        let hours: Vec<PerMille> = peaks
            .iter()
            .filter(|(k, _)| k.granularity == Granularity::Hour)
            .map(|(_, p)| *p)
            .collect();
        assert_eq!(hours, vec![[900, 40, 3, 0]]);
    }
}
