//! Rate limits and quotas: one decision over the minute, hour and day sliding windows and the
//! calendar-month quota, atomic (all windows admit and count, or none counts). Two
//! implementations with the same semantics: in-process ([`memory`]) and Redis ([`redis`],
//! one Lua script, Redis's clock), chosen at start-up; Redis failures fall back to the
//! in-process limiter or refuse, as configured.

use chrono::{DateTime, Utc};
use uuid::Uuid;

mod lease;
pub mod memory;
pub mod month;
pub mod redis;
pub mod windows;

use memory::MemoryLimiter;
use redis::RedisLimiter;

use crate::{
    config::{LimitSettings, RedisFailure},
    error::Result,
};

use month::MonthSpan;
use windows::WindowState;

/// The limits of one key: requests per window; `month: None` = no monthly quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub minute: u64,
    pub hour: u64,
    pub day: u64,
    pub month: Option<u64>,
}

impl Quota {
    /// From a key's effective limits (minute, hour and day are always set there; a missing
    /// one is treated as no limit at all).
    pub fn from_limits(limits: &crate::keys::limits::Limits) -> Self {
        let window = |v: Option<i64>| v.map_or(windows::UNLIMITED, |v| v.max(0) as u64);
        Self {
            minute: window(limits.per_minute),
            hour: window(limits.per_hour),
            day: window(limits.per_day),
            month: limits.per_month.map(|v| v.max(0) as u64),
        }
    }
}

/// One call to decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub key: Uuid,
    pub quota: Quota,
    /// Units this call consumes (1 for a request).
    pub cost: u64,
    /// The current calendar month in the tenant's time zone (from the node's clock; the Redis
    /// limiter moves to the next month by Redis's clock when the boundary has passed).
    pub month: MonthSpan,
    /// The month after it.
    pub next_month: MonthSpan,
}

/// The outcome: whether admitted, and every window's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Minute, hour, day.
    pub sliding: [WindowState; 3],
    pub month: Option<WindowState>,
}

/// Window names in header and problem order.
pub const WINDOW_NAMES: [&str; 4] = ["minute", "hour", "day", "month"];

impl Decision {
    fn new(sliding: [WindowState; 3], month: Option<WindowState>) -> Self {
        let allowed = sliding.iter().chain(month.iter()).all(|w| !w.exceeded());
        Self {
            allowed,
            sliding,
            month,
        }
    }

    /// When admitted, counts the call in every window's `used`.
    fn counted(mut self, cost: u64) -> Self {
        if self.allowed {
            for w in self.sliding.iter_mut().chain(self.month.iter_mut()) {
                w.used += cost;
                w.reset_secs = w.reset_if_counted_secs;
            }
        }
        self
    }

    /// Every window with its name, minute first; the month only when the key has a quota.
    pub fn windows(&self) -> impl Iterator<Item = (&'static str, &WindowState)> {
        WINDOW_NAMES
            .into_iter()
            .zip(self.sliding.iter().chain(self.month.iter()))
    }

    /// How full each window is (minute, hour, day, month), in per mille of its limit: what
    /// the call's usage event carries for the utilization history. 0 for a window without a
    /// limit (or no monthly quota).
    pub fn utilization(&self) -> [u16; 4] {
        let mut out = [0; 4];
        for (slot, w) in out
            .iter_mut()
            .zip(self.sliding.iter().chain(self.month.iter()))
        {
            *slot = w.per_mille();
        }
        out
    }

    /// The window to name in a refusal (the one that blocks longest) and its retry delay.
    pub fn blocking(&self) -> Option<(&'static str, u64)> {
        self.windows()
            .filter(|(_, w)| w.exceeded())
            .max_by_key(|(_, w)| w.retry_after_secs)
            .map(|(name, w)| (name, w.retry_after_secs))
    }
}

/// The limiter chosen at start-up.
pub enum Limiter {
    Memory(MemoryLimiter),
    Redis(RedisLimiter),
}

impl Limiter {
    /// Redis-backed when Redis is configured (falling back as `limits.redis_failure` says),
    /// else in-process.
    pub fn from_settings(redis: Option<&crate::kv::Redis>, settings: &LimitSettings) -> Self {
        match redis {
            None => Limiter::Memory(MemoryLimiter::new(1)),
            Some(redis) => {
                let fallback = (settings.redis_failure == RedisFailure::FailOpen)
                    .then(|| MemoryLimiter::new(settings.fail_open_share));
                Limiter::Redis(RedisLimiter::new(redis.clone(), fallback))
            }
        }
    }

    /// Decides `req` at `now` (the Redis limiter uses Redis's clock instead; `now` then only
    /// serves the fallback). Errors only under `fail_closed` with Redis down.
    pub async fn decide(&self, req: &Request, now: DateTime<Utc>) -> Result<Decision> {
        let now_ms = now.timestamp_millis().max(0) as u64;
        match self {
            Limiter::Memory(local) => Ok(local.decide(req, now_ms)),
            Limiter::Redis(shared) => shared.decide(req, now_ms).await,
        }
    }

    /// Appends the Redis limiter's running totals to a Prometheus text exposition: the hot
    /// path counts them in plain atomics of this limiter (a registry counter would cost every
    /// call a lookup), so they are rendered from there, exactly this application's.
    /// Script calls against the decisions show how much coalescing saves; leased decisions
    /// and repeated refusals are the calls decided in-process without a round trip.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let Limiter::Redis(shared) = self else {
            return;
        };
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        for (name, help, total) in [
            (
                "tollgate_limiter_script_calls_total",
                "Script calls this node made to Redis (each decides one or more calls).",
                shared.script_calls(),
            ),
            (
                "tollgate_limiter_leased_decisions_total",
                "Calls admitted from a lease, without a round trip to Redis.",
                shared.leased_decisions(),
            ),
            (
                "tollgate_limiter_repeated_refusals_total",
                "Refusals repeated in-process within the second Redis refused the key in.",
                shared.repeated_refusals(),
            ),
        ] {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {total}\n\n"
            );
        }
    }
}
