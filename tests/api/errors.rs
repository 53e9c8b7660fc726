//! Every error class answers RFC 9457 problem+json, asserted exactly: never HTML, plain text
//! or a 500.

use serde_json::json;

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test]
async fn unknown_route_is_404_problem() {
    let app = spawn_app().await;
    let body = assert_problem(app.get("/v1/nothing-here").await, 404).await;
    assert_eq!(
        body,
        json!({
            "type": "https://tollgate.dev/problems/not_found",
            "title": "Not found",
            "status": 404,
            "detail": "No resource at GET /v1/nothing-here.",
            "code": "not_found",
        })
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
        json!({
            "type": "https://tollgate.dev/problems/method_not_allowed",
            "title": "Method not allowed",
            "status": 405,
            "detail": "POST is not allowed on /livez; allowed: GET.",
            "code": "method_not_allowed",
        })
    );
}
