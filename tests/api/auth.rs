//! Login, `/v1/me`, throttling and the admin tenant views.

use serde_json::json;
use tollgate::demo;

use crate::helpers::{assert_problem, login, spawn_app};

#[tokio::test]
async fn login_returns_a_bearer_token_that_identifies_the_user_and_tenant() {
    let app = spawn_app().await;
    let token = login(&app, demo::OWNER_EMAIL).await;
    let me: serde_json::Value = app.get_json_as("/v1/me", &token).await;
    assert_eq!(me["user"]["email"], demo::OWNER_EMAIL);
    assert_eq!(me["user"]["is_platform_admin"], false);
    assert_eq!(me["memberships"][0]["role"], "owner");
    assert_eq!(me["memberships"][0]["tenant_name"], "Acme Demo");
    assert_eq!(me["active_tenant_id"], me["memberships"][0]["tenant_id"]);
    assert!(me["user"]["id"].as_str().unwrap().starts_with("usr_"));
    assert!(me["user"].get("password_hash").is_none());
}

#[tokio::test]
async fn wrong_password_and_unknown_email_are_the_same_401_and_are_recorded() {
    let app = spawn_app().await;
    demo::seed(&app.state.db).await.unwrap();
    for email in [demo::OWNER_EMAIL, "nobody@example.com"] {
        let response = app
            .client
            .post(app.url("/v1/auth/login"))
            .json(&json!({"email": email, "password": "wrong password!"}))
            .send()
            .await
            .unwrap();
        let body = assert_problem(response, 401).await;
        assert_eq!(body["detail"], "Invalid email or password.");
    }
    use sea_orm::{EntityTrait, PaginatorTrait};
    let recorded = tollgate::entities::auth_attempts::Entity::find()
        .count(&app.state.db)
        .await
        .unwrap();
    assert_eq!(recorded, 2);
}

#[tokio::test]
async fn repeated_failures_throttle_the_account_with_retry_after() {
    let app = spawn_app().await;
    demo::seed(&app.state.db).await.unwrap();
    let attempt = || {
        app.client
            .post(app.url("/v1/auth/login"))
            .json(&json!({"email": demo::OWNER_EMAIL, "password": "wrong password!"}))
            .send()
    };
    for _ in 0..10 {
        assert_eq!(attempt().await.unwrap().status().as_u16(), 401);
    }
    let response = attempt().await.unwrap();
    assert_eq!(response.headers()["retry-after"], "900");
    let body = assert_problem(response, 429).await;
    assert_eq!(
        body["detail"],
        "Too many failed login attempts. Try again later."
    );
    // The right password is throttled too while the window lasts.
    let response = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": demo::OWNER_EMAIL, "password": demo::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
}

#[tokio::test]
async fn platform_admins_list_and_get_tenants_with_cursor_pagination() {
    let app = spawn_app().await;
    let token = login(&app, demo::ADMIN_EMAIL).await;
    let list = app.get_json_as("/v1/admin/tenants?limit=1", &token).await;
    assert_eq!(list["has_more"], false);
    let tenant = &list["data"][0];
    assert_eq!(tenant["slug"], demo::TENANT_SLUG);
    let id = tenant["id"].as_str().unwrap();
    let got = app
        .get_json_as(&format!("/v1/admin/tenants/{id}"), &token)
        .await;
    assert_eq!(&got, tenant);
    let after = app
        .get_json_as(&format!("/v1/admin/tenants?starting_after={id}"), &token)
        .await;
    assert_eq!(after, json!({"data": [], "has_more": false}));
}
