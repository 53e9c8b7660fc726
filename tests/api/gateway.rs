//! The gateway end to end, against real upstreams started inside the test (`upstream.rs`):
//! what is forwarded and what stays behind, admission exactly like `GET /v1/ping`, upstream
//! failures as 502/504 problems, bodies streamed both ways, the `[gateway]` settings, and one
//! usage event (`source = gateway`, the route's template as endpoint) for every admitted call.

use reqwest::RequestBuilder;
use serde_json::{Value, json};
use tollgate::{
    config::{GatewayRoute, Settings},
    tenancy::Role,
};

use crate::helpers::{Member, TestApp, create_key, new_tenant_member, spawn_app_with};

mod admission;
mod failures;
mod forwarding;
mod settings;
mod streaming;
mod upstream;

/// A route taking `prefix` to `upstream`, prefix stripped, default template.
fn route(prefix: &str, upstream: String) -> GatewayRoute {
    GatewayRoute {
        prefix: prefix.to_owned(),
        upstream,
        template: None,
        strip_prefix: true,
    }
}

/// Tollgate serving these gateway routes, with `adjust` applied to the settings.
async fn spawn_gateway(routes: Vec<GatewayRoute>, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with(|settings| {
        settings.gateway.routes = routes;
        adjust(settings);
    })
    .await
}

/// A caller of the gateway: the owner of a new tenant and its key.
struct Caller {
    owner: Member,
    key_id: String,
    secret: String,
}

/// A new tenant's owner with a key carrying these limit overrides.
async fn caller(app: &TestApp, limits: Value) -> Caller {
    let owner = new_tenant_member(app, Role::Owner).await;
    let key = create_key(app, &owner, json!({"name": "gateway", "limits": limits})).await;
    Caller {
        owner,
        key_id: key.id,
        secret: key.secret,
    }
}

/// `method path` on Tollgate with `X-API-Key: secret`.
fn call(app: &TestApp, method: reqwest::Method, path: &str, secret: &str) -> RequestBuilder {
    app.client
        .request(method, app.url(path))
        .header("X-API-Key", secret)
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Asserts the rate-limit headers of an admitted call are on `response`.
fn assert_rate_limit_headers(response: &reqwest::Response, limit: u64) {
    assert_eq!(
        header(response, "x-ratelimit-minute-limit"),
        limit.to_string()
    );
    for name in [
        "x-ratelimit-minute-remaining",
        "x-ratelimit-minute-reset",
        "x-ratelimit-hour-limit",
        "x-ratelimit-day-limit",
        "ratelimit-policy",
        "ratelimit",
    ] {
        assert!(!header(response, name).is_empty(), "{name} missing");
    }
}
