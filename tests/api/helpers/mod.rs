//! Test fixtures: backends chosen from the environment, `spawn_app()`, log capture,
//! assertions.

mod accounts;
mod backend;
mod fixtures;
mod logs;
mod pg_server;
mod redis_server;
mod spawn;

pub use accounts::{
    Account, PASSWORD, audit_rows, audit_rows_since, login_as, member, problem, send, signup,
    try_login,
};
pub use backend::{Backends, PgDatabase, require_or_skip};
pub use fixtures::{
    FIXTURE_PASSWORD, Member, add_membership, assert_db_free_of, create_key, events_of,
    join_tenant, new_tenant, new_tenant_member,
};
pub use logs::{assert_logs_free_of, captured_logs};
pub use pg_server::PrivatePostgres;
pub use redis_server::{PrivateRedis, private_redis};
pub use spawn::{TestApp, spawn_app, spawn_app_with, spawn_second_app, test_settings};

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
    app.login_with(email, tollgate::demo::PASSWORD, None).await
}
