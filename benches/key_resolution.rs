//! API key resolution on the hot path: a cache hit against the database lookups it replaces,
//! measured in the same run on a SQLite file (`cargo bench --bench key_resolution`).
//!
//! - `digest`: the SHA-256 of the secret alone, the floor under every resolution.
//! - `cached`: `KeyCache::resolve` on a warm entry (hash + map lookup + the rules).
//! - `cached_unknown`: the same for a secret cached as unknown.
//! - `uncached_row`: `keys::resolve::resolve`, the single query the extractor ran before.
//! - `uncached_with_limits`: what a cache miss does (the key, its tenant and plan).

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use sea_orm::DatabaseConnection;
use tokio::runtime::Runtime;
use tollgate::{
    audit,
    config::{SecretUrl, Settings},
    db,
    keys::{
        self, NewKey,
        cache::KeyCache,
        events::KeyEvents,
        resolve,
        secret::{digest, hash_secret},
    },
    tenancy::Principal,
    tenants::{self, TenantName},
};

struct World {
    db: DatabaseConnection,
    settings: Settings,
    secret: String,
    _dir: tempfile::TempDir,
}

/// A migrated SQLite database with one tenant and one key.
async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::load(None).unwrap();
    let path = dir.path().join("bench.db");
    settings.database.url = SecretUrl::new(format!("sqlite://{}?mode=rwc", path.display()));
    let db = db::connect(&settings.database).await.unwrap();
    db::migrate(&db).await.unwrap();
    let system = audit::Context::system("bench");
    let name = TenantName::parse("Bench", "/name").unwrap();
    let tenant = tenants::create(&db, &system, &name).await.unwrap();
    let scope = Principal::system(tenant.id.into()).tenant_scope().unwrap();
    let events = KeyEvents::local(KeyCache::new(&settings.keys, &settings.limits));
    let ctx = keys::Ctx {
        db: &db,
        scope: &scope,
        audit: &system,
        defaults: &settings.limits,
        events: &events,
    };
    let new = NewKey {
        name: "bench".into(),
        description: None,
        limits: Default::default(),
        expires_at: None,
    };
    let (_, secret) = keys::create(&ctx, new).await.unwrap();
    World {
        db,
        secret: secret.expose().to_owned(),
        settings,
        _dir: dir,
    }
}

fn key_resolution(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let w = rt.block_on(world());
    let cache = KeyCache::new(&w.settings.keys, &w.settings.limits);
    let unknown = "tg_live_not-a-key-of-anyone-0000000000000000000";
    rt.block_on(async {
        cache.resolve(&w.db, &w.secret, Utc::now()).await.unwrap();
        cache.resolve(&w.db, unknown, Utc::now()).await.unwrap_err();
    });
    let hash = hash_secret(&w.secret);
    let mut group = c.benchmark_group("key_resolution");
    group.bench_function("digest", |b| {
        b.iter(|| digest(std::hint::black_box(&w.secret)))
    });
    group.bench_function("cached", |b| {
        b.to_async(&rt)
            .iter(|| async { cache.resolve(&w.db, &w.secret, Utc::now()).await.unwrap() })
    });
    group.bench_function("cached_unknown", |b| {
        b.to_async(&rt)
            .iter(|| async { cache.resolve(&w.db, unknown, Utc::now()).await.unwrap_err() })
    });
    group.bench_function("uncached_row", |b| {
        b.to_async(&rt).iter(|| async {
            resolve::resolve(&w.db, &w.secret, Utc::now())
                .await
                .unwrap()
        })
    });
    group.bench_function("uncached_with_limits", |b| {
        b.to_async(&rt).iter(|| async {
            let key = resolve::load(&w.db, &hash, &w.settings.limits).await;
            let key = key.unwrap().unwrap();
            resolve::check(&key, Utc::now()).unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, key_resolution);
criterion_main!(benches);
