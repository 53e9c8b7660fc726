//! Rate-limit utilization: each key's windows now (asked of the limiter without counting a
//! call), their peaks and history over the question's window (`usage_utilization`), the keys
//! over a threshold, and a recommendation line per key near or at a limit.

use std::collections::{BTreeMap, HashMap, hash_map::Entry};

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Question, Tenants, WindowOut};
use crate::{
    Result,
    config::LimitSettings,
    entities::{api_keys, usage_utilization},
    ids::{KeyId, TenantId},
    keys::limits::{self, Limits, TenantPolicy},
    limits::{Limiter, Quota, Request, month},
    metering::rollup::Granularity,
};

/// The threshold when none is asked for, in percent.
pub const DEFAULT_THRESHOLD: u8 = 80;

/// Most keys one answer reports on (the busiest tenants have more; filter by `key_id`).
pub const MAX_KEYS: usize = 500;

/// One window of one key.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct WindowUse {
    /// `minute`, `hour`, `day` or `month`.
    pub window: &'static str,
    pub limit: u64,
    /// Calls counted in the window now.
    pub used: u64,
    /// used / limit now, in percent (one decimal).
    pub percent: f64,
    /// The highest utilization recorded in the question's window, in percent.
    pub peak_percent: f64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct KeyUtilization {
    pub key_id: KeyId,
    pub tenant_id: TenantId,
    pub name: String,
    /// Minute, hour, day, and month when the key has a monthly quota.
    pub windows: Vec<WindowUse>,
    /// Some window is at or above the threshold now.
    pub over_threshold: bool,
}

/// One key's peak utilization in one bucket, per window, in percent.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UtilizationPoint {
    pub bucket_start: DateTime<Utc>,
    pub key_id: KeyId,
    pub minute_percent: f64,
    pub hour_percent: f64,
    pub day_percent: f64,
    pub month_percent: f64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RateLimits {
    pub window: WindowOut,
    pub threshold_percent: u8,
    /// The history's bucket size.
    pub granularity: Granularity,
    /// Fullest first.
    pub keys: Vec<KeyUtilization>,
    /// Per key and bucket, oldest first; buckets without calls are absent.
    pub history: Vec<UtilizationPoint>,
    /// "Key 'render-farm' is at 82/100 req/min", fullest first.
    pub recommendations: Vec<String>,
}

/// What [`report`] needs besides the question.
pub struct Context<'a> {
    pub limiter: &'a Limiter,
    pub defaults: &'a LimitSettings,
    pub threshold_percent: u8,
    pub now: DateTime<Utc>,
}

pub async fn report(
    db: &impl ConnectionTrait,
    question: &Question,
    ctx: &Context<'_>,
) -> Result<RateLimits> {
    let granularity = question.window.auto_granularity();
    let history = history(db, question, granularity).await?;
    let keys = keys_of(db, question, &history).await?;
    let mut keys = utilization(db, question, ctx, &keys).await?;
    keys.sort_by(|a, b| {
        let (now_a, peak_a) = fullest(a);
        let (now_b, peak_b) = fullest(b);
        now_b
            .total_cmp(&now_a)
            .then(peak_b.total_cmp(&peak_a))
            .then(a.name.cmp(&b.name))
    });
    let recommendations = keys
        .iter()
        .filter_map(|k| recommendation(k, ctx.threshold_percent))
        .collect();
    Ok(RateLimits {
        window: question.window.into(),
        threshold_percent: ctx.threshold_percent,
        granularity,
        keys,
        history: history.iter().map(point).collect(),
        recommendations,
    })
}

/// The windows of `keys` now and their peaks over the question's window.
pub async fn utilization(
    db: &impl ConnectionTrait,
    question: &Question,
    ctx: &Context<'_>,
    keys: &[api_keys::Model],
) -> Result<Vec<KeyUtilization>> {
    let peaks = peaks(db, question).await?;
    let mut policies: HashMap<Uuid, TenantPolicy> = HashMap::new();
    for key in keys {
        if let Entry::Vacant(slot) = policies.entry(key.tenant_id) {
            slot.insert(limits::tenant_policy(db, key.tenant_id.into(), ctx.defaults).await?);
        }
    }
    // Asked concurrently: on Redis the keys' decisions are in flight together over the
    // multiplexed connection instead of one round trip after another.
    let asked = keys.iter().map(|key| {
        let peak = peaks.get(&key.id).copied().unwrap_or_default();
        utilization_now(key, &policies[&key.tenant_id], peak, ctx)
    });
    futures_util::future::try_join_all(asked).await
}

/// The key's windows now: the limiter's decision for a call of cost 0, which counts nothing.
async fn utilization_now(
    key: &api_keys::Model,
    policy: &TenantPolicy,
    peak: [i32; 4],
    ctx: &Context<'_>,
) -> Result<KeyUtilization> {
    let effective = Limits::of_key(key).or(policy.limits);
    let (month, next_month) = month::current_and_next(ctx.now, policy.timezone);
    let request = Request {
        key: key.id,
        quota: Quota::from_limits(&effective),
        cost: 0,
        month,
        next_month,
    };
    let decision = ctx.limiter.decide(&request, ctx.now).await?;
    let windows: Vec<WindowUse> = decision
        .windows()
        .zip(peak)
        .map(|((window, w), peak)| WindowUse {
            window,
            limit: w.limit,
            used: w.used,
            percent: f64::from(w.per_mille()) / 10.0,
            peak_percent: f64::from(peak) / 10.0,
        })
        .collect();
    let threshold = f64::from(ctx.threshold_percent);
    Ok(KeyUtilization {
        key_id: key.id.into(),
        tenant_id: key.tenant_id.into(),
        name: key.name.clone(),
        over_threshold: windows.iter().any(|w| w.percent >= threshold),
        windows,
    })
}

/// The key's highest utilization now and at its peak, in percent.
fn fullest(key: &KeyUtilization) -> (f64, f64) {
    key.windows.iter().fold((0.0, 0.0), |(now, peak), w| {
        (f64::max(now, w.percent), f64::max(peak, w.peak_percent))
    })
}

/// The line for the key's fullest window: where it is now when at or above the threshold,
/// else its peak in the window when that was.
fn recommendation(key: &KeyUtilization, threshold_percent: u8) -> Option<String> {
    let threshold = f64::from(threshold_percent);
    let unit = |w: &WindowUse| match w.window {
        "minute" => "req/min",
        "hour" => "req/hour",
        "day" => "req/day",
        _ => "req/month",
    };
    let now = key
        .windows
        .iter()
        .filter(|w| w.percent >= threshold)
        .max_by(|a, b| a.percent.total_cmp(&b.percent));
    if let Some(w) = now {
        return Some(format!(
            "Key '{}' is at {}/{} {}",
            key.name,
            w.used,
            w.limit,
            unit(w)
        ));
    }
    let peak = key
        .windows
        .iter()
        .filter(|w| w.peak_percent >= threshold)
        .max_by(|a, b| a.peak_percent.total_cmp(&b.peak_percent))?;
    Some(format!(
        "Key '{}' peaked at {}% of its {} {} limit in this range",
        key.name,
        peak.peak_percent,
        peak.limit,
        unit(peak)
    ))
}

fn point(row: &usage_utilization::Model) -> UtilizationPoint {
    let pct = |pm: i32| f64::from(pm) / 10.0;
    UtilizationPoint {
        bucket_start: row.bucket_start,
        key_id: row.key_id.into(),
        minute_percent: pct(row.minute_pm),
        hour_percent: pct(row.hour_pm),
        day_percent: pct(row.day_pm),
        month_percent: pct(row.month_pm),
    }
}

fn scoped(question: &Question) -> Condition {
    use usage_utilization::Column;
    let mut condition = Condition::all();
    if let Tenants::One(TenantId(tenant)) = question.tenants {
        condition = condition.add(Column::TenantId.eq(tenant));
    }
    if let Some(key) = question.filter.key_id {
        condition = condition.add(Column::KeyId.eq(key));
    }
    condition
}

/// The history at `granularity`, over the window widened to whole buckets.
async fn history(
    db: &impl ConnectionTrait,
    question: &Question,
    granularity: Granularity,
) -> Result<Vec<usage_utilization::Model>> {
    use usage_utilization::Column;
    let window = question.window.aligned(granularity);
    Ok(usage_utilization::Entity::find()
        .filter(
            scoped(question)
                .add(Column::Granularity.eq(granularity.as_str()))
                .add(Column::BucketStart.gte(window.from))
                .add(Column::BucketStart.lt(window.to)),
        )
        .order_by_asc(Column::BucketStart)
        .order_by_asc(Column::KeyId)
        .all(db)
        .await?)
}

/// Each key's peak per window over exactly the question's window.
async fn peaks(db: &impl ConnectionTrait, question: &Question) -> Result<HashMap<Uuid, [i32; 4]>> {
    use usage_utilization::Column;
    let mut out: HashMap<Uuid, [i32; 4]> = HashMap::new();
    for (granularity, part) in question.window.cover() {
        let rows = usage_utilization::Entity::find()
            .filter(
                scoped(question)
                    .add(Column::Granularity.eq(granularity.as_str()))
                    .add(Column::BucketStart.gte(part.from))
                    .add(Column::BucketStart.lt(part.to)),
            )
            .all(db)
            .await?;
        for row in rows {
            let peak = out.entry(row.key_id).or_default();
            let values = [row.minute_pm, row.hour_pm, row.day_pm, row.month_pm];
            for (p, v) in peak.iter_mut().zip(values) {
                *p = (*p).max(v);
            }
        }
    }
    Ok(out)
}

/// The keys reported on: a tenant's keys that are not revoked, or — across all tenants —
/// the keys with history in the window; at most [`MAX_KEYS`].
async fn keys_of(
    db: &impl ConnectionTrait,
    question: &Question,
    history: &[usage_utilization::Model],
) -> Result<Vec<api_keys::Model>> {
    use api_keys::Column;
    let mut condition = Condition::all().add(Column::Status.ne("revoked"));
    match question.tenants {
        Tenants::One(TenantId(tenant)) => condition = condition.add(Column::TenantId.eq(tenant)),
        Tenants::All => {
            let seen: BTreeMap<Uuid, ()> = history.iter().map(|r| (r.key_id, ())).collect();
            condition = condition.add(Column::Id.is_in(seen.into_keys().take(MAX_KEYS)));
        }
    }
    if let Some(key) = question.filter.key_id {
        condition = condition.add(Column::Id.eq(key));
    }
    let mut keys = api_keys::Entity::find()
        .filter(condition)
        .order_by_asc(Column::Name)
        .all(db)
        .await?;
    keys.truncate(MAX_KEYS);
    Ok(keys)
}
