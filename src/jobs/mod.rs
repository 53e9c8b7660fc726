//! Background jobs: each `jobs/<name>.rs` holds an idempotent `run` function; this module
//! schedules them under the process's cancellation token. `serve` runs them in-process unless
//! `--no-workers`; `tollgate worker` runs only them.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

pub mod housekeeping;

/// How often housekeeping runs (partitions ahead, expired idempotency keys).
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(3600);

/// Starts every scheduled job; each stops when `cancel` fires.
pub fn spawn_all(state: &AppState, cancel: &CancellationToken) -> Vec<JoinHandle<()>> {
    let state = state.clone();
    vec![spawn_every(
        "housekeeping",
        HOUSEKEEPING_EVERY,
        cancel.clone(),
        move || {
            let state = state.clone();
            async move { housekeeping::run(&state.db).await }
        },
    )]
}

/// Runs `job` now and then every `period` until cancelled. A failed run is logged and retried
/// at the next tick; jobs are idempotent, so a run cut short by shutdown is harmless.
fn spawn_every<F, Fut>(
    name: &'static str,
    period: Duration,
    cancel: CancellationToken,
    job: F,
) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = ticks.tick() => {}
            }
            match cancel.run_until_cancelled(job()).await {
                Some(Ok(())) => tracing::debug!(job = name, "job finished"),
                Some(Err(err)) => {
                    tracing::warn!(job = name, error = %format!("{err:#}"), "job failed")
                }
                None => break,
            }
        }
        tracing::debug!(job = name, "job stopped");
    })
}
