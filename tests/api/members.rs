//! `/v1/members`: listing, adding, role changes and removal, the owner rules, tenant
//! isolation, and exactly one audit row per change.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    Account, PASSWORD, TestApp, assert_problem, audit_rows, audit_rows_since, login_as, member,
    problem, send, signup, spawn_app, spawn_app_with,
};

async fn add(app: &TestApp, as_: &Account, body: Value) -> reqwest::Response {
    send(app, Method::POST, "/v1/members", &as_.token, Some(body)).await
}

async fn set_role(app: &TestApp, as_: &Account, user_id: &str, role: &str) -> reqwest::Response {
    let path = format!("/v1/members/{user_id}");
    send(
        app,
        Method::PATCH,
        &path,
        &as_.token,
        Some(json!({"role": role})),
    )
    .await
}

async fn remove(app: &TestApp, as_: &Account, user_id: &str) -> reqwest::Response {
    let path = format!("/v1/members/{user_id}");
    send(app, Method::DELETE, &path, &as_.token, None).await
}

fn forbidden(detail: &str) -> Value {
    problem(403, "forbidden", "Forbidden", detail)
}

#[tokio::test]
async fn owners_add_existing_accounts_and_list_members() {
    let app = spawn_app().await;
    let owner = signup(&app, "owner@a.example", "A").await;
    let other = signup(&app, "dev@b.example", "B").await;

    let before = audit_rows(&app).await.len();
    let response = add(
        &app,
        &owner,
        json!({"email": "DEV@b.example", "role": "developer"}),
    )
    .await;
    assert_eq!(response.status().as_u16(), 201);
    let added: Value = response.json().await.unwrap();
    assert_eq!(added["user_id"], other.user_id.as_str());
    assert_eq!(added["email"], "dev@b.example");
    assert_eq!(added["role"], "developer");
    assert!(added["joined_at"].is_string());

    let rows = audit_rows_since(&app, before).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].action, "member.add");
    assert_eq!(rows[0].target_type, "user");
    assert_eq!(rows[0].target_id.as_deref(), Some(other.user_id.as_str()));
    assert_eq!(
        (rows[0].before.clone(), rows[0].after.clone()),
        (None, Some(json!({"role": "developer"})))
    );
    assert_eq!(rows[0].actor_label, "owner@a.example");

    let list = app.get_json_as("/v1/members", &owner.token).await;
    assert_eq!(list["has_more"], false);
    let members: Vec<(&str, &str)> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["email"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    // Newest account first.
    assert_eq!(
        members,
        [("dev@b.example", "developer"), ("owner@a.example", "owner")]
    );

    let page = app.get_json_as("/v1/members?limit=1", &owner.token).await;
    assert_eq!(page["has_more"], true);
    let next = format!("/v1/members?starting_after={}", other.user_id);
    let next = app.get_json_as(&next, &owner.token).await;
    assert_eq!(next["data"][0]["email"], "owner@a.example");
    assert_eq!(next["has_more"], false);

    // The developer's own tenant is untouched.
    let theirs = app.get_json_as("/v1/members", &other.token).await;
    assert_eq!(theirs["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn adding_with_a_password_creates_the_account() {
    let app = spawn_app().await;
    let owner = signup(&app, "owner@a.example", "A").await;
    let before = audit_rows(&app).await.len();
    let body =
        json!({"email": "new@a.example", "role": "finance", "password": PASSWORD, "name": "Nia"});
    let response = add(&app, &owner, body).await;
    assert_eq!(response.status().as_u16(), 201);
    let added: Value = response.json().await.unwrap();
    assert_eq!(added["name"], "Nia");
    assert_eq!(audit_rows_since(&app, before).await.len(), 1);
    let token = login_as(&app, "new@a.example", PASSWORD).await;
    let me = app.get_json_as("/v1/me", &token).await;
    assert_eq!(me["active_tenant_id"], owner.tenant_id.as_str());
    assert_eq!(me["memberships"][0]["role"], "finance");
}

#[tokio::test]
async fn adding_refuses_duplicates_missing_passwords_and_mass_assignment() {
    let app = spawn_app().await;
    let owner = signup(&app, "owner@a.example", "A").await;
    signup(&app, "b@b.example", "B").await;
    let before = audit_rows(&app).await.len();

    let body = json!({"email": "b@b.example", "role": "viewer", "password": PASSWORD});
    let conflict = assert_problem(add(&app, &owner, body).await, 409).await;
    let detail = "An account with this email exists already; add it without `password`.";
    assert_eq!(conflict, problem(409, "conflict", "Conflict", detail));

    let body = json!({"email": "owner@a.example", "role": "viewer"});
    let again = assert_problem(add(&app, &owner, body).await, 409).await;
    let detail = format!("{} is a member of this tenant already.", owner.user_id);
    assert_eq!(again, problem(409, "conflict", "Conflict", &detail));

    let body = json!({"email": "nobody@a.example", "role": "viewer"});
    let missing = assert_problem(add(&app, &owner, body).await, 422).await;
    assert_eq!(
        missing["errors"],
        json!([{"detail": "is required: no account with this email exists yet", "pointer": "/password"}])
    );

    for field in ["tenant_id", "is_platform_admin", "user_id"] {
        let mut body = json!({"email": "b@b.example", "role": "viewer"});
        body[field] = json!("x");
        let refused = assert_problem(add(&app, &owner, body).await, 422).await;
        let detail = refused["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!("unknown field `{field}`")),
            "{detail}"
        );
    }
    let body = json!({"email": "b@b.example", "role": "superuser"});
    assert_problem(add(&app, &owner, body).await, 422).await;
    assert_eq!(
        audit_rows(&app).await.len(),
        before,
        "refusals leave no audit rows"
    );
}

#[tokio::test]
async fn role_changes_and_removals_are_audited_once_each() {
    let app = spawn_app().await;
    let owner = signup(&app, "owner@a.example", "A").await;
    let dev = member(&app, &owner, "dev@a.example", "developer").await;

    let before = audit_rows(&app).await.len();
    let response = set_role(&app, &owner, &dev.user_id, "admin").await;
    assert_eq!(response.status().as_u16(), 200);
    let changed: Value = response.json().await.unwrap();
    assert_eq!(changed["role"], "admin");
    let rows = audit_rows_since(&app, before).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].action, "member.role_change");
    assert_eq!(rows[0].before, Some(json!({"role": "developer"})));
    assert_eq!(rows[0].after, Some(json!({"role": "admin"})));

    // Setting the same role changes nothing and records nothing.
    let before = audit_rows(&app).await.len();
    assert_eq!(
        set_role(&app, &owner, &dev.user_id, "admin")
            .await
            .status()
            .as_u16(),
        200
    );
    assert_eq!(audit_rows(&app).await.len(), before);

    let response = remove(&app, &owner, &dev.user_id).await;
    assert_eq!(response.status().as_u16(), 204);
    let rows = audit_rows_since(&app, before).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].action, "member.remove");
    assert_eq!(rows[0].target_id.as_deref(), Some(dev.user_id.as_str()));
    assert_eq!(
        (rows[0].before.clone(), rows[0].after.clone()),
        (Some(json!({"role": "admin"})), None)
    );

    // The removed member's token stops working for this tenant at once.
    let body = assert_problem(app.get_as("/v1/members", &dev.token).await, 401).await;
    assert_eq!(
        body["detail"],
        "You are no longer a member of this token's tenant."
    );
    let gone = assert_problem(remove(&app, &owner, &dev.user_id).await, 404).await;
    let detail = format!("No member {} in this tenant.", dev.user_id);
    assert_eq!(gone, problem(404, "not_found", "Not found", &detail));
}

#[tokio::test]
async fn the_last_owner_can_be_neither_demoted_nor_removed() {
    let app = spawn_app().await;
    let owner = signup(&app, "owner@a.example", "A").await;
    let before = audit_rows(&app).await.len();
    let detail = format!(
        "{} is the last owner of this tenant; make another member an owner first.",
        owner.user_id
    );
    let expected = problem(409, "conflict", "Conflict", &detail);
    let demoted = assert_problem(set_role(&app, &owner, &owner.user_id, "admin").await, 409).await;
    assert_eq!(demoted, expected);
    let removed = assert_problem(remove(&app, &owner, &owner.user_id).await, 409).await;
    assert_eq!(removed, expected);
    assert_eq!(audit_rows(&app).await.len(), before);

    // With a second owner, the first may step down.
    let second = member(&app, &owner, "second@a.example", "owner").await;
    assert_eq!(
        set_role(&app, &owner, &owner.user_id, "viewer")
            .await
            .status()
            .as_u16(),
        200
    );
    let last = assert_problem(remove(&app, &second, &second.user_id).await, 409).await;
    assert!(
        last["detail"]
            .as_str()
            .unwrap()
            .starts_with(&second.user_id)
    );
}

#[tokio::test]
async fn admins_manage_everyone_but_owners() {
    let app = spawn_app().await;
    let owner = signup(&app, "owner@a.example", "A").await;
    let admin = member(&app, &owner, "admin@a.example", "admin").await;
    let dev = member(&app, &owner, "dev@a.example", "developer").await;
    let before = audit_rows(&app).await.len();

    let only_owner_grants = forbidden("Only an owner may grant the owner role.");
    let body = json!({"email": "x@a.example", "role": "owner", "password": PASSWORD});
    assert_eq!(
        assert_problem(add(&app, &admin, body).await, 403).await,
        only_owner_grants
    );
    let promoted = set_role(&app, &admin, &dev.user_id, "owner").await;
    assert_eq!(assert_problem(promoted, 403).await, only_owner_grants);
    let self_promoted = set_role(&app, &admin, &admin.user_id, "owner").await;
    assert_eq!(assert_problem(self_promoted, 403).await, only_owner_grants);

    let only_owner_changes = forbidden("Only an owner may change or remove an owner.");
    let demoted = set_role(&app, &admin, &owner.user_id, "viewer").await;
    assert_eq!(assert_problem(demoted, 403).await, only_owner_changes);
    let removed = remove(&app, &admin, &owner.user_id).await;
    assert_eq!(assert_problem(removed, 403).await, only_owner_changes);
    assert_eq!(audit_rows(&app).await.len(), before);

    // Everyone else is the admin's to manage.
    assert_eq!(
        set_role(&app, &admin, &dev.user_id, "finance")
            .await
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        remove(&app, &admin, &dev.user_id).await.status().as_u16(),
        204
    );
    let body = json!({"email": "v@a.example", "role": "viewer", "password": PASSWORD});
    assert_eq!(add(&app, &admin, body).await.status().as_u16(), 201);
    assert_eq!(audit_rows_since(&app, before).await.len(), 3);
}

#[tokio::test]
async fn viewers_developers_and_finance_read_but_may_not_write() {
    let app = spawn_app().await;
    let owner = signup(&app, "owner@a.example", "A").await;
    for role in ["viewer", "developer", "finance"] {
        let who = member(&app, &owner, &format!("{role}@a.example"), role).await;
        let list = app.get_json_as("/v1/members", &who.token).await;
        assert!(list["data"].as_array().unwrap().len() >= 2);

        let expected = forbidden(&format!("The {role} role may not do this."));
        let body = json!({"email": "x@a.example", "role": "viewer", "password": PASSWORD});
        assert_eq!(
            assert_problem(add(&app, &who, body).await, 403).await,
            expected
        );
        let patched = set_role(&app, &who, &who.user_id, "admin").await;
        assert_eq!(assert_problem(patched, 403).await, expected);
        let removed = remove(&app, &who, &owner.user_id).await;
        assert_eq!(assert_problem(removed, 403).await, expected);
    }
}

#[tokio::test]
async fn another_tenants_member_is_404_and_a_malformed_id_400() {
    let app = spawn_app().await;
    let a = signup(&app, "owner@a.example", "A").await;
    let b = signup(&app, "owner@b.example", "B").await;
    let b_dev = member(&app, &b, "dev@b.example", "developer").await;
    let before = audit_rows(&app).await.len();
    for user in [&b.user_id, &b_dev.user_id] {
        let detail = format!("No member {user} in this tenant.");
        let expected = problem(404, "not_found", "Not found", &detail);
        let patched = set_role(&app, &a, user, "viewer").await;
        assert_eq!(assert_problem(patched, 404).await, expected);
        assert_eq!(
            assert_problem(remove(&app, &a, user).await, 404).await,
            expected
        );
    }
    assert_eq!(audit_rows(&app).await.len(), before);
    let bad = assert_problem(remove(&app, &a, "tnt_123").await, 400).await;
    assert!(
        bad["detail"]
            .as_str()
            .unwrap()
            .starts_with("Invalid path parameter `user_id`")
    );
    // B's membership is intact.
    let list = app.get_json_as("/v1/members", &b.token).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn two_owners_demoting_each_other_at_once_leave_one_owner() {
    // Two HTTP workers, so the two requests really run at the same time.
    let app = spawn_app_with(|s| s.server.workers = 2).await;
    let first = signup(&app, "owner@a.example", "A").await;
    let second = member(&app, &first, "second@a.example", "owner").await;
    for _ in 0..5 {
        let (one, two) = tokio::join!(
            set_role(&app, &first, &second.user_id, "admin"),
            set_role(&app, &second, &first.user_id, "admin"),
        );
        let mut statuses = [one.status().as_u16(), two.status().as_u16()];
        statuses.sort();
        // The loser is refused by the last-owner lock (409) or, when it authenticated after
        // the winner committed, as a mere admin (403).
        assert!(
            matches!(statuses, [200, 403] | [200, 409]),
            "one demotion wins, the other is refused: {statuses:?}"
        );
        let list = app.get_json_as("/v1/members", &first.token).await;
        let owners: Vec<&str> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "owner")
            .map(|m| m["user_id"].as_str().unwrap())
            .collect();
        assert_eq!(owners.len(), 1, "exactly one owner is left");
        // The survivor makes the other an owner again for the next round.
        let (winner, loser) = if owners[0] == first.user_id {
            (&first, &second)
        } else {
            (&second, &first)
        };
        let restored = set_role(&app, winner, &loser.user_id, "owner").await;
        assert_eq!(restored.status().as_u16(), 200);
    }
}
