//! Thirty days of demo traffic, stored through the metering store the writer uses (so the
//! rollups are built exactly as for live traffic). Patterns worth seeing on every view:
//!
//! - a daily rhythm (quiet nights, an afternoon peak, UTC) and quieter weekends;
//! - `render-farm` hammering the bulk endpoint `POST /v1/renders` every Monday morning,
//!   running near its 100/min limit (with some 429s);
//! - an error spike: `GET /v1/feed` answering 503 to a third of calls for three hours, nine
//!   days ago;
//! - per-endpoint latency spreads, token use and cost on the render endpoint.
//!
//! Deterministic (seeded), so two runs draw the same shape. Hours are generated newest first,
//! so an interrupted run leaves the most recent days complete.

use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, DurationRound, Timelike, Utc, Weekday};
use rand::{RngExt, SeedableRng, rngs::SmallRng};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::{
    Result,
    ids::{KeyId, TenantId},
    metering::{
        Source, UsageEvent,
        event::method,
        store::{compact_all, insert_events},
    },
};

pub const DAYS: i64 = 30;
const BATCH: usize = 5_000;

/// One endpoint of a demo key: route, method, share of the key's calls, median latency (ms).
struct Route {
    endpoint: &'static str,
    method: &'static str,
    share: f64,
    median_ms: f64,
    /// Tokens in/out and cost (nanos) per call.
    tokens: (i64, i64),
    cost_nanos: i64,
}

const fn route(endpoint: &'static str, method: &'static str, share: f64, median_ms: f64) -> Route {
    Route {
        endpoint,
        method,
        share,
        median_ms,
        tokens: (0, 0),
        cost_nanos: 10_000,
    }
}

struct Profile {
    key: &'static str,
    /// Calls per hour at the daily peak.
    peak_per_hour: f64,
    routes: &'static [Route],
    user_agent: &'static str,
}

const PROFILES: [Profile; 3] = [
    Profile {
        key: "checkout-web",
        peak_per_hour: 240.0,
        routes: &[
            route("/v1/products/{id}", "GET", 0.55, 18.0),
            route("/v1/orders", "POST", 0.15, 120.0),
            route("/v1/orders/{id}", "GET", 0.25, 35.0),
            route("/v1/orders/{id}", "DELETE", 0.05, 60.0),
        ],
        user_agent: "checkout-web/4.2 (+https://shop.example)",
    },
    Profile {
        key: "mobile-app",
        peak_per_hour: 180.0,
        routes: &[
            route("/v1/feed", "GET", 0.5, 60.0),
            route("/v1/products/{id}", "GET", 0.3, 22.0),
            route("/v1/sessions", "POST", 0.2, 90.0),
        ],
        user_agent: "AcmeMobile/7.1 (iOS 18)",
    },
    Profile {
        key: "render-farm",
        peak_per_hour: 40.0,
        routes: &[Route {
            endpoint: "/v1/renders",
            method: "POST",
            share: 1.0,
            median_ms: 850.0,
            tokens: (600, 2_400),
            cost_nanos: 2_000_000,
        }],
        user_agent: "render-farm/1.0 python-requests/2.32",
    },
];

/// Daily rhythm: 0.15 at night up to 1.0 around 14:00 UTC; weekends at 60 %.
fn rhythm(hour: DateTime<Utc>) -> f64 {
    let h = hour.hour() as f64;
    let day = 0.15 + 0.85 * (-((h - 14.0) / 4.5).powi(2)).exp();
    match hour.weekday() {
        Weekday::Sat | Weekday::Sun => day * 0.6,
        _ => day,
    }
}

/// A log-normal-ish latency around `median_ms`, in µs.
fn latency_us(rng: &mut SmallRng, median_ms: f64) -> i64 {
    // Sum of uniforms ≈ normal; exp of it spreads to a long right tail.
    let z: f64 = (0..4).map(|_| rng.random::<f64>()).sum::<f64>() - 2.0;
    (median_ms * 1000.0 * (z * 0.9).exp()) as i64
}

fn status(rng: &mut SmallRng, spike: bool) -> u16 {
    let roll: f64 = rng.random();
    match () {
        _ if spike && roll < 0.35 => 503,
        _ if roll < 0.010 => 404,
        _ if roll < 0.013 => 400,
        _ if roll < 0.016 => 500,
        _ => 200,
    }
}

fn per_minute_limit(key: &str) -> f64 {
    super::KEYS
        .iter()
        .find(|(name, _, _)| *name == key)
        .map_or(f64::INFINITY, |(_, _, limit)| *limit as f64)
}

/// Generates and stores `days` of history of the demo tenant's keys (`(name, id)`), ending
/// at `now`. Returns how many events were stored.
pub async fn generate(
    db: &DatabaseConnection,
    tenant: Uuid,
    keys: &[(&str, Uuid)],
    now: DateTime<Utc>,
    days: i64,
) -> Result<u64> {
    let mut rng = SmallRng::seed_from_u64(20_261_123);
    let end = now.duration_trunc(Duration::hours(1)).unwrap_or(now);
    let start = end - Duration::days(days);
    let spike_from = end - Duration::days(9) + Duration::hours(3);
    let spike_to = spike_from + Duration::hours(3);
    let mut batch: Vec<UsageEvent> = Vec::with_capacity(BATCH);
    let mut stored = 0;
    let mut hour = end - Duration::hours(1);
    while hour >= start {
        for profile in &PROFILES {
            let Some((_, key_id)) = keys.iter().find(|(name, _)| *name == profile.key) else {
                continue;
            };
            let monday_morning = hour.weekday() == Weekday::Mon && (6..10).contains(&hour.hour());
            let mut per_hour = profile.peak_per_hour * rhythm(hour);
            if profile.key == "render-farm" && monday_morning {
                // The bulk run: close to 100/min for four hours.
                per_hour = 4_800.0;
            }
            let calls = (per_hour * (0.8 + 0.4 * rng.random::<f64>())) as usize;
            let minute_limit = per_minute_limit(profile.key);
            for _ in 0..calls {
                let pick: f64 = rng.random();
                let mut acc = 0.0;
                let route = profile
                    .routes
                    .iter()
                    .find(|r| {
                        acc += r.share;
                        pick < acc
                    })
                    .unwrap_or(&profile.routes[0]);
                let at = hour + Duration::milliseconds(rng.random_range(0..3_600_000));
                let spike = route.endpoint == "/v1/feed" && at >= spike_from && at < spike_to;
                let mut code = status(&mut rng, spike);
                if profile.key == "render-farm" && monday_morning && rng.random::<f64>() < 0.04 {
                    code = 429;
                }
                let mut e = UsageEvent::new(
                    Source::Gateway,
                    TenantId(tenant),
                    Some(KeyId(*key_id)),
                    Arc::from(route.endpoint),
                    method(route.method),
                    code,
                );
                e.occurred_at = at;
                e.received_at = at;
                e.latency_us = match code {
                    429 => rng.random_range(200..900),
                    _ => latency_us(&mut rng, route.median_ms),
                };
                e.bytes_in = rng.random_range(80..1_200);
                e.bytes_out = match code {
                    200 => rng.random_range(400..24_000),
                    _ => rng.random_range(90..300),
                };
                if code == 200 {
                    (e.tokens_in, e.tokens_out) = route.tokens;
                    e.cost_nanos = route.cost_nanos;
                }
                e.ip = Some(std::net::IpAddr::from([
                    203,
                    0,
                    113,
                    rng.random_range(1..250),
                ]));
                e.user_agent = Some(Arc::from(profile.user_agent));
                // The minute window as the limiter saw it: this hour's rate, give or take.
                let per_minute = per_hour / 60.0 * (0.85 + 0.3 * rng.random::<f64>());
                e.utilization[0] = (per_minute * 1000.0 / minute_limit).min(1000.0) as u16;
                if code == 429 {
                    e.utilization[0] = 1000;
                }
                batch.push(e);
                if batch.len() == BATCH {
                    stored += insert_events(db, &batch).await?;
                    batch.clear();
                }
            }
        }
        hour -= Duration::hours(1);
    }
    stored += insert_events(db, &batch).await?;
    compact_all(db).await?;
    Ok(stored)
}
