//! A key's life: the secret once, the documented key errors, expiry, rotation grace.

use reqwest::Method;
use serde_json::{Value, json};
use tollgate::tenancy::Role;

use super::{create, create_ok};
use crate::helpers::{
    assert_db_free_of, assert_logs_free_of, assert_problem, new_tenant_member, problem, send,
    spawn_app,
};

#[tokio::test]
async fn a_created_key_shows_its_secret_once_and_works() {
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let created = create_ok(&app, &owner, "render-farm").await;
    let secret = created["secret"].as_str().unwrap();
    assert!(
        secret.starts_with("tg_live_") && secret.len() == 8 + 43,
        "{secret}"
    );
    assert_eq!(created["prefix"], &secret[..12]);
    assert_eq!(created["last4"], &secret[secret.len() - 4..]);
    assert_eq!(created["status"], "active");
    assert_eq!(
        created["limits"],
        json!({"per_minute": 100, "per_hour": 1000, "per_day": 10000, "per_month": null})
    );
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("key_"));

    let fetched = app
        .get_json_as(&format!("/v1/keys/{id}"), &owner.token)
        .await;
    assert!(fetched.get("secret").is_none());
    let list = app.get_json_as("/v1/keys", &owner.token).await;
    assert_eq!(list["data"][0]["id"], id);
    assert!(list["data"][0].get("secret").is_none());

    let ping = app.ping(secret).await;
    assert_eq!(ping.status().as_u16(), 200);
    let ping: Value = ping.json().await.unwrap();
    assert_eq!(ping["key_id"], id);
    assert_eq!(ping["tenant_id"], owner.tenant_id.to_string());

    assert_db_free_of(&app, secret).await;
    assert_logs_free_of(&[secret, &owner.token]);
}

#[tokio::test]
async fn api_key_errors_are_the_documented_problems() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/v1/ping")).send().await.unwrap();
    let body = assert_problem(response, 401).await;
    assert_eq!(
        body,
        problem(401, "unauthorized", "Unauthorized", "Missing API key")
    );
    let body = assert_problem(app.ping("tg_live_nope").await, 401).await;
    assert_eq!(
        body,
        problem(401, "unauthorized", "Unauthorized", "Invalid API key")
    );

    let owner = new_tenant_member(&app, Role::Owner).await;
    let key = create_ok(&app, &owner, "k").await;
    let (id, secret) = (key["id"].as_str().unwrap(), key["secret"].as_str().unwrap());
    let path = format!("/v1/keys/{id}");
    let off = send(
        &app,
        Method::PATCH,
        &path,
        &owner.token,
        Some(json!({"is_active": false})),
    )
    .await;
    assert_eq!(off.status().as_u16(), 200);
    let body = assert_problem(app.ping(secret).await, 403).await;
    assert_eq!(
        body,
        problem(403, "forbidden", "Forbidden", "API key is inactive")
    );
    send(
        &app,
        Method::PATCH,
        &path,
        &owner.token,
        Some(json!({"is_active": true})),
    )
    .await;
    assert_eq!(app.ping(secret).await.status().as_u16(), 200);

    let revoked = send(&app, Method::DELETE, &path, &owner.token, None).await;
    assert_eq!(revoked.json::<Value>().await.unwrap()["status"], "revoked");
    assert_eq!(app.ping(secret).await.status().as_u16(), 403);
    let again = send(
        &app,
        Method::PATCH,
        &path,
        &owner.token,
        Some(json!({"is_active": true})),
    )
    .await;
    let body = assert_problem(again, 409).await;
    assert_eq!(
        body["detail"],
        "This API key is revoked and can no longer change."
    );
}

#[tokio::test]
async fn an_expired_key_is_inactive() {
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(1500)).to_rfc3339();
    let response = create(
        &app,
        &owner,
        json!({"name": "short-lived", "expires_at": soon}),
    )
    .await;
    let key: Value = response.json().await.unwrap();
    let secret = key["secret"].as_str().unwrap();
    assert_eq!(app.ping(secret).await.status().as_u16(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(1800)).await;
    let body = assert_problem(app.ping(secret).await, 403).await;
    assert_eq!(body["detail"], "API key is inactive");
    let past = create(
        &app,
        &owner,
        json!({"name": "x", "expires_at": "2020-01-01T00:00:00Z"}),
    )
    .await;
    let body = assert_problem(past, 422).await;
    assert_eq!(
        body["errors"],
        json!([{"detail": "must be in the future", "pointer": "/expires_at"}])
    );
}

#[tokio::test]
async fn rotation_keeps_the_old_secret_working_only_during_the_grace_period() {
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let key = create_ok(&app, &owner, "rotating").await;
    let (id, old) = (
        key["id"].as_str().unwrap(),
        key["secret"].as_str().unwrap().to_owned(),
    );
    let rotate_path = format!("/v1/keys/{id}/rotate");
    let rotate = |grace: u64| {
        let body = Some(json!({"grace_seconds": grace}));
        send(&app, Method::POST, &rotate_path, &owner.token, body)
    };
    let rotated: Value = rotate(2).await.json().await.unwrap();
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(rotated["id"], id);
    assert!(rotated["previous_secret_expires_at"].is_string());
    assert_eq!(
        app.ping(&old).await.status().as_u16(),
        200,
        "old secret inside the grace period"
    );
    assert_eq!(app.ping(&new).await.status().as_u16(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(2300)).await;
    let body = assert_problem(app.ping(&old).await, 401).await;
    assert_eq!(
        body["detail"], "Invalid API key",
        "old secret after the grace period"
    );
    assert_eq!(app.ping(&new).await.status().as_u16(), 200);

    // Without grace the replaced secret stops at once.
    let third: Value = rotate(0).await.json().await.unwrap();
    assert_eq!(app.ping(&new).await.status().as_u16(), 401);
    assert_eq!(
        app.ping(third["secret"].as_str().unwrap())
            .await
            .status()
            .as_u16(),
        200
    );
    let too_long = assert_problem(rotate(604_801).await, 422).await;
    assert_eq!(too_long["errors"][0]["pointer"], "/grace_seconds");
    assert_db_free_of(&app, &new).await;
}
