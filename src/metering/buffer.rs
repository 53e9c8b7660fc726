//! The [`Recorder`]: the request path's only contact with metering. `record` is a
//! non-blocking push into a bounded channel; when the channel is full (or closed at shutdown)
//! the event is handed to the spool thread instead. It never awaits and never drops.

use std::sync::Arc;

use tokio::sync::{
    Notify,
    mpsc::{self, error::TrySendError},
};

use super::{UsageEvent, metrics, spool::Spool};

/// A cheap-to-clone handle that records usage events.
#[derive(Clone)]
pub struct Recorder {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    tx: mpsc::Sender<UsageEvent>,
    spool: Spool,
    compactor: Arc<Notify>,
}

impl Recorder {
    /// A recorder feeding a channel of `capacity` events, spilling to `spool`; the receiver
    /// is the batch writer's. `compactor` is woken by [`Self::rollups_pending`].
    pub(super) fn new(
        capacity: usize,
        spool: Spool,
        compactor: Arc<Notify>,
    ) -> (Self, mpsc::Receiver<UsageEvent>) {
        let (tx, rx) = mpsc::channel(capacity);
        let inner = Arc::new(Inner {
            tx,
            spool,
            compactor,
        });
        (Self { inner: Some(inner) }, rx)
    }

    /// A recorder for processes that do not meter (`tollgate worker`, CLI commands). Events
    /// recorded through it are counted as dropped and logged: nothing should call it.
    pub fn disabled() -> Self {
        Self { inner: None }
    }

    /// Records one event without waiting: into the buffer, or to the spool when it is full.
    pub fn record(&self, event: UsageEvent) {
        let Some(inner) = &self.inner else {
            metrics::dropped(1);
            tracing::error!("a usage event was recorded in a process that does not meter");
            return;
        };
        match inner.tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(event) | TrySendError::Closed(event)) => {
                inner.spool.append(vec![event]);
            }
        }
    }

    /// Wakes the compactor: events were stored outside the writer (the ingest API), their
    /// rollups are pending. Without a pipeline, a serving node's compactor finds them within
    /// a second.
    pub fn rollups_pending(&self) {
        if let Some(inner) = &self.inner {
            inner.compactor.notify_one();
        }
    }

    /// Events waiting in the buffer.
    pub fn queue_depth(&self) -> usize {
        self.inner
            .as_ref()
            .map_or(0, |inner| inner.tx.max_capacity() - inner.tx.capacity())
    }
}
