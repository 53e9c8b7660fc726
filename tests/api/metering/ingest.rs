//! `POST /v1/events`: API-key and bearer authentication, idempotent re-sends, every bad field
//! reported with a JSON Pointer, tenant isolation of `key_id`, batch size limit.

use reqwest::{Method, Response};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use tollgate::{entities::usage_events, tenancy::Role};
use uuid::Uuid;

use super::{count_events, create_key, key_row};
use crate::helpers::{
    TestApp, assert_problem, join_tenant, new_tenant_member, problem, send, spawn_app,
    spawn_app_with,
};

fn one(id: Uuid) -> Value {
    json!({
        "id": id,
        "occurred_at": chrono::Utc::now().to_rfc3339(),
        "endpoint": "/v1/chat/completions",
        "method": "post",
        "status_code": 200,
        "latency_ms": 12.5,
        "bytes_in": 100,
        "bytes_out": 2000,
        "tokens_in": 15,
        "tokens_out": 300,
        "cost": "0.0012",
        "ip": "2001:db8::1",
        "user_agent": "svc/2.1"
    })
}

fn batch(n: usize) -> Value {
    json!({"events": (0..n).map(|_| one(Uuid::now_v7())).collect::<Vec<_>>()})
}

async fn with_key(app: &TestApp, secret: &str, body: &Value) -> Response {
    let request = app
        .client
        .post(app.url("/v1/events"))
        .header("X-API-Key", secret);
    request.json(body).send().await.unwrap()
}

async fn accepted(response: Response) -> Value {
    assert_eq!(response.status().as_u16(), 202);
    response.json().await.unwrap()
}

#[tokio::test]
async fn an_api_key_batch_is_stored_once_and_a_resend_reports_duplicates() {
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let (key, secret) = create_key(&app, &owner).await;
    let body = batch(3);
    let first = accepted(with_key(&app, &secret, &body).await).await;
    assert_eq!(first, json!({"accepted": 3, "duplicates": 0}));
    let again = accepted(with_key(&app, &secret, &body).await).await;
    assert_eq!(again, json!({"accepted": 0, "duplicates": 3}));
    assert_eq!(count_events(&app.state.db).await, 3);
    let row = key_row(&app.state.db, key).await;
    assert_eq!(row.usage_count, 3, "a re-sent batch is counted once");
    assert!(row.last_used_at.is_some());
    // Old and new events mixed: only the new ones count.
    let mut mixed = batch(2);
    let old = body["events"].as_array().unwrap().clone();
    mixed["events"].as_array_mut().unwrap().extend(old);
    let third = accepted(with_key(&app, &secret, &mixed).await).await;
    assert_eq!(third, json!({"accepted": 2, "duplicates": 3}));
    assert_eq!(key_row(&app.state.db, key).await.usage_count, 5);

    let id: Uuid = body["events"][0]["id"].as_str().unwrap().parse().unwrap();
    let stored = usage_events::Entity::find()
        .filter(usage_events::Column::Id.eq(id))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.tenant_id, owner.tenant_id.0);
    assert_eq!(stored.key_id, Some(key.0), "attributed to the sending key");
    assert_eq!((stored.method.as_str(), stored.status_code), ("POST", 200));
    assert_eq!(stored.latency_us, 12_500);
    assert_eq!(stored.cost_nanos, 1_200_000);
    assert_eq!((stored.tokens_in, stored.tokens_out), (15, 300));
    assert_eq!(stored.ip.as_deref(), Some("2001:db8::1"));
    assert_eq!(stored.source, "ingest");
}

#[tokio::test]
async fn members_who_manage_keys_may_report_and_viewers_may_not() {
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let (key, _) = create_key(&app, &owner).await;
    let developer = join_tenant(&app, owner.tenant_id, Role::Developer).await;
    let mut body = batch(2);
    body["events"][1]["key_id"] = key.to_string().into();
    let response = send(
        &app,
        Method::POST,
        "/v1/events",
        &developer.token,
        Some(body),
    )
    .await;
    assert_eq!(
        accepted(response).await,
        json!({"accepted": 2, "duplicates": 0})
    );
    assert_eq!(key_row(&app.state.db, key).await.usage_count, 1);
    let keyless = usage_events::Entity::find()
        .filter(usage_events::Column::KeyId.is_null())
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(
        keyless.len(),
        1,
        "without key_id a bearer's event has no key"
    );

    let viewer = join_tenant(&app, owner.tenant_id, Role::Viewer).await;
    let response = send(
        &app,
        Method::POST,
        "/v1/events",
        &viewer.token,
        Some(batch(1)),
    )
    .await;
    let body = assert_problem(response, 403).await;
    assert_eq!(
        body,
        problem(
            403,
            "forbidden",
            "Forbidden",
            "The viewer role may not do this."
        )
    );
    let response = app
        .client
        .post(app.url("/v1/events"))
        .json(&batch(1))
        .send()
        .await
        .unwrap();
    let body = assert_problem(response, 401).await;
    assert_eq!(body["code"], "unauthorized");
    assert_eq!(count_events(&app.state.db).await, 2);
}

#[tokio::test]
async fn another_tenants_key_is_refused_with_a_pointer() {
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let (_, secret) = create_key(&app, &owner).await;
    let stranger = new_tenant_member(&app, Role::Owner).await;
    let (foreign, _) = create_key(&app, &stranger).await;
    let mut body = batch(2);
    body["events"][1]["key_id"] = foreign.to_string().into();
    for response in [
        with_key(&app, &secret, &body).await,
        send(
            &app,
            Method::POST,
            "/v1/events",
            &owner.token,
            Some(body.clone()),
        )
        .await,
    ] {
        let problem = assert_problem(response, 422).await;
        assert_eq!(
            problem["errors"],
            json!([{"detail": format!("no API key {foreign} in this tenant"), "pointer": "/events/1/key_id"}])
        );
    }
    assert_eq!(
        count_events(&app.state.db).await,
        0,
        "nothing of a rejected batch is kept"
    );
    assert_eq!(key_row(&app.state.db, foreign).await.usage_count, 0);
}

#[tokio::test]
async fn every_bad_event_is_listed_with_a_json_pointer() {
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let (_, secret) = create_key(&app, &owner).await;
    let mut body = batch(7);
    let events = body["events"].as_array_mut().unwrap();
    events[1]["status_code"] = 700.into();
    events[2].as_object_mut().unwrap().remove("id");
    events[3]["cost"] = "0.0000000001".into();
    events[3]["bytes_in"] = (-1).into();
    events[4].as_object_mut().unwrap().remove("latency_ms");
    events[5]["tenant_id"] = "tnt_0193a4b2c3d47e8f9a0b1c2d3e4f5a6b".into();
    events[6]["occurred_at"] = "2999-01-01T00:00:00Z".into();
    events[6]["latency_us"] = 5.into();
    let response = with_key(&app, &secret, &body).await;
    let problem = assert_problem(response, 422).await;
    assert_eq!(
        problem["detail"],
        "6 of 7 events are invalid; see `errors`."
    );
    let expected = json!([
        {"pointer": "/events/1/status_code", "detail": "must be between 100 and 599"},
        {"pointer": "/events/2/id", "detail": "is required"},
        {"pointer": "/events/3/bytes_in", "detail": "must not be negative"},
        {"pointer": "/events/3/cost", "detail": "must have at most 9 decimal places"},
        {"pointer": "/events/4/latency_us", "detail": "latency_ms or latency_us is required"},
        {"pointer": "/events/5/tenant_id", "detail": "is not a known field"},
        {"pointer": "/events/6/occurred_at", "detail": "must not be more than 5 minutes in the future"},
        {"pointer": "/events/6/latency_ms", "detail": "give latency_ms or latency_us, not both"},
    ]);
    assert_eq!(problem["errors"], expected);
    assert_eq!(count_events(&app.state.db).await, 0);
}

#[tokio::test]
async fn batches_over_the_limit_are_413_and_empty_ones_422() {
    let app = spawn_app_with(|s| s.metering.ingest_max_batch = 3).await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let (_, secret) = create_key(&app, &owner).await;
    let body = assert_problem(with_key(&app, &secret, &batch(4)).await, 413).await;
    assert_eq!(
        body["detail"],
        "A batch holds at most 3 events; this one has 4."
    );
    let body = assert_problem(with_key(&app, &secret, &json!({"events": []})).await, 422).await;
    assert_eq!(
        body["errors"],
        json!([{"detail": "must hold at least one event", "pointer": "/events"}])
    );
    accepted(with_key(&app, &secret, &batch(3)).await).await;
}
