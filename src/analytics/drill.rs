//! Errors, slow calls and heatmaps: the drill-down views. Counts come from the rollups; the
//! individual calls (recent failures, slowest calls) from the raw events.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, Order};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    Question, WindowOut,
    reports::status_codes_of,
    store::{self, Level},
};
use crate::{
    Error, Result,
    entities::usage_events,
    ids::{KeyId, TenantId},
    metering::rollup::Granularity,
};

/// One stored call, as the drill-down views show it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Call {
    /// The event id (UUIDv7).
    pub id: uuid::Uuid,
    pub occurred_at: DateTime<Utc>,
    pub tenant_id: TenantId,
    pub key_id: Option<KeyId>,
    pub endpoint: String,
    pub method: String,
    pub status_code: u16,
    pub latency_ms: f64,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl From<usage_events::Model> for Call {
    fn from(e: usage_events::Model) -> Self {
        Self {
            id: e.id,
            occurred_at: e.occurred_at,
            tenant_id: TenantId(e.tenant_id),
            key_id: e.key_id.map(KeyId),
            endpoint: e.endpoint,
            method: e.method,
            status_code: e.status_code as u16,
            latency_ms: e.latency_us as f64 / 1000.0,
            bytes_in: e.bytes_in,
            bytes_out: e.bytes_out,
            ip: e.ip,
            user_agent: e.user_agent,
        }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CodeCount {
    pub status_code: u16,
    pub count: i64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ErrorPoint {
    pub t: DateTime<Utc>,
    /// Failed calls per status code in the bucket (codes ≥ 400 only).
    pub counts: BTreeMap<u16, i64>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Errors {
    pub window: WindowOut,
    pub granularity: Granularity,
    /// Failed calls (status ≥ 400) per status code, most frequent first.
    pub by_status_code: Vec<CodeCount>,
    /// The same per bucket; buckets without failures are left out.
    pub timeseries: Vec<ErrorPoint>,
    /// The most recent failed calls, newest first.
    pub recent: Vec<Call>,
}

/// How many recent failures [`errors`] lists.
const RECENT_FAILURES: u64 = 50;

/// Failed calls by status code, over time, and the latest of them.
pub async fn errors(db: &impl ConnectionTrait, question: &Question) -> Result<Errors> {
    let granularity = question.window.auto_granularity();
    let window = question.window.aligned(granularity);
    let mut total: BTreeMap<u16, i64> = BTreeMap::new();
    let mut series: BTreeMap<DateTime<Utc>, BTreeMap<u16, i64>> = BTreeMap::new();
    let level = Level::for_question(question);
    for row in store::rows(db, question, granularity, window, level).await? {
        if row.status_class < 4 {
            continue;
        }
        for (code, n) in status_codes_of(&row)? {
            *total.entry(code).or_default() += n;
            *series
                .entry(row.bucket_start)
                .or_default()
                .entry(code)
                .or_default() += n;
        }
    }
    let mut by_status_code: Vec<CodeCount> = total
        .into_iter()
        .map(|(status_code, count)| CodeCount { status_code, count })
        .collect();
    by_status_code.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(a.status_code.cmp(&b.status_code))
    });
    let failed = Condition::all().add(usage_events::Column::StatusCode.gte(400));
    let order = (usage_events::Column::OccurredAt, Order::Desc);
    let recent = store::events(db, question, failed, order, RECENT_FAILURES).await?;
    Ok(Errors {
        window: window.into(),
        granularity,
        by_status_code,
        timeseries: series
            .into_iter()
            .map(|(t, counts)| ErrorPoint { t, counts })
            .collect(),
        recent: recent.into_iter().map(Call::from).collect(),
    })
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SlowRequests {
    pub window: WindowOut,
    /// Slowest first.
    pub data: Vec<Call>,
}

/// The slowest calls of the window (raw events, for drill-down).
pub async fn slow_requests(
    db: &impl ConnectionTrait,
    question: &Question,
    limit: u64,
) -> Result<SlowRequests> {
    let order = (usage_events::Column::LatencyUs, Order::Desc);
    let rows = store::events(db, question, Condition::all(), order, limit).await?;
    Ok(SlowRequests {
        window: question.window.into(),
        data: rows.into_iter().map(Call::from).collect(),
    })
}

/// The shape of a heatmap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HeatmapKind {
    /// Rows: the busiest endpoints; columns: time buckets.
    #[default]
    EndpointTime,
    /// Rows: weekdays (Monday first); columns: the 24 hours of the day (UTC).
    WeekdayHour,
}

/// Column width of an endpoint × time heatmap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HeatmapBucket {
    Hour,
    Day,
    /// Weeks starting on Monday (UTC).
    Week,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HeatmapRow {
    /// `GET /v1/users/{id}` (endpoint × time) or `Monday` … (weekday × hour).
    pub label: String,
    /// Calls per column.
    pub cells: Vec<i64>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Heatmap {
    pub window: WindowOut,
    pub kind: HeatmapKind,
    /// Column labels: bucket starts (RFC 3339) or hours `00` … `23`.
    pub columns: Vec<String>,
    pub rows: Vec<HeatmapRow>,
    /// The largest cell, for the colour scale.
    pub max: i64,
}

/// Calls per column start of one heatmap row.
type Cells = BTreeMap<DateTime<Utc>, i64>;

/// Endpoints shown in an endpoint × time heatmap (the busiest).
const HEATMAP_ENDPOINTS: usize = 20;
/// Most columns of an endpoint × time heatmap.
const HEATMAP_COLUMNS: i64 = 400;

const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Call counts as a grid. Weekday × hour sums the hour buckets of the window.
pub async fn heatmap(
    db: &impl ConnectionTrait,
    question: &Question,
    kind: HeatmapKind,
    bucket: Option<HeatmapBucket>,
) -> Result<Heatmap> {
    match kind {
        HeatmapKind::WeekdayHour => {
            let window = question.window.aligned(Granularity::Hour);
            let mut cells = [[0i64; 24]; 7];
            let level = Level::for_question(question);
            for row in store::rows(db, question, Granularity::Hour, window, level).await? {
                let t = row.bucket_start;
                cells[t.weekday().num_days_from_monday() as usize][t.hour() as usize] += row.count;
            }
            let rows: Vec<HeatmapRow> = WEEKDAYS
                .iter()
                .zip(cells)
                .map(|(day, cells)| HeatmapRow {
                    label: (*day).to_owned(),
                    cells: cells.to_vec(),
                })
                .collect();
            Ok(Heatmap {
                window: window.into(),
                kind,
                columns: (0..24).map(|h| format!("{h:02}")).collect(),
                max: max_cell(&rows),
                rows,
            })
        }
        HeatmapKind::EndpointTime => {
            let bucket = bucket.unwrap_or(match question.window.auto_granularity() {
                Granularity::Minute | Granularity::Hour => HeatmapBucket::Hour,
                Granularity::Day => HeatmapBucket::Day,
            });
            let granularity = match bucket {
                HeatmapBucket::Hour => Granularity::Hour,
                HeatmapBucket::Day | HeatmapBucket::Week => Granularity::Day,
            };
            let window = question.window.aligned(granularity);
            let column_of = |t: DateTime<Utc>| match bucket {
                HeatmapBucket::Week => {
                    let day = Granularity::Day.truncate(t);
                    day - Duration::days(day.weekday().num_days_from_monday() as i64)
                }
                _ => granularity.truncate(t),
            };
            let step = match bucket {
                HeatmapBucket::Week => Duration::days(7),
                _ => granularity.step(),
            };
            // Weeks start on the Monday on or before `from`; only the window's days count.
            let first = column_of(window.from);
            let (span, width) = ((window.to - first).num_seconds(), step.num_seconds());
            let columns = (span + width - 1) / width;
            if columns > HEATMAP_COLUMNS {
                return Err(Error::bad_request(format!(
                    "{columns} columns exceed the limit of {HEATMAP_COLUMNS}; choose a wider \
                     `bucket` or a shorter window."
                )));
            }
            let starts: Vec<DateTime<Utc>> =
                (0..columns).map(|i| first + step * i as i32).collect();
            let mut grid: BTreeMap<(String, String), Cells> = BTreeMap::new();
            for row in store::rows(db, question, granularity, window, Level::Detail).await? {
                let cells = grid
                    .entry((row.endpoint.clone(), row.method.clone()))
                    .or_default();
                *cells.entry(column_of(row.bucket_start)).or_default() += row.count;
            }
            let mut busiest: Vec<((String, String), Cells)> = grid.into_iter().collect();
            busiest.sort_by_key(|(_, cells)| std::cmp::Reverse(cells.values().sum::<i64>()));
            busiest.truncate(HEATMAP_ENDPOINTS);
            let rows: Vec<HeatmapRow> = busiest
                .into_iter()
                .map(|((endpoint, method), cells)| HeatmapRow {
                    label: format!("{method} {endpoint}"),
                    cells: starts
                        .iter()
                        .map(|t| cells.get(t).copied().unwrap_or(0))
                        .collect(),
                })
                .collect();
            Ok(Heatmap {
                window: window.into(),
                kind,
                columns: starts
                    .iter()
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .collect(),
                max: max_cell(&rows),
                rows,
            })
        }
    }
}

fn max_cell(rows: &[HeatmapRow]) -> i64 {
    rows.iter()
        .flat_map(|r| r.cells.iter().copied())
        .max()
        .unwrap_or(0)
}
