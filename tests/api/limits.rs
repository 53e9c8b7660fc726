//! The limiters: exact admission under concurrency, all-or-nothing across windows, the
//! rolling-window guarantee at window edges, the same decisions from Redis and in-process for
//! the same sequence, and a TTL on every Redis key.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use redis::AsyncCommands;
use tollgate::{
    config::{RedisSettings, SecretUrl},
    kv::Redis,
    limits::{
        Decision, Quota, Request,
        memory::MemoryLimiter,
        month::{following, month_of},
        redis::RedisLimiter,
    },
};
use uuid::Uuid;

use crate::helpers::{Backends, private_redis, require_or_skip};

fn request(key: Uuid, quota: Quota, cost: u64, now: DateTime<Utc>) -> Request {
    let month = month_of(now, Tz::UTC);
    Request {
        key,
        quota,
        cost,
        month,
        next_month: following(&month, Tz::UTC),
    }
}

fn ms(t: DateTime<Utc>) -> u64 {
    t.timestamp_millis() as u64
}

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
}

const ROOMY: Quota = Quota {
    minute: 1_000_000,
    hour: 1_000_000,
    day: 1_000_000,
    month: None,
};

#[test]
fn in_process_admits_exactly_the_limit_and_counts_nothing_when_refused() {
    let limiter = MemoryLimiter::new(1);
    let key = Uuid::now_v7();
    let now = at("2026-11-23T10:00:30Z");
    let quota = Quota {
        minute: 5,
        hour: 7,
        day: 100,
        month: Some(1000),
    };
    let decide = |cost| limiter.decide(&request(key, quota, cost, now), ms(now));
    let admitted = (0..10).filter(|_| decide(1).allowed).count();
    assert_eq!(admitted, 5);
    let refused = decide(1);
    // The bucket [10:00:30, 10:00:35) is counted in full until no part of it is within the
    // last minute: at 10:01:35, 65 s from now.
    assert_eq!(refused.blocking(), Some(("minute", 65)));
    // Then the minute window has room but the hour allows only 2 more: a cost of 3 is refused
    // by the hour, and the minute window must not count it.
    let later = at("2026-11-23T10:01:40Z");
    let d = limiter.decide(&request(key, quota, 3, later), ms(later));
    assert!(!d.allowed);
    assert_eq!(d.blocking().unwrap().0, "hour");
    let d = limiter.decide(&request(key, quota, 2, later), ms(later));
    assert!(d.allowed);
    assert_eq!(
        d.sliding[0].used, 2,
        "the refused cost of 3 was not counted"
    );
    assert_eq!(d.month.unwrap().used, 7);
}

/// Admitted timestamps never exceed `limit` in any window of `span_ms` ending at one of them.
fn assert_rolling(admitted: &[u64], span_ms: u64, limit: usize) {
    for (i, &t) in admitted.iter().enumerate() {
        let inside = admitted[..=i].iter().filter(|&&s| s + span_ms > t).count();
        assert!(
            inside <= limit,
            "{inside} admitted in the {span_ms} ms before {t}"
        );
    }
}

#[test]
fn bursts_at_a_window_edge_never_exceed_the_limit_in_any_rolling_window() {
    let limiter = MemoryLimiter::new(1);
    let key = Uuid::now_v7();
    let quota = Quota {
        minute: 1000,
        ..ROOMY
    };
    let edge = ms(at("2026-11-23T10:01:00Z"));
    let mut admitted = Vec::new();
    // 1000 in the last 100 ms of a minute, 1000 in the first 100 ms of the next.
    for i in 0..2000u64 {
        let t = edge - 100 + i / 10;
        let now = DateTime::from_timestamp_millis(t as i64).unwrap();
        if limiter.decide(&request(key, quota, 1, now), t).allowed {
            admitted.push(t);
        }
    }
    assert_eq!(admitted.len(), 1000, "the second burst is refused");
    assert_rolling(&admitted, 60_000, 1000);

    // Random arrivals over ten minutes: the guarantee holds everywhere, and the limiter
    // admits at least the limit minus one bucket's worth in every full window.
    let key = Uuid::now_v7();
    let quota = Quota {
        minute: 50,
        ..ROOMY
    };
    let start = ms(at("2026-11-23T11:00:00Z"));
    let mut t = start;
    let mut admitted = Vec::new();
    for _ in 0..5000 {
        t += rand::random_range(0..240u64);
        let now = DateTime::from_timestamp_millis(t as i64).unwrap();
        if limiter.decide(&request(key, quota, 1, now), t).allowed {
            admitted.push(t);
        }
    }
    assert_rolling(&admitted, 60_000, 50);
    assert!(
        admitted.len() >= 8 * 50 * 11 / 12,
        "admitted only {}",
        admitted.len()
    );
}

/// A Redis limiter on a key prefix of its own (with its connection and the prefix), or
/// `None` when the test is skipped for want of Redis.
fn shared_limiter(test: &str) -> Option<(Redis, String, Arc<RedisLimiter>)> {
    let url = require_or_skip("redis", Backends::from_env().redis, test)?;
    let settings = RedisSettings {
        url: SecretUrl::new(url),
        key_prefix: format!("t_{}:", Uuid::new_v4().simple()),
    };
    let redis = Redis::connect(&settings).unwrap();
    let limiter = Arc::new(RedisLimiter::new(redis.clone(), None));
    Some((redis, settings.key_prefix, limiter))
}

#[tokio::test]
async fn redis_and_in_process_decide_the_same_sequence_identically() {
    let Some((_, _, shared)) = shared_limiter("limits equivalence") else {
        return;
    };
    let local = MemoryLimiter::new(1);
    let key = Uuid::now_v7();
    let quota = Quota {
        minute: 20,
        hour: 60,
        day: 100,
        month: Some(90),
    };
    let mut t = ms(at("2026-11-30T23:40:00Z"));
    let mut compared = 0;
    for _ in 0..400 {
        t += rand::random_range(0..20_000u64);
        let now = DateTime::from_timestamp_millis(t as i64).unwrap();
        let req = request(key, quota, rand::random_range(1..4u64), now);
        let expected: Decision = local.decide(&req, t);
        let got = shared.decide_at(&req, t).await.unwrap();
        assert_eq!(got, expected, "at {now}");
        compared += 1;
    }
    assert_eq!(compared, 400);
}

/// The same burst in real time against Redis, on Redis's clock: 1000 calls in the last
/// second of a minute, 1000 just after the boundary. A fixed-window limiter would admit 2000;
/// ours admits the first 1000 and refuses every later one. Waits for the next minute
/// boundary (up to a minute).
#[tokio::test]
async fn redis_bursts_across_a_real_minute_boundary_admit_at_most_the_limit() {
    let Some((redis, prefix, limiter)) = shared_limiter("limits real edge") else {
        return;
    };
    let key = Uuid::now_v7();
    let quota = Quota {
        minute: 1000,
        ..ROOMY
    };
    let burst = |limiter: Arc<RedisLimiter>| async move {
        let calls = (0..1000).map(|_| {
            let limiter = limiter.clone();
            async move {
                let now = Utc::now();
                let decision = limiter.decide(&request(key, quota, 1, now), ms(now)).await;
                decision.unwrap().allowed as u32
            }
        });
        futures_util::future::join_all(calls)
            .await
            .into_iter()
            .sum::<u32>()
    };
    let now = redis_now_ms(&redis).await;
    let to_edge = 60_000 - now % 60_000;
    // 800 ms before a boundary, leaving time for the burst to finish before it.
    let wait = if to_edge > 1_000 {
        to_edge - 800
    } else {
        to_edge + 59_200
    };
    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
    let before = burst(limiter.clone()).await;
    let after_first = redis_now_ms(&redis).await;
    // (Should the first burst run past the boundary on a loaded machine, its late calls are
    // in the same rolling minute: the assertions below hold all the same.)
    let edge = now + to_edge + if to_edge > 1_000 { 0 } else { 60_000 };
    let until_after_edge = (edge + 100).saturating_sub(after_first);
    tokio::time::sleep(std::time::Duration::from_millis(until_after_edge)).await;
    let after = burst(limiter.clone()).await;
    assert_eq!(before, 1000, "the first burst fits the limit");
    assert_eq!(after, 0, "nothing more within the rolling minute");
    assert_every_key_expires(&redis, &prefix).await;
}

#[tokio::test]
async fn concurrent_calls_for_one_key_coalesce_and_decide_as_if_one_by_one() {
    let Some((_, _, shared)) = shared_limiter("limits coalescing") else {
        return;
    };
    let local = MemoryLimiter::new(1);
    let key = Uuid::now_v7();
    let quota = Quota {
        minute: 40,
        hour: 100,
        day: 1000,
        month: Some(45),
    };
    let now = at("2026-11-30T23:59:58Z");
    let calls: Vec<_> = (0..60)
        .map(|_| {
            let shared = shared.clone();
            tokio::spawn(async move {
                shared
                    .decide_at(&request(key, quota, 1, now), ms(now))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut got = Vec::new();
    for call in calls {
        got.push(call.await.unwrap());
    }
    let mut expected: Vec<Decision> = (0..60)
        .map(|_| local.decide(&request(key, quota, 1, now), ms(now)))
        .collect();
    // Arrival order is the scheduler's: compare as the sequence 1st, 2nd, … admitted, then
    // the refusals (identical to each other).
    for decisions in [&mut got, &mut expected] {
        decisions.sort_by_key(|d| (!d.allowed, d.sliding[0].used));
    }
    assert_eq!(got, expected);
    assert_eq!(got.iter().filter(|d| d.allowed).count(), 40);
    assert!(
        shared.script_calls() < 60,
        "60 concurrent calls for one key took {} script calls",
        shared.script_calls()
    );
}

#[tokio::test]
async fn redis_admits_exactly_the_limit_under_concurrency_and_every_key_expires() {
    let Some((redis, prefix, limiter)) = shared_limiter("redis concurrency") else {
        return;
    };
    let key = Uuid::now_v7();
    let quota = Quota {
        minute: 1000,
        hour: 5000,
        day: 10_000,
        month: Some(100_000),
    };
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let limiter = limiter.clone();
        tasks.push(tokio::spawn(async move {
            let mut admitted = 0;
            for _ in 0..47 {
                let now = Utc::now();
                let d = limiter
                    .decide(&request(key, quota, 1, now), ms(now))
                    .await
                    .unwrap();
                admitted += d.allowed as u32;
            }
            admitted
        }));
    }
    let mut admitted = 0;
    for task in tasks {
        admitted += task.await.unwrap();
    }
    // 64 × 47 = 3008 calls within a few seconds: the minute window admits exactly 1000
    // (unless the run straddles the under-admission of one expiring bucket).
    assert!((990..=1000).contains(&admitted), "admitted {admitted}");
    assert!(
        limiter.script_calls() < 3008,
        "concurrent calls were coalesced"
    );
    let keys = assert_every_key_expires(&redis, &prefix).await;
    assert_eq!(keys.len(), 1, "one state per API key: {keys:?}");
    assert!(
        keys[0].contains(&format!("{{{}}}", key.simple())),
        "{} is hash-tagged by key id",
        keys[0]
    );
}

/// A key past its limit, called in a loop: the script's refusal is repeated without a script
/// call for the rest of the second it was decided in, and every repeated refusal is exactly
/// what the script answers at a time in the same second (its windows, resets and retries).
#[tokio::test]
async fn a_refusal_is_repeated_locally_and_exactly_within_its_second() {
    let Some((redis, _, limiter)) = shared_limiter("limits repeated refusals") else {
        return;
    };
    let key = Uuid::now_v7();
    let quota = Quota {
        minute: 3,
        hour: 100,
        day: 1000,
        month: Some(10_000),
    };
    let call = || request(key, quota, 1, Utc::now());
    for _ in 0..3 {
        assert!(
            limiter
                .decide(&call(), ms(Utc::now()))
                .await
                .unwrap()
                .allowed
        );
    }
    let scripts_before = limiter.script_calls();
    let started = std::time::Instant::now();
    let (mut calls, mut compared, mut replays) = (0, 0, 0);
    while started.elapsed() < std::time::Duration::from_millis(1500) {
        let before = redis_now_ms(&redis).await;
        let req = call();
        let decision = limiter.decide(&req, ms(Utc::now())).await.unwrap();
        let after = redis_now_ms(&redis).await;
        calls += 1;
        assert!(!decision.allowed, "refused past the limit");
        assert_eq!(decision.blocking().map(|(w, _)| w), Some("minute"));
        if before / 1000 == after / 1000 {
            // Whether repeated or not, it is the script's answer at any time of this second.
            let exact = limiter.decide_at(&req, after).await.unwrap();
            assert_eq!(decision, exact, "the decision of call {calls}");
            compared += 1;
            replays += 1;
        }
    }
    let own_scripts = limiter.script_calls() - scripts_before - replays;
    assert!(compared > calls / 2, "{compared} of {calls} compared");
    // One per second touched, plus the calls in the last few ms of each second (a repeat
    // stops a margin and a round trip before the second ends).
    assert!(
        own_scripts * 10 < calls,
        "{calls} refusals took {own_scripts} script calls"
    );
    assert_eq!(limiter.repeated_refusals(), calls - own_scripts);
}

/// Two limiters sharing one Redis (two nodes), 64 concurrent callers hammering one key: the
/// hot key is decided from leases, and the nodes together still never admit more than the
/// limit.
#[tokio::test]
async fn leased_decisions_on_two_nodes_never_exceed_the_limit() {
    let Some((redis, _, node_a)) = shared_limiter("limits leases") else {
        return;
    };
    let node_b = Arc::new(RedisLimiter::new(redis.clone(), None));
    let key = Uuid::now_v7();
    let quota = Quota {
        minute: 1000,
        hour: 5000,
        day: 10_000,
        month: Some(100_000),
    };
    // The script grants no lease in a bucket's last 100 ms, and the nodes can admit all 1000
    // in fewer ms than that from batched script calls alone: start where leases are granted.
    sleep_into_next_bucket(&redis).await;
    let (admitted, minute_used) = hammer([&node_a, &node_b], key, quota, 32, 47).await;
    assert!(
        (990..=1000).contains(&admitted),
        "admitted {admitted} of 3008 calls across two nodes"
    );
    assert!(minute_used <= 1000, "a call saw {minute_used} used of 1000");
    let leased = node_a.leased_decisions() + node_b.leased_decisions();
    assert!(leased > 0, "no call was decided from a lease");
}

/// A key far from its limits: most calls are decided from leases (few script calls), and
/// once a lease's bucket has ended its unused units are given back, so the script counts
/// exactly the calls admitted.
#[tokio::test]
async fn a_hot_key_is_decided_from_leases_and_unused_units_go_back() {
    let Some((redis, prefix, limiter)) = shared_limiter("limits lease release") else {
        return;
    };
    let key = Uuid::now_v7();
    // Start just after a lease bucket (5 s) begins, so the hammer does not straddle a
    // boundary where every lease ends and the key starts cold again.
    sleep_into_next_bucket(&redis).await;
    let (admitted, _) = hammer([&limiter], key, ROOMY, 64, 100).await;
    assert_eq!(admitted, 6400);
    // How many calls a lease serves depends on how fast its refills come back: on a loaded
    // machine more calls find it empty and are batched into script calls instead. Either
    // way a call rarely costs a round trip of its own.
    let (leased, scripts) = (limiter.leased_decisions(), limiter.script_calls());
    assert!(
        leased >= 1024 && scripts < 640,
        "6400 calls: {leased} leased, {scripts} script calls"
    );
    // After the lease's bucket the next call is decided by the script, which first gives
    // back what the ended lease did not use: it sees exactly the calls admitted.
    sleep_into_next_bucket(&redis).await;
    let scripts = limiter.script_calls();
    let now = Utc::now();
    let last = limiter
        .decide(&request(key, ROOMY, 1, now), ms(now))
        .await
        .unwrap();
    assert_eq!(limiter.script_calls(), scripts + 1, "decided by the script");
    assert_eq!(
        last.sliding[0].used, 6401,
        "Redis counts exactly the calls admitted"
    );
    assert_every_key_expires(&redis, &prefix).await;
}

/// `tasks` callers per limiter, `each` calls apiece, all for `key`: what was admitted, and
/// the most any admitted call saw used in the minute.
async fn hammer<const N: usize>(
    limiters: [&Arc<RedisLimiter>; N],
    key: Uuid,
    quota: Quota,
    tasks: usize,
    each: usize,
) -> (u64, u64) {
    let mut handles = Vec::new();
    for limiter in limiters {
        for _ in 0..tasks {
            let limiter = limiter.clone();
            handles.push(tokio::spawn(async move {
                let (mut admitted, mut most) = (0, 0);
                for _ in 0..each {
                    let now = Utc::now();
                    let d = limiter
                        .decide(&request(key, quota, 1, now), ms(now))
                        .await
                        .unwrap();
                    if d.allowed {
                        admitted += 1;
                        most = most.max(d.sliding[0].used);
                    }
                }
                (admitted, most)
            }));
        }
    }
    let (mut admitted, mut most) = (0, 0);
    for handle in handles {
        let (a, m) = handle.await.unwrap();
        admitted += a;
        most = most.max(m);
    }
    (admitted, most)
}

/// Sleeps until 50 ms into the next 5 s bucket of Redis's clock.
async fn sleep_into_next_bucket(redis: &Redis) {
    let now = redis_now_ms(redis).await;
    tokio::time::sleep(std::time::Duration::from_millis(5_050 - now % 5_000)).await;
}

/// Redis's clock (`TIME`), in epoch milliseconds.
async fn redis_now_ms(redis: &Redis) -> u64 {
    let (secs, micros): (u64, u64) = redis::cmd("TIME")
        .query_async(&mut redis.conn())
        .await
        .unwrap();
    secs * 1000 + micros / 1000
}

/// Every Redis key under `prefix` has a TTL; returns them.
async fn assert_every_key_expires(redis: &Redis, prefix: &str) -> Vec<String> {
    let mut conn = redis.conn();
    let keys: Vec<String> = conn.keys(format!("{prefix}*")).await.unwrap();
    for k in &keys {
        let ttl: i64 = conn.pttl(k).await.unwrap();
        assert!(ttl > 0, "{k} has no TTL");
    }
    keys
}

/// A call whose caller gave up while it waited in the dispatcher's queue (behind its key's
/// script call in flight) is not decided: it takes nothing from the limit. On a private
/// `redis-server`, whose writes are paused to hold the first call in flight.
#[tokio::test]
async fn a_call_abandoned_while_queued_takes_nothing_from_the_limit() {
    let Some(server) = private_redis("limits abandoned call").await else {
        return;
    };
    let settings = RedisSettings {
        url: SecretUrl::new(server.url()),
        key_prefix: "abandoned:".into(),
    };
    let redis = Redis::connect(&settings).unwrap();
    let limiter = Arc::new(RedisLimiter::new(redis, None));
    let now = Utc::now();
    let (t, key) = (ms(now), Uuid::now_v7());
    let req = request(key, Quota { minute: 3, ..ROOMY }, 1, now);
    // The script is loaded before the pause.
    let other = request(Uuid::now_v7(), ROOMY, 1, now);
    assert!(limiter.decide_at(&other, t).await.unwrap().allowed);

    let mut admin = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // Under the limiter's 500 ms decision timeout.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(300)
        .arg("WRITE")
        .query_async(&mut admin)
        .await
        .unwrap();
    let calls_before = limiter.script_calls();
    let first = tokio::spawn({
        let limiter = limiter.clone();
        async move { limiter.decide_at(&req, t).await }
    });
    // Once its script call is out (and held by the pause), the next call of the key waits.
    let out = async {
        while limiter.script_calls() == calls_before {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), out)
        .await
        .expect("the first call's script call goes out");
    let abandoned = tokio::time::timeout(
        std::time::Duration::from_millis(50),
        limiter.decide_at(&req, t),
    );
    assert!(
        abandoned.await.is_err(),
        "the second call waits behind the first"
    );
    assert!(first.await.unwrap().unwrap().allowed);

    // Only the first call counted: two more fit in the limit of 3, then it refuses.
    let allowed = [(); 3].map(|_| limiter.decide_at(&req, t));
    let mut answers = Vec::new();
    for decision in allowed {
        answers.push(decision.await.unwrap().allowed);
    }
    assert_eq!(answers, [true, true, false]);
}
