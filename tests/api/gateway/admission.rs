//! The gateway admits calls exactly like `GET /v1/ping` (one shared `admit`): the same
//! 401/403 problems, unmetered; the same 429 with `Retry-After`, metered; refused calls never
//! reach the upstream.

use reqwest::{Method, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{call, caller, header, route, spawn_gateway, upstream::Upstream};
use crate::helpers::{TestApp, assert_problem, events_of, problem, send};

/// Status, `WWW-Authenticate` and problem body of an answer.
async fn answer(response: Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let challenge = header(&response, "www-authenticate");
    (status, challenge, assert_problem(response, status).await)
}

/// The same call with `secret` (or none) through the gateway and on `/v1/ping`.
async fn both(app: &TestApp, secret: Option<&str>) -> [(u16, String, Value); 2] {
    let mut answers = Vec::new();
    for path in ["/gw/anything", "/v1/ping"] {
        let mut request = app.client.get(app.url(path));
        if let Some(secret) = secret {
            request = request.header("X-API-Key", secret);
        }
        answers.push(answer(request.send().await.unwrap()).await);
    }
    answers.try_into().unwrap()
}

#[tokio::test]
async fn key_errors_answer_exactly_like_ping_and_an_existing_keys_are_metered() {
    let upstream = Upstream::start().await;
    let app = spawn_gateway(vec![route("/gw", upstream.url("/api"))], |_| {}).await;
    let unauthorized = |detail| {
        (
            401,
            "Bearer".to_owned(),
            problem(401, "unauthorized", "Unauthorized", detail),
        )
    };
    let [gateway, ping] = both(&app, None).await;
    assert_eq!(gateway, unauthorized("Missing API key"));
    assert_eq!(gateway, ping);
    let unknown = format!("tg_live_{}", Uuid::new_v4().simple());
    let [gateway, ping] = both(&app, Some(&unknown)).await;
    assert_eq!(gateway, unauthorized("Invalid API key"));
    assert_eq!(gateway, ping);

    let c = caller(&app, json!({})).await;
    let deactivate = json!({"is_active": false});
    let path = format!("/v1/keys/{}", c.key_id);
    let patched = send(&app, Method::PATCH, &path, &c.owner.token, Some(deactivate)).await;
    assert_eq!(patched.status().as_u16(), 200);
    let [gateway, ping] = both(&app, Some(&c.secret)).await;
    assert_eq!(
        gateway,
        (
            403,
            String::new(),
            problem(403, "forbidden", "Forbidden", "API key is inactive")
        )
    );
    assert_eq!(gateway, ping);

    assert_eq!(upstream.calls(), 0, "a refused call reached the upstream");
    // The inactive key's refusals through both ways in are in its usage.
    let events = events_of(&app, &c.key_id, 2).await;
    let mut seen: Vec<(&str, i16)> = events
        .iter()
        .map(|e| (e.source.as_str(), e.status_code))
        .collect();
    seen.sort();
    assert_eq!(seen, [("gateway", 403), ("middleware", 403)]);
}

#[tokio::test]
async fn the_third_call_of_a_two_a_minute_key_is_refused_with_429_and_metered() {
    let upstream = Upstream::start().await;
    let app = spawn_gateway(vec![route("/gw", upstream.url("/api"))], |_| {}).await;
    let c = caller(&app, json!({"per_minute": 2})).await;
    for remaining in ["1", "0"] {
        let response = call(&app, Method::GET, "/gw/x", &c.secret)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(header(&response, "x-ratelimit-minute-remaining"), remaining);
    }
    let refused = call(&app, Method::POST, "/gw/x", &c.secret)
        .body("never forwarded")
        .send()
        .await
        .unwrap();
    let retry: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!((60..=66).contains(&retry), "Retry-After {retry}");
    assert_eq!(header(&refused, "x-ratelimit-minute-remaining"), "0");
    assert_eq!(
        assert_problem(refused, 429).await,
        json!({
            "type": "https://iana.org/assignments/http-problem-types#quota-exceeded",
            "title": "Request cannot be satisfied as assigned quota has been exceeded",
            "status": 429,
            "detail": format!("Rate limit exceeded for minute. Try again in {retry} seconds"),
            "code": "rate_limited",
            "violated-policies": ["minute"],
        })
    );
    // The same key on /v1/ping shares the windows: refused too, with the same problem.
    let ping = app
        .client
        .get(app.url("/v1/ping"))
        .header("X-API-Key", &c.secret);
    let ping = ping.send().await.unwrap();
    assert_eq!(
        assert_problem(ping, 429).await["violated-policies"],
        json!(["minute"])
    );

    assert_eq!(upstream.calls(), 2);
    let events = events_of(&app, &c.key_id, 4).await;
    let seen: Vec<(&str, &str, i16)> = events
        .iter()
        .map(|e| (e.endpoint.as_str(), e.source.as_str(), e.status_code))
        .collect();
    assert_eq!(
        seen,
        [
            ("/gw/*", "gateway", 200),
            ("/gw/*", "gateway", 200),
            ("/gw/*", "gateway", 429),
            ("/v1/ping", "middleware", 429),
        ]
    );
}
