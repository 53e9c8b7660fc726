//! The Redis limiter: one Lua script (`decide.lua`), one round trip, Redis's clock, one hash
//! per API key (hash-tagged by its id, so Redis Cluster works) always written with a TTL. When Redis cannot answer, the
//! configured policy applies: fall back to the in-process limiter (each node enforcing its
//! share) or refuse with 503. A failure opens a short circuit so calls don't queue behind
//! timeouts; the next call after it closes tries Redis again (recovery is automatic).

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use redis::Script;

use super::{Decision, Request, memory::MemoryLimiter, windows::WindowState};
use crate::{
    error::{Error, Result},
    kv::Redis,
};

/// How long to skip Redis after it failed before trying again.
const CIRCUIT_OPEN_MS: u64 = 250;
/// How long a decision may wait for Redis before the failure policy applies.
const DECISION_TIMEOUT: Duration = Duration::from_millis(500);

pub struct RedisLimiter {
    redis: Redis,
    script: Script,
    /// `Some` = fail open to this; `None` = fail closed.
    fallback: Option<MemoryLimiter>,
    circuit_open_until_ms: AtomicU64,
}

impl RedisLimiter {
    pub fn new(redis: Redis, fallback: Option<MemoryLimiter>) -> Self {
        Self {
            redis,
            script: Script::new(include_str!("decide.lua")),
            fallback,
            circuit_open_until_ms: AtomicU64::new(0),
        }
    }

    pub async fn decide(&self, req: &Request, now_ms: u64) -> Result<Decision> {
        if now_ms >= self.circuit_open_until_ms.load(Ordering::Relaxed) {
            match tokio::time::timeout(DECISION_TIMEOUT, self.decide_in_redis(req)).await {
                Ok(Ok(decision)) => return Ok(decision),
                Ok(Err(err)) => self.open_circuit(now_ms, &err.to_string()),
                Err(_) => self.open_circuit(now_ms, "timed out"),
            }
        }
        metrics::counter!("tollgate_limiter_fallback_decisions_total").increment(1);
        match &self.fallback {
            Some(local) => Ok(local.decide(req, now_ms)),
            None => Err(Error::unavailable(
                "Rate limiting is unavailable; try again shortly.",
                anyhow::anyhow!("Redis limiter unavailable (fail_closed)"),
            )),
        }
    }

    fn open_circuit(&self, now_ms: u64, why: &str) {
        let previous = self
            .circuit_open_until_ms
            .swap(now_ms + CIRCUIT_OPEN_MS, Ordering::Relaxed);
        // Log once per outage, not per call.
        if previous + 2 * CIRCUIT_OPEN_MS < now_ms {
            let policy = if self.fallback.is_some() {
                "fail_open"
            } else {
                "fail_closed"
            };
            tracing::warn!(
                error = why,
                policy,
                "Redis limiter unavailable; applying the failure policy"
            );
        }
        metrics::counter!("tollgate_limiter_redis_errors_total").increment(1);
    }

    /// Decides at `now_ms` instead of by Redis's clock: for tests that replay a sequence
    /// against both limiters. Production calls always use Redis's clock.
    pub async fn decide_at(&self, req: &Request, now_ms: u64) -> redis::RedisResult<Decision> {
        self.invoke(req, Some(now_ms)).await
    }

    async fn decide_in_redis(&self, req: &Request) -> redis::RedisResult<Decision> {
        self.invoke(req, None).await
    }

    async fn invoke(&self, req: &Request, now_ms: Option<u64>) -> redis::RedisResult<Decision> {
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(self.redis.key("rl", &req.key.simple().to_string()))
            .arg(req.quota.minute)
            .arg(req.quota.hour)
            .arg(req.quota.day)
            .arg(req.quota.month.map_or(-1, |m| m as i64))
            .arg(req.cost)
            .arg(req.month.id)
            .arg(req.month.end_ms)
            .arg(req.next_month.id)
            .arg(req.next_month.end_ms);
        if let Some(now_ms) = now_ms {
            invocation.arg(now_ms);
        }
        let mut conn = self.redis.conn();
        let reply: Vec<i64> = invocation.invoke_async(&mut conn).await?;
        Ok(parse(&reply, req))
    }
}

/// `allowed, (used, reset, retry, reset if counted) × 4, has_month` -> a [`Decision`].
fn parse(reply: &[i64], req: &Request) -> Decision {
    let at = |i: usize| reply.get(i).copied().unwrap_or_default().max(0) as u64;
    let window = |n: usize, limit: u64| WindowState {
        limit,
        used: at(1 + 4 * n),
        reset_secs: at(2 + 4 * n),
        retry_after_secs: at(3 + 4 * n),
        reset_if_counted_secs: at(4 + 4 * n),
    };
    let q = &req.quota;
    let sliding = [window(0, q.minute), window(1, q.hour), window(2, q.day)];
    let month = match (at(17), q.month) {
        (1, Some(limit)) => Some(window(3, limit)),
        _ => None,
    };
    Decision::new(sliding, month).counted(req.cost)
}
