//! Replaying the spool into the database: one closed segment per writer step while the
//! buffer is not busy, with backoff after a failure; everything left at shutdown while the
//! grace period lasts. A segment is deleted only after all its events are committed; a
//! replay cut short is simply repeated, since event ids make it idempotent.

use std::{collections::VecDeque, path::PathBuf};

use tokio::time::Instant;

use super::{
    spool,
    writer::{Writer, backoff},
};

#[derive(Default)]
pub(super) struct ReplayState {
    queue: VecDeque<PathBuf>,
    failures: u32,
    not_before: Option<Instant>,
}

impl ReplayState {
    /// Segments listed and not replayed yet.
    pub(super) fn has_queue(&self) -> bool {
        !self.queue.is_empty()
    }
}

impl Writer {
    /// Replays at most one segment, unless live events are piling up or a recent replay
    /// failed.
    pub(super) async fn replay_step(&mut self) {
        if self.rx.len() > self.rx.max_capacity() / 2
            || self.replay.not_before.is_some_and(|t| Instant::now() < t)
        {
            return;
        }
        if self.replay.queue.is_empty() {
            if !self.spool.take_pending() {
                return;
            }
            match self.closed_segments().await {
                Some(segments) => self.replay.queue = segments.into(),
                None => return self.replay_failed(),
            }
        }
        let Some(path) = self.replay.queue.pop_front() else {
            return;
        };
        // Replays do not run beside live batches (SQLite takes one writer at a time).
        self.settle(0).await;
        if self.replay_segment(path).await {
            self.replay.failures = 0;
            self.replay.not_before = None;
        } else {
            self.replay_failed();
        }
    }

    fn replay_failed(&mut self) {
        self.replay.failures += 1;
        self.replay.not_before = Some(Instant::now() + backoff(self.replay.failures));
        self.replay.queue.clear();
        self.spool.mark_pending();
    }

    /// At shutdown: replays every segment while `grace` lasts; the rest stays on disk.
    pub(super) async fn replay_all(&mut self) {
        let until = Instant::now() + self.grace;
        self.spool.take_pending();
        let Some(segments) = self.closed_segments().await else {
            return;
        };
        for (done, path) in segments.iter().enumerate() {
            if Instant::now() >= until {
                let left = segments.len() - done;
                tracing::warn!(
                    segments = left,
                    "shutdown grace over; spooled events stay on disk for the next start"
                );
                return;
            }
            if !self.replay_segment(path.clone()).await {
                return;
            }
        }
    }

    /// Every closed segment, after closing the one being appended to.
    async fn closed_segments(&self) -> Option<Vec<PathBuf>> {
        self.spool.rotate().await;
        match self.spool.segments().await {
            Ok(segments) => Some(segments),
            Err(err) => {
                tracing::error!(error = %err, "listing the spool failed");
                None
            }
        }
    }

    /// Commits every event of one segment, then deletes it. `false` if anything failed.
    async fn replay_segment(&self, path: PathBuf) -> bool {
        let events = match spool::read_segment(path.clone()).await {
            Ok(events) => events,
            Err(err) => {
                tracing::error!(segment = %path.display(), error = %err, "reading a spool segment failed");
                return false;
            }
        };
        // In batches bounded as live ones are (`Growth`).
        let mut rest = &events[..];
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(self.growth(&[]).take(rest));
            if let Err(err) = self.sink.write(chunk).await {
                tracing::warn!(error = %err, "replaying the spool failed; will retry");
                return false;
            }
            rest = tail;
        }
        if let Err(err) = spool::remove_segment(path.clone()).await {
            // Its events are committed; replaying it again later is harmless.
            tracing::error!(segment = %path.display(), error = %err, "removing a replayed spool segment failed");
        }
        tracing::info!(count = events.len(), "replayed spooled usage events");
        true
    }
}
