//! Adding rollups to `usage_rollups`, and their tenant totals to `usage_rollup_totals`, in
//! the compactor's transaction (`pending.rs`), the same way on both backends and tables:
//!
//! 1. one upsert per chunk that inserts new buckets whole and, for buckets that exist, adds
//!    the counters in SQL (`count = count + excluded.count`, max latency by `max`), returning
//!    each row's count, status codes and sketch. The upsert locks the row until commit, so
//!    concurrent writers on other nodes add up instead of overwriting each other;
//! 2. a returned count equal to the count being added means the row is new (stored counts are
//!    never 0); otherwise the status codes and the latency sketch — which SQL cannot add up —
//!    are merged here and written back, many rows per statement (`UPDATE … FROM` a list of
//!    the rows' physical addresses and merged values), under the lock of step 1.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sqlx::{self, ColumnIndex, Decode, Type};
use uuid::Uuid;

use crate::metering::{
    rollup::{self, RollupKey, Totals, parse_status_codes, status_codes_json},
    utilization::{PeakKey, PerMille},
};

/// The key of a returned row, as read back.
pub(super) type RowKey = (String, DateTime<Utc>, Uuid, Uuid, String, String, i16);

/// The key of a row the upsert returned, read by column name (both backends).
pub(super) fn returned_key<'r, R>(row: &'r R) -> Result<RowKey, sqlx::Error>
where
    R: sqlx::Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
    Uuid: Decode<'r, R::Database> + Type<R::Database>,
    i16: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok((
        row.try_get("granularity")?,
        row.try_get("bucket_start")?,
        row.try_get("tenant_id")?,
        row.try_get("key_id")?,
        row.try_get("endpoint")?,
        row.try_get("method")?,
        row.try_get("status_class")?,
    ))
}

/// One rollup row to add.
pub(super) type Row = (RollupKey, Totals);

/// The rollup tables: per key and endpoint, and the tenant totals.
pub(super) const TABLES: [&str; 2] = ["usage_rollups", TOTALS];

/// The tenant-totals table, whose rows also keep the set of endpoints summed into them.
pub(super) const TOTALS: &str = "usage_rollup_totals";

/// Rollups to add: their rows in `usage_rollups` and in `usage_rollup_totals`, and its
/// keys' utilization peaks.
pub(super) struct Deltas {
    pub detail: Part,
    pub totals: Part,
    /// The keys' peak rate-limit utilization per bucket (`usage_utilization`).
    pub peaks: Vec<(PeakKey, PerMille)>,
}

/// The rows of one rollup table, in key order (so concurrent writers lock shared rows
/// in one order).
pub(super) struct Part {
    /// `usage_rollups` or `usage_rollup_totals`.
    pub table: &'static str,
    pub rows: Vec<Row>,
    /// Each row's sketch, encoded once.
    pub sketches: Vec<Vec<u8>>,
    /// Each row's endpoint set (JSON text), on the totals table only.
    pub endpoints: Option<Vec<String>>,
}

impl Deltas {
    /// The rows `detail` adds to `usage_rollups`, their tenant totals, and `peaks`.
    pub fn new(detail: BTreeMap<RollupKey, Totals>, peaks: Vec<(PeakKey, PerMille)>) -> Self {
        let totals = rollup::totals_of(&detail);
        Self {
            detail: Part::new(TABLES[0], detail),
            totals: Part::new(TABLES[1], totals),
            peaks,
        }
    }
}

impl Part {
    fn new(table: &'static str, rows: BTreeMap<RollupKey, Totals>) -> Self {
        let rows: Vec<Row> = rows.into_iter().collect();
        let sketches = rows.iter().map(|(_, t)| t.latency.encode()).collect();
        let endpoints = (table == TOTALS).then(|| {
            rows.iter()
                .map(|(_, t)| t.endpoints_json().to_string())
                .collect()
        });
        Self {
            table,
            rows,
            sketches,
            endpoints,
        }
    }

    /// Where the row of `key` is: the rows are in key order, so a binary search finds it
    /// (an index of owned keys cost a hash entry and three strings per row).
    fn position(&self, key: &RowKey) -> Option<usize> {
        let (granularity, bucket, tenant, key_id, endpoint, method, class) = key;
        let granularity = rollup::Granularity::parse(granularity)?;
        let wanted = (
            granularity,
            *bucket,
            *tenant,
            *key_id,
            endpoint.as_str(),
            method.as_str(),
            *class,
        );
        self.rows
            .binary_search_by(|(k, _)| {
                (
                    k.granularity,
                    k.bucket_start,
                    k.tenant_id,
                    k.key_id,
                    &*k.endpoint,
                    &*k.method,
                    k.status_class,
                )
                    .cmp(&wanted)
            })
            .ok()
    }

    /// For a row the upsert returned: `None` when the row is new (nothing left to do), else
    /// the merged status codes (JSON text) and sketch to write back.
    pub fn merged(
        &self,
        key: &RowKey,
        stored_count: i64,
        stored_codes: &serde_json::Value,
        stored_sketch: &[u8],
    ) -> Result<Option<(String, Vec<u8>)>, String> {
        let i = self
            .position(key)
            .ok_or_else(|| format!("the upsert returned a row it was not given: {key:?}"))?;
        let delta = &self.rows[i].1;
        if stored_count == delta.count {
            return Ok(None);
        }
        let mut codes: BTreeMap<u16, i64> =
            parse_status_codes(stored_codes).map_err(|err| err.to_string())?;
        for (code, n) in &delta.status_codes {
            *codes.entry(*code).or_default() += n;
        }
        let mut sketch = delta.latency.clone();
        sketch
            .merge_encoded(stored_sketch)
            .map_err(|err| err.to_string())?;
        Ok(Some((
            status_codes_json(&codes).to_string(),
            sketch.encode(),
        )))
    }
}

/// The columns of an upsert, in order.
pub(super) const COLUMNS: [&str; 18] = [
    "granularity",
    "bucket_start",
    "tenant_id",
    "key_id",
    "endpoint",
    "method",
    "status_class",
    "count",
    "status_codes",
    "bytes_in",
    "bytes_out",
    "tokens_in",
    "tokens_out",
    "cost_nanos",
    "latency_sum_us",
    "latency_max_us",
    "latency_sketch",
    "updated_at",
];

/// The columns of an upsert into `table`: [`COLUMNS`], and `endpoints` on the totals.
pub(super) fn columns(table: &str) -> Vec<&'static str> {
    let mut columns = COLUMNS.to_vec();
    if table == TOTALS {
        columns.push("endpoints");
    }
    columns
}

/// The conflict target: the primary key.
pub(super) const KEY: &str =
    "granularity, bucket_start, tenant_id, key_id, endpoint, method, status_class";

/// What the upsert into `table` adds on conflict; `max` is the backend's two-argument
/// maximum, `union` its merge of two JSON objects (the totals' endpoint sets), `extra` more
/// columns to return.
pub(super) fn on_conflict(
    table: &str,
    max: &str,
    union: fn(&str, &str) -> String,
    extra: &str,
) -> String {
    let add = [
        "count",
        "bytes_in",
        "bytes_out",
        "tokens_in",
        "tokens_out",
        "cost_nanos",
        "latency_sum_us",
    ]
    .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
    .join(", ");
    let endpoints = if table == TOTALS {
        let united = union(&format!("{table}.endpoints"), "excluded.endpoints");
        format!(", endpoints = {united}")
    } else {
        String::new()
    };
    format!(
        "ON CONFLICT ({KEY}) DO UPDATE SET {add}, \
         latency_max_us = {max}({table}.latency_max_us, excluded.latency_max_us){endpoints}, \
         updated_at = excluded.updated_at \
         RETURNING {KEY}, count, status_codes, latency_sketch{extra}"
    )
}
