//! Runs a creating handler under `Idempotency-Key` (see `crate::idempotency`): replays a
//! completed response with `Idempotent-Replayed: true`, records a successful one, forgets a
//! failed one.

use actix_web::{HttpRequest, HttpResponse, http::StatusCode};
use serde::Serialize;

use crate::{
    error::{Error, Result},
    idempotency::{self, Begin, Request, Stored},
    state::AppState,
};

pub const HEADER: &str = "Idempotency-Key";

/// Calls `handler` at most once per (scope, Idempotency-Key); without the header it just
/// calls it. `body` is the parsed request body, part of the request fingerprint.
pub async fn run<B, F, Fut>(
    state: &AppState,
    req: &HttpRequest,
    scope: &str,
    body: &B,
    handler: F,
) -> Result<HttpResponse>
where
    B: Serialize,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(StatusCode, serde_json::Value)>>,
{
    let Some(key) = req.headers().get(HEADER) else {
        let (status, body) = handler().await?;
        return Ok(HttpResponse::build(status).json(body));
    };
    let key = key
        .to_str()
        .map_err(|_| Error::bad_request("The Idempotency-Key header must be ASCII."))?;
    let body = serde_json::to_vec(body).map_err(Error::internal)?;
    let request = Request {
        scope,
        key,
        method: req.method().as_str(),
        path: req.path(),
        body: &body,
    };
    if let Begin::Replay(stored) = idempotency::begin(&state.db, &state.crypto, &request).await? {
        let status = StatusCode::from_u16(stored.status).map_err(Error::internal)?;
        return Ok(HttpResponse::build(status)
            .insert_header(("Idempotent-Replayed", "true"))
            .content_type("application/json")
            .body(stored.body));
    }
    match handler().await {
        Ok((status, json)) => {
            let bytes = serde_json::to_vec(&json).map_err(Error::internal)?;
            let stored = Stored {
                status: status.as_u16(),
                body: bytes.clone(),
            };
            idempotency::complete(&state.db, &state.crypto, &request, &stored).await?;
            Ok(HttpResponse::build(status)
                .content_type("application/json")
                .body(bytes))
        }
        Err(err) => {
            idempotency::abandon(&state.db, &request).await?;
            Err(err)
        }
    }
}
