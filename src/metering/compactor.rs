//! The compactor: one task that adds the pending rollup rows the batch writers appended
//! (`usage_rollup_pending`) to the rollup tables, the keys' utilization peaks and their
//! counters (`store::compact`). A batch's own transaction only appends its minute buckets, so
//! the writer's cost per batch no longer grows with the distinct keys in it; the compactor
//! takes the pending rows in key order, so the more batches have appended rows for a key
//! since its last pass, the more of them fold into each of that key's upserts. With events
//! spread over many keys, a compactor that falls behind therefore makes longer passes that
//! each do less work per event, instead of a backlog that only grows.
//!
//! It runs a pass whenever a batch commits (and every [`POLL`], for rows appended by other
//! nodes or left by an earlier run): rollups follow the events by one pass, milliseconds
//! when the writer keeps up. While the writer is behind, each take first waits (up to
//! [`GIVE_WAY_MAX`]) for it to catch up. On shutdown, after the writer has drained, it makes passes
//! until nothing is pending or the grace period is over; what is left stays pending, on
//! disk, for the next start (or another node) to add.
//!
//! While running, the compactors of several nodes skip the rows another one holds
//! (PostgreSQL's `SKIP LOCKED`); the last passes wait for them instead. A take that shutdown
//! interrupts still holds its rows until its connection's rollback goes through, and another
//! node's take may be one its own shutdown is interrupting: skipping either, a last pass
//! from the start could find nothing and leave those rows behind, the keys' counters and
//! rollups short of their stored events, while every node has stopped.

use std::{sync::Arc, time::Duration};

use sea_orm::{DatabaseConnection, DbErr};
use tokio::{sync::Notify, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{
    metrics,
    store::{self, Cursor, Locked},
    writer::{backoff, unwinding},
};

/// Pending rows taken per transaction: bounds what one take holds in memory (its rollup
/// rows, sketches and bound arrays). Takes of 5,000 held the embedded server's peak ~40 MB
/// higher in the 100,000-key memory bench (213 against 171 MB), and the smaller takes were
/// no slower: the folding comes from the key order, not from the take's size.
pub(super) const TAKE: usize = 1_000;
/// How often it looks without being woken.
const POLL: Duration = Duration::from_secs(1);
/// The longest it waits before a take while the writer is behind ([`Compactor::give_way`]).
const GIVE_WAY_MAX: Duration = Duration::from_secs(1);
/// How often it looks whether the writer has caught up.
const GIVE_WAY_STEP: Duration = Duration::from_millis(20);

pub(super) struct Compactor {
    pub db: DatabaseConnection,
    /// Notified by the writer after each committed batch.
    pub wake: Arc<Notify>,
    /// Cancelled once the writer has drained: finish and stop.
    pub finish: CancellationToken,
    /// How long the last passes may take at shutdown.
    pub grace: Duration,
    /// The writer's buffer, and how many waiting events mean it is behind.
    pub recorder: super::Recorder,
    pub batch_size: usize,
}

impl Compactor {
    pub async fn run(self) {
        let mut cursor = Cursor::default();
        let mut failures = 0u32;
        loop {
            tokio::select! {
                biased;
                _ = self.finish.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
            // A long pass over a backlog stops when shutdown begins; the last passes are
            // bounded by the grace (`finish_up`). A take it interrupts is rolled back, and
            // what a take has committed is gone from the table: nothing is added twice.
            let passed = tokio::select! {
                biased;
                _ = self.finish.cancelled() => break,
                passed = self.pass(&mut cursor, Locked::Skip) => passed,
            };
            match passed {
                Ok(_) if failures > 0 => {
                    tracing::info!(failures, "pending rollups are being added again");
                    failures = 0;
                }
                Ok(_) => {}
                Err(err) => {
                    failures += 1;
                    let delay = backoff(failures);
                    if failures == 1 || failures.is_multiple_of(10) {
                        tracing::warn!(failures, retry_in_ms = delay.as_millis() as u64, error = %err, "adding pending rollups failed; retrying");
                    }
                    tokio::select! {
                        _ = self.finish.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        self.finish_up(cursor).await;
    }

    /// Passes until one from the start finds nothing, while the grace lasts, waiting for the
    /// rows other transactions hold.
    async fn finish_up(&self, mut cursor: Cursor) {
        let deadline = Instant::now() + self.grace;
        loop {
            let from_start = cursor == Cursor::default();
            match tokio::time::timeout_at(deadline, self.pass(&mut cursor, Locked::Wait)).await {
                Ok(Ok(0)) if from_start => return,
                Ok(Ok(_)) => {}
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "pending rollups left for the next start: adding them failed at shutdown");
                    return;
                }
                Err(_) => {
                    tracing::warn!(
                        "pending rollups left for the next start: the shutdown grace ran out"
                    );
                    return;
                }
            }
        }
    }

    /// While the writer is behind (a batch or more waiting in its buffer), waits for it to
    /// catch up, at most [`GIVE_WAY_MAX`]: the events first. Events are what a crash or a
    /// full spool could cost, and on SQLite the two share one connection; meanwhile more
    /// pending rows fold into each of the next takes' upserts, so the two together do less
    /// work. Not at shutdown, when the writer is done.
    async fn give_way(&self) {
        let until = Instant::now() + GIVE_WAY_MAX;
        while self.recorder.queue_depth() >= self.batch_size
            && Instant::now() < until
            && !self.finish.is_cancelled()
        {
            tokio::time::sleep(GIVE_WAY_STEP).await;
        }
    }

    /// Compacts from `cursor` until a take comes back short (the end of a pass); returns the
    /// rows taken.
    async fn pass(&self, cursor: &mut Cursor, locked: Locked) -> Result<usize, DbErr> {
        let started = std::time::Instant::now();
        let mut total = 0;
        loop {
            self.give_way().await;
            let taken = unwinding(store::compact(&self.db, cursor, TAKE, locked)).await?;
            total += taken;
            metrics::compacted(taken);
            if taken < TAKE {
                metrics::compaction_pass(started.elapsed().as_secs_f64());
                return Ok(total);
            }
        }
    }
}
