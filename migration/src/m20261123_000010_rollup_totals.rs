//! `usage_rollup_totals`: a tenant's rollups without the key and endpoint dimensions — one row
//! per (granularity, bucket, tenant, method, status class), `key_id` nil and `endpoint` `*` —
//! so questions about a tenant's whole traffic read a few rows per bucket instead of one per
//! key and endpoint. Same columns and key as `usage_rollups`; the metering writer adds both in
//! the events' transaction. The rows already in `usage_rollups` are summed into it here,
//! bucket by bucket (latency sketches merged as HDR histograms, status codes added up).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use hdrhistogram::{
    Histogram,
    serialization::{Deserializer, Serializer, V2Serializer},
};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement, Value};
use sea_orm_migration::{prelude::*, schema::*};
use uuid::Uuid;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Totals::Table)
                    .col(text(Totals::Granularity))
                    .col(timestamp_with_time_zone(Totals::BucketStart))
                    .col(uuid(Totals::TenantId))
                    .col(uuid(Totals::KeyId))
                    .col(text(Totals::Endpoint))
                    .col(text(Totals::Method))
                    .col(small_integer(Totals::StatusClass))
                    .col(big_integer(Totals::Count))
                    .col(json_binary(Totals::StatusCodes))
                    .col(big_integer(Totals::BytesIn))
                    .col(big_integer(Totals::BytesOut))
                    .col(big_integer(Totals::TokensIn))
                    .col(big_integer(Totals::TokensOut))
                    .col(big_integer(Totals::CostNanos))
                    .col(big_integer(Totals::LatencySumUs))
                    .col(big_integer(Totals::LatencyMaxUs))
                    .col(blob(Totals::LatencySketch))
                    .col(timestamp_with_time_zone(Totals::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(Totals::TenantId)
                            .col(Totals::Granularity)
                            .col(Totals::BucketStart)
                            .col(Totals::KeyId)
                            .col(Totals::Endpoint)
                            .col(Totals::Method)
                            .col(Totals::StatusClass),
                    )
                    .to_owned(),
            )
            .await?;
        backfill(manager.get_connection()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Totals::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Totals {
    #[sea_orm(iden = "usage_rollup_totals")]
    Table,
    Granularity,
    BucketStart,
    TenantId,
    KeyId,
    Endpoint,
    Method,
    StatusClass,
    Count,
    StatusCodes,
    BytesIn,
    BytesOut,
    TokensIn,
    TokensOut,
    CostNanos,
    LatencySumUs,
    LatencyMaxUs,
    LatencySketch,
    UpdatedAt,
}

/// Rows read per page; a page ends on a whole bucket.
const PAGE: u64 = 20_000;

/// The columns a totals row adds up, in `Sum::added` order.
const ADDED: [&str; 6] = [
    "bytes_in",
    "bytes_out",
    "tokens_in",
    "tokens_out",
    "cost_nanos",
    "latency_sum_us",
];

/// One totals row being summed.
#[derive(Default)]
struct Sum {
    count: i64,
    codes: BTreeMap<String, i64>,
    added: [i64; 6],
    latency_max_us: i64,
    sketch: Option<Histogram<u64>>,
}

type GroupKey = (DateTime<Utc>, Uuid, String, i16);

/// Sums every `usage_rollups` row into `usage_rollup_totals`, one granularity and one page of
/// whole buckets at a time (memory stays bounded by a page).
pub async fn backfill(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    for granularity in ["minute", "hour", "day"] {
        let mut after: Option<DateTime<Utc>> = None;
        loop {
            let mut rows = page(db, granularity, Bucket::After(after)).await?;
            let Some(last) = rows.last() else { break };
            let last: DateTime<Utc> = last.try_get("", "bucket_start")?;
            if rows.len() as u64 == PAGE {
                // The last bucket may go on past the page: read it whole.
                let mut whole = Vec::with_capacity(rows.len());
                for row in rows {
                    if row.try_get::<DateTime<Utc>>("", "bucket_start")? < last {
                        whole.push(row);
                    }
                }
                whole.extend(page(db, granularity, Bucket::At(last)).await?);
                rows = whole;
            }
            insert(db, granularity, sum(db.get_database_backend(), &rows)?).await?;
            after = Some(last);
        }
    }
    Ok(())
}

/// Which rows [`page`] reads.
enum Bucket {
    /// The first [`PAGE`] rows after this bucket (from the first without one), in order.
    After(Option<DateTime<Utc>>),
    /// Every row of this bucket.
    At(DateTime<Utc>),
}

async fn page(
    db: &impl ConnectionTrait,
    granularity: &str,
    which: Bucket,
) -> Result<Vec<QueryResult>, DbErr> {
    let backend = db.get_database_backend();
    let mut sql = "SELECT bucket_start, tenant_id, method, status_class, count, status_codes, \
         bytes_in, bytes_out, tokens_in, tokens_out, cost_nanos, latency_sum_us, \
         latency_max_us, latency_sketch FROM usage_rollups WHERE granularity = $1"
        .to_owned();
    let mut values: Vec<Value> = vec![granularity.into()];
    match which {
        Bucket::After(None) => sql.push_str(&format!(" ORDER BY bucket_start LIMIT {PAGE}")),
        Bucket::After(Some(after)) => {
            sql.push_str(&format!(
                " AND bucket_start > $2 ORDER BY bucket_start LIMIT {PAGE}"
            ));
            values.push(after.into());
        }
        Bucket::At(at) => {
            sql.push_str(" AND bucket_start = $2");
            values.push(at.into());
        }
    }
    if backend == DbBackend::Sqlite {
        sql = sql.replace("$1", "?").replace("$2", "?");
    }
    db.query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await
}

fn sum(backend: DbBackend, rows: &[QueryResult]) -> Result<BTreeMap<GroupKey, Sum>, DbErr> {
    let corrupt = |what: String| DbErr::Custom(format!("usage_rollups: {what}"));
    let mut sums: BTreeMap<GroupKey, Sum> = BTreeMap::new();
    for row in rows {
        let key: GroupKey = (
            row.try_get("", "bucket_start")?,
            row.try_get("", "tenant_id")?,
            row.try_get("", "method")?,
            row.try_get("", "status_class")?,
        );
        let codes: serde_json::Value = match backend {
            DbBackend::Postgres => row.try_get("", "status_codes")?,
            _ => {
                let text: String = row.try_get("", "status_codes")?;
                serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?
            }
        };
        let bytes: Vec<u8> = row.try_get("", "latency_sketch")?;
        let mut sketch: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| corrupt(format!("latency sketch: {e:?}")))?;
        // As the writer's sketches: the counts array grows with the largest latency.
        sketch.auto(true);
        let s = sums.entry(key).or_default();
        s.count += row.try_get::<i64>("", "count")?;
        for (code, n) in codes.as_object().into_iter().flatten() {
            *s.codes.entry(code.clone()).or_default() += n.as_i64().unwrap_or(0);
        }
        for (total, column) in s.added.iter_mut().zip(ADDED) {
            *total += row.try_get::<i64>("", column)?;
        }
        let max_us: i64 = row.try_get("", "latency_max_us")?;
        s.latency_max_us = Ord::max(s.latency_max_us, max_us);
        match &mut s.sketch {
            Some(merged) => merged
                .add(&sketch)
                .map_err(|e| corrupt(format!("latency sketch: {e:?}")))?,
            None => s.sketch = Some(sketch),
        }
    }
    Ok(sums)
}

async fn insert(
    db: &impl ConnectionTrait,
    granularity: &str,
    sums: BTreeMap<GroupKey, Sum>,
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let placeholders: Vec<String> = (1..=18)
        .map(|i| match backend {
            DbBackend::Postgres if i == 9 => format!("${i}::jsonb"),
            DbBackend::Postgres => format!("${i}"),
            _ => "?".to_owned(),
        })
        .collect();
    let sql = format!(
        "INSERT INTO usage_rollup_totals (granularity, bucket_start, tenant_id, key_id, \
         endpoint, method, status_class, count, status_codes, bytes_in, bytes_out, tokens_in, \
         tokens_out, cost_nanos, latency_sum_us, latency_max_us, latency_sketch, updated_at) \
         VALUES ({})",
        placeholders.join(", ")
    );
    let now = Utc::now();
    for ((bucket, tenant, method, class), s) in sums {
        let mut sketch = Vec::new();
        if let Some(merged) = &s.sketch {
            V2Serializer::new()
                .serialize(merged, &mut sketch)
                .map_err(|e| DbErr::Custom(format!("latency sketch: {e:?}")))?;
        }
        let codes = serde_json::to_string(&s.codes).expect("a map of numbers serializes");
        let mut values: Vec<Value> = vec![
            granularity.into(),
            bucket.into(),
            tenant.into(),
            Uuid::nil().into(),
            "*".into(),
            method.into(),
            class.into(),
            s.count.into(),
            codes.into(),
        ];
        values.extend(s.added.map(Value::from));
        values.extend([s.latency_max_us.into(), sketch.into(), now.into()]);
        db.execute_raw(Statement::from_sql_and_values(backend, &sql, values))
            .await?;
    }
    Ok(())
}
