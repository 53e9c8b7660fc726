//! The auth extractor: the only code that turns a request into a [`Principal`] (and, through
//! it, a `TenantScope` or `AdminScope`). `Authorization: Bearer <access token>`.

use std::{future::Future, pin::Pin};

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};

use crate::{auth, error::Error, state::AppState, tenancy::Principal};

/// The authenticated caller. Missing or invalid token -> 401 problem.
pub struct Authenticated(pub Principal);

impl FromRequest for Authenticated {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let bearer = bearer_token(req);
        Box::pin(async move {
            let state =
                state.ok_or_else(|| Error::internal(anyhow::anyhow!("AppState missing")))?;
            let token = bearer?;
            let principal = auth::authenticate(&state.db, &state.settings.auth, &token).await?;
            Ok(Authenticated(principal))
        })
    }
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

/// The client's address as seen on the socket (a proxy's forwarding headers are not trusted).
pub fn client_ip(req: &HttpRequest) -> Option<String> {
    req.peer_addr().map(|addr| addr.ip().to_string())
}
