//! `GET /v1/analytics/rate-limits`: each key's rate-limit utilization now, its peaks and
//! history over the window, and recommendations for keys near their limits.

use actix_web::{HttpResponse, get, web};
use chrono::Utc;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

use super::analytics::{QuestionParams, ask};
use crate::{
    analytics::rate_limits::{Context, DEFAULT_THRESHOLD, RateLimits, report},
    error::{Error, Result},
    http::{auth::Caller, extractors::Query, problem::Problem},
    state::AppState,
};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get_rate_limits);
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ThresholdParams {
    /// Utilization, in percent of a window's limit, from which a key is reported as near its
    /// limit: 1 to 100 (default 80).
    #[param(minimum = 1, maximum = 100)]
    pub threshold: Option<u8>,
}

/// Rate-limit utilization
///
/// Per key (a tenant's keys that are not revoked; across tenants, the keys with calls in the
/// window; at most 500, fullest first): each window's limit, calls counted now and percent
/// used — asked of the limiter without counting a call — and the peak percent in the window;
/// the peak utilization history per key and bucket (minute, hour or day, chosen from the
/// window's length); and a recommendation line for each key at or above the threshold now
/// ("Key 'render-farm' is at 82/100 req/min") or at its peak.
#[utoipa::path(
    tag = "analytics",
    security(("bearer" = [])),
    params(QuestionParams, ThresholdParams),
    responses(
        (status = 200, description = "The keys' utilization.", body = RateLimits),
        (status = 400, description = "A parameter is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Another tenant's usage.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/analytics/rate-limits")]
async fn get_rate_limits(
    state: web::Data<AppState>,
    caller: Caller,
    params: Query<QuestionParams>,
    threshold: Query<ThresholdParams>,
) -> Result<HttpResponse> {
    let threshold_percent = threshold.0.threshold.unwrap_or(DEFAULT_THRESHOLD);
    if !(1..=100).contains(&threshold_percent) {
        return Err(Error::bad_request("`threshold` must be between 1 and 100."));
    }
    let question = ask(&state, &caller, &params.0)?;
    let ctx = context(&state, threshold_percent);
    let answer = report(&state.db, &question, &ctx).await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// What the utilization reports ask the limiter with, now.
pub(super) fn context(state: &AppState, threshold_percent: u8) -> Context<'_> {
    Context {
        limiter: &state.limiter,
        defaults: &state.settings.limits,
        threshold_percent,
        now: Utc::now(),
    }
}
