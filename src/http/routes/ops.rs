//! Operator endpoints: liveness, readiness (database and Redis) and Prometheus metrics.

use std::{collections::BTreeMap, time::Duration};

use actix_web::{HttpResponse, get, http::StatusCode, web};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::{db, state::AppState, telemetry};

/// How long a readiness check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(livez)
        .service(readyz)
        .service(healthz)
        .service(metrics);
}

/// Health report: `status` is `pass` or `fail`, with one entry per dependency.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthOut {
    /// `pass` when every check passed, `fail` otherwise.
    pub status: &'static str,
    /// Each dependency checked, by name (`database`, `redis`).
    pub checks: BTreeMap<&'static str, CheckOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckOut {
    /// `pass` or `fail`.
    pub status: &'static str,
    /// Time the check took, in milliseconds.
    pub duration_ms: u64,
    /// Why the check failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Liveness probe
///
/// Answers 200 while the process serves HTTP; checks no dependency.
#[utoipa::path(tag = "ops", responses((status = 200, description = "The process is alive.", body = HealthOut)))]
#[get("/livez")]
async fn livez() -> HttpResponse {
    HttpResponse::Ok().json(HealthOut {
        status: "pass",
        checks: BTreeMap::new(),
    })
}

/// Readiness probe
///
/// Checks the database and, when configured, Redis. 503 names the failing check.
#[utoipa::path(tag = "ops", responses(
    (status = 200, description = "Every dependency is reachable.", body = HealthOut),
    (status = 503, description = "A dependency is unreachable.", body = HealthOut),
))]
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    readiness(&state).await
}

/// Readiness probe (alias of `/readyz`)
///
/// The same checks as `/readyz`, for tools that expect `/healthz`.
#[utoipa::path(tag = "ops", responses(
    (status = 200, description = "Every dependency is reachable.", body = HealthOut),
    (status = 503, description = "A dependency is unreachable.", body = HealthOut),
))]
#[get("/healthz")]
async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    readiness(&state).await
}

/// Prometheus metrics
///
/// Metrics in the Prometheus text format, including `http_server_request_duration_seconds`
/// by route template, method and status.
#[utoipa::path(tag = "ops", responses((status = 200, description = "Prometheus text exposition.", content_type = "text/plain", body = String)))]
#[get("/metrics")]
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let mut text = telemetry::metrics_handle().render();
    state.limiter.render_metrics(&mut text);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}

async fn readiness(state: &AppState) -> HttpResponse {
    let mut checks = BTreeMap::new();
    checks.insert("database", check(db::ping(&state.db)).await);
    if let Some(redis) = &state.redis {
        checks.insert("redis", check(redis.ping()).await);
    }
    let healthy = checks.values().all(|c| c.status == "pass");
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    HttpResponse::build(status)
        .insert_header(("Cache-Control", "no-store"))
        .json(HealthOut {
            status: if healthy { "pass" } else { "fail" },
            checks,
        })
}

async fn check<E: std::fmt::Display>(probe: impl Future<Output = Result<(), E>>) -> CheckOut {
    let started = std::time::Instant::now();
    let outcome = tokio::time::timeout(CHECK_TIMEOUT, probe).await;
    let duration_ms = started.elapsed().as_millis() as u64;
    let detail = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(err)) => Some(err.to_string()),
        Err(_) => Some(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
    };
    let status = if detail.is_none() { "pass" } else { "fail" };
    CheckOut {
        status,
        duration_ms,
        detail,
    }
}
