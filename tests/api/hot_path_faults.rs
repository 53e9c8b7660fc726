//! The hot path under faults: two `tollgate serve` processes sharing PostgreSQL and Redis
//! admit exactly the limit; Redis stopping and coming back (fail_open and fail_closed); the
//! database refusing writes for a while, or stopped for 30 s; SIGTERM under load. Every test also checks the
//! metering promise: each call a client got an answer to has exactly one usage event, with
//! the status the client saw (calls are told apart by a unique `User-Agent`).
//! Re-sending a batch to `/v1/events` is counted once: see `metering::ingest`.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::Response;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;
use tokio::task::JoinSet;
use tollgate::entities::{api_keys, usage_events};
use uuid::Uuid;

use crate::helpers::TestApp;

mod binary;
mod database;
mod node;
mod postgres_outage;
mod redis_outage;

/// What the clients saw: each call's user agent with the status it got, and the calls that
/// got no answer at all.
#[derive(Debug, Default)]
struct Answers {
    statuses: HashMap<String, u16>,
    failed: HashSet<String>,
    /// Calls answered after [`Load::mark`].
    late: HashSet<String>,
}

impl Answers {
    fn count(&self, status: u16) -> usize {
        self.statuses.values().filter(|&&s| s == status).count()
    }

    fn merge(&mut self, other: Answers) {
        self.statuses.extend(other.statuses);
        self.failed.extend(other.failed);
        self.late.extend(other.late);
    }
}

/// Concurrent clients sending `GET /v1/ping`: call `n` goes to `bases[n % bases.len()]`
/// with user agent `<tag>/<n>`; a client stops at `calls` or at its first failed call.
struct Load {
    shared: Arc<Shared>,
    clients: JoinSet<Answers>,
}

/// What every client of a [`Load`] reads and counts.
struct Shared {
    http: reqwest::Client,
    bases: Vec<String>,
    secret: String,
    tag: String,
    calls: usize,
    next: AtomicUsize,
    answered: AtomicUsize,
    marked: AtomicBool,
}

impl Load {
    fn start(bases: &[String], secret: &str, tag: &str, clients: usize, calls: usize) -> Self {
        let shared = Arc::new(Shared {
            http: http(),
            bases: bases.to_vec(),
            secret: secret.to_owned(),
            tag: tag.to_owned(),
            calls,
            next: AtomicUsize::new(0),
            answered: AtomicUsize::new(0),
            marked: AtomicBool::new(false),
        });
        let mut load = Load {
            shared,
            clients: JoinSet::new(),
        };
        for _ in 0..clients {
            load.clients.spawn(client(load.shared.clone()));
        }
        load
    }

    fn answered(&self) -> usize {
        self.shared.answered.load(Ordering::SeqCst)
    }

    /// Answers received from now on are listed in [`Answers::late`].
    fn mark(&self) {
        self.shared.marked.store(true, Ordering::SeqCst);
    }

    /// Waits (at most `within`) for every client to stop; what they saw.
    async fn finish(mut self, within: Duration) -> Answers {
        let mut all = Answers::default();
        let joined = tokio::time::timeout(within, async {
            while let Some(seen) = self.clients.join_next().await {
                all.merge(seen.expect("client task"));
            }
        });
        joined.await.expect("the clients finish in time");
        all
    }
}

/// One client of a [`Load`]: takes the next call number until there are none left or a call
/// gets no answer.
async fn client(load: Arc<Shared>) -> Answers {
    let mut seen = Answers::default();
    loop {
        let n = load.next.fetch_add(1, Ordering::SeqCst);
        if n >= load.calls {
            return seen;
        }
        let agent = format!("{}/{n}", load.tag);
        let request = load
            .http
            .get(format!("{}/v1/ping", load.bases[n % load.bases.len()]))
            .header("X-API-Key", &load.secret)
            .header("User-Agent", &agent);
        let Ok(response) = request.send().await else {
            seen.failed.insert(agent);
            return seen;
        };
        if load.marked.load(Ordering::SeqCst) {
            seen.late.insert(agent.clone());
        }
        seen.statuses.insert(agent, response.status().as_u16());
        load.answered.fetch_add(1, Ordering::SeqCst);
        // Read the body so the connection goes back to the pool.
        let _ = response.bytes().await;
    }
}

/// Waits (at most 20 s) until `key` has at least `expected` usage events and the count holds
/// still for 300 ms; returns them as user agent -> the status of each event.
async fn events_by_agent(
    db: &DatabaseConnection,
    key: Uuid,
    expected: usize,
) -> HashMap<String, Vec<u16>> {
    let query = || usage_events::Entity::find().filter(usage_events::Column::KeyId.eq(key));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = u64::MAX;
    loop {
        let count = query().count(db).await.unwrap();
        if (count as usize >= expected && count == last) || Instant::now() > deadline {
            break;
        }
        last = count;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut by_agent: HashMap<String, Vec<u16>> = HashMap::new();
    for event in query().all(db).await.unwrap() {
        let agent = event.user_agent.unwrap_or_default();
        by_agent
            .entry(agent)
            .or_default()
            .push(event.status_code as u16);
    }
    by_agent
}

/// Every answered call has exactly one event, with the status the client saw; an event
/// nobody saw an answer to may only belong to a call whose answer was lost.
fn assert_each_answer_metered_once(events: &HashMap<String, Vec<u16>>, answers: &Answers) {
    let mut wrong: Vec<String> = answers
        .statuses
        .iter()
        .filter(|(agent, status)| events.get(*agent) != Some(&vec![**status]))
        .map(|(agent, status)| format!("{agent}: saw {status}, events {:?}", events.get(agent)))
        .collect();
    wrong.extend(
        events
            .iter()
            .filter(|(agent, statuses)| {
                !answers.statuses.contains_key(*agent)
                    && (!answers.failed.contains(*agent) || statuses.len() != 1)
            })
            .map(|(agent, statuses)| format!("{agent}: never answered, events {statuses:?}")),
    );
    wrong.sort();
    let stored: usize = events.values().map(Vec::len).sum();
    assert!(
        wrong.is_empty(),
        "{} of {} answers not metered exactly once ({stored} events); e.g. {:?}",
        wrong.len(),
        answers.statuses.len(),
        &wrong[..wrong.len().min(5)]
    );
}

/// Sends calls with a unique user agent each and remembers what each got.
struct Calls<'a> {
    app: &'a TestApp,
    http: reqwest::Client,
    secret: String,
    tag: &'static str,
    answers: Answers,
    /// The status of each `/v1/verify` call (their events carry no user agent).
    verified: Vec<u16>,
}

impl<'a> Calls<'a> {
    fn new(app: &'a TestApp, secret: &str, tag: &'static str) -> Self {
        Self {
            app,
            http: http(),
            secret: secret.to_owned(),
            tag,
            answers: Answers::default(),
            verified: Vec::new(),
        }
    }

    async fn ping(&mut self) -> Response {
        let agent = format!("{}/{}", self.tag, self.answers.statuses.len());
        let request = self.http.get(self.app.url("/v1/ping"));
        let request = request
            .header("X-API-Key", &self.secret)
            .header("User-Agent", &agent);
        let response = request.send().await.expect("answered");
        self.answers
            .statuses
            .insert(agent, response.status().as_u16());
        response
    }

    async fn verify(&mut self) -> Response {
        let body = json!({"key": self.secret, "endpoint": "/orders", "method": "GET"});
        let request = self.http.post(self.app.url("/v1/verify")).json(&body);
        let response = request.send().await.expect("answered");
        self.verified.push(response.status().as_u16());
        response
    }
}

/// A counter or gauge from a node's `/metrics` (0 when absent).
async fn metric_at(base: &str, name: &str) -> f64 {
    let text = http()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

async fn usage_count(db: &DatabaseConnection, key: Uuid) -> i64 {
    let row = api_keys::Entity::find_by_id(key).one(db).await.unwrap();
    row.unwrap().usage_count
}

/// A client whose every call gives up after 10 s, so no test can hang on a server.
fn http() -> reqwest::Client {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10));
    client.build().unwrap()
}

/// The key's UUID from its API id (`key_…`).
fn key_uuid(id: &str) -> Uuid {
    id.parse::<tollgate::ids::KeyId>().unwrap().0
}
