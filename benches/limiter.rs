//! One rate-limit decision (minute, hour and day windows plus the month, all at once):
//! in-process, and through Redis (one `EVALSHA` round trip on loopback) when Redis answers.
//!
//! A hot key's decision from its lease (no round trip). Under concurrency (64 calls at once,
//! as a loaded server makes them): one hot key (calls coalesced, then leased), 64 different keys (pipelined, one script call each), and
//! 64 concurrent PINGs as the baseline of the same run.
//!
//! `cargo bench --bench limiter` (Redis at `TOLLGATE_BENCH_REDIS_URL`, default
//! `redis://127.0.0.1:6379`; skipped with a message when unreachable).

use chrono::Utc;
use chrono_tz::Tz;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::future::join_all;
use tollgate::{
    config::{RedisSettings, SecretUrl},
    kv::Redis,
    limits::{
        Quota, Request,
        memory::MemoryLimiter,
        month::{following, month_of},
        redis::RedisLimiter,
    },
};
use uuid::Uuid;

const QUOTA: Quota = Quota {
    minute: u64::MAX / 8,
    hour: u64::MAX / 8,
    day: u64::MAX / 8,
    month: Some(u64::MAX / 8),
};

fn request(key: Uuid) -> Request {
    let month = month_of(Utc::now(), Tz::UTC);
    Request {
        key,
        quota: QUOTA,
        cost: 1,
        month,
        next_month: following(&month, Tz::UTC),
    }
}

fn in_process(c: &mut Criterion) {
    let limiter = MemoryLimiter::new(1);
    // 10 000 keys in the map, decisions spread over them like real traffic.
    let keys: Vec<Request> = (0..10_000).map(|_| request(Uuid::now_v7())).collect();
    let mut i = 0;
    c.bench_function("limiter/in_process_decision", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            let now_ms = Utc::now().timestamp_millis() as u64;
            limiter.decide(&keys[i], now_ms)
        })
    });
}

fn redis(c: &mut Criterion) {
    let url = std::env::var("TOLLGATE_BENCH_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let settings = RedisSettings {
        url: SecretUrl::new(url),
        key_prefix: format!("bench_{}:", Uuid::new_v4().simple()),
    };
    // The connection manager spawns its driver on the current runtime.
    let _runtime_context = runtime.enter();
    let redis = Redis::connect(&settings).unwrap();
    if runtime.block_on(redis.ping()).is_err() {
        eprintln!("skipped: limiter/redis_decision needs Redis at TOLLGATE_BENCH_REDIS_URL");
        return;
    }
    // Baseline measured in the same run: one PING round trip on the same connection.
    c.bench_function("limiter/redis_ping_baseline", |b| {
        b.to_async(&runtime).iter(|| redis.ping())
    });
    let limiter = RedisLimiter::new(redis.clone(), None);
    let req = request(Uuid::now_v7());
    c.bench_function("limiter/redis_decision", |b| {
        b.to_async(&runtime)
            .iter(|| limiter.decide(&req, Utc::now().timestamp_millis() as u64))
    });

    // A hot key: a burst of concurrent calls gets it a lease; later calls are decided from
    // the lease in-process (refilled in the background, renewed each 5 s bucket).
    let hot = request(Uuid::now_v7());
    runtime.block_on(join_all((0..64).map(|_| limiter.decide(&hot, 0))));
    c.bench_function("limiter/redis_decision_leased", |b| {
        b.to_async(&runtime)
            .iter(|| limiter.decide(&hot, Utc::now().timestamp_millis() as u64))
    });

    const CONCURRENT: usize = 64;
    let mut group = c.benchmark_group("limiter/concurrent_64");
    group.throughput(Throughput::Elements(CONCURRENT as u64));
    group.bench_function("redis_ping_baseline", |b| {
        b.to_async(&runtime)
            .iter(|| join_all((0..CONCURRENT).map(|_| redis.ping())))
    });
    group.bench_function("redis_decisions_one_key", |b| {
        b.to_async(&runtime).iter(|| {
            let now_ms = Utc::now().timestamp_millis() as u64;
            join_all((0..CONCURRENT).map(|_| limiter.decide(&req, now_ms)))
        })
    });
    let keys: Vec<Request> = (0..CONCURRENT).map(|_| request(Uuid::now_v7())).collect();
    group.bench_function("redis_decisions_64_keys", |b| {
        b.to_async(&runtime).iter(|| {
            let now_ms = Utc::now().timestamp_millis() as u64;
            join_all(keys.iter().map(|req| limiter.decide(req, now_ms)))
        })
    });
    group.finish();
}

criterion_group!(benches, in_process, redis);
criterion_main!(benches);
