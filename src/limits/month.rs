//! Calendar months in a tenant's time zone, as millisecond spans and `YYYYMM` ids.

use std::cell::RefCell;

use chrono::{DateTime, Datelike, LocalResult, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonthSpan {
    /// `YYYYMM`, e.g. 202611.
    pub id: u32,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// The month containing `now` in `tz`.
pub fn month_of(now: DateTime<Utc>, tz: Tz) -> MonthSpan {
    let local = now.with_timezone(&tz);
    span(local.year(), local.month(), tz)
}

/// The month containing `now` in `tz` and the one after it, from a small per-thread cache:
/// on the hot path a lookup instead of four time-zone conversions per call.
pub fn current_and_next(now: DateTime<Utc>, tz: Tz) -> (MonthSpan, MonthSpan) {
    const ZONES: usize = 16;
    thread_local! {
        static RECENT: RefCell<Vec<(Tz, MonthSpan, MonthSpan)>> = const { RefCell::new(Vec::new()) };
    }
    let now_ms = now.timestamp_millis().max(0) as u64;
    RECENT.with_borrow_mut(|recent| {
        let hit = recent.iter().find(|(zone, month, _)| {
            *zone == tz && (month.start_ms..month.end_ms).contains(&now_ms)
        });
        if let Some(&(_, month, next)) = hit {
            return (month, next);
        }
        let month = month_of(now, tz);
        let next = following(&month, tz);
        recent.retain(|(zone, ..)| *zone != tz);
        if recent.len() >= ZONES {
            recent.remove(0);
        }
        recent.push((tz, month, next));
        (month, next)
    })
}

/// The month after `month`.
pub fn following(month: &MonthSpan, tz: Tz) -> MonthSpan {
    let (year, m) = (month.id / 100, month.id % 100);
    let (year, m) = if m == 12 {
        (year + 1, 1)
    } else {
        (year, m + 1)
    };
    span(year as i32, m, tz)
}

fn span(year: i32, month: u32, tz: Tz) -> MonthSpan {
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    MonthSpan {
        id: year as u32 * 100 + month,
        start_ms: midnight_ms(year, month, tz),
        end_ms: midnight_ms(next_year, next_month, tz),
    }
}

/// Epoch milliseconds of local midnight on the 1st; a midnight skipped by a DST change
/// resolves to the first instant that exists.
fn midnight_ms(year: i32, month: u32, tz: Tz) -> u64 {
    let date = NaiveDate::from_ymd_opt(year, month, 1).expect("valid first of month");
    let mut naive = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    let instant = loop {
        match tz.from_local_datetime(&naive) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => break t,
            LocalResult::None => naive += chrono::Duration::minutes(30),
        }
    };
    instant.timestamp_millis().max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_follow_the_tenant_time_zone() {
        let now = DateTime::parse_from_rfc3339("2026-11-30T23:30:00Z")
            .unwrap()
            .to_utc();
        let utc = month_of(now, Tz::UTC);
        assert_eq!(utc.id, 202611);
        let sydney = month_of(now, Tz::Australia__Sydney);
        assert_eq!(sydney.id, 202612, "already December in Sydney");
        let next = following(&utc, Tz::UTC);
        assert_eq!((next.id, next.start_ms), (202612, utc.end_ms));
        assert_eq!(following(&month_of(now, Tz::UTC), Tz::UTC).id, 202612);
        let january = following(&next, Tz::UTC);
        assert_eq!(january.id, 202701);
    }

    #[test]
    fn the_cached_months_are_the_computed_ones_across_a_boundary() {
        let start = DateTime::parse_from_rfc3339("2026-11-30T11:00:00Z")
            .unwrap()
            .to_utc();
        for zone in [Tz::UTC, Tz::Australia__Sydney, Tz::America__New_York] {
            for hour in 0..30 {
                let now = start + chrono::Duration::minutes(50 * hour);
                let month = month_of(now, zone);
                let expected = (month, following(&month, zone));
                assert_eq!(current_and_next(now, zone), expected, "{zone} at {now}");
            }
        }
    }
}
