//! Tenant isolation and the permission matrix, generated from the OpenAPI document so a new
//! route cannot skip them: tenant A's token against tenant B's ids is a 404 on every route
//! with an id, A's lists never show B's rows, and each role gets exactly the writes the
//! matrix (`Role::allows`, docs/permissions.md) grants.

use reqwest::Method;
use serde_json::{Value, json};
use tollgate::tenancy::{Permission, Role};
use uuid::Uuid;

use crate::helpers::{Member, TestApp, join_tenant, new_tenant_member, send, spawn_app};

/// Every (method, path template) of the document.
fn operations() -> Vec<(Method, String)> {
    let spec = serde_json::to_value(tollgate::http::openapi::spec()).unwrap();
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            ops.push((method.to_uppercase().parse().unwrap(), path.clone()));
        }
    }
    ops
}

/// A body the route accepts, so the request reaches the tenant check.
fn sample_body(method: &Method, path: &str) -> Option<Value> {
    let unique = Uuid::new_v4().simple().to_string();
    match (method.as_str(), path) {
        ("GET" | "DELETE", _) => None,
        ("POST", "/v1/keys") => Some(json!({"name": "matrix"})),
        ("POST", "/v1/keys/import") => {
            Some(json!({"name": "imp", "secret": format!("imported_{unique}")}))
        }
        ("PATCH", "/v1/keys/{key_id}") => Some(json!({"name": "renamed"})),
        ("POST", "/v1/members") => Some(json!({
            "email": format!("new-{unique}@example.com"), "role": "viewer", "password": "a long enough password"
        })),
        ("PATCH", "/v1/members/{user_id}") => Some(json!({"role": "developer"})),
        ("POST", "/v1/events") => Some(json!({"events": [{
            "id": Uuid::now_v7(), "occurred_at": chrono::Utc::now(), "endpoint": "/orders",
            "method": "GET", "status_code": 200, "latency_us": 1200
        }]})),
        _ => Some(json!({})),
    }
}

/// Ids of one tenant's resources, by path parameter name.
struct Ids {
    key_id: String,
    user_id: String,
}

impl Ids {
    /// A key and a viewer in the member's tenant, created by the member (an owner).
    async fn create(app: &TestApp, owner: &Member) -> Self {
        let key = send(
            app,
            Method::POST,
            "/v1/keys",
            &owner.token,
            Some(json!({"name": "target"})),
        )
        .await;
        let key: Value = key.json().await.unwrap();
        let viewer = join_tenant(app, owner.tenant_id, Role::Viewer).await;
        let me = app.get_json_as("/v1/me", &viewer.token).await;
        Self {
            key_id: key["id"].as_str().unwrap().into(),
            user_id: me["user"]["id"].as_str().unwrap().into(),
        }
    }

    /// The path with every `{param}` filled in; panics on a parameter without a fixture.
    fn fill(&self, template: &str) -> String {
        let filled = template
            .replace("{key_id}", &self.key_id)
            .replace("{user_id}", &self.user_id);
        assert!(
            !filled.contains('{'),
            "no fixture for a parameter of {template}: add it to tenancy.rs"
        );
        filled
    }

    fn all(&self) -> [&str; 2] {
        [&self.key_id, &self.user_id]
    }
}

#[tokio::test]
async fn another_tenants_ids_are_404_on_every_route_and_absent_from_every_list() {
    let app = spawn_app().await;
    let alice = new_tenant_member(&app, Role::Owner).await;
    let bob = new_tenant_member(&app, Role::Owner).await;
    let bobs = Ids::create(&app, &bob).await;
    let mut checked = 0;
    for (method, template) in operations() {
        // Platform-admin and API-key routes are not tenant-token routes; the WebSocket's
        // scoping is tested in `live.rs`.
        if template.starts_with("/v1/admin/")
            || template == "/v1/ping"
            || template == "/v1/verify"
            || template == "/v1/live"
            || !template.starts_with("/v1/")
        {
            continue;
        }
        let path = bobs.fill(&template);
        let response = send(
            &app,
            method.clone(),
            &path,
            &alice.token,
            sample_body(&method, &template),
        )
        .await;
        let status = response.status().as_u16();
        if template.contains('{') {
            assert_eq!(status, 404, "{method} {template} with tenant B's id");
            checked += 1;
        } else if method == Method::GET {
            let text = response.text().await.unwrap();
            assert_eq!(status, 200, "{method} {template}: {text}");
            for id in bobs.all().into_iter().chain([bob.email.as_str()]) {
                assert!(!text.contains(id), "{template} shows tenant B's {id}");
            }
            assert!(
                !text.contains(&bob.tenant_id.to_string()),
                "{template} shows tenant B's id"
            );
        }
    }
    assert!(checked >= 6, "only {checked} routes with ids were checked");
    // Nothing of B's changed.
    let key = app
        .get_json_as(&format!("/v1/keys/{}", bobs.key_id), &bob.token)
        .await;
    assert_eq!(
        (key["name"].as_str(), key["status"].as_str()),
        (Some("target"), Some("active"))
    );
    let members = app.get_json_as("/v1/members", &bob.token).await;
    assert_eq!(members["data"].as_array().unwrap().len(), 2);
}

/// The permission each write route needs; every write route of the document must be here.
fn required_permission(method: &Method, path: &str) -> Option<Permission> {
    Some(match (method.as_str(), path) {
        ("POST", "/v1/keys") | ("PATCH" | "DELETE", "/v1/keys/{key_id}") => Permission::ManageKeys,
        ("POST", "/v1/keys/{key_id}/rotate") => Permission::ManageKeys,
        ("POST", "/v1/keys/import") => Permission::ManageLimits,
        ("POST", "/v1/events") => Permission::ManageKeys,
        ("POST", "/v1/members") | ("PATCH" | "DELETE", "/v1/members/{user_id}") => {
            Permission::ManageMembers
        }
        _ => return None,
    })
}

/// Writes every user may make about themselves, whatever their role, and the calls
/// authenticated by an API key instead of a member's token.
const SELF_SERVICE: [&str; 6] = [
    "/v1/auth/login",
    "/v1/auth/signup",
    "/v1/auth/switch-tenant",
    "/v1/me/password",
    "/v1/ping",
    "/v1/verify",
];

#[tokio::test]
async fn each_role_gets_exactly_the_writes_the_matrix_grants() {
    let app = spawn_app().await;
    let writes: Vec<(Method, String)> = operations()
        .into_iter()
        .filter(|(m, p)| *m != Method::GET && p.starts_with("/v1/") && !p.starts_with("/v1/admin/"))
        .filter(|(_, p)| !SELF_SERVICE.contains(&p.as_str()))
        .collect();
    for (method, path) in &writes {
        assert!(
            required_permission(method, path).is_some(),
            "{method} {path} is missing from the role matrix"
        );
    }
    for role in Role::ALL {
        let owner = new_tenant_member(&app, Role::Owner).await;
        let actor = join_tenant(&app, owner.tenant_id, role).await;
        for (method, template) in &writes {
            let targets = Ids::create(&app, &owner).await;
            let path = targets.fill(template);
            let body = sample_body(method, template);
            let response = send(&app, method.clone(), &path, &actor.token, body).await;
            let status = response.status().as_u16();
            let allowed = role.allows(required_permission(method, template).unwrap());
            if allowed {
                assert!(
                    (200..300).contains(&status),
                    "{role} {method} {template}: {status} {}",
                    response.text().await.unwrap()
                );
            } else {
                assert_eq!(status, 403, "{role} {method} {template}");
            }
        }
    }
}
