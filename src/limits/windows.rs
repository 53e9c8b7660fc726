//! The window arithmetic every limiter shares (the Redis script mirrors it line for line).
//!
//! Minute, hour and day are sliding windows kept as `N` buckets of `span / N` each. A decision
//! sums the `N + 1` buckets that touch `[now - span, now]`, counting the oldest, partly
//! expired bucket in full: the sum is never below the true count of the window, so a limiter
//! never admits more than the limit in ANY window position. The price is under-admission of
//! at most one bucket's worth of requests (1/12 of the window) while that bucket expires.
//! The month is a calendar month (in the tenant's time zone): a fixed window that resets at
//! the boundary.

/// A sliding window: its span and bucket size in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sliding {
    pub name: &'static str,
    pub span_ms: u64,
    pub bucket_ms: u64,
}

/// Buckets per span; a decision reads one more (the partly expired oldest).
pub const BUCKETS_PER_SPAN: usize = 12;
/// Buckets a limiter keeps per window.
pub const SLOTS: usize = BUCKETS_PER_SPAN + 1;

pub const MINUTE: Sliding = Sliding::new("minute", 60_000);
pub const HOUR: Sliding = Sliding::new("hour", 3_600_000);
pub const DAY: Sliding = Sliding::new("day", 86_400_000);
pub const SLIDING: [Sliding; 3] = [MINUTE, HOUR, DAY];

impl Sliding {
    const fn new(name: &'static str, span_ms: u64) -> Self {
        Self {
            name,
            span_ms,
            bucket_ms: span_ms / BUCKETS_PER_SPAN as u64,
        }
    }

    /// The index of the bucket holding `now_ms`.
    pub fn bucket(&self, now_ms: u64) -> u64 {
        now_ms / self.bucket_ms
    }
}

/// The state of one window after a decision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowState {
    pub limit: u64,
    /// Requests counted in the window, including this one when admitted.
    pub used: u64,
    /// Seconds until `remaining` next grows (the oldest counted bucket leaves the window, or
    /// the month ends); 0 when nothing is counted.
    pub reset_secs: u64,
    /// `reset_secs` as it becomes once this call is counted.
    pub reset_if_counted_secs: u64,
    /// Seconds after which the refused request would be admitted; 0 when admitted.
    pub retry_after_secs: u64,
}

impl WindowState {
    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }

    pub fn exceeded(&self) -> bool {
        self.retry_after_secs > 0
    }

    /// `used` in per mille of `limit` (rounded down); 0 for an unlimited window.
    pub fn per_mille(&self) -> u16 {
        if self.limit == 0 || self.limit >= UNLIMITED {
            return 0;
        }
        (self.used.saturating_mul(1000) / self.limit).min(u64::from(u16::MAX)) as u16
    }
}

/// The limit standing for "no limit" in a window.
pub const UNLIMITED: u64 = u64::MAX / 4;

/// Judges one sliding window. `counts[i]` is the bucket `current - SLOTS + 1 + i` (oldest
/// first, the current bucket last). `used` in the result excludes `cost`; the caller adds it
/// when every window admits.
pub fn judge_sliding(
    w: &Sliding,
    counts: &[u64; SLOTS],
    limit: u64,
    cost: u64,
    now_ms: u64,
) -> WindowState {
    let used: u64 = counts.iter().sum();
    let next_boundary = (w.bucket(now_ms) + 1) * w.bucket_ms;
    let secs_until = |k: usize| ceil_secs(next_boundary + k as u64 * w.bucket_ms - now_ms);
    let reset_secs = counts.iter().position(|&c| c > 0).map_or(0, secs_until);
    let reset_if_counted_secs = if reset_secs > 0 {
        reset_secs
    } else {
        secs_until(SLOTS - 1)
    };
    let retry_after_secs = if used + cost <= limit {
        0
    } else if cost > limit {
        // Never admissible: say "a whole window", the most honest finite answer.
        ceil_secs(w.span_ms)
    } else {
        // After k+1 boundaries the k+1 oldest buckets have left the window.
        let mut remaining = used;
        let mut k = 0;
        while k < SLOTS && remaining + cost > limit {
            remaining -= counts[k];
            k += 1;
        }
        secs_until(k - 1)
    };
    WindowState {
        limit,
        used,
        reset_secs,
        reset_if_counted_secs,
        retry_after_secs,
    }
}

/// Judges the calendar month: `used` so far, the month ending at `end_ms`.
pub fn judge_month(used: u64, limit: u64, cost: u64, now_ms: u64, end_ms: u64) -> WindowState {
    let until_end = ceil_secs(end_ms.saturating_sub(now_ms)).max(1);
    let retry_after_secs = if used + cost <= limit { 0 } else { until_end };
    let reset_secs = if used > 0 { until_end } else { 0 };
    WindowState {
        limit,
        used,
        reset_secs,
        reset_if_counted_secs: until_end,
        retry_after_secs,
    }
}

/// Milliseconds to whole seconds, rounding up (a retry must never come early).
pub fn ceil_secs(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(newest_last: &[u64]) -> [u64; SLOTS] {
        let mut out = [0; SLOTS];
        out[SLOTS - newest_last.len()..].copy_from_slice(newest_last);
        out
    }

    #[test]
    fn admits_up_to_the_limit_and_names_when_to_retry() {
        // 12:00:07.500, 9 of 10 used in the current bucket.
        let now = 7_500;
        let state = judge_sliding(&MINUTE, &counts(&[9]), 10, 1, now);
        assert_eq!((state.used, state.retry_after_secs), (9, 0));
        let full = judge_sliding(&MINUTE, &counts(&[10]), 10, 1, now);
        // The current bucket [5 s, 10 s) leaves the window 13 boundaries later: at 70 s.
        assert_eq!(full.retry_after_secs, 63);
        assert_eq!(full.reset_secs, 63);
    }

    #[test]
    fn the_oldest_partial_bucket_counts_in_full() {
        // 10 requests at the very start of the span: 60 s later they are still counted,
        // until their bucket's end leaves the window.
        let mut c = [0; SLOTS];
        c[0] = 10;
        let at = 60_000 + 1; // bucket 12; oldest counted is bucket 0 = [0, 5 s)
        let state = judge_sliding(&MINUTE, &c, 10, 1, at);
        assert_eq!(state.used, 10);
        assert_eq!(
            state.retry_after_secs, 5,
            "bucket 0 drops at the 65 s boundary"
        );
    }

    #[test]
    fn a_cost_above_the_limit_is_refused_for_a_whole_window() {
        let state = judge_sliding(&HOUR, &[0; SLOTS], 5, 6, 0);
        assert_eq!(state.retry_after_secs, 3600);
    }

    #[test]
    fn the_month_resets_at_its_end() {
        let state = judge_month(100, 100, 1, 1_000, 3_600_500);
        assert_eq!((state.retry_after_secs, state.reset_secs), (3600, 3600));
        assert_eq!(judge_month(0, 100, 1, 0, 10_000).reset_secs, 0);
    }
}
