//! `POST /v1/verify`: the hot path for services in any language — verify a key, decide its
//! windows, get the same status, headers and texts the middleware would give.

use std::sync::Arc;

use actix_web::{HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::{
    error::{Error, Result},
    http::{
        extractors::Json,
        hot_path::{admit, key_event},
        problem::Problem,
        rate_limit::{self, QuotaExceeded},
    },
    ids::{KeyId, TenantId},
    metering::{Source, method},
    state::AppState,
};

/// The largest cost one verification may consume.
const MAX_COST: u64 = 1_000_000;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(verify);
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyIn {
    /// The API key secret the client presented.
    pub key: String,
    /// The route template being called (`/v1/orders/{id}`), for metering.
    pub endpoint: String,
    /// The HTTP method being called.
    pub method: String,
    /// Units this call consumes (default 1).
    #[serde(default)]
    pub cost: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyOut {
    /// Always `true` (refusals are 401, 403 or 429 problems).
    pub allowed: bool,
    pub key_id: KeyId,
    pub tenant_id: TenantId,
    pub key_name: String,
    /// Every window's state after this call, minute first; the month when the key has a quota.
    pub windows: Vec<WindowStateOut>,
}

/// One rate-limit window's state after the call.
#[derive(Debug, Serialize, ToSchema)]
pub struct WindowStateOut {
    /// `minute`, `hour`, `day` or `month`.
    pub window: &'static str,
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until `remaining` next grows.
    pub reset: u64,
}

/// Verify an API key
///
/// Verifies the key and counts one call (or `cost`) against every window, atomically.
/// Answers exactly like a metered endpoint: 200 with the `X-RateLimit-*`, `RateLimit-Policy`
/// and `RateLimit` headers; 401 `Missing API key` / `Invalid API key`; 403 `API key is
/// inactive`; 429 `Rate limit exceeded for <window>. Try again in N seconds` with
/// `Retry-After`. The call is metered with `source = verify`.
#[utoipa::path(
    tag = "verify",
    request_body = VerifyIn,
    responses(
        (status = 200, description = "Admitted.", body = VerifyOut),
        (status = 400, description = "The body is not JSON.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`Missing API key` or `Invalid API key`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`API key is inactive`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "A window refused the call.", body = QuotaExceeded, content_type = "application/problem+json"),
        (status = 503, description = "Rate limiting unavailable (Redis down with `fail_closed`).", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/verify")]
async fn verify(state: web::Data<AppState>, body: Json<VerifyIn>) -> Result<HttpResponse> {
    let body = body.0;
    let cost = body.cost.unwrap_or(1);
    if !(1..=MAX_COST).contains(&cost) {
        return Err(Error::invalid(
            "/cost",
            format!("must be between 1 and {MAX_COST}"),
        ));
    }
    if body.endpoint.is_empty() || body.method.is_empty() {
        let pointer = if body.endpoint.is_empty() {
            "/endpoint"
        } else {
            "/method"
        };
        return Err(Error::invalid(pointer, "must not be empty"));
    }
    let endpoint = Arc::from(body.endpoint.as_str());
    let method = method(&body.method.to_ascii_uppercase());
    let admission = match admit(&state, Some(&body.key), cost).await {
        Ok(admission) => admission,
        Err(refusal) => {
            return Ok(refusal.answer(&state, None, |key| {
                key_event(key, Source::Verify, endpoint, method)
            }));
        }
    };
    let key = &admission.key;
    let refused = rate_limit::refusal(&admission.decision, &admission.month);
    let status = if refused.is_some() { 429 } else { 200 };
    let mut event = admission.event(Source::Verify, endpoint, method);
    event.status_code = status;
    state.recorder.record(event);
    if let Some(refused) = refused {
        return Ok(refused);
    }
    let windows = admission
        .decision
        .windows()
        .map(|(window, w)| WindowStateOut {
            window,
            limit: w.limit,
            remaining: w.remaining(),
            reset: w.reset_secs,
        })
        .collect();
    let mut response = HttpResponse::Ok().json(VerifyOut {
        allowed: true,
        key_id: key.id,
        tenant_id: key.tenant_id,
        key_name: key.name.clone(),
        windows,
    });
    rate_limit::apply(
        response.headers_mut(),
        &admission.decision,
        &admission.month,
    );
    Ok(response)
}
