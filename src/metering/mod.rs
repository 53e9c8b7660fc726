//! Metering: usage events from the request path (through the [`Recorder`]) and from services
//! that meter themselves (`ingest`) into `usage_events`, with their rollups, peaks and each
//! key's `usage_count` and `last_used_at` following through the compactor.
//!
//! Recorder -> bounded buffer -> batch writer (COPY on PostgreSQL, multi-row insert on
//! SQLite) -> `usage_events` + `usage_rollup_pending`; compactor -> rollups, peaks, key
//! counters; buffer full or database down -> spool on disk -> replayed. Every event has an
//! id, so replays and re-sends are stored and counted once.

use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::MeteringSettings;

mod buffer;
mod compactor;
pub mod event;
pub mod ingest;
pub mod live;
pub mod metrics;
mod replay;
pub mod retention;
pub mod rollup;
pub mod sketch;
pub mod spool;
pub mod store;
pub mod utilization;
mod writer;

pub use buffer::Recorder;
pub use event::{Source, UsageEvent, method};

/// The running pipeline: the recorder handed to the request path, the writer task and the
/// compactor task.
pub struct Pipeline {
    recorder: Recorder,
    closing: CancellationToken,
    writer: JoinHandle<()>,
    finish: CancellationToken,
    compactor: JoinHandle<()>,
}

/// Opens the spool (replaying what an earlier run left there) and starts the batch writer.
/// `grace` bounds how long shutdown spends replaying the spool.
pub fn start(
    db: DatabaseConnection,
    settings: &MeteringSettings,
    grace: Duration,
    live: live::LiveHub,
) -> anyhow::Result<Pipeline> {
    metrics::describe();
    let spool = spool::Spool::open(&settings.spool_dir)?;
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    let (recorder, rx) = Recorder::new(settings.buffer_capacity, spool.clone(), wake.clone());
    let closing = CancellationToken::new();
    // SQLite takes one writer at a time: a second transaction would only wait for the lock.
    let concurrency = match db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => settings.writer_connections,
        _ => 1,
    };
    let finish = CancellationToken::new();
    let compactor = compactor::Compactor {
        db: db.clone(),
        wake: wake.clone(),
        finish: finish.clone(),
        grace,
        recorder: recorder.clone(),
        batch_size: settings.batch_size,
    };
    let writer = writer::Writer {
        sink: writer::Sink {
            db,
            live,
            compactor: wake,
        },
        rx,
        spool,
        batch_size: settings.batch_size,
        max_batch_size: settings.max_batch_size.max(settings.batch_size),
        interval: Duration::from_millis(settings.flush_interval_ms),
        concurrency,
        closing: closing.clone(),
        grace,
        replay: Default::default(),
        in_flight: Default::default(),
        kept: Vec::new(),
    };
    Ok(Pipeline {
        recorder,
        closing,
        writer: tokio::spawn(writer.run()),
        finish,
        compactor: tokio::spawn(compactor.run()),
    })
}

impl Pipeline {
    pub fn recorder(&self) -> Recorder {
        self.recorder.clone()
    }

    /// Stops accepting (events recorded meanwhile go to the spool), commits everything
    /// buffered, spools what the database refuses, replays the spool while `grace` lasts and
    /// returns once the spool is closed and the compactor has added what is pending (or
    /// `grace` ran out: the rest stays pending for the next start). Call it after HTTP has
    /// stopped: an event recorded after it returns is lost (and counted as dropped).
    pub async fn shutdown(self) {
        self.closing.cancel();
        if let Err(err) = self.writer.await {
            tracing::error!(error = %err, "the usage-event writer failed");
        }
        self.finish.cancel();
        if let Err(err) = self.compactor.await {
            tracing::error!(error = %err, "the rollup compactor failed");
        }
    }
}
