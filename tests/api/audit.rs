//! `GET /v1/audit-log`: filters, pagination, who may read it and tenant isolation.

use serde_json::{Value, json};
use tollgate::demo;

use crate::helpers::{Account, TestApp, assert_problem, login, member, problem, signup, spawn_app};

/// The actions of a page of entries, newest first.
fn actions(page: &Value) -> Vec<&str> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

/// A tenant with a developer promoted to admin: `account.signup`, `member.add` (developer),
/// `member.role_change`.
async fn busy_tenant(app: &TestApp, owner_email: &str, name: &str) -> (Account, Account) {
    let owner = signup(app, owner_email, name).await;
    let dev = member(app, &owner, &format!("dev+{owner_email}"), "developer").await;
    let response = app
        .client
        .patch(app.url(&format!("/v1/members/{}", dev.user_id)))
        .bearer_auth(&owner.token)
        .header("user-agent", "audit-test/1.0")
        .json(&json!({"role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    (owner, dev)
}

#[tokio::test]
async fn entries_show_actor_target_changes_and_origin() {
    let app = spawn_app().await;
    let (owner, dev) = busy_tenant(&app, "owner@a.example", "A").await;
    let response = app
        .client
        .get(app.url("/v1/audit-log?limit=1"))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap();
    let page: Value = response.json().await.unwrap();
    assert_eq!(page["has_more"], true);
    let entry = &page["data"][0];
    assert!(entry["id"].as_str().unwrap().starts_with("aud_"));
    assert_eq!(entry["tenant_id"], owner.tenant_id.as_str());
    assert_eq!(
        entry["actor"],
        json!({"type": "user", "id": owner.user_id, "label": "owner@a.example"})
    );
    assert_eq!(entry["action"], "member.role_change");
    assert_eq!(entry["target"], json!({"type": "user", "id": dev.user_id}));
    assert_eq!(entry["before"], json!({"role": "developer"}));
    assert_eq!(entry["after"], json!({"role": "admin"}));
    assert_eq!(entry["ip"], "127.0.0.1");
    assert_eq!(entry["user_agent"], "audit-test/1.0");
    assert!(entry["request_id"].is_string());
    assert!(entry["created_at"].is_string());

    let next = format!(
        "/v1/audit-log?starting_after={}",
        entry["id"].as_str().unwrap()
    );
    let rest = app.get_json_as(&next, &owner.token).await;
    assert_eq!(actions(&rest), ["member.add", "account.signup"]);
    assert_eq!(rest["has_more"], false);
}

#[tokio::test]
async fn filters_narrow_by_action_actor_target_and_time() {
    let app = spawn_app().await;
    let (owner, dev) = busy_tenant(&app, "owner@a.example", "A").await;
    let get = |query: String| {
        let (app, token) = (&app, owner.token.clone());
        async move {
            app.get_json_as(&format!("/v1/audit-log?{query}"), &token)
                .await
        }
    };
    assert_eq!(
        actions(&get("action=member.add".into()).await),
        ["member.add"]
    );
    assert_eq!(
        actions(&get("action=member.".into()).await),
        ["member.role_change", "member.add"]
    );
    assert_eq!(
        actions(&get("action=member".into()).await),
        Vec::<&str>::new()
    );
    assert_eq!(
        actions(&get(format!("target_id={}", dev.user_id)).await),
        ["member.role_change", "member.add"]
    );
    assert_eq!(
        actions(&get(format!("actor_id={}", dev.user_id)).await),
        Vec::<&str>::new()
    );
    assert_eq!(
        actions(&get(format!("actor_id={}", owner.user_id)).await).len(),
        3
    );
    assert_eq!(
        actions(&get("from=2000-01-01T00:00:00Z".into()).await).len(),
        3
    );
    assert_eq!(
        actions(&get("to=2000-01-01T00:00:00Z".into()).await).len(),
        0
    );
    assert_eq!(
        actions(&get("from=2999-01-01T00:00:00Z".into()).await).len(),
        0
    );

    let bad = app
        .get_as("/v1/audit-log?from=yesterday", &owner.token)
        .await;
    let bad = assert_problem(bad, 400).await;
    assert_eq!(bad["errors"][0]["pointer"], "/from");
    let bad = app
        .get_as("/v1/audit-log?actor_id=tnt_1", &owner.token)
        .await;
    assert_problem(bad, 400).await;
}

#[tokio::test]
async fn tenants_see_only_their_entries_and_platform_admins_see_all() {
    let app = spawn_app().await;
    let (a, _) = busy_tenant(&app, "owner@a.example", "A").await;
    let (b, _) = busy_tenant(&app, "owner@b.example", "B").await;
    for (reader, tenant) in [(&a, &a.tenant_id), (&b, &b.tenant_id)] {
        let page = app.get_json_as("/v1/audit-log", &reader.token).await;
        let entries = page["data"].as_array().unwrap();
        assert_eq!(entries.len(), 3);
        assert!(entries.iter().all(|e| e["tenant_id"] == tenant.as_str()));
    }
    // Naming another tenant is refused; naming one's own is fine.
    let path = format!("/v1/audit-log?tenant_id={}", b.tenant_id);
    let refused = assert_problem(app.get_as(&path, &a.token).await, 403).await;
    let detail = "Only platform administrators may read another tenant's audit log.";
    assert_eq!(refused, problem(403, "forbidden", "Forbidden", detail));
    let own = app
        .get_json_as(
            &format!("/v1/audit-log?tenant_id={}", a.tenant_id),
            &a.token,
        )
        .await;
    assert_eq!(actions(&own).len(), 3);

    let admin = login(&app, demo::ADMIN_EMAIL).await;
    let all = app.get_json_as("/v1/audit-log", &admin).await;
    // Both tenants' entries, and the demo tenant's creation (seeded by the admin login).
    assert_eq!(actions(&all).len(), 7);
    let only_b = app.get_json_as(&path, &admin).await;
    let entries = only_b["data"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert!(
        entries
            .iter()
            .all(|e| e["tenant_id"] == b.tenant_id.as_str())
    );
}

#[tokio::test]
async fn only_roles_allowed_to_read_the_audit_log_may() {
    let app = spawn_app().await;
    let owner = signup(&app, "owner@a.example", "A").await;
    for (role, status) in [
        ("admin", 200),
        ("finance", 200),
        ("developer", 403),
        ("viewer", 403),
    ] {
        let who = member(&app, &owner, &format!("{role}@a.example"), role).await;
        let response = app.get_as("/v1/audit-log", &who.token).await;
        assert_eq!(response.status().as_u16(), status, "{role}");
        if status == 403 {
            let body = assert_problem(response, 403).await;
            let detail = format!("The {role} role may not do this.");
            assert_eq!(body, problem(403, "forbidden", "Forbidden", &detail));
        }
    }
    let anonymous = app.get("/v1/audit-log").await;
    assert_problem(anonymous, 401).await;
}
