//! The answers: rollup rows folded into totals per group, then rendered as reports.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{Error, Result, entities::usage_rollups, metering::rollup::Totals, money::Money};

/// Totals of a group of rows, with cost kept per currency (tenants may bill in different
/// currencies; a platform administrator's all-tenant question can mix them).
#[derive(Clone, Debug, Default)]
pub struct Acc {
    pub totals: Totals,
    pub cost: BTreeMap<String, i64>,
    /// Calls by read methods (GET, HEAD, OPTIONS); the rest are writes.
    pub reads: i64,
}

impl Acc {
    pub fn add(&mut self, row: &usage_rollups::Model, currency: &str) -> Result<()> {
        self.totals.add_row(row).map_err(Error::internal)?;
        self.add_cost_and_reads(row.cost_nanos, row.count, &row.method, currency);
        Ok(())
    }

    fn add_cost_and_reads(&mut self, cost_nanos: i64, count: i64, method: &str, currency: &str) {
        *self.cost.entry(currency.to_owned()).or_default() += cost_nanos;
        if matches!(method, "GET" | "HEAD" | "OPTIONS") {
            self.reads += count;
        }
    }

    fn add_totals(&mut self, totals: &Totals, method: &str, currency: &str) {
        self.add_cost_and_reads(totals.cost_nanos, totals.count, method, currency);
        self.totals.merge(totals);
    }

    pub fn stats(&self) -> Stats {
        let t = &self.totals;
        let failed = t.failed();
        let ms = |us: i64| us as f64 / 1000.0;
        Stats {
            requests: t.count,
            succeeded: t.count - failed,
            failed,
            error_rate: ratio(failed, t.count),
            latency_avg_ms: (t.count > 0).then(|| ms(t.latency_sum_us) / t.count as f64),
            latency_p50_ms: t.latency.quantile(0.50).map(ms),
            latency_p95_ms: t.latency.quantile(0.95).map(ms),
            latency_p99_ms: t.latency.quantile(0.99).map(ms),
            latency_max_ms: (t.count > 0).then(|| ms(t.latency_max_us)),
            bytes_in: t.bytes_in,
            bytes_out: t.bytes_out,
            tokens_in: t.tokens_in,
            tokens_out: t.tokens_out,
            cost: self
                .cost
                .iter()
                .map(|(currency, nanos)| Money::from_nanos(currency, *nanos))
                .collect(),
        }
    }
}

/// `part / whole`, 0 when `whole` is 0.
pub fn ratio(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Folds `rows` into one [`Acc`] per group; `group` returns `None` to skip a row.
pub fn fold<K: Ord>(
    rows: &[usage_rollups::Model],
    currencies: &HashMap<Uuid, String>,
    mut group: impl FnMut(&usage_rollups::Model) -> Option<K>,
) -> Result<BTreeMap<K, Acc>> {
    let mut groups: BTreeMap<K, Acc> = BTreeMap::new();
    for row in rows {
        if let Some(key) = group(row) {
            let currency = currencies.get(&row.tenant_id).map_or("USD", String::as_str);
            groups.entry(key).or_default().add(row, currency)?;
        }
    }
    Ok(groups)
}

/// The figures every report shares. Latencies in milliseconds (percentiles within 1 % of the
/// exact value), `null` without calls; failed = answered with status 400 or more.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Stats {
    pub requests: i64,
    pub succeeded: i64,
    pub failed: i64,
    /// failed / requests, 0 without calls.
    pub error_rate: f64,
    pub latency_avg_ms: Option<f64>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub latency_max_ms: Option<f64>,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    /// Per currency; empty without cost.
    pub cost: Vec<Money>,
}

/// The window a report covers, after rounding to whole minutes (or buckets).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct WindowOut {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl From<super::Window> for WindowOut {
    fn from(w: super::Window) -> Self {
        Self {
            from: w.from,
            to: w.to,
        }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Summary {
    pub window: WindowOut,
    #[serde(flatten)]
    pub stats: Stats,
    /// Distinct endpoint templates called.
    pub unique_endpoints: usize,
    /// Calls by GET, HEAD and OPTIONS.
    pub reads: i64,
    /// Calls by every other method.
    pub writes: i64,
}

/// A row's count per status code.
pub fn status_codes_of(row: &usage_rollups::Model) -> Result<BTreeMap<u16, i64>> {
    crate::metering::rollup::parse_status_codes(&row.status_codes).map_err(Error::internal)
}

impl Acc {
    /// Adds the calls of one status code of `row` (see [`super::timeseries`]).
    pub fn add_code(
        &mut self,
        row: &usage_rollups::Model,
        code: u16,
        currency: &str,
    ) -> Result<()> {
        let n = status_codes_of(row)?.get(&code).copied().unwrap_or(0);
        let mut totals = Totals::from_row(row).map_err(Error::internal)?;
        totals.count = n;
        totals.status_codes = BTreeMap::from([(code, n)]);
        self.add_totals(&totals, &row.method, currency);
        Ok(())
    }
}
