//! The gateway's handler: admit the call exactly like the `metered` middleware, forward it,
//! relay the answer with the rate-limit headers, and meter it (upstream failures included).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use actix_web::{
    HttpRequest, HttpResponse, ResponseError,
    body::BodySize,
    http::{Method, StatusCode},
    web,
};
use futures_util::StreamExt;

use super::{
    Gateway,
    body::{self, Meter, Progress, UpstreamBody},
    headers,
    route::Route,
};
use crate::{
    error::{Error, ErrorKind},
    http::{Relayed, api_key, hot_path, rate_limit},
    keys::resolve::CachedKey,
    metering::Source,
    state::AppState,
};

/// Every call under a route's prefix, any method.
pub async fn forward(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    route: web::Data<Route>,
) -> HttpResponse {
    let started = Instant::now();
    let presented = req
        .headers()
        .get(api_key::HEADER)
        .map(|v| v.to_str().unwrap_or_default());
    let admission = match hot_path::admit(&state, presented, 1).await {
        Ok(admission) => admission,
        Err(refusal) => {
            return refusal.answer(&state, Some(started), |key| {
                hot_path::request_event(&req, key, Source::Gateway, route.template.clone())
            });
        }
    };
    let event = hot_path::new_event(&req, &admission, Source::Gateway, route.template.clone());
    let meter = Meter::new(state.clone(), event, started);
    if let Some(refused) = rate_limit::refusal(&admission.decision, &admission.month) {
        return meter.answered(refused);
    }
    let gateway = &state.gateway;
    let sent = send(&req, payload, &route, gateway, &admission.key, &meter).await;
    let mut response = match sent {
        Ok(upstream) => relay(&req, upstream, gateway.upstream_timeout, meter),
        Err(err) => meter.answered(err.error_response()),
    };
    rate_limit::apply(
        response.headers_mut(),
        &admission.decision,
        &admission.month,
    );
    response
}

/// Sends the call upstream and waits for the answer's head, giving up once the exchange has
/// not moved for `gateway.upstream_timeout`.
async fn send(
    req: &HttpRequest,
    mut payload: web::Payload,
    route: &Route,
    gateway: &Gateway,
    key: &CachedKey,
    meter: &Meter,
) -> Result<reqwest::Response, Error> {
    let url = route
        .target(req.uri().path(), req.uri().query())
        .map_err(|err| Error::bad_request("The path cannot be forwarded").with_source(err))?;
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
        .map_err(|err| Error::bad_request("The method cannot be forwarded").with_source(err))?;
    let progress = Progress::new();
    let broken = Arc::new(AtomicBool::new(false));
    // The first chunk tells a body from none, so a bodyless call is not sent chunked.
    let body = match payload.next().await {
        None => None,
        Some(Ok(first)) => Some(body::upload(
            payload,
            first,
            progress.clone(),
            meter.uploaded.clone(),
            broken.clone(),
        )),
        Some(Err(err)) => return Err(unreadable().with_source(err)),
    };
    let mut request = reqwest::Request::new(method, url);
    *request.headers_mut() = headers::to_upstream(req, key, route);
    *request.body_mut() = body;
    // The clock starts now: waiting for the client's first chunk is not the upstream's time.
    progress.touch();
    tokio::select! {
        biased;
        answer = gateway.client.execute(request) => answer.map_err(|err| {
            if broken.load(Ordering::Relaxed) {
                unreadable().with_source(err.without_url())
            } else {
                gateway.failure(err)
            }
        }),
        () = progress.stalled(gateway.upstream_timeout) => Err(gateway.timed_out()),
    }
}

fn unreadable() -> Error {
    Error::bad_request("The request body could not be read")
}

/// The upstream's answer as ours: its status and end-to-end headers, its body streamed.
fn relay(
    req: &HttpRequest,
    upstream: reqwest::Response,
    idle: Duration,
    meter: Meter,
) -> HttpResponse {
    let status =
        StatusCode::from_u16(upstream.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let size = body_size(req.method(), status, upstream.headers());
    let mut response = HttpResponse::new(status);
    headers::from_upstream(upstream.headers(), response.headers_mut());
    let body = UpstreamBody::new(upstream, size, idle, meter);
    let mut response = response.set_body(body).map_into_boxed_body();
    response.extensions_mut().insert(Relayed);
    response
}

/// The answer's length when the upstream declared it (actix then writes `Content-Length`
/// itself, also for `HEAD`), none for statuses without a body, else streamed.
fn body_size(
    method: &Method,
    status: StatusCode,
    upstream: &reqwest::header::HeaderMap,
) -> BodySize {
    if status.is_informational() || matches!(status.as_u16(), 204 | 304) {
        return BodySize::None;
    }
    if upstream.contains_key(reqwest::header::TRANSFER_ENCODING) {
        return BodySize::Stream;
    }
    let declared = upstream
        .get(reqwest::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    match declared {
        Some(n) => BodySize::Sized(n),
        None if method == Method::HEAD => BodySize::None,
        None => BodySize::Stream,
    }
}

impl Gateway {
    /// A transport failure as a problem: timeouts 504, everything else 502.
    fn failure(&self, err: reqwest::Error) -> Error {
        let (kind, detail) = if err.is_timeout() && err.is_connect() {
            let within = seconds(self.connect_timeout);
            let detail = format!("The upstream did not accept a connection within {within}");
            (ErrorKind::GatewayTimeout, detail)
        } else if err.is_timeout() {
            return self.timed_out().with_source(err.without_url());
        } else if err.is_connect() {
            let detail = "The upstream could not be reached".to_owned();
            (ErrorKind::BadGateway, detail)
        } else {
            (
                ErrorKind::BadGateway,
                "The upstream failed to answer".to_owned(),
            )
        };
        Error::new(kind, detail).with_source(err.without_url())
    }

    fn timed_out(&self) -> Error {
        let within = seconds(self.upstream_timeout);
        Error::new(
            ErrorKind::GatewayTimeout,
            format!("The upstream did not answer within {within}"),
        )
    }
}

/// `30 s`, `1.5 s`, `300 ms`.
fn seconds(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        _ if ms.is_multiple_of(1000) => format!("{} s", ms / 1000),
        _ if ms >= 1000 => format!("{} s", d.as_secs_f64()),
        _ => format!("{ms} ms"),
    }
}
