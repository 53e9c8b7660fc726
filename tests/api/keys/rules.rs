//! What keys may and may not do: limits within the plan, mass assignment, idempotency,
//! import, one audit entry per change, tenant isolation.

use reqwest::Method;
use serde_json::{Value, json};
use tollgate::tenancy::Role;

use super::{create, create_ok};
use crate::helpers::{
    Member, assert_db_free_of, assert_problem, audit_rows, audit_rows_since, join_tenant,
    new_tenant_member, send, spawn_app,
};

#[tokio::test]
async fn limits_need_the_role_and_stay_within_the_plan() {
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let developer = join_tenant(&app, owner.tenant_id, Role::Developer).await;
    let limited = json!({"name": "k", "limits": {"per_minute": 50}});
    let body = assert_problem(create(&app, &developer, limited.clone()).await, 403).await;
    assert_eq!(body["detail"], "The developer role may not do this.");
    assert_eq!(
        create(&app, &developer, json!({"name": "plain"}))
            .await
            .status()
            .as_u16(),
        201
    );

    let key: Value = create(&app, &owner, limited).await.json().await.unwrap();
    assert_eq!(key["limits"]["per_minute"], 50);
    assert_eq!(
        key["limits"]["per_hour"], 1000,
        "other windows inherit the plan"
    );
    assert_eq!(
        key["limit_overrides"],
        json!({"per_minute": 50, "per_hour": null, "per_day": null, "per_month": null})
    );
    let over = json!({"name": "k", "limits": {"per_hour": 5000}});
    let body = assert_problem(create(&app, &owner, over).await, 422).await;
    assert_eq!(
        body["errors"],
        json!([{"detail": "exceeds the plan's limit of 1000; request a quota increase", "pointer": "/limits/per_hour"}])
    );
    let zero = assert_problem(
        create(&app, &owner, json!({"name": "k", "limits": {"per_day": 0}})).await,
        422,
    )
    .await;
    assert_eq!(zero["errors"][0]["pointer"], "/limits/per_day");

    // PATCH: null clears an override; a developer may not touch limits at all.
    let path = format!("/v1/keys/{}", key["id"].as_str().unwrap());
    let cleared = send(
        &app,
        Method::PATCH,
        &path,
        &owner.token,
        Some(json!({"limits": {"per_minute": null}})),
    )
    .await;
    assert_eq!(
        cleared.json::<Value>().await.unwrap()["limits"]["per_minute"],
        100
    );
    let denied = send(
        &app,
        Method::PATCH,
        &path,
        &developer.token,
        Some(json!({"limits": {"per_minute": 10}})),
    )
    .await;
    assert_eq!(denied.status().as_u16(), 403);
    let renamed = send(
        &app,
        Method::PATCH,
        &path,
        &developer.token,
        Some(json!({"name": "renamed"})),
    )
    .await;
    assert_eq!(renamed.json::<Value>().await.unwrap()["name"], "renamed");
}

#[tokio::test]
async fn mass_assignment_fields_are_rejected_and_change_nothing() {
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let other = new_tenant_member(&app, Role::Owner).await;
    let key = create_ok(&app, &owner, "k").await;
    let path = format!("/v1/keys/{}", key["id"].as_str().unwrap());
    let smuggled = [
        ("tenant_id", json!(other.tenant_id.to_string())),
        ("role", json!("owner")),
        ("usage_count", json!(1_000_000)),
        ("status", json!("active")),
    ];
    for (field, value) in smuggled {
        let mut body = json!({"name": "x"});
        body[field] = value;
        let response = create(&app, &owner, body.clone()).await;
        let problem = assert_problem(response, 422).await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("unknown field `{field}`")),
            "{problem}"
        );
        assert_problem(
            send(&app, Method::PATCH, &path, &owner.token, Some(body)).await,
            422,
        )
        .await;
    }
    let list = app.get_json_as("/v1/keys", &owner.token).await;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        1,
        "nothing was created"
    );
    assert_eq!(list["data"][0]["name"], "k");
    assert_eq!(list["data"][0]["usage_count"], 0);
    assert_eq!(
        app.get_json_as("/v1/keys", &other.token).await["data"],
        json!([])
    );
}

#[tokio::test]
async fn idempotency_key_replays_the_first_response_and_rejects_another_body() {
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let post = |body: Value, key: &'static str| {
        app.client
            .post(app.url("/v1/keys"))
            .bearer_auth(&owner.token)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let first = post(json!({"name": "once"}), "req-1").await.unwrap();
    assert_eq!(first.status().as_u16(), 201);
    let first: Value = first.json().await.unwrap();
    let replay = post(json!({"name": "once"}), "req-1").await.unwrap();
    assert_eq!(replay.status().as_u16(), 201);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(
        replay.json::<Value>().await.unwrap(),
        first,
        "same key, same secret"
    );
    let other = assert_problem(post(json!({"name": "twice"}), "req-1").await.unwrap(), 422).await;
    assert_eq!(
        other["detail"],
        "This Idempotency-Key was already used with a different request."
    );
    let list = app.get_json_as("/v1/keys", &owner.token).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    // The replayable response is sealed: the secret is not stored in clear.
    assert_db_free_of(&app, first["secret"].as_str().unwrap()).await;
    // A failed first attempt is not remembered.
    assert_eq!(
        post(json!({"name": ""}), "req-2")
            .await
            .unwrap()
            .status()
            .as_u16(),
        422
    );
    assert_eq!(
        post(json!({"name": "ok"}), "req-2")
            .await
            .unwrap()
            .status()
            .as_u16(),
        201
    );
}

#[tokio::test]
async fn imported_secrets_work_unchanged_and_only_once() {
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let developer = join_tenant(&app, owner.tenant_id, Role::Developer).await;
    let secret = "legacy_gw_5f2b8c1e9d7a4b3c2e1f0a9b";
    let body = json!({"name": "legacy", "secret": secret});
    let import = |member: &Member, body: Value| {
        let token = member.token.clone();
        let app = &app;
        async move { send(app, Method::POST, "/v1/keys/import", &token, Some(body)).await }
    };
    assert_eq!(
        import(&developer, body.clone()).await.status().as_u16(),
        403
    );
    let imported = import(&owner, body.clone()).await;
    assert_eq!(imported.status().as_u16(), 201);
    let imported: Value = imported.json().await.unwrap();
    assert_eq!(imported["source"], "imported");
    assert!(imported.get("secret").is_none());
    assert_eq!(app.ping(secret).await.status().as_u16(), 200);
    let body2 = assert_problem(import(&owner, body).await, 409).await;
    assert_eq!(
        body2["detail"],
        "This secret is already registered to an API key."
    );
    let short = assert_problem(
        import(&owner, json!({"name": "x", "secret": "too-short"})).await,
        422,
    )
    .await;
    assert_eq!(short["errors"][0]["pointer"], "/secret");
    assert_db_free_of(&app, secret).await;
}

#[tokio::test]
async fn every_key_change_leaves_exactly_one_audit_entry_with_before_and_after() {
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let before = audit_rows(&app).await.len();
    let key = create_ok(&app, &owner, "audited").await;
    let id = key["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/keys/{id}");
    let steps: [(&str, Method, String, Option<Value>); 4] = [
        (
            "key.update",
            Method::PATCH,
            path.clone(),
            Some(json!({"name": "renamed", "limits": {"per_minute": 10}})),
        ),
        (
            "key.rotate",
            Method::POST,
            format!("{path}/rotate"),
            Some(json!({"grace_seconds": 60})),
        ),
        ("key.revoke", Method::DELETE, path.clone(), None),
        (
            "key.import",
            Method::POST,
            "/v1/keys/import".into(),
            Some(json!({"name": "imp", "secret": "imported_secret_0123456789abcdef"})),
        ),
    ];
    let created = audit_rows_since(&app, before).await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].action, "key.create");
    assert_eq!(created[0].target_id.as_deref(), Some(id.as_str()));
    assert!(created[0].before.is_none() && created[0].after.is_some());
    for (action, method, path, body) in steps {
        let count = audit_rows(&app).await.len();
        let response = send(&app, method, &path, &owner.token, body).await;
        assert!(
            response.status().is_success(),
            "{action}: {}",
            response.status()
        );
        let rows = audit_rows_since(&app, count).await;
        assert_eq!(rows.len(), 1, "{action} leaves one entry");
        let row = &rows[0];
        assert_eq!(row.action, action);
        assert_eq!(row.actor_label, owner.email);
        assert_eq!(row.tenant_id, Some(owner.tenant_id.0));
        assert!(row.ip.is_some() && row.after.is_some());
        if action == "key.update" {
            assert_eq!(row.before.as_ref().unwrap()["name"], "audited");
            assert_eq!(row.after.as_ref().unwrap()["name"], "renamed");
            assert_eq!(row.after.as_ref().unwrap()["limits"]["per_minute"], 10);
        }
    }
    let rejected = send(
        &app,
        Method::PATCH,
        &path,
        &owner.token,
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(rejected.status().as_u16(), 409);
    assert_eq!(
        audit_rows(&app).await.len(),
        before + 5,
        "a refused change is not audited"
    );
}

#[tokio::test]
async fn another_tenants_keys_are_invisible() {
    let app = spawn_app().await;
    let alice = new_tenant_member(&app, Role::Owner).await;
    let bob = new_tenant_member(&app, Role::Owner).await;
    let key = create_ok(&app, &alice, "alice's").await;
    let id = key["id"].as_str().unwrap();
    let path = format!("/v1/keys/{id}");
    let attempts = [
        (Method::GET, path.clone(), None),
        (
            Method::PATCH,
            path.clone(),
            Some(json!({"name": "mine now"})),
        ),
        (Method::DELETE, path.clone(), None),
        (Method::POST, format!("{path}/rotate"), Some(json!({}))),
    ];
    for (method, path, body) in attempts {
        let response = send(&app, method.clone(), &path, &bob.token, body).await;
        let body = assert_problem(response, 404).await;
        assert_eq!(
            body["detail"],
            format!("No API key {id}."),
            "{method} {path}"
        );
    }
    assert_eq!(
        app.get_json_as("/v1/keys", &bob.token).await["data"],
        json!([])
    );
    assert_eq!(
        app.ping(key["secret"].as_str().unwrap())
            .await
            .status()
            .as_u16(),
        200,
        "untouched"
    );
}
