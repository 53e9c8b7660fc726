//! `/livez`, `/readyz`, `/healthz`, `/metrics` and `/docs`.

use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn livez_answers_pass() {
    let app = spawn_app().await;
    let response = app.get("/livez").await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap(),
        json!({"status": "pass", "checks": {}})
    );
}

#[tokio::test]
async fn small_answers_go_plain_and_large_ones_compressed() {
    let app = spawn_app().await;
    let get = |path: &'static str| {
        app.client
            .get(app.url(path))
            .header("Accept-Encoding", "br, gzip")
            .send()
    };
    let small = get("/livez").await.unwrap();
    assert_eq!(small.status().as_u16(), 200);
    assert!(small.headers().get("content-encoding").is_none());
    assert_eq!(small.headers()["content-length"], "29");
    let large = get("/openapi.json").await.unwrap();
    assert_eq!(large.headers()["content-encoding"], "br");
}

#[tokio::test]
async fn readyz_and_healthz_check_the_database_and_redis_when_configured() {
    let app = spawn_app().await;
    for path in ["/readyz", "/healthz"] {
        let response = app.get(path).await;
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], "pass");
        assert_eq!(body["checks"]["database"]["status"], "pass");
        let has_redis = app.state.redis.is_some();
        assert_eq!(body["checks"].get("redis").is_some(), has_redis, "{body}");
        if has_redis {
            assert_eq!(body["checks"]["redis"]["status"], "pass");
        }
    }
}

#[tokio::test]
async fn readyz_is_503_naming_the_failing_check_when_redis_is_unreachable() {
    // Nothing listens on port 1: the Redis check must fail, the database check still pass.
    let app =
        spawn_app_with(|s| s.redis.url = tollgate::config::SecretUrl::new("redis://127.0.0.1:1/"))
            .await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status().as_u16(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "fail");
    assert_eq!(body["checks"]["database"]["status"], "pass");
    assert_eq!(body["checks"]["redis"]["status"], "fail");
    assert!(
        body["checks"]["redis"]["detail"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn metrics_expose_request_durations_by_route_template() {
    let app = spawn_app().await;
    app.get("/livez").await;
    app.get("/no/such/route").await;
    let made_up = reqwest::Method::from_bytes(b"MADEUP").unwrap();
    app.client
        .request(made_up, app.url("/livez"))
        .send()
        .await
        .unwrap();
    let response = app.get("/metrics").await;
    assert_eq!(response.status().as_u16(), 200);
    let body = response.text().await.unwrap();
    assert!(
        body.contains(r#"http_server_request_duration_seconds_bucket{http_route="/livez",http_request_method="GET",http_response_status_code="200""#),
        "{body}"
    );
    assert!(
        body.contains(r#"http_route="unmatched""#),
        "unknown paths share one label: {body}"
    );
    assert!(
        !body.contains("/no/such/route"),
        "raw paths must never become labels"
    );
    assert!(
        body.contains(r#"http_route="/livez",http_request_method="_OTHER""#)
            && !body.contains("MADEUP"),
        "made-up methods share one label: {body}"
    );
}

#[tokio::test]
async fn docs_page_and_openapi_document_are_served_offline() {
    let app = spawn_app().await;
    let spec = app.get("/openapi.json").await;
    assert_eq!(spec.status().as_u16(), 200);
    assert_eq!(spec.headers()["content-type"], "application/json");
    let spec: serde_json::Value = spec.json().await.unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    let code = serde_json::to_value(tollgate::http::openapi::spec()).unwrap();
    assert_eq!(spec, code, "the whole document the code describes");

    let page = app.get("/docs/").await;
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("https://"),
        "the docs page must not load anything from the internet"
    );
    // The page's own assets come from this server.
    let initializer = app.get("/docs/swagger-initializer.js").await;
    assert_eq!(initializer.status().as_u16(), 200);
    assert!(initializer.text().await.unwrap().contains("/openapi.json"));
    let bundle = app.get("/docs/swagger-ui-bundle.js").await;
    assert_eq!(bundle.status().as_u16(), 200);
}
