//! Accounts and tenancy fixtures: sign-up, login with a password, member tokens for a role,
//! authenticated requests, exact problem bodies and the audit rows a call left behind.

use reqwest::{Method, Response};
use sea_orm::{EntityTrait, QueryOrder};
use serde_json::{Value, json};
use tollgate::entities::audit_log;

use super::TestApp;

/// The password every account created by these fixtures has.
pub const PASSWORD: &str = "correct horse battery staple";

/// An account with a token acting in its tenant.
pub struct Account {
    pub user_id: String,
    pub tenant_id: String,
    pub token: String,
}

/// `POST /v1/auth/signup`, asserting 201: a new account owning a new tenant.
pub async fn signup(app: &TestApp, email: &str, tenant_name: &str) -> Account {
    let body = json!({"email": email, "password": PASSWORD, "tenant_name": tenant_name});
    let response = app
        .client
        .post(app.url("/v1/auth/signup"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201, "sign-up of {email}");
    let body: Value = response.json().await.unwrap();
    Account {
        user_id: body["user"]["id"].as_str().unwrap().to_owned(),
        tenant_id: body["tenant"]["id"].as_str().unwrap().to_owned(),
        token: body["access_token"].as_str().unwrap().to_owned(),
    }
}

/// Logs in with `password`, optionally into `tenant_id`; the response as is.
pub async fn try_login(app: &TestApp, email: &str, password: &str) -> Response {
    let body = json!({"email": email, "password": password});
    let request = app.client.post(app.url("/v1/auth/login")).json(&body);
    request.send().await.unwrap()
}

/// Logs in with `password`, asserting 200; the access token.
pub async fn login_as(app: &TestApp, email: &str, password: &str) -> String {
    let response = try_login(app, email, password).await;
    assert_eq!(response.status().as_u16(), 200, "login as {email}");
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// Creates an account with `role` in the owner's tenant (through the API) and logs it in.
pub async fn member(app: &TestApp, owner: &Account, email: &str, role: &str) -> Account {
    let body = json!({"email": email, "role": role, "password": PASSWORD});
    let response = send(app, Method::POST, "/v1/members", &owner.token, Some(body)).await;
    assert_eq!(response.status().as_u16(), 201, "adding {email} as {role}");
    let added: Value = response.json().await.unwrap();
    Account {
        user_id: added["user_id"].as_str().unwrap().to_owned(),
        tenant_id: owner.tenant_id.clone(),
        token: login_as(app, email, PASSWORD).await,
    }
}

/// `method path` as `token`, with an optional JSON body. The request is built before the
/// future is returned, so the future borrows none of the arguments.
pub fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> impl Future<Output = Response> + use<> {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    async move { request.send().await.expect("request sent") }
}

/// The exact problem document of an error without field errors.
pub fn problem(status: u16, code: &str, title: &str, detail: &str) -> Value {
    json!({
        "type": format!("https://tollgate.dev/problems/{code}"),
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    })
}

/// Every audit row, oldest first.
pub async fn audit_rows(app: &TestApp) -> Vec<audit_log::Model> {
    audit_log::Entity::find()
        .order_by_asc(audit_log::Column::Id)
        .all(&app.state.db)
        .await
        .unwrap()
}

/// The audit rows written since there were `before` of them.
pub async fn audit_rows_since(app: &TestApp, before: usize) -> Vec<audit_log::Model> {
    audit_rows(app).await.split_off(before)
}
