//! The batch writer: one task that takes events from the buffer and commits them in batches,
//! when `batch_size` are waiting or `flush_interval_ms` after the last flush. Only the first
//! event after an idle spell wakes it; while events flow it collects them every 10 ms. A batch
//! takes everything waiting when it starts, up to `max_batch_size` events and twice
//! `batch_size` distinct keys: a writer that falls behind commits larger batches, in which each
//! key's calls fold into fewer pending rollup rows. Each batch is committed by a task of its
//! own, up to `writer_connections` at once (PostgreSQL; SQLite takes one writer at a time), so
//! the next batch is collected and copied while the last one commits; each commit wakes the
//! compactor (`compactor.rs`), which adds the batch's pending rollups.
//! A failing database is retried with capped exponential backoff while the batch is kept (the
//! buffer meanwhile fills and then spills into the spool); spooled events are replayed once
//! writes succeed. On shutdown it stops accepting, commits what it holds and spools what it
//! cannot.

use std::{collections::HashSet, panic::AssertUnwindSafe, time::Duration};

use futures_util::FutureExt;
use sea_orm::{DatabaseConnection, DbErr};
use tokio::{sync::mpsc, task::JoinSet, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{UsageEvent, metrics, spool::Spool, store};
use crate::ids::KeyId;

/// First retry delay; doubles per failure up to [`BACKOFF_MAX`].
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// One batch write that takes longer, per [`WRITE_TIMEOUT_EVENTS`] events it holds, is
/// abandoned and retried (ids make that harmless).
const WRITE_TIMEOUT: Duration = Duration::from_secs(15);
const WRITE_TIMEOUT_EVENTS: usize = 5_000;
/// A batch grows past `batch_size` events while it holds at most this many times
/// `batch_size` distinct keys ([`Growth`]).
const KEYS_PER_BATCH: usize = 2;
/// While events are flowing, the writer collects them this often instead of being woken for
/// each one: a wake-up per event costs the request path a cross-thread notification.
const LINGER: Duration = Duration::from_millis(10);
/// Attempts per batch at shutdown before spooling: a connection that broke (a database
/// restart, say) is dropped by the pool, and the next attempt gets a working one.
const SHUTDOWN_ATTEMPTS: u32 = 3;

pub(super) struct Writer {
    pub sink: Sink,
    pub rx: mpsc::Receiver<UsageEvent>,
    pub spool: Spool,
    pub batch_size: usize,
    /// The most events a batch takes when more are waiting.
    pub max_batch_size: usize,
    pub interval: Duration,
    /// Batches committed at once, each on its own connection.
    pub concurrency: usize,
    /// Cancelled by [`super::Pipeline::shutdown`]: drain and stop.
    pub closing: CancellationToken,
    /// How long the shutdown may spend replaying the spool.
    pub grace: Duration,
    pub(super) replay: super::replay::ReplayState,
    /// The batches being committed.
    pub(super) in_flight: JoinSet<Result<(), Vec<UsageEvent>>>,
    /// Events of batches whose commit was still failing when shutdown began.
    pub(super) kept: Vec<UsageEvent>,
}

/// Where batches go; cloned into every batch's task.
#[derive(Clone)]
pub(super) struct Sink {
    pub db: DatabaseConnection,
    /// Told about every committed batch (the live feed).
    pub live: super::live::LiveHub,
    /// Woken after every committed batch: its rollups are pending.
    pub compactor: std::sync::Arc<tokio::sync::Notify>,
}

impl Writer {
    pub async fn run(mut self) {
        let mut batch = Vec::with_capacity(self.batch_size);
        // Leftovers of an earlier run first.
        self.replay_step().await;
        let mut deadline = self.next_deadline();
        let mut open = true;
        while open {
            if batch.is_empty() {
                // Idle: the first event wakes the writer.
                let room = self.batch_size;
                tokio::select! {
                    biased;
                    _ = self.closing.cancelled() => break,
                    received = self.rx.recv_many(&mut batch, room) => open = received > 0,
                    _ = tokio::time::sleep_until(deadline) => {}
                }
            } else {
                // Events are flowing: let them pile up in the buffer and take them in bulk.
                let nap = tokio::time::sleep_until(deadline.min(Instant::now() + LINGER));
                tokio::select! {
                    biased;
                    _ = self.closing.cancelled() => break,
                    _ = nap => {}
                }
            }
            open &= self.take_waiting(&mut batch);
            if open && batch.len() < self.batch_size && Instant::now() < deadline {
                continue;
            }
            metrics::queue_depth(self.rx.len());
            if !batch.is_empty() {
                self.settle(self.concurrency - 1).await;
                if self.closing.is_cancelled() {
                    break;
                }
                // What arrived meanwhile joins it (much, when the writer is behind).
                open &= self.top_up(&mut batch);
                let full = std::mem::replace(&mut batch, Vec::with_capacity(self.batch_size));
                let sink = self.sink.clone();
                self.in_flight
                    .spawn(sink.write_retrying(full, self.closing.clone()));
            }
            self.replay_step().await;
            deadline = self.next_deadline();
        }
        self.drain(batch).await;
    }

    /// Waits until at most `most` batches are in flight, keeping the events of any that
    /// gave up at shutdown.
    pub(super) async fn settle(&mut self, most: usize) {
        while self.in_flight.len() > most {
            tokio::select! {
                done = self.in_flight.join_next() => match done {
                    Some(Ok(Ok(()))) | None => {}
                    Some(Ok(Err(events))) => self.kept.extend(events),
                    Some(Err(err)) => {
                        tracing::error!(error = %err, "a usage-event batch write failed unexpectedly");
                    }
                },
                // Meanwhile, keep the queue depth current (it grows while writes fail).
                _ = tokio::time::sleep(BACKOFF_BASE) => metrics::queue_depth(self.rx.len()),
            }
        }
    }

    /// Grows `batch` with the events waiting, as far as [`Growth`] allows. `false` as
    /// [`Self::take_waiting`].
    fn top_up(&mut self, batch: &mut Vec<UsageEvent>) -> bool {
        let mut growth = self.growth(batch);
        while !growth.full() {
            match self.rx.try_recv() {
                Ok(event) => {
                    growth.admit(&event);
                    batch.push(event);
                }
                Err(mpsc::error::TryRecvError::Empty) => return true,
                Err(mpsc::error::TryRecvError::Disconnected) => return false,
            }
        }
        true
    }

    /// How far a batch holding `batch` may grow.
    pub(super) fn growth(&self, batch: &[UsageEvent]) -> Growth {
        let mut growth = Growth::new(KEYS_PER_BATCH * self.batch_size, self.max_batch_size);
        growth.take(batch);
        growth
    }

    /// Moves the events already buffered into `batch`, up to `batch_size`, without waiting;
    /// `false` once every recorder is gone and the buffer is empty.
    fn take_waiting(&mut self, batch: &mut Vec<UsageEvent>) -> bool {
        while batch.len() < self.batch_size {
            match self.rx.try_recv() {
                Ok(event) => batch.push(event),
                Err(mpsc::error::TryRecvError::Empty) => return true,
                Err(mpsc::error::TryRecvError::Disconnected) => return false,
            }
        }
        true
    }

    /// The next flush: after the interval, or at once while spooled segments wait.
    fn next_deadline(&self) -> Instant {
        match self.replay.has_queue() {
            true => Instant::now(),
            false => Instant::now() + self.interval,
        }
    }

    /// Shutdown: close the buffer, wait for the batches in flight, commit what is left while
    /// the database accepts writes, spool the rest, replay the spool if time allows, then
    /// close the spool.
    async fn drain(mut self, batch: Vec<UsageEvent>) {
        self.rx.close();
        self.settle(0).await;
        let mut batch: Vec<UsageEvent> = std::mem::take(&mut self.kept)
            .into_iter()
            .chain(batch)
            .collect();
        let mut healthy = true;
        loop {
            self.top_up(&mut batch);
            if batch.is_empty() {
                break;
            }
            if healthy && let Err(err) = self.sink.write_at_shutdown(&batch).await {
                tracing::warn!(error = %err, "the database refused usage events at shutdown; spooling them");
                healthy = false;
            }
            if healthy {
                batch.clear();
            } else {
                self.spool.append(std::mem::take(&mut batch));
            }
        }
        metrics::queue_depth(0);
        if healthy {
            self.replay_all().await;
        }
        self.spool.close().await;
    }
}

/// A batch's bound: `max_batch_size` events, and (one past) [`KEYS_PER_BATCH`] × `batch_size`
/// distinct keys. A batch's memory and database work follow its distinct keys (each one's
/// rollup, utilization and counter rows); what it gains from growing follows the calls that
/// share them, so calls of keys already in it keep coming and a new key past the bound is the
/// last one.
pub(super) struct Growth {
    keys: HashSet<Option<KeyId>>,
    most_keys: usize,
    most_events: usize,
    events: usize,
    full: bool,
}

impl Growth {
    /// An empty batch's bound: one past `most_keys` distinct keys, `most_events` events.
    fn new(most_keys: usize, most_events: usize) -> Self {
        Self {
            keys: HashSet::new(),
            most_keys,
            most_events,
            events: 0,
            full: false,
        }
    }

    /// Counts `event` into the batch.
    pub(super) fn admit(&mut self, event: &UsageEvent) {
        self.events += 1;
        let new_key = self.keys.insert(event.key_id);
        self.full |=
            self.events >= self.most_events || (new_key && self.keys.len() > self.most_keys);
    }

    pub(super) fn full(&self) -> bool {
        self.full
    }

    /// How many of `events`, from the first, the batch takes.
    pub(super) fn take(&mut self, events: &[UsageEvent]) -> usize {
        for (i, event) in events.iter().enumerate() {
            self.admit(event);
            if self.full {
                return i + 1;
            }
        }
        events.len()
    }
}

impl Sink {
    /// One attempt at committing `events`.
    pub(super) async fn write(&self, events: &[UsageEvent]) -> Result<(), DbErr> {
        let started = std::time::Instant::now();
        let timeout = WRITE_TIMEOUT * events.len().div_ceil(WRITE_TIMEOUT_EVENTS).max(1) as u32;
        let written =
            tokio::time::timeout(timeout, unwinding(store::insert_events(&self.db, events)))
                .await
                .map_err(|_| DbErr::Custom("the batch write timed out".into()))?;
        written?;
        self.compactor.notify_one();
        metrics::flushed(events.len(), started.elapsed().as_secs_f64());
        self.live.publish(events);
        Ok(())
    }

    /// Writes `batch` until it commits, or until shutdown has begun and an attempt fails
    /// (then hands the batch back).
    async fn write_retrying(
        self,
        batch: Vec<UsageEvent>,
        closing: CancellationToken,
    ) -> Result<(), Vec<UsageEvent>> {
        let mut failures = 0u32;
        loop {
            match self.write(&batch).await {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!(failures, "usage events are being written again");
                    }
                    return Ok(());
                }
                Err(err) => {
                    failures += 1;
                    if closing.is_cancelled() {
                        return Err(batch);
                    }
                    metrics::retried();
                    let delay = backoff(failures);
                    log_failure(failures, delay, batch.len(), &err);
                    tokio::select! {
                        _ = closing.cancelled() => return Err(batch),
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// Up to [`SHUTDOWN_ATTEMPTS`] attempts at committing `events`, a short backoff apart.
    async fn write_at_shutdown(&self, events: &[UsageEvent]) -> Result<(), DbErr> {
        let mut failures = 0;
        loop {
            let Err(err) = self.write(events).await else {
                return Ok(());
            };
            failures += 1;
            if failures >= SHUTDOWN_ATTEMPTS {
                return Err(err);
            }
            tracing::debug!(failures, error = %err, "writing usage events at shutdown failed; retrying");
            tokio::time::sleep(backoff(failures)).await;
        }
    }
}

/// `write`, with a panic inside it turned into an error: a bug met while writing a batch (in
/// encoding its rows, say) fails that attempt like a database error does, so the batch is
/// kept, retried, spooled at shutdown, or its spool segment kept on replay — instead of
/// being lost with the task that held it. A transaction the panic interrupted is rolled
/// back when its connection is dropped.
pub(super) async fn unwinding<T>(
    write: impl Future<Output = Result<T, DbErr>>,
) -> Result<T, DbErr> {
    match AssertUnwindSafe(write).catch_unwind().await {
        Ok(written) => written,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(no message)");
            Err(DbErr::Custom(format!(
                "the batch write panicked: {message}"
            )))
        }
    }
}

/// `BACKOFF_BASE * 2^(failures-1)`, capped at [`BACKOFF_MAX`].
pub(super) fn backoff(failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_MAX)
}

fn log_failure(failures: u32, delay: Duration, count: usize, err: &DbErr) {
    // The first failure and then one in ten at warn, so an outage does not flood the log.
    if failures == 1 || failures.is_multiple_of(10) {
        tracing::warn!(failures, count, retry_in_ms = delay.as_millis() as u64, error = %err, "writing usage events failed; retrying");
    } else {
        tracing::debug!(failures, count, error = %err, "writing usage events failed again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_grows_while_its_keys_are_few_and_stops_at_the_first_key_past_the_bound() {
        let tenant = crate::ids::TenantId::new();
        let keys: Vec<KeyId> = (0..3).map(|_| KeyId::new()).collect();
        let call = |k: usize| {
            UsageEvent::new(
                crate::metering::Source::Middleware,
                tenant,
                Some(keys[k]),
                std::sync::Arc::from("/v1/x"),
                crate::metering::method("GET"),
                200,
            )
        };
        let bound = Growth::new;
        let mut growth = bound(2, 100);
        for k in [0, 1, 0, 1, 1, 0] {
            growth.admit(&call(k));
            assert!(!growth.full(), "calls of the keys already in keep coming");
        }
        growth.admit(&call(2));
        assert!(growth.full(), "a new key past the bound is the last one");

        let mut growth = bound(10, 3);
        growth.admit(&call(0));
        growth.admit(&call(0));
        assert!(!growth.full());
        growth.admit(&call(0));
        assert!(growth.full(), "at most `max_batch_size` events");

        // A spool segment is cut where a batch would stop.
        let segment = [0, 1, 0, 2, 1].map(call);
        assert_eq!(bound(2, 100).take(&segment), 4);
        assert_eq!(bound(3, 100).take(&segment), 5);
    }

    /// A write with a bug: it indexes past its rows.
    async fn buggy_write(rows: &[u64], at: usize) -> Result<u64, DbErr> {
        Ok(rows[at])
    }

    async fn explicit_panic() -> Result<u64, DbErr> {
        panic!("a bug in encoding a row")
    }

    #[tokio::test]
    async fn a_write_that_panics_is_a_failed_write() {
        let message = |result: Result<u64, DbErr>| match result {
            Err(DbErr::Custom(message)) => message,
            other => panic!("expected the panic as an error, got {other:?}"),
        };
        assert_eq!(
            message(unwinding(explicit_panic()).await),
            "the batch write panicked: a bug in encoding a row"
        );
        assert_eq!(
            message(unwinding(buggy_write(&[1, 2], 5)).await),
            "the batch write panicked: index out of bounds: the len is 2 but the index is 5"
        );
        assert_eq!(unwinding(buggy_write(&[1, 2], 1)).await.ok(), Some(2));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(4), Duration::from_millis(800));
        assert_eq!(backoff(8), BACKOFF_MAX);
        assert_eq!(backoff(1000), BACKOFF_MAX);
    }
}
