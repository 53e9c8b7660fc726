//! `/v1/keys`: the secret shown once and stored nowhere, rotation grace, lifecycle, limits
//! within the plan, mass assignment, idempotency, import, audit entries, tenant isolation.

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{Member, TestApp, create_key, send};

mod lifecycle;
mod rules;

async fn create(app: &TestApp, member: &Member, body: Value) -> reqwest::Response {
    send(app, Method::POST, "/v1/keys", &member.token, Some(body)).await
}

/// Creates a key as `member`, asserting 201; the response body (with `secret`).
async fn create_ok(app: &TestApp, member: &Member, name: &str) -> Value {
    create_key(app, member, serde_json::json!({"name": name}))
        .await
        .body
}
