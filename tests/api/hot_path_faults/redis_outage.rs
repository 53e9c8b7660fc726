//! Redis stops in the middle of a run and comes back. `fail_open`: calls keep being served
//! under the node's own limiter, which enforces the limit itself, and within a second of the
//! restart decisions come from Redis again. `fail_closed`: `/v1/ping` and `/v1/verify`
//! answer the exact 503 problem while Redis is down (metered, like every call of an existing
//! key) and 200 within a second of the restart, leased units notwithstanding: a hot key's
//! lease is forfeited the moment Redis goes away.

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use reqwest::Response;
use serde_json::json;
use tollgate::{
    config::{RedisFailure, SecretUrl},
    limits::Limiter,
    tenancy::Role,
};
use uuid::Uuid;

use super::{Answers, Calls, Load, assert_each_answer_metered_once, events_by_agent, key_uuid};
use crate::helpers::create_key;
use crate::{
    helpers::{
        PrivateRedis, TestApp, assert_problem, new_tenant_member, private_redis, problem,
        spawn_app_with,
    },
    metering::metric,
};

/// How soon after Redis is back the limiter must use it again.
const RECOVERY: Duration = Duration::from_secs(1);
const FALLBACK_METRIC: &str = "tollgate_limiter_fallback_decisions_total";

#[tokio::test]
async fn fail_open_serves_within_the_local_limit_while_redis_is_down_then_uses_redis_again() {
    let test = "fail_open_serves_within_the_local_limit_while_redis_is_down_then_uses_redis_again";
    let Some(mut redis) = private_redis(test).await else {
        return;
    };
    let app = app_on(&redis, RedisFailure::FailOpen).await;
    let (key, secret) = key_allowing(&app, 50).await;
    let mut calls = Calls::new(&app, &secret, "outage");

    // Redis up: Redis counts.
    for _ in 0..10 {
        assert_eq!(calls.ping().await.status().as_u16(), 200);
    }
    assert_eq!(minute_count(&app, &redis, key).await, 10);

    // Redis down: the node enforces the whole limit (fail_open_share = 1) on its own,
    // starting from zero, and says so in its metrics.
    redis.stop();
    let fallback_before = metric(&app, FALLBACK_METRIC).await;
    local_limit_enforced(&mut calls).await;
    let fallback = metric(&app, FALLBACK_METRIC).await - fallback_before;
    assert!(fallback >= 60.0, "fallback decisions counted: {fallback}");

    // Redis back (empty): the local limiter is exhausted, so a 200 can only be Redis's
    // decision, and Redis counts it.
    redis.start_again().await;
    let restarted = Instant::now();
    let first = recovered(&mut calls, Call::Ping, 429, restarted).await;
    assert_eq!(header(&first, "x-ratelimit-minute-remaining"), "49");
    assert_eq!(minute_count(&app, &redis, key).await, 1);
    let mut admitted = 0;
    for _ in 0..60 {
        admitted += usize::from(calls.ping().await.status().as_u16() == 200);
    }
    assert_eq!(admitted, 49, "Redis enforces the limit again");
    assert_eq!(minute_count(&app, &redis, key).await, 50);

    let events = events_by_agent(&app.state.db, key, calls.answers.statuses.len()).await;
    assert_each_answer_metered_once(&events, &calls.answers);
}

#[tokio::test]
async fn fail_closed_answers_503_while_redis_is_down_and_200_within_a_second_after() {
    let test = "fail_closed_answers_503_while_redis_is_down_and_200_within_a_second_after";
    let Some(mut redis) = private_redis(test).await else {
        return;
    };
    let app = app_on(&redis, RedisFailure::FailClosed).await;
    let (key, secret) = key_allowing(&app, 50).await;
    let mut calls = Calls::new(&app, &secret, "outage");
    assert_eq!(calls.ping().await.status().as_u16(), 200);
    assert_eq!(calls.verify().await.status().as_u16(), 200);

    redis.stop();
    let unavailable = problem(
        503,
        "service_unavailable",
        "Service unavailable",
        "Rate limiting is unavailable; try again shortly.",
    );
    for _ in 0..5 {
        assert_eq!(assert_problem(calls.ping().await, 503).await, unavailable);
        assert_eq!(assert_problem(calls.verify().await, 503).await, unavailable);
    }
    // No call waits on the dead Redis once the node knows: even spaced out, each 503 is
    // answered at once (the node's probe, not a caller, finds out when Redis is back).
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let asked = Instant::now();
        assert_eq!(assert_problem(calls.ping().await, 503).await, unavailable);
        let took = asked.elapsed();
        assert!(took < Duration::from_millis(150), "a 503 took {took:?}");
    }

    redis.start_again().await;
    let restarted = Instant::now();
    for call in [Call::Ping, Call::Verify] {
        recovered(&mut calls, call, 503, restarted).await;
    }

    // Every call is metered with the status it got, the 503s included.
    let mut expected: Vec<u16> = calls.answers.statuses.values().copied().collect();
    expected.extend(&calls.verified);
    expected.sort_unstable();
    let events = events_by_agent(&app.state.db, key, expected.len()).await;
    let mut stored: Vec<u16> = events.values().flatten().copied().collect();
    stored.sort_unstable();
    assert_eq!(stored, expected, "one event per call, with its status");
    assert!(stored.contains(&503));
}

/// A key hot enough that the node decides it from a lease (units counted in Redis ahead):
/// once Redis stops, the lease is forfeited and every call gets the 503, none is admitted
/// from the units left; and after the restart calls are admitted again.
#[tokio::test]
async fn fail_closed_forfeits_a_hot_keys_lease_when_redis_goes_away() {
    hot_key_through_an_outage(
        "fail_closed_forfeits_a_hot_keys_lease_when_redis_goes_away",
        RedisFailure::FailClosed,
    )
    .await;
}

/// The same under `fail_open`: once Redis stops, the node's own limiter decides every call
/// (the forfeited lease admits none), and within a second of the restart Redis decides again.
#[tokio::test]
async fn fail_open_forfeits_a_hot_keys_lease_for_the_local_limiter() {
    hot_key_through_an_outage(
        "fail_open_forfeits_a_hot_keys_lease_for_the_local_limiter",
        RedisFailure::FailOpen,
    )
    .await;
}

async fn hot_key_through_an_outage(test: &str, policy: RedisFailure) {
    let Some(mut redis) = private_redis(test).await else {
        return;
    };
    let app = spawn_app_with(|s| {
        s.redis.url = SecretUrl::new(redis.url());
        s.limits.redis_failure = policy;
        s.limits.fail_open_share = 1;
        (s.limits.per_minute, s.limits.per_hour, s.limits.per_day) =
            (100_000, 10_000_000, 10_000_000);
    })
    .await;
    let Limiter::Redis(limiter) = &*app.state.limiter else {
        panic!("the app runs the Redis limiter");
    };
    let owner = new_tenant_member(&app, Role::Owner).await;
    let created = create_key(&app, &owner, json!({"name": "hot"})).await;
    let (key, secret) = (key_uuid(&created.id), created.secret);
    let base = [app.address.clone()];
    let mut answers = Answers::default();

    // Concurrent calls until some are decided from a lease.
    for round in 0..10 {
        let load = Load::start(&base, &secret, &format!("warm{round}"), 16, 400);
        let seen = load.finish(Duration::from_secs(30)).await;
        assert_eq!(seen.count(200), 400, "a roomy key admits every call");
        answers.merge(seen);
        if limiter.leased_decisions() > 0 {
            break;
        }
    }
    let leased = limiter.leased_decisions();
    assert!(leased > 0, "no call was decided from a lease");

    // The node holds a lease now (the calls above kept it refilled). Redis stops; the lost
    // subscription tells the node within milliseconds.
    redis.stop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fallback_before = metric(&app, FALLBACK_METRIC).await;
    let down = Load::start(&base, &secret, "down", 16, 400);
    let down = down.finish(Duration::from_secs(30)).await;
    let expected = match policy {
        RedisFailure::FailClosed => (0, 400),
        RedisFailure::FailOpen => (400, 0),
    };
    assert_eq!(
        (down.count(200), down.count(503)),
        expected,
        "{policy:?} while Redis is down"
    );
    assert_eq!(
        limiter.leased_decisions(),
        leased,
        "nothing admitted from a lease"
    );
    let fallback = metric(&app, FALLBACK_METRIC).await - fallback_before;
    assert!(fallback >= 400.0, "fallback decisions counted: {fallback}");
    answers.merge(down);

    redis.start_again().await;
    let restarted = Instant::now();
    let mut calls = Calls::new(&app, &secret, "back");
    match policy {
        RedisFailure::FailClosed => {
            recovered(&mut calls, Call::Ping, 503, restarted).await;
        }
        RedisFailure::FailOpen => {
            // Served either way; what recovers is who decides: Redis again, by a script call
            // or from a lease it granted (the calls that queued in the dispatcher during the
            // outage may be sent, and leased, before this loop starts). The one-second bound
            // itself is the sequential test's above; here the dispatcher may first have to
            // let the outage's last script call time out.
            let by_redis = || limiter.script_calls() + limiter.leased_decisions();
            let before = by_redis();
            while by_redis() == before {
                assert_eq!(calls.ping().await.status().as_u16(), 200);
                assert!(
                    restarted.elapsed() < 2 * RECOVERY,
                    "Redis not used again within {:?}",
                    2 * RECOVERY
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    answers.merge(calls.answers);

    let events = events_by_agent(&app.state.db, key, answers.statuses.len()).await;
    assert_each_answer_metered_once(&events, &answers);
}

/// With Redis down and `fail_open_share = 1`: the node's own limiter admits the key's 50
/// (counting from zero: it never saw the calls Redis counted), with headers, then refuses.
async fn local_limit_enforced(calls: &mut Calls<'_>) {
    for expected_remaining in (0..50).rev() {
        let response = calls.ping().await;
        assert_eq!(
            response.status().as_u16(),
            200,
            "served while Redis is down"
        );
        assert_eq!(header(&response, "x-ratelimit-minute-limit"), "50");
        let remaining = header(&response, "x-ratelimit-minute-remaining");
        assert_eq!(remaining, expected_remaining.to_string());
    }
    for _ in 0..10 {
        let refused = assert_problem(calls.ping().await, 429).await;
        assert_eq!(refused["violated-policies"], json!(["minute"]));
    }
}

#[derive(Clone, Copy, Debug)]
enum Call {
    Ping,
    Verify,
}

/// Repeats `call` until it answers 200, the answers before that being `interim`; fails when
/// that takes [`RECOVERY`] or more from `since`.
async fn recovered(calls: &mut Calls<'_>, call: Call, interim: u16, since: Instant) -> Response {
    loop {
        let response = match call {
            Call::Ping => calls.ping().await,
            Call::Verify => calls.verify().await,
        };
        let elapsed = since.elapsed();
        assert!(elapsed < RECOVERY, "{call:?}: not 200 within {RECOVERY:?}");
        match response.status().as_u16() {
            200 => return response,
            status => assert_eq!(status, interim, "{call:?} before recovery"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn app_on(redis: &PrivateRedis, policy: RedisFailure) -> TestApp {
    spawn_app_with(|s| {
        s.redis.url = SecretUrl::new(redis.url());
        s.limits.redis_failure = policy;
        s.limits.fail_open_share = 1;
    })
    .await
}

/// A new tenant's key allowing `per_minute` calls a minute; its id and secret.
async fn key_allowing(app: &TestApp, per_minute: i64) -> (Uuid, String) {
    let owner = new_tenant_member(app, Role::Owner).await;
    let body = json!({"name": "outage", "limits": {"per_minute": per_minute}});
    let key = create_key(app, &owner, body).await;
    (key_uuid(&key.id), key.secret)
}

/// Calls counted in Redis's minute window of `key`: the running sum of the minute window in
/// its state `<prefix>lim:{<key>}` (little-endian doubles: newest minute bucket, the sum,
/// the 13 slots, …), read on a connection of our own.
async fn minute_count(app: &TestApp, redis: &PrivateRedis, key: Uuid) -> i64 {
    let name = app
        .state
        .redis
        .as_ref()
        .unwrap()
        .key("lim", &key.simple().to_string());
    let mut conn = redis.connection().await.unwrap();
    let state: Option<Vec<u8>> = conn.get(&name).await.unwrap();
    let doubles: Vec<f64> = state
        .unwrap_or_default()
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    doubles.get(1).map_or(0, |sum| *sum as i64)
}

fn header(response: &Response, name: &str) -> String {
    let value = response.headers().get(name);
    value.map_or_else(String::new, |v| v.to_str().unwrap().to_owned())
}
