//! The real binary: two `serve` processes on one PostgreSQL database and one Redis prefix
//! admit exactly the key's limit between them, and SIGTERM under load loses no usage event.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use sea_orm::{ActiveModelTrait, ActiveValue::Set, Database, DatabaseConnection, EntityTrait};
use serde_json::{Value, json};
use tollgate::{entities::tenants, ids::TenantId};
use uuid::Uuid;

use super::{
    Answers, Load, assert_each_answer_metered_once, events_by_agent, http, key_uuid, metric_at,
    node::{Node, stop_cleanly},
    usage_count,
};
use crate::{
    cli::{backend_env, database_url},
    helpers::{Backends, PASSWORD, require_or_skip},
};

#[tokio::test]
async fn two_nodes_admit_exactly_the_shared_limit_and_meter_every_call() {
    let test = "two_nodes_admit_exactly_the_shared_limit_and_meter_every_call";
    let backends = Backends::from_env();
    if require_or_skip("postgres", backends.postgres, test).is_none()
        || require_or_skip("redis", backends.redis, test).is_none()
    {
        return;
    }
    let backend = backend_env().await;
    let env = &backend.vars;
    let (dir_1, dir_2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // One after the other: the first applies the migrations.
    let mut first = Node::start(env, dir_1.path()).await;
    let mut second = Node::start(env, dir_2.path()).await;
    let db = Database::connect(database_url(env)).await.unwrap();
    let (key, secret) = key_through_api(&first, &db, 1000).await;

    let bases = [first.base.clone(), second.base.clone()];
    let load = Load::start(&bases, &secret, "two-nodes", 64, 3000);
    let answers = load.finish(Duration::from_secs(90)).await;
    assert!(
        answers.failed.is_empty(),
        "unanswered: {:?}",
        answers.failed
    );
    let (admitted, refused) = (answers.count(200), answers.count(429));
    assert_eq!(admitted + refused, 3000, "only 200 and 429 expected");
    let mut fallback = Vec::new();
    for node in [&first, &second] {
        fallback.push(metric_at(&node.base, "tollgate_limiter_fallback_decisions_total").await);
    }
    assert!(
        (990..=1000).contains(&admitted),
        "admitted {admitted} of 3000 with a shared limit of 1000 (fallback decisions {fallback:?})"
    );
    assert_eq!(fallback, [0.0, 0.0], "every decision came from Redis");
    // Each node alone would admit 1000: both took part, and they shared one count.
    let per_node = |parity| admitted_by_node(&answers, parity);
    assert!(per_node(0) > 0 && per_node(1) > 0, "both nodes admitted");

    stop_cleanly(&mut [&mut first, &mut second]).await;
    let events = events_by_agent(&db, key, 3000).await;
    assert_each_answer_metered_once(&events, &answers);
    let stored = |status| events.values().flatten().filter(|&&s| s == status).count();
    assert_eq!((stored(200), stored(429)), (admitted, refused));
    let logs = format!("{}\n{}", first.tail(), second.tail());
    assert_eq!(
        usage_count(&db, key).await,
        3000,
        "the key's counter\n{logs}"
    );
}

/// `serve` restarts itself (same process) with mimalloc purging freed memory at once, unless
/// the environment already sets the option.
#[tokio::test]
async fn serve_runs_with_freed_memory_purged_at_once_unless_told_otherwise() {
    let backend = backend_env().await;
    for (set, expected) in [(None, "0"), (Some("250"), "250")] {
        let mut env = backend.vars.clone();
        env.extend(set.map(|delay| ("MIMALLOC_PURGE_DELAY".to_owned(), delay.to_owned())));
        let (env, data_dir) = with_metering(&env, &[]);
        let mut node = Node::start(&env, &data_dir).await;
        let environ = std::fs::read(format!("/proc/{}/environ", node.pid())).unwrap();
        let delays: Vec<String> = environ
            .split(|b| *b == 0)
            .filter_map(|var| var.strip_prefix(b"MIMALLOC_PURGE_DELAY="))
            .map(|value| String::from_utf8_lossy(value).into_owned())
            .collect();
        assert_eq!(delays, [expected], "the serving process's environment");
        stop_cleanly(&mut [&mut node]).await;
    }
}

/// The metering writer and compactor run on threads of their own, `metering.writer_nice`
/// steps below the HTTP workers; on SQLite so does the worker thread of the writer's one
/// connection. Linux only (elsewhere they keep the process's priority).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn serve_runs_the_metering_writer_below_the_request_path_s_priority() {
    let backend = backend_env().await;
    let (env, data_dir) = with_metering(&backend.vars, &[("WRITER_NICE", "7")]);
    let sqlite = database_url(&env).starts_with("sqlite");
    let mut node = Node::start(&env, &data_dir).await;
    // A thread's nice value: field 19 of its stat, the 17th after the name.
    let nice = |task: &std::path::Path| -> i32 {
        let stat = std::fs::read_to_string(task.join("stat")).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.split(' ').nth(16).unwrap().parse().unwrap()
    };
    let tasks = PathBuf::from(format!("/proc/{}/task", node.pid()));
    let threads: Vec<(String, i32)> = std::fs::read_dir(&tasks)
        .unwrap()
        .map(|task| {
            let path = task.unwrap().path();
            let name = std::fs::read_to_string(path.join("comm")).unwrap();
            (name.trim().to_owned(), nice(&path))
        })
        .collect();
    // The main thread's (its id is the process's), which every other thread started from.
    let base = nice(&tasks.join(node.pid().to_string()));
    let nice_of = |prefix: &str| -> Vec<i32> {
        let of = threads.iter().filter(|(name, _)| name.starts_with(prefix));
        of.map(|(_, nice)| *nice).collect()
    };
    let metering = nice_of(tollgate::metering::THREAD_NAME);
    assert!(!metering.is_empty(), "no metering thread among {threads:?}");
    assert!(metering.iter().all(|&n| n == base + 7), "{threads:?}");
    let workers = nice_of("actix-server");
    assert!(
        !workers.is_empty() && workers.iter().all(|&n| n == base),
        "{threads:?}"
    );
    if sqlite {
        let lowered = nice_of("sqlx-sqlite")
            .into_iter()
            .filter(|&n| n == base + 7);
        assert_eq!(lowered.count(), 1, "the writer's connection: {threads:?}");
    }
    stop_cleanly(&mut [&mut node]).await;
}

#[tokio::test]
async fn sigterm_under_load_drains_every_event() {
    let backend = backend_env().await;
    let (env, data_dir) = drain_only(&backend.vars);
    sigterm_under_load(&env, &data_dir, false).await;
}

/// As above with batches and a buffer of 16 events: between the writer's flushes the load
/// overflows into the spool, and what is still spooled at SIGTERM is replayed by the shutdown,
/// on the writer's own connections (on pooled connections opened by HTTP workers, which stop
/// first, that replay failed and left the events for the next start).
#[tokio::test]
async fn sigterm_with_events_in_the_spool_replays_them_before_exit() {
    let backend = backend_env().await;
    let (env, data_dir) = with_metering(
        &backend.vars,
        &[("BATCH_SIZE", "16"), ("BUFFER_CAPACITY", "16")],
    );
    sigterm_under_load(&env, &data_dir, true).await;
}

/// 32 clients call a key limited to 300 a minute until 600 answers are in, then the node gets
/// SIGTERM: it exits 0 with an empty spool (`stop_cleanly`), having answered 300 calls with 200
/// and the rest with 429, and every answer has exactly one event. `spooling`: events must have
/// gone through the spool before SIGTERM.
async fn sigterm_under_load(env: &[(String, String)], data_dir: &std::path::Path, spooling: bool) {
    let mut node = Node::start(env, data_dir).await;
    let db = Database::connect(database_url(env)).await.unwrap();
    let (key, secret) = key_through_api(&node, &db, 300).await;

    let load = Load::start(&[node.base.clone()], &secret, "sigterm", 32, usize::MAX);
    let deadline = Instant::now() + Duration::from_secs(30);
    while load.answered() < 600 {
        assert!(Instant::now() < deadline, "600 answers within 30 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let fallback = metric_at(&node.base, "tollgate_limiter_fallback_decisions_total").await;
    let spooled = metric_at(&node.base, "tollgate_metering_spooled_total").await;
    assert_eq!(
        spooled > 0.0,
        spooling,
        "{spooled} events spooled before SIGTERM"
    );
    unknown_keys(&node, 32).await;
    load.mark();
    stop_cleanly(&mut [&mut node]).await;
    let answers = load.finish(Duration::from_secs(30)).await;
    assert!(
        !answers.late.is_empty(),
        "calls were in flight when SIGTERM came"
    );
    // Beyond the limit after SIGTERM would mean the limiter lost Redis during the drain (its
    // connection must not live on an HTTP worker's runtime, which stops first).
    let late_admitted = answers.late.iter().filter(|a| answers.statuses[*a] == 200);
    assert_eq!(
        answers.count(200),
        300,
        "the limit, then refusals; {} of the {} answers after SIGTERM admitted, {fallback} \
         fallback decisions before it\n{}",
        late_admitted.count(),
        answers.late.len(),
        node.tail()
    );
    assert_eq!(
        answers.count(429),
        answers.statuses.len() - 300,
        "only 200 and 429 expected"
    );

    let events = events_by_agent(&db, key, answers.statuses.len()).await;
    assert_each_answer_metered_once(&events, &answers);
}

/// `n` concurrent calls with unknown keys: each is looked up in the database, so the HTTP
/// workers open pooled connections, which die with the workers at shutdown.
async fn unknown_keys(node: &Node, n: usize) {
    let client = http();
    let calls = (0..n).map(|_| {
        let secret = format!("tg_live_{}", Uuid::new_v4().simple());
        client
            .get(node.url("/v1/ping"))
            .header("X-API-Key", secret)
            .send()
    });
    for answer in futures_util::future::join_all(calls).await {
        assert_eq!(answer.unwrap().status().as_u16(), 401);
    }
}

/// The backend's environment with a writer that never flushes on its own (only the shutdown
/// drain can store the events), and the data directory (the SQLite database is in it).
fn drain_only(vars: &[(String, String)]) -> (Vec<(String, String)>, PathBuf) {
    with_metering(
        vars,
        &[
            ("FLUSH_INTERVAL_MS", "600000"),
            ("BATCH_SIZE", "100000"),
            ("BUFFER_CAPACITY", "100000"),
        ],
    )
}

/// The backend's environment with these `metering` settings, and the data directory.
fn with_metering(
    vars: &[(String, String)],
    settings: &[(&str, &str)],
) -> (Vec<(String, String)>, PathBuf) {
    let mut env = vars.to_vec();
    let data_dir = env
        .iter()
        .find(|(name, _)| name == "TOLLGATE__DATA__DIR")
        .map(|(_, dir)| PathBuf::from(dir))
        .unwrap();
    for (name, value) in settings {
        env.push((format!("TOLLGATE__METERING__{name}"), (*value).into()));
    }
    (env, data_dir)
}

/// Signs up through `node`'s API, lifts the new tenant's own limits in the database (the
/// configured defaults cap keys at 100 a minute), and creates a key allowing `per_minute`
/// through the API; the key's id and secret.
async fn key_through_api(node: &Node, db: &DatabaseConnection, per_minute: i64) -> (Uuid, String) {
    let http = http();
    let email = format!("owner-{}@example.com", Uuid::new_v4().simple());
    let body = json!({"email": email, "password": PASSWORD, "tenant_name": "Fault Co"});
    let response = http.post(node.url("/v1/auth/signup")).json(&body);
    let response = response.send().await.unwrap();
    assert_eq!(response.status().as_u16(), 201, "sign-up on {}", node.base);
    let account: Value = response.json().await.unwrap();
    let tenant: TenantId = account["tenant"]["id"].as_str().unwrap().parse().unwrap();
    let row = tenants::Entity::find_by_id(tenant.0).one(db).await.unwrap();
    let mut row: tenants::ActiveModel = row.unwrap().into();
    row.limit_per_minute = Set(Some(1_000_000));
    row.limit_per_hour = Set(Some(1_000_000));
    row.limit_per_day = Set(Some(1_000_000));
    row.update(db).await.unwrap();

    let body = json!({"name": "shared", "limits": {"per_minute": per_minute}});
    let token = account["access_token"].as_str().unwrap();
    let response = http
        .post(node.url("/v1/keys"))
        .bearer_auth(token)
        .json(&body);
    let response = response.send().await.unwrap();
    assert_eq!(response.status().as_u16(), 201, "key creation");
    let key: Value = response.json().await.unwrap();
    let secret = key["secret"].as_str().unwrap().to_owned();
    (key_uuid(key["id"].as_str().unwrap()), secret)
}

/// Calls admitted by the node that got calls of this parity (`<tag>/<n>`, `n % 2`).
fn admitted_by_node(answers: &Answers, parity: usize) -> usize {
    let call = |agent: &str| agent.rsplit('/').next().unwrap().parse::<usize>().unwrap();
    answers
        .statuses
        .iter()
        .filter(|(agent, status)| **status == 200 && call(agent) % 2 == parity)
        .count()
}
