//! The metered path end to end (`GET /v1/ping` behind the middleware, and `POST /v1/verify`):
//! exact headers and bodies for 200, 401 ×2, 403 and 429 in each window, and a usage event
//! for every call of an existing key.

use reqwest::{Method, Response};
use serde_json::{Value, json};
use tollgate::tenancy::Role;
use uuid::Uuid;

use crate::helpers::{Backends, create_key, events_of, require_or_skip};
use crate::helpers::{
    Member, TestApp, assert_problem, new_tenant_member, problem, send, spawn_app,
};
use crate::metering::metric;

/// A key of `owner`'s tenant with these limit overrides; its secret and id.
async fn key_with(app: &TestApp, owner: &Member, limits: Value) -> (String, String) {
    let key = create_key(app, owner, json!({"name": "hot", "limits": limits})).await;
    (key.secret, key.id)
}

fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn an_admitted_call_carries_every_rate_limit_header_and_is_metered() {
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let (secret, id) = key_with(
        &app,
        &owner,
        json!({"per_minute": 10, "per_hour": 100, "per_day": 1000, "per_month": 5000}),
    )
    .await;
    let response = app.ping(&secret).await;
    assert_eq!(response.status().as_u16(), 200);
    for (window, limit) in [("minute", 10), ("hour", 100), ("day", 1000)] {
        assert_eq!(
            header(&response, &format!("x-ratelimit-{window}-limit")),
            limit.to_string()
        );
        assert_eq!(
            header(&response, &format!("x-ratelimit-{window}-remaining")),
            (limit - 1).to_string()
        );
        let reset: u64 = header(&response, &format!("x-ratelimit-{window}-reset"))
            .parse()
            .unwrap();
        let span = match window {
            "minute" => 60,
            "hour" => 3600,
            _ => 86400,
        };
        assert!(
            reset > span && reset <= span + span / 12 + 1,
            "{window} reset {reset}"
        );
    }
    let policy = header(&response, "ratelimit-policy");
    assert!(
        policy.starts_with("\"minute\";q=10;w=60, \"hour\";q=100;w=3600, \"day\";q=1000;w=86400, \"month\";q=5000;w="),
        "{policy}"
    );
    let state = header(&response, "ratelimit");
    assert!(state.starts_with("\"minute\";r=9;t="), "{state}");
    assert!(state.contains("\"month\";r=4999;t="), "{state}");

    let event = events_of(&app, &id, 1).await.remove(0);
    assert_eq!(
        (
            event.endpoint.as_str(),
            event.method.as_str(),
            event.status_code
        ),
        ("/v1/ping", "GET", 200)
    );
    assert_eq!(event.tenant_id, owner.tenant_id.0);
    assert_eq!(event.source, "middleware");
    assert!(event.latency_us > 0);
}

#[tokio::test]
async fn each_window_refuses_with_the_exact_problem_and_retry_after() {
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let cases = [
        ("minute", json!({"per_minute": 2}), 60..=66),
        (
            "hour",
            json!({"per_minute": 50, "per_hour": 2}),
            3600..=3901,
        ),
        (
            "day",
            json!({"per_minute": 50, "per_hour": 50, "per_day": 2}),
            86_400..=93_601,
        ),
        (
            "month",
            json!({"per_minute": 50, "per_hour": 50, "per_day": 50, "per_month": 2}),
            1..=31 * 86_400,
        ),
    ];
    for (window, limits, expected_retry) in cases {
        let (secret, id) = key_with(&app, &owner, limits).await;
        for _ in 0..2 {
            assert_eq!(app.ping(&secret).await.status().as_u16(), 200, "{window}");
        }
        let refused = app.ping(&secret).await;
        let retry: u64 = header(&refused, "retry-after").parse().unwrap();
        assert!(
            expected_retry.contains(&retry),
            "{window}: Retry-After {retry}"
        );
        assert!(
            !header(&refused, "x-ratelimit-minute-limit").is_empty(),
            "headers on 429 too"
        );
        let body = assert_problem(refused, 429).await;
        assert_eq!(
            body,
            json!({
                "type": "https://iana.org/assignments/http-problem-types#quota-exceeded",
                "title": "Request cannot be satisfied as assigned quota has been exceeded",
                "status": 429,
                "detail": format!("Rate limit exceeded for {window}. Try again in {retry} seconds"),
                "code": "rate_limited",
                "violated-policies": [window],
            })
        );
        // Refusals are metered too (status 429), nothing else is counted.
        let events = events_of(&app, &id, 3).await;
        assert_eq!(events.iter().filter(|e| e.status_code == 429).count(), 1);
    }
}

#[tokio::test]
async fn key_errors_are_exact_and_an_existing_keys_refusals_are_metered() {
    let app = spawn_app().await;
    let missing = app.client.get(app.url("/v1/ping")).send().await.unwrap();
    assert_eq!(
        assert_problem(missing, 401).await,
        problem(401, "unauthorized", "Unauthorized", "Missing API key")
    );
    let unknown = app
        .ping(&format!("tg_live_{}", Uuid::new_v4().simple()))
        .await;
    assert_eq!(
        assert_problem(unknown, 401).await,
        problem(401, "unauthorized", "Unauthorized", "Invalid API key")
    );
    let owner = new_tenant_member(&app, Role::Owner).await;
    let (secret, id) = key_with(&app, &owner, json!({})).await;
    send(
        &app,
        Method::PATCH,
        &format!("/v1/keys/{id}"),
        &owner.token,
        Some(json!({"is_active": false})),
    )
    .await;
    let inactive = app.ping(&secret).await;
    assert_eq!(
        assert_problem(inactive, 403).await,
        problem(403, "forbidden", "Forbidden", "API key is inactive")
    );
    // `/v1/verify` refuses it alike.
    let body = json!({"key": secret, "endpoint": "/orders/{id}", "method": "get"});
    let verified = app
        .client
        .post(app.url("/v1/verify"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_problem(verified, 403).await;
    // Unknown secrets belong to no tenant: only counted. The inactive key's two refusals
    // are in its usage.
    let events = events_of(&app, &id, 2).await;
    let seen: Vec<(&str, &str, i16)> = events
        .iter()
        .map(|e| (e.source.as_str(), e.endpoint.as_str(), e.status_code))
        .collect();
    assert_eq!(
        seen,
        [
            ("middleware", "/v1/ping", 403),
            ("verify", "/orders/{id}", 403)
        ]
    );
}

#[tokio::test]
async fn verify_answers_like_the_middleware_and_meters_the_call() {
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let (secret, id) = key_with(&app, &owner, json!({"per_minute": 3})).await;
    let verify = |cost: u64| {
        let body =
            json!({"key": secret, "endpoint": "/orders/{id}", "method": "post", "cost": cost});
        app.client.post(app.url("/v1/verify")).json(&body).send()
    };
    let ok = verify(2).await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(header(&ok, "x-ratelimit-minute-remaining"), "1");
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["allowed"], true);
    assert_eq!(body["key_id"], id);
    assert_eq!(
        body["windows"][0],
        json!({"window": "minute", "limit": 3, "remaining": 1, "reset": body["windows"][0]["reset"]})
    );
    let refused = verify(2).await.unwrap();
    let body = assert_problem(refused, 429).await;
    assert_eq!(body["violated-policies"], json!(["minute"]));
    let events = events_of(&app, &id, 2).await;
    assert!(
        events
            .iter()
            .all(|e| e.endpoint == "/orders/{id}" && e.method == "POST" && e.source == "verify")
    );
    let bad = app
        .client
        .post(app.url("/v1/verify"))
        .json(&json!({"key": "nope", "endpoint": "/x", "method": "GET"}))
        .send()
        .await
        .unwrap();
    assert_eq!(assert_problem(bad, 401).await["detail"], "Invalid API key");
}

/// Redis mode: a client retrying past its limit is refused by the node itself for the rest of
/// the second in which Redis refused it, and `/metrics` shows those refusals beside the
/// script calls (rendered from the limiter's own counters).
#[tokio::test]
async fn metrics_count_the_refusals_the_node_repeated_without_a_script_call() {
    let test = "metrics_count_the_refusals_the_node_repeated_without_a_script_call";
    if require_or_skip("redis", Backends::from_env().redis, test).is_none() {
        return;
    }
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let limits = json!({"per_minute": 1, "per_hour": 50, "per_day": 50});
    let (secret, _) = key_with(&app, &owner, limits).await;
    assert_eq!(app.ping(&secret).await.status().as_u16(), 200);
    let tollgate::limits::Limiter::Redis(limiter) = app.state.limiter.as_ref() else {
        panic!("a Redis URL makes the limiter Redis-backed");
    };
    let scripts_before = limiter.script_calls();
    let mut refused = 0;
    // Past the limit, in a loop: only the first refusal of each second asks Redis.
    while refused < 40 {
        assert_eq!(app.ping(&secret).await.status().as_u16(), 429);
        refused += 1;
    }
    let (scripts, repeated) = (limiter.script_calls(), limiter.repeated_refusals());
    assert!(
        repeated >= 30,
        "{repeated} of {refused} refusals repeated in-process"
    );
    assert_eq!(scripts - scripts_before + repeated, refused);
    let exposed = |name| metric(&app, name);
    let as_exposed = |n: u64| n as f64;
    assert_eq!(
        exposed("tollgate_limiter_repeated_refusals_total").await,
        as_exposed(repeated)
    );
    assert_eq!(
        exposed("tollgate_limiter_script_calls_total").await,
        as_exposed(scripts)
    );
    assert_eq!(
        exposed("tollgate_limiter_leased_decisions_total").await,
        as_exposed(limiter.leased_decisions())
    );
}
