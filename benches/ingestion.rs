//! Sustained ingestion through the metering pipeline (recorder -> buffer -> batch writer ->
//! events and pending rollups in one transaction per batch -> compactor -> rollups, peaks and
//! key counters), timed until the last event is stored and its rollups added, against the plainest way of
//! getting the same rows into the same table, in the same run: a raw binary `COPY` on
//! PostgreSQL, multi-row prepared `INSERT`s in one transaction on SQLite.
//!
//! `TOLLGATE_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432 cargo bench --bench ingestion`
//! creates and drops a `bench_<uuid>` database on that server;
//! `TOLLGATE_BENCH_DATABASE_URL=sqlite cargo bench --bench ingestion` uses a SQLite file in a
//! temporary directory, configured as `tollgate serve` configures it (WAL, synchronous=NORMAL).
//! Optional: `BENCH_EVENTS` per round, default 500000; `BENCH_ROUNDS`, default 3;
//! `BENCH_BATCH`, default `metering.batch_size`; `BENCH_KEYS`, the keys the events are spread
//! over, default 100.

use std::{sync::Arc, time::Instant};

use sea_orm::{ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, Statement};
use tollgate::{
    audit,
    config::{SecretUrl, Settings},
    db,
    ids::{KeyId, TenantId},
    metering::{self, Source, UsageEvent, method, store},
    tenants::{self, TenantName},
};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; this binary takes no other arguments.
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
    let (events_per_round, rounds) = (env_or("BENCH_EVENTS", 500_000), env_or("BENCH_ROUNDS", 3));
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::load(None).unwrap();
    let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let admin = match server.starts_with("sqlite") {
        true => {
            let file = dir.path().join("bench.db");
            settings.database.url = SecretUrl::new(format!("sqlite://{}?mode=rwc", file.display()));
            None
        }
        false => {
            let admin = Database::connect(format!("{server}/postgres"))
                .await
                .unwrap();
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
            settings.database.url = SecretUrl::new(format!("{server}/{name}"));
            Some(admin)
        }
    };
    settings.metering.spool_dir = dir.path().join("spool");
    settings.metering.batch_size = env_or("BENCH_BATCH", settings.metering.batch_size);
    let db = db::connect(&settings.database).await.unwrap();
    db::migrate(&db).await.unwrap();
    let (tenant, keys) = world(&db, env_or("BENCH_KEYS", 100)).await;
    let postgres = admin.is_some();
    let baseline = if postgres { "raw COPY" } else { "raw INSERT" };
    println!(
        "{}: events per round: {events_per_round}, rounds: {rounds}, keys: {}, batch_size: {}, buffer: {}",
        db.get_database_backend().as_str(),
        keys.len(),
        settings.metering.batch_size,
        settings.metering.buffer_capacity
    );
    let (mut writer, mut copy) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let events = generate(tenant, &keys, events_per_round);
        truncate(&db).await;
        let w = through_writer(&db, &settings, events.clone()).await;
        check(&db, events_per_round).await;
        truncate(&db).await;
        let c = match postgres {
            true => raw_copy(&db, &events, settings.metering.batch_size).await,
            false => raw_insert(&db, &events).await,
        };
        println!("round {round}: writer {w:>9.0} events/s   {baseline} {c:>9.0} events/s");
        writer.push(w);
        copy.push(c);
    }
    let (w, c) = (median(writer), median(copy));
    println!(
        "median: writer {w:.0} events/s, {baseline} {c:.0} events/s, ratio {:.0}%",
        100.0 * w / c
    );
    db.close().await.ok();
    if let Some(admin) = admin {
        admin
            .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .await
            .unwrap();
    }
}

/// A tenant with `count` keys (rows inserted directly, 1,000 per statement: the bench
/// measures events only).
async fn world(db: &DatabaseConnection, count: usize) -> (TenantId, Vec<KeyId>) {
    let system = audit::Context::system("bench");
    let tenant = tenants::create(db, &system, &TenantName::parse("Bench", "/name").unwrap())
        .await
        .unwrap();
    let keys: Vec<KeyId> = (0..count).map(|_| KeyId::new()).collect();
    let backend = db.get_database_backend();
    let now = chrono::Utc::now();
    for (chunk_no, chunk) in keys.chunks(1000).enumerate() {
        let mut sql = String::from(
            "INSERT INTO api_keys (id, tenant_id, name, key_hash, prefix, last4, source, \
             status, usage_count, created_at, updated_at) VALUES ",
        );
        let mut values: Vec<sea_orm::Value> = Vec::new();
        for (i, id) in chunk.iter().enumerate() {
            let n = chunk_no * 1000 + i;
            let p = values.len();
            if i > 0 {
                sql.push_str(", ");
            }
            let placeholder = |k: usize| match backend {
                DatabaseBackend::Postgres => format!("${}", p + k),
                _ => "?".to_owned(),
            };
            sql.push_str(&format!(
                "({}, {}, {}, {}, 'tg_live_', 'abcd', 'generated', 'active', 0, {}, {})",
                placeholder(1),
                placeholder(2),
                placeholder(3),
                placeholder(4),
                placeholder(5),
                placeholder(6),
            ));
            values.extend([
                id.0.into(),
                tenant.id.into(),
                format!("k{n}").into(),
                format!("hash{n}").into(),
                now.into(),
                now.into(),
            ]);
        }
        db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await
            .unwrap();
    }
    (tenant.id.into(), keys)
}

fn generate(tenant: TenantId, keys: &[KeyId], n: usize) -> Vec<UsageEvent> {
    let endpoint: Arc<str> = Arc::from("/v1/chat/completions");
    let agent: Arc<str> = Arc::from("bench/1.0");
    (0..n)
        .map(|i| {
            let key = keys[i % keys.len()];
            let mut e = UsageEvent::new(
                Source::Middleware,
                tenant,
                Some(key),
                endpoint.clone(),
                method("POST"),
                200,
            );
            e.latency_us = 1000 + (i % 5000) as i64;
            e.bytes_in = 512;
            e.bytes_out = 4096;
            e.tokens_in = 20;
            e.tokens_out = 300;
            e.cost_nanos = 1_200_000;
            e.ip = Some("203.0.113.7".parse().unwrap());
            e.user_agent = Some(agent.clone());
            // Per mille of the key's minute, hour, day and month limits, as the request path
            // records them (each key's peaks go to `usage_utilization`).
            let used = 1 + (i / keys.len() % 999) as u16;
            e.utilization = [used, used / 60, used / 1440, used / 43200];
            e
        })
        .collect()
}

/// Records every event as fast as the buffer takes them (never spilling to the spool), then
/// shuts the pipeline down, which returns once everything is committed and compacted (what
/// its grace left pending is added before the clock stops). Events per second.
async fn through_writer(
    db: &DatabaseConnection,
    settings: &Settings,
    events: Vec<UsageEvent>,
) -> f64 {
    let count = events.len();
    let grace = std::time::Duration::from_secs(60);
    let pipeline = metering::start(
        &settings.database,
        &settings.metering,
        grace,
        Default::default(),
    )
    .await
    .unwrap();
    let recorder = pipeline.recorder();
    let capacity = settings.metering.buffer_capacity;
    let started = Instant::now();
    for event in events {
        while recorder.queue_depth() >= capacity {
            tokio::time::sleep(std::time::Duration::from_micros(200)).await;
        }
        recorder.record(event);
    }
    pipeline.shutdown().await;
    store::compact_all(db).await.unwrap();
    let rate = count as f64 / started.elapsed().as_secs_f64();
    let spooled = std::fs::read_dir(&settings.metering.spool_dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "jsonl")
        })
        .count();
    assert_eq!(spooled, 0, "the benchmark must not spill to the spool");
    rate
}

/// One `COPY … FROM STDIN (FORMAT binary)` straight into `usage_events`, sent in chunks of
/// `chunk` rows' worth of bytes: the ceiling for getting these rows into this table.
async fn raw_copy(db: &DatabaseConnection, events: &[UsageEvent], chunk: usize) -> f64 {
    use sea_orm::sqlx::postgres::PgPoolCopyExt;
    let pool = db.get_postgres_connection_pool();
    let statement = format!(
        "COPY usage_events ({}) FROM STDIN (FORMAT binary)",
        store::COLUMNS.join(", ")
    );
    let started = Instant::now();
    let payload = store::copy_payload(events);
    let mut copy = pool.copy_in_raw(&statement).await.unwrap();
    let step = payload.len() / events.len().div_ceil(chunk).max(1) + 1;
    for part in payload.chunks(step) {
        copy.send(part).await.unwrap();
    }
    let rows = copy.finish().await.unwrap();
    assert_eq!(rows as usize, events.len());
    events.len() as f64 / started.elapsed().as_secs_f64()
}

/// Multi-row `INSERT`s of the same rows into `usage_events` (SQLite), all in one transaction:
/// the ceiling for these rows into this table through this driver.
async fn raw_insert(db: &DatabaseConnection, events: &[UsageEvent]) -> f64 {
    use sea_orm::sqlx::Connection;
    let started = Instant::now();
    let mut conn = db.get_sqlite_connection_pool().acquire().await.unwrap();
    let mut txn = conn.begin().await.unwrap();
    for chunk in events.chunks(store::SQLITE_ROWS_PER_STATEMENT) {
        store::sqlite_insert(&mut txn, chunk).await.unwrap();
    }
    txn.commit().await.unwrap();
    events.len() as f64 / started.elapsed().as_secs_f64()
}

async fn truncate(db: &DatabaseConnection) {
    let (empty, vacuum) = match db.get_database_backend() {
        DatabaseBackend::Postgres => ("TRUNCATE usage_events", "VACUUM ANALYZE usage_events"),
        _ => ("DELETE FROM usage_events", "VACUUM"),
    };
    db.execute_unprepared(empty).await.unwrap();
    db.execute_unprepared("UPDATE api_keys SET usage_count = 0")
        .await
        .unwrap();
    db.execute_unprepared(vacuum).await.unwrap();
}

async fn check(db: &DatabaseConnection, expected: usize) {
    let sql = "SELECT (SELECT count(*) FROM usage_events) AS events, \
               (SELECT CAST(sum(usage_count) AS BIGINT) FROM api_keys) AS counted";
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    let events: i64 = row.try_get("", "events").unwrap();
    let counted: i64 = row.try_get("", "counted").unwrap();
    assert_eq!((events as usize, counted as usize), (expected, expected));
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
