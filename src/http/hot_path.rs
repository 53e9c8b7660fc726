//! The metered-call middleware — the hot path, public for Rust services built on actix-web:
//! resolve `X-API-Key` through the key cache, decide every rate-limit window at once, serve,
//! add the rate-limit headers, and record the usage event without awaiting I/O.
//!
//! ```ignore
//! App::new()
//!     .app_data(web::Data::new(state))
//!     .service(web::scope("/api").wrap(from_fn(tollgate::http::hot_path::metered)).service(...))
//! ```
//! Handlers behind it read the verified key with the [`ApiKey`](super::api_key::ApiKey)
//! extractor, which takes it from the request instead of resolving it again.

use std::{sync::Arc, time::Instant};

use actix_web::{
    Error as ActixError, HttpMessage, HttpRequest, HttpResponse, ResponseError,
    body::{BoxBody, EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::header,
    middleware::Next,
    web,
};
use chrono::Utc;

use super::{api_key, rate_limit};
use crate::{
    error::{Error, Result},
    keys::resolve::{self, CachedKey},
    limits::{Decision, Request, month},
    metering::{Source, UsageEvent, method},
    state::AppState,
    telemetry::{self, RoutePattern},
};

/// A call not admitted: the problem to answer with, and the key presented when one answers
/// to the secret (inactive, revoked, expired, past its rotation grace, or the limiter
/// unavailable) — the refusal is then recorded in that key's usage.
pub struct Refusal {
    pub error: Error,
    pub key: Option<Arc<CachedKey>>,
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Self {
        refusal.error
    }
}

impl Refusal {
    /// The problem response. Records the call with `event` (the usage event of a call that
    /// presented the key, see [`key_event`]) when a key answered — with the response's size
    /// and the latency since `started` when the call is served here (`None` for
    /// `/v1/verify`) — and counts every refusal in `tollgate_api_key_refusals_total{status}`.
    pub(crate) fn answer(
        self,
        state: &AppState,
        started: Option<Instant>,
        event: impl FnOnce(&CachedKey) -> UsageEvent,
    ) -> HttpResponse {
        let response = self.error.error_response();
        let status = response.status().as_u16();
        let label = match status {
            401 => "401",
            403 => "403",
            503 => "503",
            _ => "other",
        };
        metrics::counter!("tollgate_api_key_refusals_total", "status" => label).increment(1);
        if let Some(key) = &self.key {
            let event = event(key);
            match started {
                Some(started) => finish(state, event, started, status, body_size(&response)),
                None => state.recorder.record(UsageEvent {
                    status_code: status,
                    ..event
                }),
            }
        }
        response
    }
}

/// The admission of one call: its key and the limiter's decision.
pub struct Admission {
    pub key: Arc<CachedKey>,
    pub decision: Decision,
    pub month: month::MonthSpan,
}

impl Admission {
    /// A usage event of this call: its tenant, key and the windows' utilization.
    pub fn event(&self, source: Source, endpoint: Arc<str>, method: Arc<str>) -> UsageEvent {
        let mut event = key_event(&self.key, source, endpoint, method);
        event.utilization = self.decision.utilization();
        event
    }
}

/// A usage event of a call that presented `key`: its tenant and key.
pub fn key_event(
    key: &CachedKey,
    source: Source,
    endpoint: Arc<str>,
    method: Arc<str>,
) -> UsageEvent {
    UsageEvent::new(source, key.tenant_id, Some(key.id), endpoint, method, 0)
}

/// Resolves the presented secret and decides the call's windows (`cost` units). Shared by
/// the middleware, the gateway and `/v1/verify`, so the three agree exactly.
pub async fn admit(
    state: &AppState,
    presented: Option<&str>,
    cost: u64,
) -> std::result::Result<Admission, Refusal> {
    let keyless = |error| Refusal { error, key: None };
    let digest = resolve::presented(presented).map_err(keyless)?;
    let now = Utc::now();
    let key = state
        .key_cache
        .known(&state.db, &digest)
        .await
        .map_err(keyless)?;
    let refused = |error| Refusal {
        error,
        key: Some(key.clone()),
    };
    resolve::check(&key, now).map_err(refused)?;
    let (month, next_month) = month::current_and_next(now, key.timezone);
    let request = Request {
        key: key.id.0,
        quota: key.quota,
        cost,
        month,
        next_month,
    };
    let decision = state.limiter.decide(&request, now).await.map_err(refused)?;
    Ok(Admission {
        key,
        decision,
        month,
    })
}

/// The middleware: 401/403 problem for a bad key, 429 when a window refuses, otherwise the
/// inner service's response with the rate-limit headers. Every call that presented an
/// existing key is recorded, refusals included.
pub async fn metered(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<BoxBody>>, ActixError> {
    let started = Instant::now();
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        let err = Error::internal(anyhow::anyhow!(
            "AppState missing for the metered middleware"
        ));
        return Ok(req
            .into_response(err.error_response())
            .map_into_right_body());
    };
    let presented = req
        .headers()
        .get(api_key::HEADER)
        .map(|v| v.to_str().unwrap_or_default());
    let admission = match admit(&state, presented, 1).await {
        Ok(admission) => admission,
        Err(refusal) => {
            let response = refusal.answer(&state, Some(started), |key| {
                request_event(req.request(), key, Source::Middleware, endpoint(&req))
            });
            return Ok(req.into_response(response).map_into_right_body());
        }
    };
    let event = new_event(
        req.request(),
        &admission,
        Source::Middleware,
        endpoint(&req),
    );
    if let Some(refused) = rate_limit::refusal(&admission.decision, &admission.month) {
        finish(&state, event, started, 429, 0);
        return Ok(req.into_response(refused).map_into_right_body());
    }
    req.extensions_mut().insert(admission.key.clone());
    let mut response = next.call(req).await?.map_into_boxed_body();
    rate_limit::apply(
        response.headers_mut(),
        &admission.decision,
        &admission.month,
    );
    let bytes_out = body_size(response.response());
    finish(
        &state,
        event,
        started,
        response.status().as_u16(),
        bytes_out,
    );
    Ok(response.map_into_left_body())
}

/// The route template of the request: the metering endpoint.
fn endpoint(req: &ServiceRequest) -> Arc<str> {
    // Found once per request by the metrics middleware; matched here only without it.
    let known = req.extensions().get::<RoutePattern>().map(|p| p.0.clone());
    known.unwrap_or_else(|| telemetry::matched_route(req))
}

/// The usage event of a call admitted as `admission`, recorded as `endpoint`: method, request
/// size, client IP and user agent from the request. Shared with the gateway.
pub(crate) fn new_event(
    req: &HttpRequest,
    admission: &Admission,
    source: Source,
    endpoint: Arc<str>,
) -> UsageEvent {
    let mut event = request_event(req, &admission.key, source, endpoint);
    event.utilization = admission.decision.utilization();
    event
}

/// The usage event of a call that presented `key`, from the request (see [`new_event`]).
pub(crate) fn request_event(
    req: &HttpRequest,
    key: &CachedKey,
    source: Source,
    endpoint: Arc<str>,
) -> UsageEvent {
    let event = key_event(key, source, endpoint, method(req.method().as_str()));
    with_request(req, event)
}

/// `event` with the request's size, client IP and user agent.
fn with_request(req: &HttpRequest, mut event: UsageEvent) -> UsageEvent {
    event.bytes_in = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    event.ip = req.peer_addr().map(|addr| addr.ip());
    event.user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(Arc::from);
    event
}

/// The size of a response body, when known before it is sent.
pub(crate) fn body_size<B: MessageBody>(response: &actix_web::HttpResponse<B>) -> i64 {
    match response.body().size() {
        actix_web::body::BodySize::Sized(n) => n as i64,
        _ => 0,
    }
}

/// Completes `event` (status, response size, latency since `started`) and records it.
pub(crate) fn finish(
    state: &AppState,
    mut event: UsageEvent,
    started: Instant,
    status: u16,
    bytes_out: i64,
) {
    event.status_code = status;
    event.bytes_out = bytes_out;
    event.latency_us = started.elapsed().as_micros() as i64;
    state.recorder.record(event);
}
