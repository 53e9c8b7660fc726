//! The dashboard's session: an `HttpOnly`, `SameSite=Strict` cookie carrying a session token
//! (`auth::TokenUse::Session`), and the CSRF token derived from it. A request authenticated by
//! the cookie instead of `Authorization` must carry the CSRF token in `X-CSRF-Token` (API
//! calls) or a `csrf` form field (dashboard forms) whenever its method is not safe.

use actix_web::{
    HttpRequest,
    cookie::{Cookie, SameSite, time::Duration},
    http::{Method, header},
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{config::AuthSettings, error::Error};

/// The session cookie's name.
pub const COOKIE: &str = "tollgate_session";
/// The header API calls from the dashboard carry the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The session token the request's cookie carries, if any.
pub fn token(req: &HttpRequest) -> Option<String> {
    req.cookie(COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

/// The CSRF token of a session: a keyed digest of the session token, so it needs no storage
/// and a page from one session is useless in another.
pub fn csrf(settings: &AuthSettings, session: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"tollgate-csrf\0");
    hasher.update(settings.jwt_secret.expose().as_bytes());
    hasher.update(b"\0");
    hasher.update(session.as_bytes());
    hex::encode(&hasher.finalize()[..16])
}

/// Whether `presented` is the session's CSRF token (compared in constant time).
pub fn csrf_matches(settings: &AuthSettings, session: &str, presented: &str) -> bool {
    let expected = csrf(settings, session);
    expected.as_bytes().ct_eq(presented.as_bytes()).into()
}

/// For a cookie-authenticated API call: unsafe methods need the CSRF header.
pub fn check_api_csrf(
    req: &HttpRequest,
    settings: &AuthSettings,
    session: &str,
) -> Result<(), Error> {
    if is_safe(req.method()) {
        return Ok(());
    }
    let presented = req
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if csrf_matches(settings, session, presented) {
        Ok(())
    } else {
        Err(Error::forbidden(
            "A request authenticated by the session cookie must carry its CSRF token in X-CSRF-Token.",
        ))
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether a browser request comes from our own pages: its `Origin` (sent by browsers on
/// every POST and WebSocket handshake) names this host. Requests without `Origin` (not from
/// a browser) pass; the cookie's `SameSite=Strict` is the first line of defence.
pub fn same_origin(req: &HttpRequest) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return true;
    };
    let host = req.connection_info().host().to_owned();
    let origin = origin.to_str().unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(&host))
}

/// The cookie that starts a session of `ttl_secs`; `Secure` when the request came over HTTPS.
pub fn start(req: &HttpRequest, token: String, ttl_secs: u64) -> Cookie<'static> {
    Cookie::build(COOKIE, token)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(req.connection_info().scheme() == "https")
        .max_age(Duration::seconds(ttl_secs.min(i64::MAX as u64) as i64))
        .finish()
}

/// The cookie that ends the session.
pub fn end() -> Cookie<'static> {
    let mut cookie = Cookie::build(COOKIE, "")
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .finish();
    cookie.make_removal();
    cookie
}
