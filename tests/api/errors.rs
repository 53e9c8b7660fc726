//! Every error class answers RFC 9457 problem+json, asserted exactly: never HTML, plain text
//! or a 500.

use serde_json::json;

use crate::helpers::{assert_problem, login, problem, spawn_app, spawn_app_with};

#[tokio::test]
async fn unknown_route_is_404_problem() {
    let app = spawn_app().await;
    let body = assert_problem(app.get("/v1/nothing-here").await, 404).await;
    assert_eq!(
        body,
        problem(
            404,
            "not_found",
            "Not found",
            "No resource at GET /v1/nothing-here."
        )
    );
}

#[tokio::test]
async fn wrong_method_is_405_problem_with_allow() {
    let app = spawn_app().await;
    let response = app.client.post(app.url("/livez")).send().await.unwrap();
    assert_eq!(response.headers()["allow"], "GET");
    let body = assert_problem(response, 405).await;
    assert_eq!(
        body,
        problem(
            405,
            "method_not_allowed",
            "Method not allowed",
            "POST is not allowed on /livez; allowed: GET."
        )
    );
}

async fn post_login(
    app: &crate::helpers::TestApp,
    content_type: &str,
    body: &'static str,
) -> reqwest::Response {
    app.client
        .post(app.url("/v1/auth/login"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn malformed_json_is_400_problem() {
    let app = spawn_app().await;
    let body = assert_problem(
        post_login(&app, "application/json", "{\"email\": ").await,
        400,
    )
    .await;
    assert_eq!(
        body,
        json!({
            "type": "https://tollgate.dev/problems/bad_request",
            "title": "Bad request",
            "status": 400,
            "detail": "The request body is not valid JSON: EOF while parsing a value at line 1 column 10.",
            "code": "bad_request",
            "errors": [{
                "detail": "The request body is not valid JSON: EOF while parsing a value at line 1 column 10.",
                "pointer": "/email",
            }],
        })
    );
}

#[tokio::test]
async fn json_of_the_wrong_shape_is_422_with_pointers() {
    let app = spawn_app().await;
    let response = post_login(
        &app,
        "application/json",
        r#"{"email": "a@b.c", "password": 42}"#,
    )
    .await;
    let body = assert_problem(response, 422).await;
    assert_eq!(
        body,
        json!({
            "type": "https://tollgate.dev/problems/validation_failed",
            "title": "Validation failed",
            "status": 422,
            "detail": "The request body is invalid: invalid type: integer `42`, expected a string.",
            "code": "validation_failed",
            "errors": [{"detail": "invalid type: integer `42`, expected a string", "pointer": "/password"}],
        })
    );
    let response = post_login(&app, "application/json", r#"{"email": "a@b.c"}"#).await;
    let body = assert_problem(response, 422).await;
    assert_eq!(
        body["errors"],
        json!([{"detail": "missing field `password`", "pointer": ""}])
    );
    let response = post_login(
        &app,
        "application/json",
        r#"{"email": "nobody", "password": "x"}"#,
    )
    .await;
    let body = assert_problem(response, 422).await;
    assert_eq!(
        body["errors"],
        json!([{"detail": "must be an email address", "pointer": "/email"}])
    );
}

#[tokio::test]
async fn body_over_the_limit_is_413_problem() {
    let app = spawn_app_with(|s| s.server.body_limit_bytes = 64).await;
    let big = format!(r#"{{"email": "a@b.c", "password": "{}"}}"#, "x".repeat(100));
    let response = app
        .client
        .post(app.url("/v1/auth/login"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    let body = assert_problem(response, 413).await;
    assert_eq!(
        body,
        problem(
            413,
            "payload_too_large",
            "Payload too large",
            "The request body exceeds the limit of 64 bytes."
        )
    );
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415_problem() {
    let app = spawn_app().await;
    let body = assert_problem(post_login(&app, "text/plain", "email=a").await, 415).await;
    assert_eq!(
        body,
        problem(
            415,
            "unsupported_media_type",
            "Unsupported media type",
            "The request body must be JSON (Content-Type: application/json)."
        )
    );
}

#[tokio::test]
async fn a_bad_query_parameter_is_400_naming_it() {
    let app = spawn_app().await;
    let token = login(&app, tollgate::demo::ADMIN_EMAIL).await;
    let response = app.get_as("/v1/admin/tenants?limit=lots", &token).await;
    let body = assert_problem(response, 400).await;
    assert_eq!(
        body,
        json!({
            "type": "https://tollgate.dev/problems/bad_request",
            "title": "Bad request",
            "status": 400,
            "detail": "Invalid query parameter `limit`: invalid digit found in string.",
            "code": "bad_request",
            "errors": [{"detail": "Invalid query parameter `limit`: invalid digit found in string.", "pointer": "/limit"}],
        })
    );
    let response = app.get_as("/v1/admin/tenants?limit=0", &token).await;
    let body = assert_problem(response, 400).await;
    assert_eq!(
        body["errors"],
        json!([{"detail": "must be between 1 and 100", "pointer": "/limit"}])
    );
}

#[tokio::test]
async fn a_bad_path_parameter_is_400_naming_it() {
    let app = spawn_app().await;
    let token = login(&app, tollgate::demo::ADMIN_EMAIL).await;
    let response = app
        .get_as(
            "/v1/admin/tenants/key_0193a4b2c3d47e8f9a0b1c2d3e4f5a6b",
            &token,
        )
        .await;
    let body = assert_problem(response, 400).await;
    let detail = "Invalid path parameter `tenant_id`: `key_0193a4b2c3d47e8f9a0b1c2d3e4f5a6b` is not a valid id (expected `tnt_` and 32 hex digits).";
    assert_eq!(
        body,
        json!({
            "type": "https://tollgate.dev/problems/bad_request",
            "title": "Bad request",
            "status": 400,
            "detail": detail,
            "code": "bad_request",
            "errors": [{"detail": detail, "pointer": "/tenant_id"}],
        })
    );
}

#[tokio::test]
async fn missing_and_invalid_tokens_are_401_problem() {
    let app = spawn_app().await;
    let response = app.get("/v1/me").await;
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let body = assert_problem(response, 401).await;
    assert_eq!(
        body,
        problem(
            401,
            "unauthorized",
            "Unauthorized",
            "Missing access token (Authorization: Bearer …)."
        )
    );
    let response = app.get_as("/v1/me", "not.a.jwt").await;
    let body = assert_problem(response, 401).await;
    assert_eq!(body["detail"], "The access token is invalid or expired.");
}

#[tokio::test]
async fn a_role_without_the_permission_is_403_problem() {
    let app = spawn_app().await;
    let token = login(&app, tollgate::demo::OWNER_EMAIL).await;
    let response = app.get_as("/v1/admin/tenants", &token).await;
    let body = assert_problem(response, 403).await;
    assert_eq!(
        body,
        problem(
            403,
            "forbidden",
            "Forbidden",
            "This operation requires a platform administrator."
        )
    );
}

#[tokio::test]
async fn a_missing_resource_is_404_problem() {
    let app = spawn_app().await;
    let token = login(&app, tollgate::demo::ADMIN_EMAIL).await;
    let id = "tnt_0193a4b2c3d47e8f9a0b1c2d3e4f5a6b";
    let response = app.get_as(&format!("/v1/admin/tenants/{id}"), &token).await;
    let body = assert_problem(response, 404).await;
    assert_eq!(body["detail"], format!("No tenant {id}."));
    assert_eq!(body["code"], "not_found");
}
