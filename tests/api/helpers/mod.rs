//! Test fixtures: backends chosen from the environment, `spawn_app()`, assertions.

mod backend;
mod spawn;

pub use backend::{Backends, PgDatabase, require_or_skip};
pub use spawn::{spawn_app, spawn_app_with, test_settings};

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
