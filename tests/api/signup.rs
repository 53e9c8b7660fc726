//! Sign-up, switching tenant and changing the password.

use reqwest::Method;
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use tollgate::{demo, entities::tenants};

use crate::helpers::{
    PASSWORD, assert_problem, audit_rows, audit_rows_since, login, login_as, problem, send, signup,
    spawn_app, spawn_app_with, try_login,
};

async fn post_signup(app: &crate::helpers::TestApp, body: Value) -> reqwest::Response {
    let request = app.client.post(app.url("/v1/auth/signup")).json(&body);
    request.send().await.unwrap()
}

#[tokio::test]
async fn signup_creates_the_account_its_tenant_and_owner_membership_in_one_go() {
    let app = spawn_app().await;
    demo::seed(&app.state.db).await.unwrap();
    let body = json!({
        "email": "  Grace@Example.COM ",
        "password": PASSWORD,
        "name": "Grace",
        "tenant_name": "Hopper & Co.",
    });
    let response = post_signup(&app, body).await;
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let out: Value = response.json().await.unwrap();
    assert_eq!(out["user"]["email"], "grace@example.com");
    assert_eq!(out["user"]["name"], "Grace");
    assert_eq!(out["user"]["is_platform_admin"], false);
    assert_eq!(out["tenant"]["name"], "Hopper & Co.");
    assert_eq!(out["tenant"]["slug"], "hopper-co");
    assert_eq!(out["tenant"]["status"], "active");
    assert_eq!(out["token_type"], "Bearer");
    assert_eq!(out["expires_in"], 900);

    let token = out["access_token"].as_str().unwrap();
    let me = app.get_json_as("/v1/me", token).await;
    assert_eq!(me["active_tenant_id"], out["tenant"]["id"]);
    assert_eq!(me["memberships"][0]["role"], "owner");

    // The tenant is on the default plan (the demo's `Starter`).
    let tenant_id: tollgate::ids::TenantId = out["tenant"]["id"].as_str().unwrap().parse().unwrap();
    let tenant = tenants::Entity::find_by_id(tenant_id.0)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let demo_tenant =
        tenants::Entity::find_by_id(demo::seed(&app.state.db).await.unwrap().tenant_id)
            .one(&app.state.db)
            .await
            .unwrap()
            .unwrap();
    assert!(tenant.plan_id.is_some());
    assert_eq!(tenant.plan_id, demo_tenant.plan_id);

    // Only this tenant's rows: the demo seeding audits its own tenant.
    let rows: Vec<_> = audit_rows(&app)
        .await
        .into_iter()
        .filter(|r| r.tenant_id == Some(tenant_id.0))
        .collect();
    let actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        ["account.signup"],
        "a sign-up is one audited action"
    );
    for row in &rows {
        assert_eq!(row.tenant_id, Some(tenant_id.0));
        assert_eq!(row.actor_type, "user");
        assert_eq!(row.actor_label, "grace@example.com");
        assert_eq!(row.ip.as_deref(), Some("127.0.0.1"));
        assert!(row.request_id.is_some());
    }
    assert_eq!(
        rows[0].after,
        Some(json!({
            "user": {"id": out["user"]["id"], "email": "grace@example.com"},
            "tenant": {"name": "Hopper & Co.", "slug": "hopper-co"},
            "role": "owner",
        }))
    );
    assert_eq!(rows[0].target_id.as_deref(), out["tenant"]["id"].as_str());
}

#[tokio::test]
async fn slugs_are_made_unique() {
    let app = spawn_app().await;
    let slugs = [
        ("a@example.com", "hopper-co"),
        ("b@example.com", "hopper-co-2"),
        ("c@example.com", "hopper-co-3"),
    ];
    for (email, slug) in slugs {
        let body = json!({"email": email, "password": PASSWORD, "tenant_name": "Hopper Co"});
        let out: Value = post_signup(&app, body).await.json().await.unwrap();
        assert_eq!(out["tenant"]["slug"], slug);
    }
}

#[tokio::test]
async fn signup_is_403_when_closed() {
    let app = spawn_app_with(|s| s.auth.open_signup = false).await;
    let body = json!({"email": "x@example.com", "password": PASSWORD, "tenant_name": "X"});
    let body = assert_problem(post_signup(&app, body).await, 403).await;
    assert_eq!(
        body,
        problem(
            403,
            "forbidden",
            "Forbidden",
            "Sign-up is closed on this server; ask an administrator for an account."
        )
    );
    assert!(audit_rows(&app).await.is_empty());
}

#[tokio::test]
async fn a_taken_email_is_409_and_changes_nothing() {
    let app = spawn_app().await;
    signup(&app, "taken@example.com", "First").await;
    let before = audit_rows(&app).await.len();
    let body = json!({"email": "TAKEN@example.com", "password": PASSWORD, "tenant_name": "Second"});
    let body = assert_problem(post_signup(&app, body).await, 409).await;
    assert_eq!(
        body,
        problem(
            409,
            "conflict",
            "Conflict",
            "An account with this email exists already; log in instead."
        )
    );
    assert_eq!(audit_rows(&app).await.len(), before);
    let count = tenants::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap()
        .len();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn weak_passwords_bad_emails_and_extra_fields_are_422() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"email": "x@example.com", "password": "short", "tenant_name": "X"}),
            "/password",
            "must be at least 12 characters",
        ),
        (
            json!({"email": "not-an-email", "password": PASSWORD, "tenant_name": "X"}),
            "/email",
            "must be an email address",
        ),
        (
            json!({"email": "x@example.com", "password": PASSWORD, "tenant_name": "  "}),
            "/tenant_name",
            "must not be empty",
        ),
    ];
    for (input, pointer, detail) in cases {
        let body = assert_problem(post_signup(&app, input).await, 422).await;
        assert_eq!(
            body,
            json!({
                "type": "https://tollgate.dev/problems/validation_failed",
                "title": "Validation failed",
                "status": 422,
                "detail": detail,
                "code": "validation_failed",
                "errors": [{"detail": detail, "pointer": pointer}],
            })
        );
    }
    let mass_assignment = json!({
        "email": "x@example.com", "password": PASSWORD, "tenant_name": "X",
        "is_platform_admin": true,
    });
    let body = assert_problem(post_signup(&app, mass_assignment).await, 422).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("unknown field `is_platform_admin`"),
        "{body}"
    );
    assert!(audit_rows(&app).await.is_empty());
}

#[tokio::test]
async fn members_switch_to_their_tenants_and_platform_admins_to_any() {
    let app = spawn_app().await;
    let demo_tenant = demo::seed(&app.state.db).await.unwrap().tenant_id;
    let demo_tenant = tollgate::ids::TenantId(demo_tenant).to_string();
    let grace = signup(&app, "grace@example.com", "Grace's").await;

    let switch = |token: String, tenant: String| {
        let body = json!({"tenant_id": tenant});
        let app = &app;
        async move {
            send(
                app,
                Method::POST,
                "/v1/auth/switch-tenant",
                &token,
                Some(body),
            )
            .await
        }
    };
    let refused = switch(grace.token.clone(), demo_tenant.clone()).await;
    let body = assert_problem(refused, 403).await;
    let detail = format!("You are not a member of tenant {demo_tenant}.");
    assert_eq!(body, problem(403, "forbidden", "Forbidden", &detail));

    // Once the demo owner adds Grace, she may switch there.
    let owner = login(&app, demo::OWNER_EMAIL).await;
    let add = json!({"email": "grace@example.com", "role": "viewer"});
    let added = send(&app, Method::POST, "/v1/members", &owner, Some(add)).await;
    assert_eq!(added.status().as_u16(), 201);
    let response = switch(grace.token.clone(), demo_tenant.clone()).await;
    assert_eq!(response.status().as_u16(), 200);
    let out: Value = response.json().await.unwrap();
    assert_eq!(out["token_type"], "Bearer");
    let me = app
        .get_json_as("/v1/me", out["access_token"].as_str().unwrap())
        .await;
    assert_eq!(me["active_tenant_id"], demo_tenant.as_str());

    // A platform admin switches to any existing tenant, not to one that does not exist.
    let admin = login(&app, demo::ADMIN_EMAIL).await;
    let response = switch(admin.clone(), grace.tenant_id.clone()).await;
    let out: Value = response.json().await.unwrap();
    let me = app
        .get_json_as("/v1/me", out["access_token"].as_str().unwrap())
        .await;
    assert_eq!(me["active_tenant_id"], grace.tenant_id.as_str());
    let missing = tollgate::ids::TenantId::new().to_string();
    assert_eq!(switch(admin, missing).await.status().as_u16(), 403);
}

#[tokio::test]
async fn changing_the_password_retires_the_old_one_and_is_audited_without_secrets() {
    let app = spawn_app().await;
    let grace = signup(&app, "grace@example.com", "Grace's").await;
    let new_password = "a much better passphrase";
    let change = |current: &str, new: &str| {
        let body = json!({"current_password": current, "new_password": new});
        send(
            &app,
            Method::POST,
            "/v1/me/password",
            &grace.token,
            Some(body),
        )
    };

    let wrong = assert_problem(change("not my password", new_password).await, 422).await;
    assert_eq!(wrong["errors"][0]["pointer"], "/current_password");
    assert_eq!(wrong["detail"], "does not match the account's password");
    let short = assert_problem(change(PASSWORD, "short").await, 422).await;
    assert_eq!(short["errors"][0]["pointer"], "/new_password");
    let same = assert_problem(change(PASSWORD, PASSWORD).await, 422).await;
    assert_eq!(same["detail"], "must differ from the current password");

    let before = audit_rows(&app).await.len();
    assert_eq!(change(PASSWORD, new_password).await.status().as_u16(), 204);
    let new_rows = audit_rows_since(&app, before).await;
    assert_eq!(new_rows.len(), 1);
    let row = &new_rows[0];
    assert_eq!(row.action, "user.password_change");
    assert_eq!(row.tenant_id, None);
    assert_eq!(row.target_id.as_deref(), Some(grace.user_id.as_str()));
    assert_eq!((row.before.clone(), row.after.clone()), (None, None));
    let stored = format!("{row:?}");
    assert!(!stored.contains(PASSWORD) && !stored.contains(new_password));

    let old = assert_problem(try_login(&app, "grace@example.com", PASSWORD).await, 401).await;
    assert_eq!(old["detail"], "Invalid email or password.");
    login_as(&app, "grace@example.com", new_password).await;
}

#[tokio::test]
async fn guessing_the_current_password_is_throttled() {
    let app = spawn_app().await;
    let grace = signup(&app, "grace@example.com", "Grace's").await;
    let body = json!({"current_password": "wrong guess!!", "new_password": "whatever-long-enough"});
    for _ in 0..10 {
        let response = send(
            &app,
            Method::POST,
            "/v1/me/password",
            &grace.token,
            Some(body.clone()),
        )
        .await;
        assert_eq!(response.status().as_u16(), 422);
    }
    let response = send(
        &app,
        Method::POST,
        "/v1/me/password",
        &grace.token,
        Some(body),
    )
    .await;
    assert_eq!(response.status().as_u16(), 429);
}
