//! `GET /v1/live`: a WebSocket pushing the tenant's live counters and activity feed once a
//! second (`metering::live`). Browsers cannot set headers on a WebSocket, so the access token
//! may also come as `?access_token=`.

use actix_web::{HttpRequest, HttpResponse, get, web};
use actix_ws::{CloseCode, CloseReason, Message};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::{
    Error,
    analytics::Tenants,
    auth,
    config::AuthSettings,
    error::Result,
    http::{auth::presented_token, extractors::Query, problem::Problem, session},
    ids::TenantId,
    metering::live::Frame,
    state::AppState,
    tenancy::Permission,
};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(live);
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LiveParams {
    /// The access token, when the client cannot send `Authorization: Bearer` (browsers).
    pub access_token: Option<String>,
    /// Platform administrators: the tenant to watch (required for them). Others may only
    /// name their own.
    pub tenant_id: Option<TenantId>,
}

fn token(req: &HttpRequest, params: &LiveParams, settings: &AuthSettings) -> Result<String> {
    if let Some(token) = params.access_token.clone().filter(|t| !t.is_empty()) {
        return Ok(token);
    }
    // A cookie-authenticated handshake must come from our own pages (a cross-site page
    // could otherwise open the socket with the victim's cookie).
    if session::token(req).is_some() && !session::same_origin(req) {
        return Err(Error::forbidden(
            "The WebSocket handshake comes from another origin.",
        ));
    }
    presented_token(req, settings).map_err(|_| {
        Error::unauthorized(
            "Missing access token (Authorization: Bearer …, ?access_token=, or the session cookie).",
        )
    })
}

/// Live counters (WebSocket)
///
/// Upgrades to a WebSocket and sends the counters at once (with an empty feed), then one JSON
/// text message per second: calls and failures per second (last 10 s), the last minute's
/// calls, failures and P95 latency, calls per key, and the calls committed since the
/// previous message (`Frame`). Counters cover the calls this
/// node served. A client that falls 8 messages behind is disconnected (close code 1008).
#[utoipa::path(
    tag = "analytics",
    security(("bearer" = [])),
    params(LiveParams),
    responses(
        (status = 101, description = "Switching to the WebSocket; then one `Frame` per second.", body = Frame),
        (status = 400, description = "Not a WebSocket handshake, or an administrator named no tenant.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Another tenant's usage.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/live")]
async fn live(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
    params: Query<LiveParams>,
) -> Result<HttpResponse> {
    let token = token(&req, &params.0, &state.settings.auth)?;
    let principal = auth::authenticate(&state.db, &state.settings.auth, &token).await?;
    let tenant = match Tenants::for_principal(&principal, params.0.tenant_id, Permission::Read)? {
        Tenants::One(tenant) => tenant,
        Tenants::All => {
            return Err(Error::bad_request(
                "Platform administrators must name the tenant to watch (`tenant_id`).",
            ));
        }
    };
    let (response, mut session, mut incoming) = actix_ws::handle(&req, body)
        .map_err(|err| Error::bad_request(format!("Not a WebSocket handshake: {err}.")))?;
    let (mut frames, now) = state.live.subscribe(tenant.0);
    actix_web::rt::spawn(async move {
        if session.text(now.to_string()).await.is_err() {
            return;
        }
        let reason = loop {
            tokio::select! {
                frame = frames.recv() => match frame {
                    Ok(json) => {
                        if session.text(json.to_string()).await.is_err() {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::info!(missed, "live client too slow; disconnecting");
                        break Some(CloseReason {
                            code: CloseCode::Policy,
                            description: Some("too slow: frames were missed".into()),
                        });
                    }
                    Err(RecvError::Closed) => break Some(CloseCode::Away.into()),
                },
                message = incoming.recv() => match message {
                    Some(Ok(Message::Ping(bytes))) => {
                        if session.pong(&bytes).await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break None,
                    Some(Ok(_)) => {}
                },
            }
        };
        let _ = session.close(reason).await;
    });
    Ok(response)
}
