//! World-building for tests: tenants with members of a given role, logged in, keys, the usage
//! events of a key once flushed, and a scan of the whole database for a string that must not
//! be stored.

use std::time::{Duration, Instant};

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, Statement,
};
use tollgate::{
    audit,
    auth::users,
    entities::{memberships, usage_events},
    ids::TenantId,
    tenancy::Role,
    tenants::{self, TenantName},
};
use uuid::Uuid;

use super::TestApp;

pub const FIXTURE_PASSWORD: &str = "fixture-password-123";

/// A logged-in member of a tenant.
pub struct Member {
    pub token: String,
    pub tenant_id: TenantId,
    pub email: String,
}

/// A new tenant (created as the domain does it; default limits from the config) with one
/// member of `role`, logged in.
pub async fn new_tenant_member(app: &TestApp, role: Role) -> Member {
    let name = format!("Tenant {}", &Uuid::new_v4().simple().to_string()[..8]);
    join_tenant(app, new_tenant(app, &name).await, role).await
}

/// A new tenant named `name`, through `tenants::create`.
pub async fn new_tenant(app: &TestApp, name: &str) -> TenantId {
    let name = TenantName::parse(name, "/name").unwrap();
    let ctx = audit::Context::system("test");
    TenantId::from(
        tenants::create(&app.state.db, &ctx, &name)
            .await
            .unwrap()
            .id,
    )
}

/// A new user who is a member of `tenant` with `role`, logged in to it.
pub async fn join_tenant(app: &TestApp, tenant_id: TenantId, role: Role) -> Member {
    let email = format!("{}-{}@example.com", role, Uuid::new_v4().simple());
    users::insert(&app.state.db, &email, FIXTURE_PASSWORD, None, false)
        .await
        .unwrap();
    add_membership(app, &email, tenant_id, role).await;
    let token = app
        .login_with(&email, FIXTURE_PASSWORD, Some(tenant_id))
        .await;
    Member {
        token,
        tenant_id,
        email,
    }
}

/// Makes the user with `email` a member of `tenant_id` with `role`.
pub async fn add_membership(app: &TestApp, email: &str, tenant_id: TenantId, role: Role) {
    let user = users::find_by_email(&app.state.db, email)
        .await
        .unwrap()
        .expect("the user exists");
    let now = Utc::now();
    memberships::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id.0),
        user_id: Set(user.id),
        role: Set(role.as_str().into()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&app.state.db)
    .await
    .unwrap();
}

/// Panics when any table of the database holds `needle` in plain text.
pub async fn assert_db_free_of(app: &TestApp, needle: &str) {
    let db = &app.state.db;
    let backend = db.get_database_backend();
    let found = match backend {
        DatabaseBackend::Postgres => {
            let tables = db
                .query_all_raw(Statement::from_string(
                    backend,
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
                ))
                .await
                .unwrap();
            let mut found = Vec::new();
            for row in tables {
                let table: String = row.try_get("", "tablename").unwrap();
                let sql = format!("SELECT count(*) AS n FROM \"{table}\" t WHERE t::text LIKE $1");
                let stmt =
                    Statement::from_sql_and_values(backend, &sql, [format!("%{needle}%").into()]);
                let n: i64 = db
                    .query_one_raw(stmt)
                    .await
                    .unwrap()
                    .unwrap()
                    .try_get("", "n")
                    .unwrap();
                if n > 0 {
                    found.push(table);
                }
            }
            found
        }
        _ => {
            // Flush the WAL into the file, then look at every byte SQLite keeps.
            db.execute_unprepared("PRAGMA wal_checkpoint(FULL)")
                .await
                .unwrap();
            let path = app
                .state
                .settings
                .database
                .url
                .expose()
                .trim_start_matches("sqlite://");
            let path = path.split('?').next().unwrap().to_owned();
            [path.clone(), format!("{path}-wal")]
                .into_iter()
                .filter(|p| std::fs::read(p).is_ok_and(|bytes| contains(&bytes, needle.as_bytes())))
                .collect()
        }
    };
    assert!(
        found.is_empty(),
        "the database stores {}… in {found:?}",
        &needle[..needle.len().min(10)]
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl TestApp {
    /// Logs in, into `tenant` when given, and returns the access token (asserting 200).
    pub async fn login_with(
        &self,
        email: &str,
        password: &str,
        tenant: Option<TenantId>,
    ) -> String {
        let mut body = serde_json::json!({"email": email, "password": password});
        if let Some(tenant) = tenant {
            body["tenant_id"] = tenant.to_string().into();
        }
        let response = self
            .client
            .post(self.url("/v1/auth/login"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "login as {email}");
        let body: serde_json::Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// `GET /v1/ping` with `X-API-Key: secret`.
    pub async fn ping(&self, secret: &str) -> reqwest::Response {
        let request = self
            .client
            .get(self.url("/v1/ping"))
            .header("X-API-Key", secret);
        request.send().await.expect("request sent")
    }
}

/// A key created through `POST /v1/keys`.
pub struct CreatedKey {
    /// `key_…`.
    pub id: String,
    pub secret: String,
    /// The whole 201 body.
    pub body: serde_json::Value,
}

/// Creates a key as `member` with this request body, asserting 201.
pub async fn create_key(app: &TestApp, member: &Member, body: serde_json::Value) -> CreatedKey {
    let response = app
        .client
        .post(app.url("/v1/keys"))
        .bearer_auth(&member.token)
        .json(&body);
    let response = response.send().await.expect("request sent");
    assert_eq!(
        response.status().as_u16(),
        201,
        "creating a key with {body}"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    let field = |name: &str| body[name].as_str().unwrap().to_owned();
    CreatedKey {
        id: field("id"),
        secret: field("secret"),
        body,
    }
}

/// The key's usage events, oldest first, once exactly `n` are stored: waits for them to be
/// flushed, then a little longer to see that no further one arrives.
pub async fn events_of(app: &TestApp, key_id: &str, n: u64) -> Vec<usage_events::Model> {
    let key = key_id.parse::<tollgate::ids::KeyId>().unwrap().0;
    let query = || usage_events::Entity::find().filter(usage_events::Column::KeyId.eq(key));
    let deadline = Instant::now() + Duration::from_secs(10);
    while query().count(&app.state.db).await.unwrap() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let flush = app.state.settings.metering.flush_interval_ms;
    tokio::time::sleep(Duration::from_millis(2 * flush + 100)).await;
    let events = query()
        .order_by_asc(usage_events::Column::Id)
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(events.len() as u64, n, "usage events of {key_id}");
    events
}
