//! Test fixtures: backends chosen from the environment, `spawn_app()`, assertions.

mod backend;
mod spawn;

pub use backend::{Backends, PgDatabase, require_or_skip};
pub use spawn::{TestApp, spawn_app, spawn_app_with, test_settings};

/// Asserts `response` is problem+json with `status` and returns the parsed body.
pub async fn assert_problem(response: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "unexpected status");
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert_eq!(
        content_type, "application/problem+json",
        "not a problem document"
    );
    response.json().await.expect("problem body is JSON")
}

/// Seeds the demo data and logs in as `email` (demo password); returns the access token.
pub async fn login(app: &TestApp, email: &str) -> String {
    tollgate::demo::seed(&app.state.db)
        .await
        .expect("demo data seeds");
    let response = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&serde_json::json!({"email": email, "password": tollgate::demo::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "login as {email}");
    let body: serde_json::Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}
