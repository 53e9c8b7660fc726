//! Background jobs: each `jobs/<name>.rs` holds an idempotent `run` function; this module is the
//! only place that knows apalis. Every job is an apalis worker fed by an `apalis-cron`
//! scheduler, and one apalis `Monitor` runs them all until the process's cancellation token
//! fires. `serve` runs them in-process unless `--no-workers`; `tollgate worker` runs only them.
//!
//! The schedulers are bare (no apalis storage): every process running jobs fires every tick
//! itself. That is safe because each job is idempotent on its natural key, so two processes
//! doing the same housekeeping at once only repeat harmless work.

use std::{error::Error as StdError, str::FromStr, time::Duration};

use apalis::prelude::{BoxDynError, Data, Event, Monitor, WorkerBuilder, WorkerBuilderExt};
use apalis_cron::{CronScheduler, Tick};
use chrono::Utc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

pub mod housekeeping;

/// When housekeeping runs (partitions ahead, expired idempotency keys): at the top of every
/// hour. apalis-cron uses 6-field cron expressions, seconds first.
const HOUSEKEEPING_CRON: &str = "0 0 * * * *";

/// Starts every scheduled job under one apalis monitor. The returned task ends once `cancel`
/// fires and the runs in flight finish (bounded by `server.shutdown_timeout_secs`).
pub fn spawn_all(state: &AppState, cancel: &CancellationToken) -> Vec<JoinHandle<()>> {
    let housekeeping_every =
        cron::Schedule::from_str(HOUSEKEEPING_CRON).expect("HOUSEKEEPING_CRON is a valid cron");
    let grace = Duration::from_secs(state.settings.server.shutdown_timeout_secs);
    let state = state.clone();
    let monitor = Monitor::new()
        .register(move |_restarts| {
            WorkerBuilder::new("housekeeping")
                .backend(CronScheduler::new(AtStartThen::new(
                    housekeeping_every.clone(),
                )))
                .catch_panic()
                .data(state.clone())
                .build(run_housekeeping)
        })
        .on_event(log_failures)
        // Only the cron scheduler can fail a worker (a tick out of range after a clock jump);
        // a fresh scheduler recovers, so restart unless shutting down.
        .should_restart(|worker, error| {
            tracing::warn!(job = worker.name(), %error, "job worker failed; restarting");
            !worker.is_shutting_down()
        })
        .shutdown_timeout(grace);
    let cancel = cancel.clone();
    let stopped = async move {
        cancel.cancelled().await;
        Ok(())
    };
    vec![tokio::spawn(async move {
        match monitor.run_with_signal(stopped).await {
            Ok(()) => tracing::debug!("jobs stopped"),
            Err(err) => tracing::warn!(error = %err, "jobs stopped with an error"),
        }
    })]
}

async fn run_housekeeping(_: Tick, state: Data<AppState>) -> Result<(), BoxDynError> {
    housekeeping::run(&state.db, &state.settings.retention).await?;
    Ok(())
}

/// Logs a failed run with its error chain; the next tick runs the job again.
fn log_failures(worker: &apalis::prelude::WorkerContext, event: &Event) {
    if let Event::Error(err) = event {
        let err: &(dyn StdError + 'static) = err.as_ref().as_ref();
        tracing::warn!(job = worker.name(), error = %error_chain(err), "job failed");
    }
}

/// `outer: cause: root cause`, skipping a cause whose text its parent already ends with.
fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(inner) = cause {
        let message = inner.to_string();
        if !text.ends_with(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        cause = inner.source();
    }
    text
}

/// A schedule that ticks once as soon as the worker starts, then follows `cron`, so a
/// freshly started process does its housekeeping without waiting for the hour.
#[derive(Clone, Debug)]
struct AtStartThen {
    started: bool,
    cron: cron::Schedule,
}

impl AtStartThen {
    fn new(cron: cron::Schedule) -> Self {
        Self {
            started: false,
            cron,
        }
    }
}

impl apalis_cron::Schedule<Utc> for AtStartThen {
    fn next_tick(&mut self, timezone: &Utc) -> Option<Tick<Utc>> {
        if std::mem::replace(&mut self.started, true) {
            return apalis_cron::Schedule::next_tick(&mut self.cron, timezone);
        }
        // Ticks are whole seconds and a tick in the past is an error: use the next second.
        let now = u64::try_from(Utc::now().timestamp()).unwrap_or_default();
        Some(Tick::new(now + 1))
    }
}
