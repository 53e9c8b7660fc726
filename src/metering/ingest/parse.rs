//! One ingested event: its wire shape ([`EventIn`]) and the checks that turn it into a
//! [`UsageEvent`], reporting every bad field as a JSON Pointer into the request body.

use std::{net::IpAddr, sync::Arc};

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    error::FieldError,
    ids::{KeyId, TenantId},
    metering::{Source, UsageEvent, event::method},
};

/// How far ahead of the server's clock `occurred_at` may be (clock skew).
pub const MAX_AHEAD: Duration = Duration::minutes(5);
/// How old an ingested event may be.
pub const MAX_AGE: Duration = Duration::days(90);
const MAX_LATENCY_US: i64 = 86_400 * 1_000_000;

/// One event reported by a service that meters itself.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    /// Client-generated UUID (v7 recommended). Re-sending an event with the same `id` and
    /// `occurred_at` stores it once.
    pub id: Uuid,
    /// When the call happened (RFC 3339); at most 5 minutes ahead, at most 90 days ago.
    pub occurred_at: DateTime<Utc>,
    /// A key of the caller's tenant. Default: the `X-API-Key` the batch is sent with (none
    /// with a bearer token).
    pub key_id: Option<KeyId>,
    /// The route template (`/v1/users/{id}`), 1 to 256 characters.
    pub endpoint: String,
    /// The HTTP method (letters only; stored upper-case).
    pub method: String,
    #[schema(minimum = 100, maximum = 599)]
    pub status_code: u16,
    /// Latency in milliseconds (fractions allowed). Give this or `latency_us`.
    pub latency_ms: Option<f64>,
    /// Latency in microseconds. Give this or `latency_ms`.
    pub latency_us: Option<i64>,
    #[serde(default)]
    #[schema(minimum = 0)]
    pub bytes_in: i64,
    #[serde(default)]
    #[schema(minimum = 0)]
    pub bytes_out: i64,
    #[serde(default)]
    #[schema(minimum = 0)]
    pub tokens_in: i64,
    #[serde(default)]
    #[schema(minimum = 0)]
    pub tokens_out: i64,
    /// Cost in the tenant's currency as a decimal string (`"0.0012"`), at most 9 decimals.
    #[schema(example = "0.0012")]
    pub cost: Option<String>,
    /// The client's IPv4 or IPv6 address.
    #[schema(value_type = Option<String>, example = "203.0.113.7")]
    pub ip: Option<IpAddr>,
    /// At most 512 characters.
    pub user_agent: Option<String>,
}

/// Where an event is attributed: the caller's tenant and the key it defaults to.
#[derive(Clone, Copy, Debug)]
pub struct Attribution {
    pub tenant_id: TenantId,
    pub default_key: Option<KeyId>,
}

/// A bad field: its name and what is wrong with it.
type Problem = (&'static str, &'static str);

/// Parses and checks event `index` of the batch.
pub fn event(
    index: usize,
    raw: serde_json::Value,
    to: Attribution,
    now: DateTime<Utc>,
) -> Result<UsageEvent, Vec<FieldError>> {
    let input: EventIn = serde_path_to_error::deserialize(raw)
        .map_err(|err| vec![shape_error(&format!("/events/{index}"), err)])?;
    let mut problems = Vec::new();
    check_time(&input, now, &mut problems);
    check_call(&input, &mut problems);
    check_counts(&input, &mut problems);
    let latency_us = latency(&input)
        .map_err(|problem| problems.push(problem))
        .unwrap_or_default();
    let cost_nanos = input
        .cost
        .as_deref()
        .map_or(Ok(0), cost_nanos)
        .map_err(|detail| problems.push(("cost", detail)))
        .unwrap_or_default();
    if !problems.is_empty() {
        let errors = problems.into_iter().map(|(field, detail)| FieldError {
            detail: detail.to_owned(),
            pointer: format!("/events/{index}/{field}"),
        });
        return Err(errors.collect());
    }
    Ok(UsageEvent {
        id: input.id,
        occurred_at: input.occurred_at,
        received_at: now,
        tenant_id: to.tenant_id,
        key_id: input.key_id.or(to.default_key),
        endpoint: Arc::from(input.endpoint.trim()),
        method: method(&input.method.to_ascii_uppercase()),
        status_code: input.status_code,
        latency_us,
        bytes_in: input.bytes_in,
        bytes_out: input.bytes_out,
        tokens_in: input.tokens_in,
        tokens_out: input.tokens_out,
        cost_nanos,
        ip: input.ip,
        user_agent: input.user_agent.map(Arc::from),
        source: Source::Ingest,
        // Not decided by our limiter: no utilization to report.
        utilization: [0; 4],
    })
}

fn check_time(input: &EventIn, now: DateTime<Utc>, problems: &mut Vec<Problem>) {
    if input.occurred_at > now + MAX_AHEAD {
        let detail = "must not be more than 5 minutes in the future";
        problems.push(("occurred_at", detail));
    } else if input.occurred_at < now - MAX_AGE {
        problems.push(("occurred_at", "must not be more than 90 days old"));
    }
}

fn check_call(input: &EventIn, problems: &mut Vec<Problem>) {
    let endpoint = input.endpoint.trim();
    let length = endpoint.chars().count();
    if !(1..=256).contains(&length) || endpoint.chars().any(char::is_control) {
        let detail = "must be 1 to 256 characters without control characters";
        problems.push(("endpoint", detail));
    }
    let method = &input.method;
    if !(1..=16).contains(&method.len()) || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        problems.push(("method", "must be an HTTP method name (1 to 16 letters)"));
    }
    if !(100..=599).contains(&input.status_code) {
        problems.push(("status_code", "must be between 100 and 599"));
    }
    if let Some(agent) = &input.user_agent
        && agent.chars().count() > 512
    {
        problems.push(("user_agent", "must be at most 512 characters"));
    }
}

fn check_counts(input: &EventIn, problems: &mut Vec<Problem>) {
    for (field, value) in [
        ("bytes_in", input.bytes_in),
        ("bytes_out", input.bytes_out),
        ("tokens_in", input.tokens_in),
        ("tokens_out", input.tokens_out),
    ] {
        if value < 0 {
            problems.push((field, "must not be negative"));
        }
    }
}

/// Microseconds from `latency_ms` or `latency_us` (exactly one), within 0..24 h.
fn latency(input: &EventIn) -> Result<i64, Problem> {
    const RANGE: &str = "must be between 0 and 24 hours";
    match (input.latency_ms, input.latency_us) {
        (Some(_), Some(_)) => Err(("latency_ms", "give latency_ms or latency_us, not both")),
        (None, None) => Err(("latency_us", "latency_ms or latency_us is required")),
        (Some(ms), None) => {
            let us = (ms * 1000.0).round();
            if us.is_finite() && (0.0..=MAX_LATENCY_US as f64).contains(&us) {
                Ok(us as i64)
            } else {
                Err(("latency_ms", RANGE))
            }
        }
        (None, Some(us)) if (0..=MAX_LATENCY_US).contains(&us) => Ok(us),
        (None, Some(_)) => Err(("latency_us", RANGE)),
    }
}

/// `"0.0012"` -> 1_200_000 nanos. Non-negative, digits with an optional fraction of at most 9
/// digits; no sign, exponent or float.
pub fn cost_nanos(text: &str) -> Result<i64, &'static str> {
    const SHAPE: &str = "must be a non-negative decimal string such as \"0.0012\"";
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || text.ends_with('.') {
        return Err(SHAPE);
    }
    if fraction.len() > 9 {
        return Err("must have at most 9 decimal places");
    }
    let too_large = "is too large";
    let whole: i64 = whole.parse().map_err(|_| too_large)?;
    let fraction: i64 = format!("{fraction:0<9}").parse().map_err(|_| SHAPE)?;
    whole
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(fraction))
        .ok_or(too_large)
}

/// A shape error of one event, pointing at the field when serde names it.
fn shape_error(base: &str, err: serde_path_to_error::Error<serde_json::Error>) -> FieldError {
    let mut pointer = base.to_owned();
    for segment in err.path().iter() {
        if let serde_path_to_error::Segment::Map { key } = segment {
            pointer.push('/');
            pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
        }
    }
    let message = err.into_inner().to_string();
    let named = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned)
    };
    if let Some(field) = named("missing field `") {
        return FieldError {
            detail: "is required".into(),
            pointer: format!("{pointer}/{field}"),
        };
    }
    if named("unknown field `").is_some() {
        // The path already ends at the unknown key.
        return FieldError {
            detail: "is not a known field".into(),
            pointer,
        };
    }
    FieldError {
        detail: message,
        pointer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_are_exact_nanos() {
        assert_eq!(cost_nanos("0.0012"), Ok(1_200_000));
        assert_eq!(cost_nanos("12"), Ok(12_000_000_000));
        assert_eq!(cost_nanos("0.000000001"), Ok(1));
        assert_eq!(cost_nanos("1.5"), Ok(1_500_000_000));
        assert!(cost_nanos("0.0000000001").is_err());
        for bad in ["", ".5", "5.", "-1", "+1", "1e-3", "0,5", " 1", "NaN"] {
            assert!(cost_nanos(bad).is_err(), "{bad:?}");
        }
        assert_eq!(cost_nanos("99999999999"), Err("is too large"));
    }
}
