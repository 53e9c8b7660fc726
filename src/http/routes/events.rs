//! `/v1/events`: usage events reported by services that meter themselves, sent with an API
//! key or a member's access token.

use std::{future::Future, pin::Pin};

use actix_web::{FromRequest, HttpRequest, HttpResponse, dev::Payload, http::header, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::{
    error::{Error, Result},
    http::{api_key::ApiKey, auth::Caller, extractors::Json, problem::Problem},
    metering::ingest::{self, EventIn, Ingester},
    state::AppState,
    tenancy::{Permission, TenantScope},
};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(ingest_events);
}

/// A batch of usage events.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsIn {
    /// 1 to `metering.ingest_max_batch` (default 1000) events.
    #[schema(value_type = Vec<EventIn>)]
    pub events: Vec<serde_json::Value>,
}

/// What happened to the batch: `accepted + duplicates` is its size.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsAcceptedOut {
    /// Events stored by this request.
    pub accepted: u64,
    /// Events stored before (same `id` and `occurred_at`), or repeated within the batch.
    pub duplicates: u64,
}

/// Who sends a batch: an API key (`X-API-Key`, preferred when both are present) or a member
/// whose role may manage keys (checked before the body is read).
enum EventSender {
    Key(ApiKey),
    Member(TenantScope),
}

impl FromRequest for EventSender {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let headers = req.headers();
        if headers.contains_key(crate::http::api_key::HEADER) {
            let key = ApiKey::from_request(req, payload);
            Box::pin(async move { key.await.map(EventSender::Key) })
        } else if headers.contains_key(header::AUTHORIZATION) {
            let caller = Caller::from_request(req, payload);
            Box::pin(async move {
                let scope = caller.await?.principal.tenant_scope()?;
                scope.require(Permission::ManageKeys)?;
                Ok(EventSender::Member(scope))
            })
        } else {
            Box::pin(std::future::ready(Err(Error::unauthorized(
                "Missing credentials: send an API key (X-API-Key) or an access token \
                 (Authorization: Bearer …).",
            ))))
        }
    }
}

/// Report usage events
///
/// Records a batch of events from a service that meters itself. Authenticate with the
/// service's API key (`X-API-Key`: events belong to its tenant and default to that key) or
/// with an access token of a member allowed to manage keys. Every event carries a
/// client-generated `id`: re-sending a batch (same `id` and `occurred_at`) stores nothing
/// twice, and the answer counts the repeats as `duplicates`. The batch is validated as a
/// whole — one bad event rejects it, and `errors` lists every bad field as
/// `/events/<index>/<field>` — then stored before the answer.
#[utoipa::path(
    tag = "events",
    security(("api_key" = []), ("bearer" = [])),
    request_body = EventsIn,
    responses(
        (status = 202, description = "Stored; how many were new and how many were repeats.", body = EventsAcceptedOut),
        (status = 400, description = "The body is not JSON.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No credentials, or an unknown API key or invalid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The API key is inactive, or the role may not report usage.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "More events than `metering.ingest_max_batch`, or a body over the size limit.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid events (every bad field listed), or a `key_id` that is not the tenant's.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable; send the batch again later.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/events")]
async fn ingest_events(
    state: web::Data<AppState>,
    sender: EventSender,
    body: Json<EventsIn>,
) -> Result<HttpResponse> {
    let max = state.settings.metering.ingest_max_batch;
    let events = body.0.events;
    let outcome = match &sender {
        EventSender::Key(key) => {
            let who = Ingester::Key {
                tenant_id: key.0.tenant_id,
                key_id: key.0.id,
            };
            ingest::ingest(&state.db, who, events, max, &state.live, &state.recorder).await?
        }
        EventSender::Member(scope) => {
            ingest::ingest(
                &state.db,
                Ingester::Member(scope),
                events,
                max,
                &state.live,
                &state.recorder,
            )
            .await?
        }
    };
    Ok(HttpResponse::Accepted().json(EventsAcceptedOut {
        accepted: outcome.accepted,
        duplicates: outcome.duplicates,
    }))
}
