//! The auth extractor: the only code that turns a request into a [`Principal`] (and, through
//! it, a `TenantScope` or `AdminScope`). `Authorization: Bearer <access token>`, or the
//! dashboard's session cookie with its CSRF token on unsafe methods ([`super::session`]).

use std::{future::Future, pin::Pin};

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, http::header, web};
use tracing_actix_web::RequestId;

use super::session;
use crate::{audit, auth, config::AuthSettings, error::Error, state::AppState, tenancy::Principal};

/// The authenticated caller and the audit context of this request (IP, user agent, request
/// id). Missing or invalid token -> 401 problem.
pub struct Caller {
    pub principal: Principal,
    pub audit: audit::Context,
}

impl FromRequest for Caller {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = state
            .as_ref()
            .ok_or_else(|| Error::internal(anyhow::anyhow!("AppState missing")))
            .and_then(|state| presented_token(req, &state.settings.auth));
        let request = request_context(req);
        Box::pin(async move {
            let state =
                state.ok_or_else(|| Error::internal(anyhow::anyhow!("AppState missing")))?;
            let token = token?;
            let principal = auth::authenticate(&state.db, &state.settings.auth, &token).await?;
            let audit = request.acting_as(principal.user_id, &principal.email);
            Ok(Caller { principal, audit })
        })
    }
}

/// The bearer token, else the session cookie's token (checking its CSRF token on unsafe
/// methods).
pub fn presented_token(req: &HttpRequest, settings: &AuthSettings) -> Result<String, Error> {
    if req.headers().contains_key(header::AUTHORIZATION) {
        return bearer_token(req);
    }
    let Some(session) = session::token(req) else {
        return Err(Error::unauthorized(
            "Missing access token (Authorization: Bearer …).",
        ));
    };
    session::check_api_csrf(req, settings, &session)?;
    Ok(session)
}

fn bearer_token(req: &HttpRequest) -> Result<String, Error> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| Error::unauthorized("Missing access token (Authorization: Bearer …)."))?;
    let value = value.to_str().unwrap_or_default();
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim().to_owned())
        }
        _ => Err(Error::unauthorized(
            "The Authorization header must be `Bearer <token>`.",
        )),
    }
}

/// The audit context of a request before authentication: IP, user agent, request id.
pub fn request_context(req: &HttpRequest) -> audit::Context {
    let request_id = req.extensions().get::<RequestId>().map(ToString::to_string);
    audit::Context::anonymous(client_ip(req), user_agent(req), request_id)
}

/// The `User-Agent` header, when present and readable.
pub fn user_agent(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::USER_AGENT)?.to_str().ok()?;
    Some(value.chars().take(512).collect())
}

/// The client's address as seen on the socket (a proxy's forwarding headers are not trusted).
pub fn client_ip(req: &HttpRequest) -> Option<String> {
    req.peer_addr().map(|addr| addr.ip().to_string())
}
