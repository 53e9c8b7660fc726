//! `GET /v1/ping`: a built-in endpoint behind API-key verification, for smoke tests and
//! benchmarks.

use actix_web::{HttpResponse, get, middleware::from_fn};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::{scope, service_config::ServiceConfig};

use crate::{
    http::{api_key::ApiKey, hot_path, problem::Problem, rate_limit::QuotaExceeded},
    ids::{KeyId, TenantId},
};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(
        scope("/v1/ping")
            .wrap(from_fn(hot_path::metered))
            .service(ping),
    );
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PingOut {
    /// Always `true`.
    pub pong: bool,
    /// The key the call was made with.
    pub key_id: KeyId,
    pub tenant_id: TenantId,
}

/// Ping with an API key
///
/// Answers 200 when the `X-API-Key` is valid, active and within its limits: the full metered
/// path (key check, all rate-limit windows, headers, usage event) around an empty handler.
#[utoipa::path(
    tag = "verify",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The key is valid.", body = PingOut),
        (status = 401, description = "`Missing API key` or `Invalid API key`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`API key is inactive` (deactivated, revoked or expired).", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "A window refused the call; `Retry-After` says when to retry.", body = QuotaExceeded, content_type = "application/problem+json"),
        (status = 503, description = "Rate limiting unavailable (Redis down with `fail_closed`).", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("")]
async fn ping(key: ApiKey) -> HttpResponse {
    HttpResponse::Ok().json(PingOut {
        pong: true,
        key_id: key.0.id,
        tenant_id: key.0.tenant_id,
    })
}
