//! Bucket-level pages: `usage_rollups` rows of one granularity in primary-key order
//! (`bucket_start`, tenant, key, endpoint, method, status class), read with a keyset cursor
//! on that tuple. Latency percentiles come from each row's sketch.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select,
    sea_query::{Expr, ExprTrait},
};
use uuid::Uuid;

use super::{
    Chunk, PAGE_ROWS,
    encode::{Cell, Encoder, bucket_time, decimal_millis, money},
    lookups::Lookups,
};
use crate::{
    Error, Result,
    analytics::{Filter, Question, Tenants, Window},
    entities::usage_rollups::{self, Column},
    ids::{KeyId, TenantId},
    metering::rollup::{Granularity, Totals},
};

pub const COLUMNS: [&str; 20] = [
    "bucket_start",
    "granularity",
    "tenant_id",
    "key_id",
    "key_name",
    "endpoint",
    "method",
    "status_class",
    "requests",
    "bytes_in",
    "bytes_out",
    "tokens_in",
    "tokens_out",
    "cost",
    "currency",
    "latency_avg_ms",
    "latency_max_ms",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
];

/// The key of the last row returned, after `granularity`.
type After = (DateTime<Utc>, Uuid, Uuid, String, String, i16);

pub struct Pages {
    granularity: Granularity,
    tenants: Tenants,
    /// The question's window widened to whole buckets.
    window: Window,
    filter: Filter,
    after: Option<After>,
    done: bool,
}

impl Pages {
    pub fn new(question: &Question, granularity: Granularity) -> Self {
        Self {
            granularity,
            tenants: question.tenants,
            window: question.window.aligned(granularity),
            filter: question.filter.clone(),
            after: None,
            done: false,
        }
    }

    /// The next page, encoded; `None` once every row has been returned.
    pub async fn next(
        &mut self,
        db: &DatabaseConnection,
        encoder: &mut Encoder,
        lookups: &Lookups,
    ) -> Result<Option<Chunk>> {
        if self.done {
            return Ok(None);
        }
        let rows = self.query().all(db).await?;
        self.done = (rows.len() as u64) < PAGE_ROWS;
        let Some(last) = rows.last() else {
            return Ok(None);
        };
        self.after = Some((
            last.bucket_start,
            last.tenant_id,
            last.key_id,
            last.endpoint.clone(),
            last.method.clone(),
            last.status_class,
        ));
        let cells = rows
            .iter()
            .map(|row| cells(row, lookups))
            .collect::<Result<Vec<_>>>()?;
        let bytes = encoder.rows(cells.into_iter())?;
        Ok(Some(Chunk {
            bytes,
            rows: rows.len() as u64,
        }))
    }

    fn query(&self) -> Select<usage_rollups::Entity> {
        // One lower bound only (see `events::Pages::query`).
        let from = self
            .after
            .as_ref()
            .map_or(self.window.from, |after| after.0);
        let mut query = usage_rollups::Entity::find()
            .filter(Column::Granularity.eq(self.granularity.as_str()))
            .filter(Column::BucketStart.gte(from))
            .filter(Column::BucketStart.lt(self.window.to));
        if let Tenants::One(tenant) = self.tenants {
            query = query.filter(Column::TenantId.eq(tenant.0));
        }
        if let Some(after) = &self.after {
            query = query.filter(keyset(after));
        }
        query = query.filter(self.filter.on_rollups());
        [
            Column::BucketStart,
            Column::TenantId,
            Column::KeyId,
            Column::Endpoint,
            Column::Method,
            Column::StatusClass,
        ]
        .into_iter()
        .fold(query, |query, column| query.order_by_asc(column))
        .limit(PAGE_ROWS)
    }
}

/// `(bucket_start, tenant_id, key_id, endpoint, method, status_class) > after` (a row value
/// comparison: PostgreSQL and SQLite ≥ 3.15).
fn keyset(after: &After) -> Expr {
    let columns = Expr::tuple([
        Expr::col(Column::BucketStart),
        Expr::col(Column::TenantId),
        Expr::col(Column::KeyId),
        Expr::col(Column::Endpoint),
        Expr::col(Column::Method),
        Expr::col(Column::StatusClass),
    ]);
    let values = Expr::tuple([
        Expr::value(after.0),
        Expr::value(after.1),
        Expr::value(after.2),
        Expr::value(after.3.clone()),
        Expr::value(after.4.clone()),
        Expr::value(after.5),
    ]);
    columns.gt(values)
}

fn cells<'a>(row: &'a usage_rollups::Model, lookups: &'a Lookups) -> Result<[Cell<'a>; 20]> {
    let totals = Totals::from_row(row).map_err(Error::internal)?;
    let text = |s: String| Cell::Text(s.into());
    let millis = |us: Option<i64>| us.map_or(Cell::Null, |us| Cell::Decimal(decimal_millis(us)));
    let key = (!row.key_id.is_nil()).then_some(row.key_id);
    let average = (row.count > 0).then(|| rounded_div(row.latency_sum_us, row.count));
    Ok([
        text(bucket_time(row.bucket_start)),
        Cell::Text(row.granularity.as_str().into()),
        text(TenantId(row.tenant_id).to_string()),
        key.map_or(Cell::Null, |k| text(KeyId(k).to_string())),
        lookups.key_name(key).map_or(Cell::Null, Cell::UserText),
        Cell::UserText(&row.endpoint),
        Cell::UserText(&row.method),
        text(format!("{}xx", row.status_class)),
        Cell::Int(row.count),
        Cell::Int(row.bytes_in),
        Cell::Int(row.bytes_out),
        Cell::Int(row.tokens_in),
        Cell::Int(row.tokens_out),
        Cell::Money(money(row.cost_nanos)),
        lookups
            .currency(row.tenant_id)
            .map_or(Cell::Null, Cell::UserText),
        millis(average),
        millis((row.count > 0).then_some(row.latency_max_us)),
        millis(totals.latency.quantile(0.5)),
        millis(totals.latency.quantile(0.95)),
        millis(totals.latency.quantile(0.99)),
    ])
}

/// `sum / count` rounded half up, without overflow.
fn rounded_div(sum: i64, count: i64) -> i64 {
    let (sum, count) = (i128::from(sum), i128::from(count));
    ((2 * sum + count).div_euclid(2 * count)) as i64
}
