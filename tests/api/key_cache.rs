//! The hot path's key cache: cached keys answer without the database, unknown secrets are
//! remembered as unknown, and every change (deactivate, limits, revoke, rotate, import)
//! reaches the cache of every node within a second — in-process when embedded, over Redis
//! pub/sub between nodes, also after the subscription's connection drops or Redis restarts.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use chrono::SubsecRound;
use reqwest::Method;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use serde_json::{Value, json};
use tollgate::{
    config::SecretUrl,
    entities::{api_keys, plans, tenants},
    ids::KeyId,
    keys::{
        events::KeyChanged,
        resolve::{self, KeyStatus},
        secret::hash_secret,
    },
    limits::Quota,
    tenancy::Role,
};
use uuid::Uuid;

use crate::helpers::create_key;
use crate::helpers::{
    Backends, Member, PrivateRedis, TestApp, assert_problem, new_tenant_member, require_or_skip,
    send, spawn_app, spawn_app_with, spawn_second_app,
};

/// How soon a change must reach every node's cache.
const PROPAGATION: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_cached_key_answers_without_the_database_until_its_lifetime_ends() {
    let app = spawn_app_with(|s| s.keys.cache_ttl_secs = 2).await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let (id, secret) = new_key(&app, &owner, "cached").await;
    assert_eq!(status(&app, &secret).await, 200);
    assert!(is_cached(&app, &secret).await, "resolved once: cached");

    // Behind the cache's back: no broadcast, so only the lifetime can end the entry.
    let gone = api_keys::Entity::delete_by_id(key_uuid(&id))
        .exec(&app.state.db)
        .await
        .unwrap();
    assert_eq!(gone.rows_affected, 1);
    for _ in 0..5 {
        assert_eq!(status(&app, &secret).await, 200, "answered from the cache");
    }
    within(Duration::from_secs(4), "refused after the lifetime", || {
        answers(&app, &secret, 401)
    })
    .await;
}

/// An entry past its lifetime is reloaded (it stays cached as the last good copy, but the
/// next call asks the database): the key's state changed behind the cache's back is what
/// answers, and the reload is cached again.
#[tokio::test]
async fn an_expired_entry_is_reloaded_with_the_keys_current_state() {
    let app = spawn_app_with(|s| s.keys.cache_ttl_secs = 1).await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let (id, secret) = new_key(&app, &owner, "reloaded").await;
    let first = app.ping(&secret).await;
    assert_eq!(first.status(), 200);
    assert_ne!(minute_limit(&first), "7");

    change_behind_the_cache(&app, &id, |row| row.limit_per_minute = Set(Some(7))).await;
    let cached = app.ping(&secret).await;
    assert_ne!(
        minute_limit(&cached),
        "7",
        "the cached copy, within its lifetime"
    );

    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(!is_cached(&app, &secret).await, "past its lifetime");
    let reloaded = app.ping(&secret).await;
    assert_eq!(reloaded.status(), 200);
    assert_eq!(minute_limit(&reloaded), "7", "reloaded from the database");
    assert!(is_cached(&app, &secret).await, "and cached again");
}

/// A call in the last fifth of its entry's lifetime is answered from the cache at once and
/// reloads the key in the background: the key's state changed behind the cache's back is
/// cached before the old copy would have expired, with no call waiting for the database.
#[tokio::test]
async fn a_key_in_use_is_reloaded_ahead_of_its_expiry() {
    let lifetime = Duration::from_secs(4);
    let app = spawn_app_with(|s| s.keys.cache_ttl_secs = lifetime.as_secs()).await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let (id, secret) = new_key(&app, &owner, "reloaded-ahead").await;
    let before_load = Instant::now();
    let first = app.ping(&secret).await;
    let loaded = Instant::now();
    assert_eq!(first.status(), 200);
    assert_ne!(minute_limit(&first), "7");
    change_behind_the_cache(&app, &id, |row| row.limit_per_minute = Set(Some(7))).await;
    assert_ne!(
        minute_limit(&app.ping(&secret).await),
        "7",
        "cached, not yet due"
    );

    // Inside the last fifth of the lifetime, whenever within [before_load, loaded] it began.
    let due = loaded + lifetime * 4 / 5 + Duration::from_millis(50);
    let expires = before_load + lifetime;
    assert!(
        due + Duration::from_millis(300) < expires,
        "the first call took too long"
    );
    tokio::time::sleep_until(due.into()).await;
    let served = app.ping(&secret).await;
    assert_eq!(served.status(), 200);
    assert_ne!(
        minute_limit(&served),
        "7",
        "answered from the cached copy, not after a reload"
    );

    let mut reloaded = false;
    while Instant::now() + Duration::from_millis(20) < expires {
        if let Some(Some(key)) = app.state.key_cache.peek(&secret).await
            && key.quota.minute == 7
        {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        reloaded,
        "the key's current state cached before the old copy expired"
    );
    assert_eq!(minute_limit(&app.ping(&secret).await), "7");
}

/// Reloading an expired entry fails (the keys table is renamed away, on either backend): the
/// key's last good copy answers instead, but never the copy of a key changed meanwhile, nor
/// of one deleted behind the cache's back.
#[tokio::test]
async fn a_failed_reload_serves_the_last_good_copy_but_never_a_changed_keys() {
    let app = spawn_app_with(|s| {
        s.keys.cache_ttl_secs = 1;
        s.keys.negative_ttl_secs = 1;
    })
    .await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let (_, secret) = new_key(&app, &owner, "served-stale").await;
    let (_, changed) = new_key(&app, &owner, "changed-while-down").await;
    let (deleted_id, deleted) = new_key(&app, &owner, "deleted-behind-the-back").await;
    for cached in [&secret, &changed, &deleted] {
        assert_eq!(status(&app, cached).await, 200);
    }
    api_keys::Entity::delete_by_id(key_uuid(&deleted_id))
        .exec(&app.state.db)
        .await
        .unwrap();
    let lifetime = Duration::from_millis(1200);
    tokio::time::sleep(lifetime).await;
    assert_eq!(status(&app, &deleted).await, 401, "reloaded: no such key");

    rename_keys_table(&app, "api_keys", "api_keys_away").await;
    tokio::time::sleep(lifetime).await;
    assert!(!is_cached(&app, &secret).await, "the entries expired");
    // What a revoke broadcasts (the API itself cannot write the change now).
    let hash = hash_secret(&changed);
    app.state.key_cache.invalidate(&[hash]).await;
    for _ in 0..3 {
        assert_eq!(status(&app, &secret).await, 200, "the last good copy");
    }
    for gone in [&changed, &deleted] {
        let refused = status(&app, gone).await;
        assert!(refused >= 500, "never served from an old copy: {refused}");
    }

    rename_keys_table(&app, "api_keys_away", "api_keys").await;
    assert_eq!(status(&app, &changed).await, 200, "reloaded");
}

/// A cache miss reads the key with its effective limits (each window the key's own
/// override, else its tenant's, else its plan's, else the configured default) and its
/// tenant's time zone; the secret a rotation replaced loads with the end of its grace, and a
/// secret no key answers to loads nothing.
#[tokio::test]
async fn a_cache_miss_loads_the_effective_limits_and_the_tenants_time_zone() {
    let app = spawn_app().await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let (id, secret) = new_key(&app, &owner, "loaded").await;
    let (db, defaults) = (&app.state.db, &app.state.settings.limits);
    let load = |secret: String| async move {
        resolve::load(db, &hash_secret(&secret), defaults)
            .await
            .unwrap()
    };

    let key = load(secret.clone()).await.expect("its current secret");
    assert_eq!(
        (key.id, key.tenant_id),
        (id.parse().unwrap(), owner.tenant_id)
    );
    assert_eq!(
        (key.name.as_str(), key.status),
        ("loaded", KeyStatus::Active)
    );
    assert_eq!((key.expires_at, key.grace_until), (None, None));
    let configured = Quota {
        minute: defaults.per_minute,
        hour: defaults.per_hour,
        day: defaults.per_day,
        month: (defaults.per_month > 0).then_some(defaults.per_month),
    };
    assert_eq!(key.quota, configured, "no plan, no overrides");
    assert_eq!(key.timezone, chrono_tz::UTC);

    let plan = plans::ActiveModel {
        id: Set(Uuid::new_v4()),
        name: Set(format!("Plan {}", Uuid::new_v4().simple())),
        per_minute: Set(600),
        per_hour: Set(20_000),
        per_day: Set(300_000),
        per_month: Set(Some(5_000_000)),
        is_default: Set(false),
        created_at: Set(now()),
        updated_at: Set(now()),
    };
    let plan = plan.insert(db).await.unwrap();
    let tenant = tenants::Entity::find_by_id(owner.tenant_id.0).one(db).await;
    let mut tenant: tenants::ActiveModel = tenant.unwrap().unwrap().into();
    tenant.plan_id = Set(Some(plan.id));
    tenant.limit_per_hour = Set(Some(15_000));
    tenant.timezone = Set("Europe/Berlin".into());
    tenant.update(db).await.unwrap();
    let expires = now().trunc_subsecs(0) + chrono::Duration::days(30);
    let grace = now().trunc_subsecs(0) + chrono::Duration::hours(1);
    let rotated = random_secret();
    change_behind_the_cache(&app, &id, |row| {
        row.limit_per_minute = Set(Some(50));
        row.expires_at = Set(Some(expires));
        row.previous_key_hash = Set(Some(hash_secret(&secret)));
        row.previous_expires_at = Set(Some(grace));
        row.key_hash = Set(hash_secret(&rotated));
    })
    .await;

    let key = load(rotated).await.expect("its new secret");
    let limits = Quota {
        minute: 50,
        hour: 15_000,
        day: 300_000,
        month: Some(5_000_000),
    };
    assert_eq!(
        key.quota, limits,
        "the key's minute, the tenant's hour, the plan's rest"
    );
    assert_eq!(key.timezone, chrono_tz::Europe::Berlin);
    assert_eq!((key.expires_at, key.grace_until), (Some(expires), None));
    let replaced = load(secret).await.expect("the secret it replaced");
    assert_eq!((replaced.id, replaced.quota), (key.id, limits));
    assert_eq!(replaced.grace_until, Some(grace));
    assert_eq!(load(random_secret()).await, None, "no key answers to it");
}

/// Updates a key's row directly: no broadcast, so only the cache's lifetime ends its copy.
async fn change_behind_the_cache(
    app: &TestApp,
    id: &str,
    change: impl FnOnce(&mut api_keys::ActiveModel),
) {
    let row = api_keys::Entity::find_by_id(key_uuid(id))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let mut row: api_keys::ActiveModel = row.into();
    change(&mut row);
    row.update(&app.state.db).await.unwrap();
}

async fn rename_keys_table(app: &TestApp, from: &str, to: &str) {
    use sea_orm::ConnectionTrait;
    let sql = format!("ALTER TABLE {from} RENAME TO {to}");
    app.state.db.execute_unprepared(&sql).await.unwrap();
}

#[tokio::test]
async fn unknown_secrets_are_remembered_as_unknown() {
    let app = spawn_app_with(|s| s.keys.negative_ttl_secs = 1).await;
    let owner = new_tenant_member(&app, Role::Owner).await;
    let (id, _) = new_key(&app, &owner, "renamed-behind-the-back").await;
    let unknown = random_secret();
    let body = assert_problem(app.ping(&unknown).await, 401).await;
    assert_eq!(body["detail"], "Invalid API key");
    assert_eq!(app.state.key_cache.peek(&unknown).await, Some(None));

    // Behind the cache's back, a key now answers to that secret.
    change_behind_the_cache(&app, &id, |row| row.key_hash = Set(hash_secret(&unknown))).await;
    assert_eq!(
        status(&app, &unknown).await,
        401,
        "the remembered answer, not the database's"
    );
    within(
        Duration::from_secs(3),
        "accepted after the lifetime",
        || answers(&app, &unknown, 200),
    )
    .await;
}

#[tokio::test]
async fn in_process_changes_reach_the_cache_within_a_second() {
    // Embedded mode even when the run has Redis: the in-process channel alone.
    let app = spawn_app_with(|s| s.redis.url = SecretUrl::new("")).await;
    assert!(app.state.key_events.channel().is_none());
    let mut heard = app.state.key_events.subscribe();
    let owner = new_tenant_member(&app, Role::Owner).await;
    let imported = every_change_reaches(&app, &app, &owner).await;

    let mut events = Vec::new();
    while let Ok(event) = heard.try_recv() {
        events.push(event);
    }
    assert_eq!(
        events.len(),
        9,
        "4 creations, 4 changes, 1 import: {events:?}"
    );
    let import: &KeyChanged = events.last().unwrap();
    assert_eq!(import.hashes, vec![hash_secret(&imported)]);
}

#[tokio::test]
async fn changes_on_one_node_reach_another_within_a_second() {
    let test = "changes_on_one_node_reach_another_within_a_second";
    if require_or_skip("redis", Backends::from_env().redis, test).is_none() {
        return;
    }
    let first = spawn_app().await;
    let second = spawn_second_app(&first).await;
    let mut redis = first.state.redis.as_ref().unwrap().conn();
    wait_for_subscribers(&mut redis, &first, 2, Duration::from_secs(5)).await;
    let owner = new_tenant_member(&first, Role::Owner).await;
    every_change_reaches(&second, &first, &owner).await;
}

#[tokio::test]
async fn the_subscriber_survives_dropped_connections_and_a_redis_restart() {
    let test = "the_subscriber_survives_dropped_connections_and_a_redis_restart";
    if require_or_skip("redis", Backends::from_env().redis, test).is_none() {
        return;
    }
    let Some(mut server) = PrivateRedis::start().await else {
        assert!(
            !Backends::from_env().require_all,
            "redis-server is not installed"
        );
        eprintln!("skipped: {test} needs the redis-server binary");
        return;
    };
    let first = spawn_app_with(|s| s.redis.url = SecretUrl::new(server.url())).await;
    let second = spawn_second_app(&first).await;
    let owner = new_tenant_member(&first, Role::Owner).await;
    let patience = Duration::from_secs(5);
    let mut probe = server.connection().await.unwrap();
    wait_for_subscribers(&mut probe, &first, 2, patience).await;

    // Every subscription connection is killed; both nodes resubscribe and flush.
    let (id, secret) = warm_key(&first, &second, &owner, "watched").await;
    let killed: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "pubsub"])
        .query_async(&mut probe)
        .await
        .unwrap();
    assert!(killed >= 2, "both subscriptions killed");
    wait_for_subscribers(&mut probe, &first, 2, patience).await;
    let (node, cached) = (&second, secret.as_str());
    within(PROPAGATION, "flushed on resubscription", || async move {
        !is_cached(node, cached).await
    })
    .await;
    assert_eq!(status(&second, &secret).await, 200);
    patch(&first, &owner, &id, json!({"is_active": false})).await;
    within(
        PROPAGATION,
        "deactivated after a dropped connection",
        || answers(&second, &secret, 403),
    )
    .await;

    // Redis itself restarts: the subscriber and the publisher both reconnect.
    let (id, secret) = warm_key(&first, &second, &owner, "watched").await;
    server.restart().await;
    let mut probe = server.connection().await.unwrap();
    wait_for_subscribers(&mut probe, &first, 2, patience).await;
    assert_eq!(status(&second, &secret).await, 200);
    let revoked = send(&first, Method::DELETE, &key_path(&id), &owner.token, None).await;
    assert_eq!(revoked.status().as_u16(), 200);
    within(PROPAGATION, "revoked after a restart", || {
        answers(&second, &secret, 403)
    })
    .await;
}

/// Deactivate, change limits, revoke, rotate without grace and import, each on `changer`;
/// `observer` (which has them all cached) must notice each within a second. Returns the
/// imported secret.
async fn every_change_reaches(observer: &TestApp, changer: &TestApp, owner: &Member) -> String {
    let mut keys = Vec::new();
    for name in ["deactivated", "limited", "revoked", "rotated"] {
        keys.push(warm_key(changer, observer, owner, name).await);
    }
    let unknown = random_secret();
    assert_eq!(status(observer, &unknown).await, 401);
    assert_eq!(observer.state.key_cache.peek(&unknown).await, Some(None));

    let (id, secret) = &keys[0];
    patch(changer, owner, id, json!({"is_active": false})).await;
    within(PROPAGATION, "deactivation", || {
        answers(observer, secret, 403)
    })
    .await;

    let (id, secret) = &keys[1];
    patch(changer, owner, id, json!({"limits": {"per_minute": 7}})).await;
    within(PROPAGATION, "new limits", || async move {
        let key = observer
            .state
            .key_cache
            .resolve(&observer.state.db, secret, now());
        key.await.unwrap().quota.minute == 7
    })
    .await;

    let (id, secret) = &keys[2];
    let path = key_path(id);
    let revoked = send(changer, Method::DELETE, &path, &owner.token, None).await;
    assert_eq!(revoked.status().as_u16(), 200);
    within(PROPAGATION, "revocation", || answers(observer, secret, 403)).await;

    let (id, secret) = &keys[3];
    let body = Some(json!({"grace_seconds": 0}));
    let path = format!("{}/rotate", key_path(id));
    let rotated = send(changer, Method::POST, &path, &owner.token, body).await;
    let rotated: Value = rotated.json().await.unwrap();
    within(PROPAGATION, "rotation", || answers(observer, secret, 401)).await;
    let new_secret = rotated["secret"].as_str().unwrap();
    assert_eq!(status(observer, new_secret).await, 200);

    let body = Some(json!({"name": "imported", "secret": unknown}));
    let imported = send(changer, Method::POST, "/v1/keys/import", &owner.token, body).await;
    assert_eq!(imported.status().as_u16(), 201);
    within(PROPAGATION, "import", || answers(observer, &unknown, 200)).await;
    unknown
}

/// A new key created on `changer`, answered (and so cached) by `observer`.
async fn warm_key(
    changer: &TestApp,
    observer: &TestApp,
    owner: &Member,
    name: &str,
) -> (String, String) {
    let (id, secret) = new_key(changer, owner, name).await;
    assert_eq!(status(observer, &secret).await, 200);
    assert!(is_cached(observer, &secret).await);
    (id, secret)
}

async fn new_key(app: &TestApp, owner: &Member, name: &str) -> (String, String) {
    let key = create_key(app, owner, json!({"name": name})).await;
    (key.id, key.secret)
}

async fn patch(app: &TestApp, owner: &Member, id: &str, body: Value) {
    let response = send(app, Method::PATCH, &key_path(id), &owner.token, Some(body)).await;
    assert_eq!(response.status().as_u16(), 200, "PATCH {id}");
}

async fn status(app: &TestApp, secret: &str) -> u16 {
    app.ping(secret).await.status().as_u16()
}

/// A probe for [`within`]: `GET /v1/ping` with `secret` answers `expected`.
async fn answers(app: &TestApp, secret: &str, expected: u16) -> bool {
    status(app, secret).await == expected
}

/// The minute window's limit a response announces.
fn minute_limit(response: &reqwest::Response) -> String {
    response.headers()["x-ratelimit-minute-limit"]
        .to_str()
        .unwrap()
        .to_owned()
}

async fn is_cached(app: &TestApp, secret: &str) -> bool {
    matches!(app.state.key_cache.peek(secret).await, Some(Some(_)))
}

/// Polls `probe` until it holds; fails when that takes longer than `deadline`.
async fn within<F, Fut>(deadline: Duration, what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !probe().await {
        assert!(
            started.elapsed() < deadline,
            "{what}: not within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        started.elapsed() < deadline,
        "{what}: not within {deadline:?}"
    );
}

/// Waits until `count` nodes listen on the key-change channel of `app`'s deployment.
async fn wait_for_subscribers(
    conn: &mut (impl redis::aio::ConnectionLike + Send),
    app: &TestApp,
    count: i64,
    patience: Duration,
) {
    let channel = app.state.key_events.channel().expect("Redis configured");
    let started = Instant::now();
    loop {
        let numsub: redis::RedisResult<(String, i64)> = redis::cmd("PUBSUB")
            .arg(&["NUMSUB", channel])
            .query_async(conn)
            .await;
        if numsub.is_ok_and(|(_, n)| n == count) {
            return;
        }
        assert!(
            started.elapsed() < patience,
            "{count} subscribers on {channel}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn key_path(id: &str) -> String {
    format!("/v1/keys/{id}")
}

fn key_uuid(id: &str) -> Uuid {
    id.parse::<KeyId>().unwrap().0
}

fn random_secret() -> String {
    format!("tg_live_{}", Uuid::new_v4().simple())
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}
