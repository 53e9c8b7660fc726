//! Metering: usage events from the request path (through the [`Recorder`]) and from services
//! that meter themselves (`ingest`) into `usage_events`, with their rollups, peaks and each
//! key's `usage_count` and `last_used_at` following through the compactor.
//!
//! Recorder -> bounded buffer -> batch writer (COPY on PostgreSQL, multi-row insert on
//! SQLite) -> `usage_events` + `usage_rollup_pending`; compactor -> rollups, peaks, key
//! counters; buffer full or database down -> spool on disk -> replayed. Every event has an
//! id, so replays and re-sends are stored and counted once.

use std::time::Duration;

use anyhow::Context;
use sea_orm::DatabaseConnection;
use tokio::{runtime::Runtime, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::config::{DatabaseSettings, MeteringSettings};

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
/// compactor task, on threads of their own with the writer's own pool.
pub struct Pipeline {
    recorder: Recorder,
    closing: CancellationToken,
    writer: JoinHandle<()>,
    finish: CancellationToken,
    compactor: JoinHandle<()>,
    db: DatabaseConnection,
    threads: Threads,
}

/// Threads of the pipeline's runtime.
const THREADS: usize = 2;
/// Their name.
pub const THREAD_NAME: &str = "tollgate-meter";

/// Opens the writer's own pool ([`crate::db::writer_connection`]) and the spool (replaying
/// what an earlier run left there), and starts the batch writer and the rollup compactor on a
/// runtime of their own ([`runtime`]). `grace` bounds how long shutdown spends replaying the
/// spool and adding what is pending.
pub async fn start(
    database: &DatabaseSettings,
    settings: &MeteringSettings,
    grace: Duration,
    live: live::LiveHub,
) -> anyhow::Result<Pipeline> {
    metrics::describe();
    let threads = Threads(Some(
        runtime(settings.writer_nice).context("starting the metering threads")?,
    ));
    // Opened from those threads: the pool's connections belong to their runtime, and SQLite's
    // worker thread for the connection, started by the thread that opens it, shares their
    // priority.
    let runtime = threads.handle();
    let db = {
        let (database, batches) = (database.clone(), settings.writer_connections);
        runtime
            .spawn(async move { crate::db::writer_connection(&database, batches).await })
            .await??
    };
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
            db: db.clone(),
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
        writer: runtime.spawn(writer.run()),
        finish,
        compactor: runtime.spawn(compactor.run()),
        db,
        threads,
    })
}

/// The pipeline's runtime: [`THREADS`] threads named [`THREAD_NAME`], each `nice` steps below
/// the thread that starts them (Linux; elsewhere the same priority). A batch's work (encoding,
/// SQLite's inserts, the compactor's folds) comes in slices of milliseconds; at the request
/// path's priority, an HTTP worker woken by a request on a core where that work runs waited for
/// the slice to end, which showed in the calls' p99 (`docs/benchmarks.md`, "Added latency at
/// half load": embedded p99 halved at a quarter of saturation). Below it, the worker takes the
/// core at once; with spare CPU the writer runs as fast as before, and at saturation it still
/// gets a share (nice 5: about a third of a request-path thread's), enough to keep up with the
/// peer harness's one busy key (over 100,000 keys it stores less during the load, and the rest
/// goes through the spool).
fn runtime(nice: i32) -> std::io::Result<Runtime> {
    // Fixed here, from the starting thread's: a thread spawned later by one of the runtime's
    // own (its blocking pool) inherits their value and must not be lowered twice.
    let priority = Priority::below_current(nice);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(THREADS)
        .thread_name(THREAD_NAME)
        .on_thread_start(move || priority.apply())
        .enable_all()
        .build()
}

/// The nice value of the pipeline's threads (`None`: leave theirs).
#[derive(Clone, Copy)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
struct Priority(Option<i32>);

#[cfg(target_os = "linux")]
impl Priority {
    /// `by` steps below the calling thread's (at most 19).
    fn below_current(by: i32) -> Self {
        // Linux keeps a nice value per thread: the "process" without an id is the calling
        // thread.
        let current = rustix::process::getpriority_process(None);
        Self((by > 0).then(|| current.unwrap_or(0).saturating_add(by).min(19)))
    }

    /// Sets the calling thread's nice value.
    fn apply(self) {
        let Some(nice) = self.0 else { return };
        if let Err(err) = rustix::process::setpriority_process(None, nice) {
            tracing::warn!(error = %err, "could not lower the metering thread's priority");
        }
    }
}

/// Elsewhere `setpriority` would lower the whole process: the threads keep its priority.
#[cfg(not(target_os = "linux"))]
impl Priority {
    fn below_current(_by: i32) -> Self {
        Self(None)
    }

    fn apply(self) {}
}

/// The pipeline's runtime, shut down without waiting when dropped (dropping a runtime may
/// block, which async code must not): by then [`Pipeline::shutdown`] has finished its tasks.
struct Threads(Option<Runtime>);

impl Threads {
    fn handle(&self) -> tokio::runtime::Handle {
        self.0
            .as_ref()
            .expect("the runtime lives until dropped")
            .handle()
            .clone()
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
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
        self.db.close().await.ok();
        drop(self.threads);
    }
}
