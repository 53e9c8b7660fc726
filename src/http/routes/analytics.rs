//! `/v1/analytics/…`: usage questions answered from the rollups. Merchants read their active
//! tenant; platform administrators read every tenant's or the one named by `tenant_id`.

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::{
    analytics::{
        self, Endpoints, Filter, GroupBy, Keys, Question, RankBy, Summary, Tenants, Timeseries,
        TopConsumers, Window,
        drill::{self, Errors, Heatmap, HeatmapBucket, HeatmapKind, SlowRequests},
        rate_limits,
    },
    config::RetentionSettings,
    error::Result,
    http::{auth::Caller, extractors::Query, problem::Problem},
    ids::{KeyId, TenantId},
    metering::rollup::Granularity,
    state::AppState,
    tenancy::{Permission, Principal},
};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(summary)
        .service(timeseries)
        .service(endpoints)
        .service(keys)
        .service(top_consumers)
        .service(errors)
        .service(slow_requests)
        .service(heatmap);
}

/// The window and filters every analytics question (and export) takes.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QuestionParams {
    /// Start of the window (RFC 3339), rounded down to the minute. Default: 24 hours before
    /// `to`.
    pub from: Option<DateTime<Utc>>,
    /// End of the window, exclusive (RFC 3339), rounded up to the minute. Default: now.
    pub to: Option<DateTime<Utc>>,
    /// Only calls made with this key.
    pub key_id: Option<KeyId>,
    /// Only this endpoint template, e.g. `/v1/users/{id}`.
    pub endpoint: Option<String>,
    /// Only this method (any case).
    pub method: Option<String>,
    /// Only this status class: `1xx` … `5xx`.
    pub status_class: Option<String>,
    /// Platform administrators: only this tenant (default: every tenant). Others may only
    /// name their own.
    pub tenant_id: Option<TenantId>,
}

impl QuestionParams {
    /// The question, scoped to what `principal` may read with `permission`, its window's
    /// edges fitted to the rollups still kept.
    pub fn question(
        &self,
        principal: &Principal,
        permission: Permission,
        retention: &RetentionSettings,
    ) -> Result<Question> {
        let tenants = Tenants::for_principal(principal, self.tenant_id, permission)?;
        let now = Utc::now();
        let window = Window::new(self.from, self.to, now)?.within_retention(retention, now);
        let status_class = match &self.status_class {
            Some(raw) => Some(Filter::parse_status_class(raw)?),
            None => None,
        };
        Ok(Question {
            tenants,
            window,
            filter: Filter {
                key_id: self.key_id.map(|k| k.0),
                endpoint: self.endpoint.clone(),
                method: self.method.as_deref().map(str::to_ascii_uppercase),
                status_class,
            },
        })
    }
}

pub(super) fn ask(state: &AppState, caller: &Caller, params: &QuestionParams) -> Result<Question> {
    params.question(
        &caller.principal,
        Permission::Read,
        &state.settings.retention,
    )
}

/// Usage summary
///
/// Totals over the window: calls, succeeded and failed (status ≥ 400), error rate, average
/// and P50/P95/P99 latency (within 1 % of exact), bytes, tokens, cost per currency, distinct
/// endpoints and the read/write split. An empty window answers with zeros.
#[utoipa::path(
    tag = "analytics",
    security(("bearer" = [])),
    params(QuestionParams),
    responses(
        (status = 200, description = "The summary.", body = Summary),
        (status = 400, description = "A parameter is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Another tenant's usage.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/analytics/summary")]
async fn summary(
    state: web::Data<AppState>,
    caller: Caller,
    params: Query<QuestionParams>,
) -> Result<HttpResponse> {
    let question = ask(&state, &caller, &params.0)?;
    Ok(HttpResponse::Ok().json(analytics::summary(&state.db, &question).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimeseriesParams {
    /// Bucket size; chosen from the window's length when omitted (minute up to 6 hours, hour
    /// up to 14 days, day beyond).
    pub granularity: Option<Granularity>,
    /// One series per key, endpoint (and method), status class or status code.
    pub group_by: Option<GroupBy>,
}

/// Usage over time
///
/// The summary's figures per bucket, with a point for every bucket of the window (widened to
/// whole buckets). At most 1500 buckets per series.
#[utoipa::path(
    tag = "analytics",
    security(("bearer" = [])),
    params(QuestionParams, TimeseriesParams),
    responses(
        (status = 200, description = "The series.", body = Timeseries),
        (status = 400, description = "A parameter is invalid, or too many buckets.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Another tenant's usage.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/analytics/timeseries")]
async fn timeseries(
    state: web::Data<AppState>,
    caller: Caller,
    params: Query<QuestionParams>,
    series: Query<TimeseriesParams>,
) -> Result<HttpResponse> {
    let question = ask(&state, &caller, &params.0)?;
    let answer = analytics::timeseries(
        &state.db,
        &question,
        series.0.granularity,
        series.0.group_by,
    )
    .await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// Usage per endpoint
///
/// Per endpoint template and method: calls, error rate, latency percentiles, and the change
/// in calls against the window of the same length just before. Busiest first.
#[utoipa::path(
    tag = "analytics",
    security(("bearer" = [])),
    params(QuestionParams),
    responses(
        (status = 200, description = "One row per endpoint and method.", body = Endpoints),
        (status = 400, description = "A parameter is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Another tenant's usage.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/analytics/endpoints")]
async fn endpoints(
    state: web::Data<AppState>,
    caller: Caller,
    params: Query<QuestionParams>,
) -> Result<HttpResponse> {
    let question = ask(&state, &caller, &params.0)?;
    Ok(HttpResponse::Ok().json(analytics::endpoints(&state.db, &question).await?))
}

/// Usage per key
///
/// Per key: calls, success rate, latency, tokens, cost, when it was last used, and each
/// rate-limit window's current use and peak in the window (`rate_limits`; see also
/// `/v1/analytics/rate-limits`). Busiest first; calls without a key (ingested) have
/// `key_id: null`.
#[utoipa::path(
    tag = "analytics",
    security(("bearer" = [])),
    params(QuestionParams),
    responses(
        (status = 200, description = "One row per key.", body = Keys),
        (status = 400, description = "A parameter is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Another tenant's usage.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/analytics/keys")]
async fn keys(
    state: web::Data<AppState>,
    caller: Caller,
    params: Query<QuestionParams>,
) -> Result<HttpResponse> {
    let question = ask(&state, &caller, &params.0)?;
    let ctx = super::rate_limits::context(&state, rate_limits::DEFAULT_THRESHOLD);
    Ok(HttpResponse::Ok().json(analytics::keys(&state.db, &question, &ctx).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RankParams {
    /// `volume` (default), `error_rate` or `bandwidth`.
    pub by: Option<RankBy>,
    /// How many, 1 to 100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
}

/// Top consumers
///
/// The keys ranked by volume, error rate or bandwidth, with their ids for drill-down.
#[utoipa::path(
    tag = "analytics",
    security(("bearer" = [])),
    params(QuestionParams, RankParams),
    responses(
        (status = 200, description = "The ranking.", body = TopConsumers),
        (status = 400, description = "A parameter is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Another tenant's usage.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/analytics/top-consumers")]
async fn top_consumers(
    state: web::Data<AppState>,
    caller: Caller,
    params: Query<QuestionParams>,
    rank: Query<RankParams>,
) -> Result<HttpResponse> {
    let limit = rank.0.limit.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(crate::Error::bad_request(
            "`limit` must be between 1 and 100.",
        ));
    }
    let question = ask(&state, &caller, &params.0)?;
    let by = rank.0.by.unwrap_or_default();
    let answer = analytics::top_consumers(&state.db, &question, by, limit).await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// Errors
///
/// Failed calls (status ≥ 400) per status code, per bucket, and the 50 most recent failed
/// calls (raw events, for drill-down).
#[utoipa::path(
    tag = "analytics",
    security(("bearer" = [])),
    params(QuestionParams),
    responses(
        (status = 200, description = "The breakdown.", body = Errors),
        (status = 400, description = "A parameter is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Another tenant's usage.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/analytics/errors")]
async fn errors(
    state: web::Data<AppState>,
    caller: Caller,
    params: Query<QuestionParams>,
) -> Result<HttpResponse> {
    let question = ask(&state, &caller, &params.0)?;
    Ok(HttpResponse::Ok().json(drill::errors(&state.db, &question).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LimitParams {
    /// How many, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
}

/// Slow requests
///
/// The slowest calls of the window (raw events), slowest first.
#[utoipa::path(
    tag = "analytics",
    security(("bearer" = [])),
    params(QuestionParams, LimitParams),
    responses(
        (status = 200, description = "The calls.", body = SlowRequests),
        (status = 400, description = "A parameter is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Another tenant's usage.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/analytics/slow-requests")]
async fn slow_requests(
    state: web::Data<AppState>,
    caller: Caller,
    params: Query<QuestionParams>,
    limit: Query<LimitParams>,
) -> Result<HttpResponse> {
    let limit = limit.0.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(crate::Error::bad_request(
            "`limit` must be between 1 and 100.",
        ));
    }
    let question = ask(&state, &caller, &params.0)?;
    Ok(HttpResponse::Ok().json(drill::slow_requests(&state.db, &question, limit).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HeatmapParams {
    /// `endpoint_time` (default) or `weekday_hour`.
    pub kind: Option<HeatmapKind>,
    /// Endpoint × time column width: `hour`, `day` or `week` (default from the window).
    pub bucket: Option<HeatmapBucket>,
}

/// Heatmap
///
/// Calls as a grid: the 20 busiest endpoints × time buckets (hour, day or week), or weekday
/// × hour of day (UTC), with the largest cell for the colour scale.
#[utoipa::path(
    tag = "analytics",
    security(("bearer" = [])),
    params(QuestionParams, HeatmapParams),
    responses(
        (status = 200, description = "The grid.", body = Heatmap),
        (status = 400, description = "A parameter is invalid, or too many columns.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Another tenant's usage.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/analytics/heatmap")]
async fn heatmap(
    state: web::Data<AppState>,
    caller: Caller,
    params: Query<QuestionParams>,
    shape: Query<HeatmapParams>,
) -> Result<HttpResponse> {
    let question = ask(&state, &caller, &params.0)?;
    let kind = shape.0.kind.unwrap_or_default();
    let answer = drill::heatmap(&state.db, &question, kind, shape.0.bucket).await?;
    Ok(HttpResponse::Ok().json(answer))
}
