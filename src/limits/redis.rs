//! The Redis limiter: one Lua script (`decide.lua`) on Redis's clock, one string per API key
//! (hash-tagged by its id, so Redis Cluster works) always written with a TTL.
//!
//! Concurrent calls for the same key are coalesced: a dispatcher task keeps at most one
//! script call in flight per key, and the calls that arrive meanwhile go together in the
//! next one, decided in arrival order inside the script exactly as if they had come one by
//! one. Under load the cost per call falls to a fraction of a round trip; an idle key still
//! gets its answer in one round trip. Different keys' calls are pipelined on the one
//! multiplexed connection. The dispatcher runs on the runtime that built the limiter (the
//! main one), so the connection and its reconnects never live on an HTTP worker's runtime.
//!
//! A key hot enough that its calls queue gets a lease ([`super::lease`]): units counted in
//! Redis ahead, spent by this node's calls in-process until its minute bucket ends, refilled
//! in the background. Its calls then take no round trip at all. A refusal is repeated
//! in-process to the same calls for the rest of the second it was decided in.
//!
//! When Redis cannot answer, the configured policy applies: fall back to the in-process
//! limiter (each node enforcing its share) or refuse with 503. A failure (of a call's script
//! call or of a lease's refill) opens a circuit and forfeits every lease the node holds:
//! while the circuit is open the policy decides every call at once, leased or not, and
//! `fail_closed` means 503 for all of them. No call waits on a Redis that is down: a watcher
//! task `PING`s Redis every 100 ms while the circuit is open and closes it when Redis answers
//! (recovery is automatic, within a probe of Redis's return); it also forfeits the leases the
//! moment a pub/sub subscription to Redis drops.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{StreamExt as _, future::Either, stream::FuturesUnordered};
use redis::Script;
use tokio::sync::{Notify, mpsc, oneshot};
use uuid::Uuid;

use super::{
    Decision, Request,
    lease::{Ask, Grant, Leases},
    memory::MemoryLimiter,
    windows::WindowState,
};
use crate::{
    error::{Error, Result},
    kv::Redis,
};

/// How often an open circuit's probe asks Redis whether it is back, and how long it waits.
const PROBE_EVERY: Duration = Duration::from_millis(100);
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);
/// How long a decision may wait for Redis before the failure policy applies.
const DECISION_TIMEOUT: Duration = Duration::from_millis(500);
/// Calls decided by one script call at most.
const MAX_BATCH: usize = 256;
/// Calls waiting for the dispatcher at most; beyond it the failure policy applies.
const QUEUE_CAPACITY: usize = 64 * 1024;
/// Integers the script returns per call (as little-endian doubles in one bulk string).
const REPLY_LEN: usize = 18;
/// Integers it appends when a lease was asked for.
const GRANT_LEN: usize = 11;

/// Why Redis could not decide.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Unavailable {
    #[error("{0}")]
    Redis(Arc<redis::RedisError>),
    #[error("timed out")]
    Timeout,
    #[error("too many decisions waiting for Redis")]
    Overloaded,
    #[error("the limiter's dispatcher has stopped")]
    Stopped,
}

type Reply = std::result::Result<Decision, Unavailable>;

pub struct RedisLimiter {
    queue: mpsc::Sender<Pending>,
    /// `Some` = fail open to this; `None` = fail closed.
    fallback: Option<MemoryLimiter>,
    circuit: Arc<Circuit>,
    /// Script calls made so far (each decides one batch).
    script_calls: Arc<AtomicU64>,
    leases: Arc<Leases>,
}

/// Whether Redis is being skipped after a failure; opened by the calls and the dispatcher,
/// closed by [`watch`] once Redis answers again.
struct Circuit {
    open: AtomicBool,
    policy: &'static str,
    leases: Arc<Leases>,
    /// Wakes [`watch`] when the circuit opens (and when the circuit is dropped).
    wake: Arc<Notify>,
}

impl Circuit {
    fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// Redis failed: skip it until the probe finds it back, and forfeit every lease so the
    /// failure policy decides the calls they would have admitted.
    fn open(&self, why: &str) {
        self.leases.forfeit_all();
        metrics::counter!("tollgate_limiter_redis_errors_total").increment(1);
        // Logged once per outage, not per call.
        if !self.open.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                error = why,
                policy = self.policy,
                "Redis limiter unavailable; applying the failure policy"
            );
            self.wake.notify_one();
        }
    }
}

impl Drop for Circuit {
    fn drop(&mut self) {
        // `watch` finds the circuit gone and stops.
        self.wake.notify_one();
    }
}

/// Watches Redis for the limiter, on the runtime that built it, and stops with it:
/// - while `circuit` is open, `PING`s Redis every [`PROBE_EVERY`] on the limiter's own
///   connection and closes the circuit when it answers;
/// - when a pub/sub subscription to Redis is lost ([`Redis::losses`]), Redis may be gone:
///   forfeits the leases, so the next calls ask Redis itself (and meet the failure policy if
///   it is gone) instead of being admitted from units nobody can confirm. A false alarm only
///   sends a few calls to the exact path.
async fn watch(circuit: std::sync::Weak<Circuit>, wake: Arc<Notify>, redis: Redis) {
    let mut losses = redis.losses();
    loop {
        tokio::select! {
            () = wake.notified() => {}
            Ok(()) = losses.changed() => {
                let Some(circuit) = circuit.upgrade() else {
                    return;
                };
                circuit.leases.forfeit_all();
                continue;
            }
        }
        loop {
            match circuit.upgrade() {
                Some(circuit) if circuit.is_open() => {}
                Some(_) => break,
                None => return,
            }
            tokio::time::sleep(PROBE_EVERY).await;
            if let Ok(Ok(())) = tokio::time::timeout(PROBE_TIMEOUT, redis.ping()).await {
                let Some(circuit) = circuit.upgrade() else {
                    return;
                };
                circuit.open.store(false, Ordering::Relaxed);
                tracing::info!("Redis limiter available again");
            }
        }
    }
}

impl RedisLimiter {
    /// Starts the dispatcher on the current Tokio runtime (call it from the main one).
    pub fn new(redis: Redis, fallback: Option<MemoryLimiter>) -> Self {
        let (queue, incoming) = mpsc::channel(QUEUE_CAPACITY);
        let script = Arc::new(Script::new(include_str!("decide.lua")));
        let script_calls = Arc::new(AtomicU64::new(0));
        let leases = Arc::new(Leases::default());
        let wake = Arc::new(Notify::new());
        let circuit = Arc::new(Circuit {
            open: AtomicBool::new(false),
            policy: if fallback.is_some() {
                "fail_open"
            } else {
                "fail_closed"
            },
            leases: leases.clone(),
            wake: wake.clone(),
        });
        tokio::spawn(watch(Arc::downgrade(&circuit), wake, redis.clone()));
        let dispatcher = Dispatcher {
            redis,
            script,
            queues: HashMap::new(),
            script_calls: script_calls.clone(),
            leases: leases.clone(),
            circuit: circuit.clone(),
        };
        tokio::spawn(dispatcher.run(incoming));
        Self {
            queue,
            fallback,
            circuit,
            script_calls,
            leases,
        }
    }

    /// Script calls made so far: fewer than the decisions when calls were coalesced.
    pub fn script_calls(&self) -> u64 {
        self.script_calls.load(Ordering::Relaxed)
    }

    /// Calls admitted from leases so far, without a script call of their own.
    pub fn leased_decisions(&self) -> u64 {
        self.leases.taken()
    }

    /// Refusals repeated so far without a script call (the script refused the same call
    /// within the same second).
    pub fn repeated_refusals(&self) -> u64 {
        self.leases.repeated()
    }

    pub async fn decide(&self, req: &Request, now_ms: u64) -> Result<Decision> {
        if !self.circuit.is_open() {
            if let Some((decision, refill)) = self.leases.take(req, Instant::now()) {
                if refill {
                    self.refill(req);
                }
                return Ok(decision);
            }
            match tokio::time::timeout(DECISION_TIMEOUT, self.submit(req, None)).await {
                Ok(Ok(decision)) => return Ok(decision),
                Ok(Err(err)) => self.circuit.open(&err.to_string()),
                Err(_) => self.circuit.open("timed out"),
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

    /// Decides at `now_ms` instead of by Redis's clock: for tests that replay a sequence
    /// against both limiters. Production calls always use Redis's clock.
    pub async fn decide_at(&self, req: &Request, now_ms: u64) -> Reply {
        self.submit(req, Some(now_ms)).await
    }

    /// Asks the dispatcher, without waiting, for more of `req`'s key's lease.
    fn refill(&self, req: &Request) {
        if self.queue.try_send(Pending::refill(req)).is_err() {
            self.leases.ask_failed(&req.key);
        }
    }

    async fn submit(&self, req: &Request, now_ms: Option<u64>) -> Reply {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            req: *req,
            now_ms,
            reply: Some(reply),
        };
        self.queue.try_send(pending).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => Unavailable::Overloaded,
            mpsc::error::TrySendError::Closed(_) => Unavailable::Stopped,
        })?;
        answer.await.map_err(|_| Unavailable::Stopped)?
    }
}

/// One call waiting for its decision, or (`reply: None`) a request for more lease.
struct Pending {
    req: Request,
    now_ms: Option<u64>,
    reply: Option<oneshot::Sender<Reply>>,
}

impl Pending {
    /// A request for more of `req`'s key's lease.
    fn refill(req: &Request) -> Self {
        Self {
            req: Request { cost: 0, ..*req },
            now_ms: None,
            reply: None,
        }
    }

    /// Calls decided in one script call share everything but their cost.
    fn batches_with(&self, other: &Pending) -> bool {
        self.now_ms == other.now_ms
            && Request {
                cost: 0,
                ..self.req
            } == Request {
                cost: 0,
                ..other.req
            }
    }
}

/// The calls for one key: whether a script call is in flight, and those waiting for it.
#[derive(Default)]
struct KeyQueue {
    in_flight: bool,
    waiting: Vec<Pending>,
}

/// Owns the per-key queues; runs as one task.
struct Dispatcher {
    redis: Redis,
    script: Arc<Script>,
    queues: HashMap<Uuid, KeyQueue>,
    script_calls: Arc<AtomicU64>,
    leases: Arc<Leases>,
    circuit: Arc<Circuit>,
}

impl Dispatcher {
    async fn run(mut self, mut incoming: mpsc::Receiver<Pending>) {
        let mut in_flight = FuturesUnordered::new();
        let mut arrived = Vec::with_capacity(MAX_BATCH);
        let mut ready = Vec::new();
        loop {
            tokio::select! {
                n = incoming.recv_many(&mut arrived, MAX_BATCH) => {
                    if n == 0 {
                        break;
                    }
                    // Everything that arrived together for an idle key goes in one call;
                    // what a lease granted meanwhile can answer needs no call.
                    let now = Instant::now();
                    for pending in arrived.drain(..) {
                        let Some(pending) = lease_or_keep(&self.leases, pending, now) else {
                            continue;
                        };
                        let key = pending.req.key;
                        let queue = self.queues.entry(key).or_default();
                        queue.waiting.push(pending);
                        if !queue.in_flight && queue.waiting.len() == 1 {
                            ready.push(key);
                        }
                    }
                    for key in ready.drain(..) {
                        in_flight.push(self.launch(key));
                    }
                }
                Some(key) = in_flight.next(), if !in_flight.is_empty() => {
                    let queue = self.queues.get_mut(&key).expect("a key in flight has a queue");
                    queue.in_flight = false;
                    // The calls that waited for it take what it leased first: none of them
                    // is refused for units this node holds unused.
                    let now = Instant::now();
                    for pending in std::mem::take(&mut queue.waiting) {
                        queue.waiting.extend(lease_or_keep(&self.leases, pending, now));
                    }
                    if queue.waiting.is_empty() {
                        self.queues.remove(&key);
                    } else {
                        in_flight.push(self.launch(key));
                    }
                }
            }
        }
        // The limiter is gone: let the calls in flight answer, then stop.
        while in_flight.next().await.is_some() {}
    }

    /// Starts the script call for the oldest waiting call of `key` and every later one
    /// that can share it; returns a future that answers them and yields the key.
    fn launch(&mut self, key: Uuid) -> impl Future<Output = Uuid> + use<> {
        let queue = self
            .queues
            .get_mut(&key)
            .expect("a launched key has a queue");
        queue.in_flight = true;
        let mut batch: Vec<Pending> = Vec::with_capacity(queue.waiting.len().min(MAX_BATCH));
        let mut rest = Vec::new();
        for pending in queue.waiting.drain(..) {
            // A call whose caller gave up while it waited (a timeout, a client that went
            // away) is not decided: it would take from the limit for a call never served.
            if pending
                .reply
                .as_ref()
                .is_some_and(|reply| reply.is_closed())
            {
                continue;
            }
            let fits = batch.len() < MAX_BATCH
                && batch
                    .first()
                    .is_none_or(|first| first.batches_with(&pending));
            if fits {
                batch.push(pending)
            } else {
                rest.push(pending)
            }
        }
        queue.waiting = rest;
        if batch.is_empty() {
            // Every waiting call was abandoned: nothing to decide.
            return Either::Left(std::future::ready(key));
        }
        // Requests for more lease only say so; the calls are the rest.
        let first = batch[0].req;
        let clock = batch[0].now_ms;
        let refill = batch.iter().any(|p| p.reply.is_none());
        let (costs, replies): (Vec<u64>, Vec<oneshot::Sender<Reply>>) = batch
            .into_iter()
            .filter_map(|p| Some((p.req.cost, p.reply?)))
            .unzip();
        // Only calls on Redis's clock lease (tests that replay a clock never do).
        let ask = match clock {
            None => self
                .leases
                .prepare(&first, costs.len(), refill, Instant::now()),
            Some(_) => Ask::default(),
        };
        self.script_calls.fetch_add(1, Ordering::Relaxed);
        let (redis, script, leases, circuit) = (
            self.redis.clone(),
            self.script.clone(),
            self.leases.clone(),
            self.circuit.clone(),
        );
        Either::Right(async move {
            metrics::histogram!("tollgate_limiter_batch_size").record(costs.len() as f64);
            let sent = Instant::now();
            let call = invoke(&redis, &script, &first, clock, &ask, &costs);
            let mut decided = match tokio::time::timeout(DECISION_TIMEOUT, call).await {
                Ok(Ok(decided)) => {
                    if let Some(grant) = decided.grant {
                        metrics::counter!("tollgate_limiter_leased_units_total")
                            .increment(grant.units);
                        leases.install(&first, grant, sent, Instant::now());
                    }
                    // The last call tells whether the key is refusing now (on Redis's clock
                    // only: a replayed clock's refusal says nothing about the present).
                    let whole = decided.decisions.len() == costs.len();
                    if let (None, true, Some(last), Some(&cost)) =
                        (clock, whole, decided.decisions.last(), costs.last())
                    {
                        let req = Request { cost, ..first };
                        leases.remember(&req, last, decided.at_ms, sent);
                    }
                    decided.decisions.into_iter().map(Ok).collect::<Vec<_>>()
                }
                failed => {
                    if ask.units > 0 {
                        leases.ask_failed(&first.key);
                    }
                    let err = match failed {
                        Ok(Err(err)) => Unavailable::Redis(Arc::new(err)),
                        _ => Unavailable::Timeout,
                    };
                    // The calls' own failures open the circuit where they wait; a refill has
                    // nobody waiting, and the lease it was for must not outlive Redis.
                    if replies.is_empty() {
                        circuit.open(&err.to_string());
                    }
                    vec![Err(err); replies.len()]
                }
            };
            decided.resize(replies.len(), Err(Unavailable::Stopped));
            for (reply, decision) in replies.into_iter().zip(decided) {
                // The caller may have given up (timeout); nothing to do then.
                let _ = reply.send(decision);
            }
            key
        })
    }
}

/// Answers `pending` from its key's lease when the lease can, else gives it back. A call
/// that ran the lease low comes back as a request for more.
fn lease_or_keep(leases: &Leases, mut pending: Pending, now: Instant) -> Option<Pending> {
    if pending.now_ms.is_some() || pending.reply.is_none() {
        return Some(pending);
    }
    let Some((decision, refill)) = leases.take(&pending.req, now) else {
        return Some(pending);
    };
    if let Some(reply) = pending.reply.take() {
        let _ = reply.send(Ok(decision));
    }
    refill.then(|| Pending::refill(&pending.req))
}

/// What one script call answered.
struct Decided {
    /// One per call, in order.
    decisions: Vec<Decision>,
    grant: Option<Grant>,
    /// The time it decided at (Redis's clock, or the replayed one), ms.
    at_ms: u64,
}

/// Decides calls of `costs` (for one key, sharing `req`'s quota and `clock`) in one script
/// call, asking for a lease and giving back units as `ask` says.
async fn invoke(
    redis: &Redis,
    script: &Script,
    req: &Request,
    clock: Option<u64>,
    ask: &Ask,
    costs: &[u64],
) -> redis::RedisResult<Decided> {
    let mut invocation = script.prepare_invoke();
    invocation
        .key(redis.key("lim", &req.key.simple().to_string()))
        .arg(req.quota.minute)
        .arg(req.quota.hour)
        .arg(req.quota.day)
        .arg(req.quota.month.map_or(-1, |m| m as i64))
        .arg(req.month.id)
        .arg(req.month.end_ms)
        .arg(req.next_month.id)
        .arg(req.next_month.end_ms);
    match clock {
        Some(now_ms) => invocation.arg(now_ms),
        None => invocation.arg(""),
    };
    invocation.arg(ask.units).arg(ask.releases.len());
    for release in &ask.releases {
        invocation
            .arg(release.bucket_start_ms)
            .arg(release.units)
            .arg(release.month_id);
    }
    for cost in costs {
        invocation.arg(cost);
    }
    let mut conn = redis.conn();
    let packed: Vec<u8> = invocation.invoke_async(&mut conn).await?;
    let reply: Vec<i64> = packed
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as i64)
        .collect();
    let Some((&at_ms, reply)) = reply.split_last() else {
        return Err((redis::ErrorKind::UnexpectedReturnType, "an empty reply").into());
    };
    let (per_call, rest) = reply.split_at((costs.len() * REPLY_LEN).min(reply.len()));
    let decisions = costs
        .iter()
        .zip(per_call.chunks(REPLY_LEN))
        .map(|(&cost, reply)| parse(reply, &Request { cost, ..*req }))
        .collect();
    let grant = (ask.units > 0 && rest.len() >= GRANT_LEN).then(|| {
        let at = |i: usize| rest[i].max(0) as u64;
        Grant {
            units: at(0),
            lease_ms: at(1),
            bucket_start_ms: at(2),
            after: [
                (at(3), at(4)),
                (at(5), at(6)),
                (at(7), at(8)),
                (at(9), at(10)),
            ],
        }
    });
    Ok(Decided {
        decisions,
        grant,
        at_ms: at_ms.max(0) as u64,
    })
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
