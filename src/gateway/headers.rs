//! Which headers cross the gateway. Both ways: hop-by-hop headers (RFC 9110 §7.6.1) and every
//! header the `Connection` header names stay behind. Upstream: no `X-API-Key`, `Host` set by
//! the client for the upstream, `X-Forwarded-*` and `X-Real-IP` written by the gateway (an
//! incoming `X-Forwarded-For` is appended to, the others replaced), and the caller's tenant
//! and key ids as `X-Tollgate-Tenant` / `X-Tollgate-Key`, replacing any the caller sent.
//! actix-web speaks `http` 0.2 and reqwest `http` 1, so names and values are copied across.

use actix_web::{
    HttpMessage, HttpRequest,
    http::header::{self as actix_header, HeaderMap as ActixHeaders},
};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::route::Route;
use crate::{http::api_key, keys::resolve::CachedKey};

const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Request headers the gateway drops or writes itself (besides the hop-by-hop ones).
/// `Expect: 100-continue` was answered by Tollgate already.
const REPLACED_UPSTREAM: [&str; 10] = [
    "host",
    "expect",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-real-ip",
    "x-tollgate-tenant",
    "x-tollgate-key",
];

/// The client's `Accept-Encoding`, taken off the request before actix's `Compress` middleware
/// could act on it (the upstream decides about encoding, the gateway relays bytes as they are).
pub struct ClientAcceptEncoding(pub Vec<actix_header::HeaderValue>);

/// The headers of the upstream request for `req`, admitted with `key` on `route`.
pub fn to_upstream(req: &HttpRequest, key: &CachedKey, route: &Route) -> HeaderMap {
    let headers = req.headers();
    let listed = connection_tokens(headers.get_all(actix_header::CONNECTION));
    let mut out = HeaderMap::with_capacity(headers.len() + 8);
    let mut forwarded_for = String::new();
    for (name, value) in headers.iter() {
        let name = name.as_str();
        if name == "x-forwarded-for" {
            if let Ok(value) = value.to_str() {
                forwarded_for.push_str(value);
                forwarded_for.push_str(", ");
            }
            continue;
        }
        if name.eq_ignore_ascii_case(api_key::HEADER)
            || REPLACED_UPSTREAM.contains(&name)
            || dropped(name, &listed)
        {
            continue;
        }
        append(&mut out, name, value.as_bytes());
    }
    if let Some(accepted) = req.extensions().get::<ClientAcceptEncoding>() {
        for value in &accepted.0 {
            append(&mut out, "accept-encoding", value.as_bytes());
        }
    }
    let peer = req.peer_addr().map(|addr| addr.ip().to_string());
    if let Some(peer) = &peer {
        forwarded_for.push_str(peer);
        append(&mut out, "x-real-ip", peer.as_bytes());
    }
    if !forwarded_for.is_empty() {
        append(
            &mut out,
            "x-forwarded-for",
            forwarded_for.trim_end_matches(", ").as_bytes(),
        );
    }
    forwarding(req, route, &mut out);
    append(
        &mut out,
        "x-tollgate-tenant",
        key.tenant_id.to_string().as_bytes(),
    );
    append(&mut out, "x-tollgate-key", key.id.to_string().as_bytes());
    out
}

/// `X-Forwarded-Proto`, `-Host`, `-Port` and, when the prefix is stripped, `-Prefix`.
fn forwarding(req: &HttpRequest, route: &Route, out: &mut HeaderMap) {
    let config = req.app_config();
    let proto = if config.secure() { "https" } else { "http" };
    append(out, "x-forwarded-proto", proto.as_bytes());
    let host = req
        .headers()
        .get(actix_header::HOST)
        .map(|v| v.as_bytes().to_vec())
        .or_else(|| {
            req.uri()
                .authority()
                .map(|a| a.as_str().as_bytes().to_vec())
        });
    if let Some(host) = host {
        append(out, "x-forwarded-host", &host);
    }
    append(
        out,
        "x-forwarded-port",
        config.local_addr().port().to_string().as_bytes(),
    );
    if route.strips_prefix() {
        append(out, "x-forwarded-prefix", route.prefix.as_bytes());
    }
}

/// Copies the upstream's response headers into `into`, except hop-by-hop ones and
/// `Content-Length` (the relayed body reports its size; actix writes the header).
pub fn from_upstream(upstream: &HeaderMap, into: &mut ActixHeaders) {
    let listed = connection_tokens(upstream.get_all(reqwest::header::CONNECTION));
    for (name, value) in upstream {
        let name = name.as_str();
        if name == "content-length" || dropped(name, &listed) {
            continue;
        }
        let (Ok(name), Ok(value)) = (
            actix_header::HeaderName::from_bytes(name.as_bytes()),
            actix_header::HeaderValue::from_bytes(value.as_bytes()),
        ) else {
            continue;
        };
        into.append(name, value);
    }
}

/// Whether `name` (lower case) is hop-by-hop or named by the `Connection` header.
fn dropped(name: &str, listed: &[String]) -> bool {
    HOP_BY_HOP.contains(&name) || listed.iter().any(|token| token == name)
}

/// The lower-cased header names listed in `Connection` values.
fn connection_tokens<'a, V: AsRef<[u8]> + 'a>(
    values: impl IntoIterator<Item = &'a V>,
) -> Vec<String> {
    values
        .into_iter()
        .filter_map(|v| std::str::from_utf8(v.as_ref()).ok())
        .flat_map(|v| v.split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .filter(|token| !token.is_empty())
        .collect()
}

fn append(out: &mut HeaderMap, name: &str, value: &[u8]) {
    let (Ok(name), Ok(mut value)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_bytes(value),
    ) else {
        return;
    };
    if name == reqwest::header::AUTHORIZATION || name == reqwest::header::COOKIE {
        value.set_sensitive(true);
    }
    out.append(name, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_names_more_headers_to_drop() {
        let values = [HeaderValue::from_static("keep-alive, X-Secret-Hop ,")];
        let listed = connection_tokens(values.iter());
        assert_eq!(listed, ["keep-alive", "x-secret-hop"]);
        assert!(dropped("x-secret-hop", &listed));
        assert!(dropped("transfer-encoding", &listed));
        assert!(!dropped("content-type", &listed));
    }
}
