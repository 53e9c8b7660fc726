//! Analytics over a month of stored usage: `summary` and `timeseries` for the default 24 h and
//! for 30 days, answered from the rollups, against the same numbers computed directly from the
//! raw events in SQL, in the same run (PostgreSQL).
//!
//! `TOLLGATE_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432 cargo bench --bench analytics`
//! (optional: `BENCH_EVENTS`, default 10000000, spread over the 30 days up to now;
//! `BENCH_RUNS`, default 7). The data goes through `metering::store::insert_events` (the
//! writer's store, rollups added by `store::compact_all`) into a database `tollgate_bench_analytics`, which is
//! kept and reused while it holds `BENCH_EVENTS` events (drop it to regenerate).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use tollgate::{
    analytics::{self, Filter, Question, Tenants, Window},
    audit,
    config::{SecretUrl, Settings},
    db,
    ids::{KeyId, TenantId},
    metering::{Source, UsageEvent, method, rollup::Granularity, store},
    tenants::{self, TenantName},
};

const DATABASE: &str = "tollgate_bench_analytics";
const KEYS: usize = 50;
const ENDPOINTS: [(&str, &str); 12] = [
    ("GET", "/v1/users/{id}"),
    ("POST", "/v1/users"),
    ("GET", "/v1/orders/{id}"),
    ("POST", "/v1/orders"),
    ("DELETE", "/v1/orders/{id}"),
    ("GET", "/v1/products"),
    ("GET", "/v1/products/{id}"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/embeddings"),
    ("GET", "/v1/feed"),
    ("POST", "/v1/renders"),
    ("GET", "/v1/search"),
];
const DAYS: i64 = 30;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let server = std::env::var("TOLLGATE_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let (events, runs) = (env_or("BENCH_EVENTS", 10_000_000), env_or("BENCH_RUNS", 7));
    let admin = Database::connect(format!("{server}/postgres"))
        .await
        .unwrap();
    let exists = admin
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"),
        ))
        .await
        .unwrap()
        .is_some();
    if !exists {
        admin
            .execute_unprepared(&format!("CREATE DATABASE {DATABASE}"))
            .await
            .unwrap();
    }
    let mut settings = Settings::load(None).unwrap();
    settings.database.url = SecretUrl::new(format!("{server}/{DATABASE}"));
    let db = db::connect(&settings.database).await.unwrap();
    db::migrate(&db).await.unwrap();
    let tenant = match stored(&db).await {
        Some((tenant, n)) if n == events as i64 => {
            println!("reusing {n} stored events");
            tenant
        }
        _ => generate(&db, events).await,
    };
    // What autovacuum does after a bulk load: the visibility map index-only scans rely on.
    db.execute_unprepared("VACUUM (ANALYZE) usage_rollups, usage_rollup_totals")
        .await
        .unwrap();
    let counts = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT (SELECT count(*) FROM usage_rollups) AS rollups",
        ))
        .await
        .unwrap()
        .unwrap();
    let rollups: i64 = counts.try_get("", "rollups").unwrap();
    println!("{events} events over {DAYS} days, {rollups} rollup rows, {runs} runs each (median)");

    let now = Utc::now();
    for (label, span) in [
        ("24 h", chrono::Duration::hours(24)),
        ("30 days", chrono::Duration::days(DAYS)),
    ] {
        let window = Window::new(Some(now - span), Some(now), now).unwrap();
        let question = Question {
            tenants: Tenants::One(tenant),
            window,
            filter: Filter::default(),
        };
        let granularity = match label {
            "24 h" => Granularity::Hour,
            _ => Granularity::Day,
        };
        let summary = median(runs, || async {
            analytics::summary(&db, &question).await.unwrap();
        })
        .await;
        let series = median(runs, || async {
            analytics::timeseries(&db, &question, Some(granularity), None)
                .await
                .unwrap();
        })
        .await;
        let raw_summary = median(runs, || raw(&db, tenant, window, None)).await;
        let raw_series = median(runs, || raw(&db, tenant, window, Some(granularity))).await;
        println!(
            "{label:>8}: summary {:>8.1} ms (raw SQL {:>8.1} ms, {:>5.0}x)   timeseries/{} {:>8.1} ms (raw SQL {:>8.1} ms, {:>5.0}x)",
            ms(summary),
            ms(raw_summary),
            raw_summary.as_secs_f64() / summary.as_secs_f64(),
            granularity.as_str(),
            ms(series),
            ms(raw_series),
            raw_series.as_secs_f64() / series.as_secs_f64(),
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn median<F, Fut>(runs: usize, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        f().await;
        times.push(started.elapsed());
    }
    times.sort();
    times[times.len() / 2]
}

/// The same figures straight from `usage_events`: totals, or per bucket of `granularity`.
async fn raw(db: &DatabaseConnection, tenant: TenantId, window: Window, per: Option<Granularity>) {
    let (select, group) = match per {
        None => (String::new(), String::new()),
        Some(g) => (
            format!("date_trunc('{}', occurred_at) AS t, ", g.as_str()),
            " GROUP BY 1 ORDER BY 1".to_owned(),
        ),
    };
    let sql = format!(
        "SELECT {select}count(*) AS requests, count(*) FILTER (WHERE status_code >= 400) AS failed, \
         avg(latency_us) AS avg, max(latency_us) AS max, \
         percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_us) AS pct, \
         sum(bytes_in) AS bytes_in, sum(bytes_out) AS bytes_out, sum(tokens_in) AS tokens_in, \
         sum(tokens_out) AS tokens_out, sum(cost_nanos) AS cost, \
         count(DISTINCT endpoint) AS endpoints \
         FROM usage_events WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3{group}"
    );
    db.query_all_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        [tenant.0.into(), window.from.into(), window.to.into()],
    ))
    .await
    .unwrap();
}

/// The bench tenant and its event count, when generated before.
async fn stored(db: &DatabaseConnection) -> Option<(TenantId, i64)> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT t.id AS id, (SELECT count(*) FROM usage_events) AS n \
             FROM tenants t WHERE t.slug = 'analytics-bench'",
        ))
        .await
        .unwrap()?;
    Some((
        TenantId(row.try_get("", "id").unwrap()),
        row.try_get("", "n").unwrap(),
    ))
}

/// `n` events of one tenant spread evenly over the last [`DAYS`] days, in time order, in
/// batches of the writer's default size.
async fn generate(db: &DatabaseConnection, n: usize) -> TenantId {
    db.execute_unprepared("TRUNCATE usage_events, usage_rollups")
        .await
        .unwrap();
    let tenant = match stored(db).await {
        Some((tenant, _)) => tenant,
        None => {
            let system = audit::Context::system("bench");
            let name = TenantName::parse("Analytics Bench", "/name").unwrap();
            tenants::create(db, &system, &name).await.unwrap().id.into()
        }
    };
    let end = Utc::now();
    let start = end - chrono::Duration::days(DAYS);
    for day in 0..=DAYS {
        let date = (start + chrono::Duration::days(day)).date_naive();
        db::ensure_event_partitions(db, date).await.unwrap();
    }
    let keys: Vec<KeyId> = (0..KEYS).map(|_| KeyId::new()).collect();
    let endpoints: Vec<(Arc<str>, Arc<str>)> = ENDPOINTS
        .iter()
        .map(|(m, e)| (method(m), Arc::from(*e)))
        .collect();
    let step_us = (end - start).num_microseconds().unwrap() as f64 / n as f64;
    let started = Instant::now();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    const BATCH: usize = 5_000;
    for chunk in 0..n.div_ceil(BATCH) {
        let batch: Vec<UsageEvent> = (chunk * BATCH..((chunk + 1) * BATCH).min(n))
            .map(|i| {
                let r = next();
                let (verb, endpoint) = &endpoints[(r % endpoints.len() as u64) as usize];
                let status = match (r >> 8) % 100 {
                    0 => 500,
                    1..=2 => 404,
                    3 => 429,
                    _ => 200,
                };
                let mut e = UsageEvent::new(
                    Source::Middleware,
                    tenant,
                    Some(keys[((r >> 16) % KEYS as u64) as usize]),
                    endpoint.clone(),
                    verb.clone(),
                    status,
                );
                let at: DateTime<Utc> =
                    start + chrono::Duration::microseconds((i as f64 * step_us) as i64);
                e.occurred_at = at;
                e.received_at = at;
                e.latency_us = 500 + ((r >> 24) % 200_000) as i64;
                e.bytes_in = ((r >> 40) % 2_000) as i64;
                e.bytes_out = ((r >> 44) % 20_000) as i64;
                e.cost_nanos = 1_000;
                e
            })
            .collect();
        store::insert_events(db, &batch).await.unwrap();
        if chunk % 200 == 0 {
            let done = (chunk + 1) * BATCH;
            println!(
                "generated {done} events ({:.0}/s)",
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    store::compact_all(db).await.unwrap();
    db.execute_unprepared("ANALYZE usage_events; ANALYZE usage_rollups")
        .await
        .unwrap();
    tenant
}
