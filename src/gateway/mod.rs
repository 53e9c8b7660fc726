//! The gateway (way in "b" of the hot path): a streaming reverse proxy inside `serve`. Each
//! `[[gateway.routes]]` entry forwards the calls under its prefix to its upstream after the
//! same admission as the `metered` middleware (`http::hot_path::admit`): the same 401/403/429
//! answers, the same rate-limit headers and one usage event per admitted call (`source =
//! gateway`, `endpoint` = the route's template), upstream failures (502/504) included.
//! Gateway routes are not Tollgate's API: they stay out of the OpenAPI document.

use std::{cmp::Reverse, sync::Arc, time::Duration};

use actix_web::{HttpMessage, dev::ServiceRequest, http::header, web};
use anyhow::Context;

use crate::{config::GatewaySettings, state::AppState};

mod body;
mod forward;
mod headers;
mod route;

pub use route::Route;

/// The configured routes and the one upstream client (its connection pool is shared by every
/// worker).
#[derive(Clone)]
pub struct Gateway {
    client: reqwest::Client,
    routes: Arc<[Arc<Route>]>,
    upstream_timeout: Duration,
    connect_timeout: Duration,
}

impl Gateway {
    pub fn from_settings(settings: &GatewaySettings) -> anyhow::Result<Self> {
        install_tls_provider();
        let connect_timeout = Duration::from_millis(settings.connect_timeout_ms);
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .context("building the gateway's HTTP client")?;
        let routes = settings
            .routes
            .iter()
            .map(|route| Route::new(route).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()
            .context("gateway routes")?;
        Ok(Self {
            client,
            routes: routes.into(),
            upstream_timeout: Duration::from_millis(settings.upstream_timeout_ms),
            connect_timeout,
        })
    }

    fn takes(&self, path: &str) -> bool {
        self.routes.iter().any(|route| route.takes(path))
    }
}

/// Makes rustls use *ring* in this process (reqwest is built without a provider of its own,
/// and two providers in one binary make rustls panic). Idempotent.
pub fn install_tls_provider() {
    // Err only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Registers one resource per route, taking every method on the prefix and below it; longer
/// prefixes first, so a nested route wins over its parent.
pub fn configure(cfg: &mut web::ServiceConfig, gateway: &Gateway) {
    let mut routes: Vec<&Arc<Route>> = gateway.routes.iter().collect();
    routes.sort_by_key(|route| Reverse(route.prefix.len()));
    for route in routes {
        let patterns = [
            route.prefix.clone(),
            format!("{}/{{tail:.*}}", route.prefix),
        ];
        cfg.service(
            web::resource(patterns)
                .app_data(web::Data::from(route.clone()))
                .to(forward::forward),
        );
    }
}

/// Outside `Compress` (called by the middleware around it): on gateway paths it takes
/// `Accept-Encoding` off the request (kept for the upstream in
/// [`headers::ClientAcceptEncoding`]), so relayed answers pass through uncompressed-by-us and
/// unchanged.
pub fn keep_accept_encoding(req: &mut ServiceRequest) {
    let ours = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|state| state.gateway.takes(req.match_info().as_str()));
    if ours {
        let values: Vec<header::HeaderValue> =
            req.headers_mut().remove(header::ACCEPT_ENCODING).collect();
        if !values.is_empty() {
            req.extensions_mut()
                .insert(headers::ClientAcceptEncoding(values));
        }
    }
}
