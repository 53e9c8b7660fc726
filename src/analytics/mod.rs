//! Analytics: questions about usage answered from the rollups (`metering::rollup`), merging
//! bucket totals and latency sketches instead of scanning raw events. Every answer reads
//! through [`store`], which applies the question's tenant scope and filters in SQL.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    Error, Result,
    entities::{api_keys, usage_rollups},
    ids::{KeyId, TenantId},
    metering::rollup::Granularity,
};

pub mod drill;
pub mod query;
pub mod rate_limits;
pub mod reports;
pub mod store;

pub use query::{Filter, Question, Tenants, Window};
pub use reports::{Acc, Stats, Summary, WindowOut};
pub use store::Level;

/// Most points one timeseries may return (per group).
pub const MAX_POINTS: i64 = 1500;

/// What `read` returns and the currencies of the tenants of its rows (`rows_of`). The
/// currency of a question's one tenant is read at the same time as the rows.
async fn with_currencies<R>(
    db: &impl ConnectionTrait,
    question: &Question,
    read: impl Future<Output = Result<R>>,
    rows_of: impl FnOnce(&R) -> &[usage_rollups::Model],
) -> Result<(R, HashMap<Uuid, String>)> {
    if let Tenants::One(TenantId(tenant)) = question.tenants {
        return futures_util::try_join!(read, store::currencies(db, [tenant]));
    }
    let read = read.await?;
    let tenants: BTreeSet<Uuid> = rows_of(&read).iter().map(|r| r.tenant_id).collect();
    let currencies = store::currencies(db, tenants).await?;
    Ok((read, currencies))
}

/// Rows and the currencies of their tenants (see [`with_currencies`]).
async fn rows_with_currencies(
    db: &impl ConnectionTrait,
    question: &Question,
    read: impl Future<Output = Result<Vec<usage_rollups::Model>>>,
) -> Result<(Vec<usage_rollups::Model>, HashMap<Uuid, String>)> {
    with_currencies(db, question, read, |rows| rows.as_slice()).await
}

/// Totals over the whole window.
pub async fn summary(db: &impl ConnectionTrait, question: &Question) -> Result<Summary> {
    let level = Level::for_question(question);
    let read = async {
        match level {
            Level::Totals => store::covering_totals(db, question).await,
            Level::Detail => {
                let rows = store::covering(db, question, level).await?;
                let endpoints = rows.iter().map(|r| r.endpoint.clone()).collect();
                Ok((rows, endpoints))
            }
        }
    };
    let ((rows, endpoints), currencies) =
        with_currencies(db, question, read, |(rows, _)| rows.as_slice()).await?;
    let all = reports::fold(&rows, &currencies, |_| Some(()))?
        .remove(&())
        .unwrap_or_default();
    let unique_endpoints = endpoints.len();
    Ok(Summary {
        window: question.window.into(),
        stats: all.stats(),
        unique_endpoints,
        reads: all.reads,
        writes: all.totals.count - all.reads,
    })
}

/// How a timeseries splits into series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Key,
    Endpoint,
    StatusClass,
    StatusCode,
}

/// One series' group; absent fields are not grouped on.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
pub struct Group {
    /// `null` in a key series for calls made without a key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<Option<KeyId>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// `2xx` … `5xx`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_class: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Point {
    /// The bucket's start.
    pub t: DateTime<Utc>,
    #[serde(flatten)]
    pub stats: Stats,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Series {
    pub group: Group,
    pub points: Vec<Point>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Timeseries {
    /// The window widened to whole buckets.
    pub window: WindowOut,
    pub granularity: Granularity,
    /// One series without `group_by`; else one per group seen in the window. Every series
    /// has a point for every bucket (zeros where nothing happened).
    pub series: Vec<Series>,
}

fn class_label(class: i16) -> String {
    format!("{class}xx")
}

/// Per-bucket figures, optionally one series per group. Grouped by status code, a point's
/// counts are exact per code while latency, bytes, tokens and cost stay those of the code's
/// status class (rollups keep sketches per class).
pub async fn timeseries(
    db: &impl ConnectionTrait,
    question: &Question,
    granularity: Option<Granularity>,
    group_by: Option<GroupBy>,
) -> Result<Timeseries> {
    let granularity = granularity.unwrap_or_else(|| question.window.auto_granularity());
    let window = question.window.aligned(granularity);
    let step = granularity.step();
    let buckets = (window.to - window.from).num_seconds() / step.num_seconds();
    if buckets > MAX_POINTS {
        return Err(Error::bad_request(format!(
            "{buckets} {} buckets exceed the limit of {MAX_POINTS}; choose a coarser \
             granularity or a shorter window.",
            granularity.as_str()
        )));
    }
    let level = match group_by {
        None | Some(GroupBy::StatusClass | GroupBy::StatusCode) => Level::for_question(question),
        Some(GroupBy::Key | GroupBy::Endpoint) => Level::Detail,
    };
    let read = store::rows(db, question, granularity, window, level);
    let (rows, currencies) = rows_with_currencies(db, question, read).await?;
    let group_of = |row: &usage_rollups::Model| -> Vec<Group> {
        match group_by {
            None => vec![Group::default()],
            Some(GroupBy::Key) => vec![Group {
                key_id: Some((!row.key_id.is_nil()).then_some(KeyId(row.key_id))),
                ..Group::default()
            }],
            Some(GroupBy::Endpoint) => vec![Group {
                endpoint: Some(row.endpoint.clone()),
                method: Some(row.method.clone()),
                ..Group::default()
            }],
            Some(GroupBy::StatusClass) => vec![Group {
                status_class: Some(class_label(row.status_class)),
                ..Group::default()
            }],
            Some(GroupBy::StatusCode) => reports::status_codes_of(row)
                .map(|codes| {
                    codes
                        .into_keys()
                        .map(|code| Group {
                            status_code: Some(code),
                            ..Group::default()
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    };
    let mut cells: BTreeMap<(Group, DateTime<Utc>), Acc> = BTreeMap::new();
    for row in &rows {
        let currency = currencies.get(&row.tenant_id).map_or("USD", String::as_str);
        for group in group_of(row) {
            let acc = cells.entry((group.clone(), row.bucket_start)).or_default();
            match group.status_code {
                Some(code) => acc.add_code(row, code, currency)?,
                None => acc.add(row, currency)?,
            }
        }
    }
    let mut groups: BTreeSet<Group> = cells.keys().map(|(g, _)| g.clone()).collect();
    if group_by.is_none() {
        groups.insert(Group::default());
    }
    let empty = Acc::default().stats();
    let series = groups
        .into_iter()
        .map(|group| {
            let points = (0..buckets)
                .map(|i| {
                    let t = window.from + step * i as i32;
                    let stats = cells
                        .get(&(group.clone(), t))
                        .map_or_else(|| empty.clone(), Acc::stats);
                    Point { t, stats }
                })
                .collect();
            Series { group, points }
        })
        .collect();
    Ok(Timeseries {
        window: window.into(),
        granularity,
        series,
    })
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EndpointRow {
    pub endpoint: String,
    pub method: String,
    #[serde(flatten)]
    pub stats: Stats,
    /// Calls in the window of the same length just before.
    pub previous_requests: i64,
    /// Change in calls against the previous window, in per cent; `null` when it had none.
    pub trend_percent: Option<f64>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Endpoints {
    pub window: WindowOut,
    /// Busiest first.
    pub data: Vec<EndpointRow>,
}

/// Per (endpoint, method): volume, errors, latency and the trend against the previous window.
pub async fn endpoints(db: &impl ConnectionTrait, question: &Question) -> Result<Endpoints> {
    let previous = Question {
        window: question.window.previous(),
        ..question.clone()
    };
    let read = store::covering(db, question, Level::Detail);
    let ((rows, currencies), before) = futures_util::try_join!(
        rows_with_currencies(db, question, read),
        store::covering(db, &previous, Level::Detail)
    )?;
    let by_endpoint = |r: &usage_rollups::Model| Some((r.endpoint.clone(), r.method.clone()));
    let now = reports::fold(&rows, &currencies, by_endpoint)?;
    let mut earlier: HashMap<(String, String), i64> = HashMap::new();
    for row in &before {
        *earlier
            .entry((row.endpoint.clone(), row.method.clone()))
            .or_default() += row.count;
    }
    let mut data: Vec<EndpointRow> = now
        .into_iter()
        .map(|((endpoint, method), acc)| {
            let previous_requests = earlier
                .get(&(endpoint.clone(), method.clone()))
                .copied()
                .unwrap_or(0);
            let stats = acc.stats();
            let trend_percent = (previous_requests > 0).then(|| {
                (stats.requests - previous_requests) as f64 * 100.0 / previous_requests as f64
            });
            EndpointRow {
                endpoint,
                method,
                stats,
                previous_requests,
                trend_percent,
            }
        })
        .collect();
    data.sort_by(|a, b| {
        b.stats
            .requests
            .cmp(&a.stats.requests)
            .then_with(|| (&a.endpoint, &a.method).cmp(&(&b.endpoint, &b.method)))
    });
    Ok(Endpoints {
        window: question.window.into(),
        data,
    })
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct KeyRow {
    /// `null` for calls made without a key (ingested events).
    pub key_id: Option<KeyId>,
    pub tenant_id: TenantId,
    /// The key's name; `null` without a key or when the key no longer exists.
    pub name: Option<String>,
    pub status: Option<String>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// succeeded / requests, 0 without calls.
    pub success_rate: f64,
    #[serde(flatten)]
    pub stats: Stats,
}

/// A key's row of the `keys` report.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct KeyUsage {
    #[serde(flatten)]
    pub row: KeyRow,
    /// The key's windows now (asked of the limiter without counting a call) and their peaks
    /// in the window; empty for calls made without a key or with a deleted key.
    pub rate_limits: Vec<rate_limits::WindowUse>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Keys {
    pub window: WindowOut,
    /// Busiest first.
    pub data: Vec<KeyUsage>,
}

/// The per-key rows of the question, and the stored keys they name.
async fn per_key(
    db: &impl ConnectionTrait,
    question: &Question,
) -> Result<(Vec<KeyRow>, HashMap<Uuid, api_keys::Model>)> {
    let read = store::covering(db, question, Level::Detail);
    let (rows, currencies) = rows_with_currencies(db, question, read).await?;
    let folded = reports::fold(&rows, &currencies, |r| Some((r.key_id, r.tenant_id)))?;
    let keys = store::key_names(db, folded.keys().map(|(k, _)| *k)).await?;
    let rows = folded
        .into_iter()
        .map(|((key_id, tenant_id), acc)| {
            let key = keys.get(&key_id);
            let stats = acc.stats();
            KeyRow {
                key_id: (!key_id.is_nil()).then_some(KeyId(key_id)),
                tenant_id: TenantId(tenant_id),
                name: key.map(|k| k.name.clone()),
                status: key.map(|k| k.status.clone()),
                last_used_at: key.and_then(|k| k.last_used_at),
                success_rate: reports::ratio(stats.succeeded, stats.requests),
                stats,
            }
        })
        .collect();
    Ok((rows, keys))
}

/// Per key: volume, success rate, tokens, cost, when it was last used, and its rate-limit
/// windows now (with their peaks in the window).
pub async fn keys(
    db: &impl ConnectionTrait,
    question: &Question,
    ctx: &rate_limits::Context<'_>,
) -> Result<Keys> {
    let (mut rows, keys) = per_key(db, question).await?;
    rows.sort_by(|a, b| {
        b.stats
            .requests
            .cmp(&a.stats.requests)
            .then_with(|| a.key_id.cmp(&b.key_id))
    });
    let models: Vec<_> = keys.into_values().collect();
    let mut windows: HashMap<Uuid, Vec<rate_limits::WindowUse>> =
        rate_limits::utilization(db, question, ctx, &models)
            .await?
            .into_iter()
            .map(|k| (k.key_id.0, k.windows))
            .collect();
    let data = rows
        .into_iter()
        .map(|row| KeyUsage {
            rate_limits: row
                .key_id
                .and_then(|k| windows.remove(&k.0))
                .unwrap_or_default(),
            row,
        })
        .collect();
    Ok(Keys {
        window: question.window.into(),
        data,
    })
}

/// What top consumers are ranked by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RankBy {
    /// Most calls.
    #[default]
    Volume,
    /// Highest share of failed calls (ties: more calls first).
    ErrorRate,
    /// Most bytes in + out.
    Bandwidth,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Consumer {
    pub rank: usize,
    #[serde(flatten)]
    pub key: KeyRow,
    /// bytes_in + bytes_out.
    pub bandwidth: i64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TopConsumers {
    pub window: WindowOut,
    pub ranked_by: RankBy,
    pub data: Vec<Consumer>,
}

/// The keys ranked by `by`, at most `limit`.
pub async fn top_consumers(
    db: &impl ConnectionTrait,
    question: &Question,
    by: RankBy,
    limit: usize,
) -> Result<TopConsumers> {
    let (mut rows, _) = per_key(db, question).await?;
    let bandwidth = |k: &KeyRow| k.stats.bytes_in + k.stats.bytes_out;
    rows.sort_by(|a, b| {
        let order = match by {
            RankBy::Volume => b.stats.requests.cmp(&a.stats.requests),
            RankBy::ErrorRate => b
                .stats
                .error_rate
                .total_cmp(&a.stats.error_rate)
                .then_with(|| b.stats.requests.cmp(&a.stats.requests)),
            RankBy::Bandwidth => bandwidth(b).cmp(&bandwidth(a)),
        };
        order.then_with(|| a.key_id.cmp(&b.key_id))
    });
    let data = rows
        .into_iter()
        .take(limit)
        .enumerate()
        .map(|(i, key)| Consumer {
            rank: i + 1,
            bandwidth: bandwidth(&key),
            key,
        })
        .collect();
    Ok(TopConsumers {
        window: question.window.into(),
        ranked_by: by,
        data,
    })
}
