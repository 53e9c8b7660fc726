//! Replaying the spool into the database: one closed segment per writer step while the
//! buffer is not busy, with backoff after a failure; everything left at shutdown while the
//! grace period lasts. A segment is deleted only after all its events are committed; a
//! replay cut short is simply repeated, since event ids make it idempotent.

use std::{collections::VecDeque, path::PathBuf};

use tokio::time::Instant;

use super::{
    UsageEvent, metrics, spool,
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

    /// Commits every event of one segment, a batch at a time (bounded as live ones are,
    /// [`Growth`](super::writer::Growth), and only that batch in memory), then deletes it.
    /// `false` if anything failed.
    async fn replay_segment(&self, path: PathBuf) -> bool {
        let shown = path.display().to_string();
        let mut reader = match spool::open_segment(path.clone()).await {
            Ok(reader) => reader,
            Err(err) => {
                tracing::error!(segment = %shown, error = %err, "opening a spool segment failed");
                return false;
            }
        };
        let mut count = 0;
        loop {
            let mut growth = self.growth(&[]);
            let full = move |event: &UsageEvent| {
                growth.admit(event);
                growth.full()
            };
            let events = match spool::read_batch(reader, full).await {
                Ok((back, events)) => {
                    reader = back;
                    events
                }
                Err(err) => {
                    tracing::error!(segment = %shown, error = %err, "reading a spool segment failed");
                    return false;
                }
            };
            if events.is_empty() {
                break;
            }
            if let Err(err) = self.sink.write(&events).await {
                tracing::warn!(error = %err, "replaying the spool failed; will retry");
                return false;
            }
            count += events.len();
        }
        if reader.unreadable > 0 {
            metrics::dropped(reader.unreadable);
            tracing::error!(segment = %shown, unreadable = reader.unreadable, "spool lines could not be read");
        }
        if let Err(err) = spool::remove_segment(path).await {
            // Its events are committed; replaying it again later is harmless.
            tracing::error!(segment = %shown, error = %err, "removing a replayed spool segment failed");
        }
        tracing::info!(count, "replayed spooled usage events");
        true
    }
}
