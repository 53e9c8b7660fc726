//! Reading rollup rows for a [`Question`]: tenant scope and filters applied in SQL, always.

use std::collections::BTreeSet;

use futures_util::future::try_join_all;
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use super::{Question, Tenants, Window};
use crate::{
    Result,
    entities::{usage_events, usage_rollup_totals, usage_rollups},
    ids::TenantId,
    metering::rollup::{self, Granularity},
};

/// Which rollups a report reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// `usage_rollups`: per key and endpoint.
    Detail,
    /// `usage_rollup_totals`: per tenant, method and status class — a few rows per bucket.
    Totals,
}

impl Level {
    /// The totals when the question's filter allows them (no key, no endpoint), else detail.
    pub fn for_question(question: &Question) -> Self {
        if question.filter.by_tenant_only() {
            Level::Totals
        } else {
            Level::Detail
        }
    }
}

/// The rows of `granularity` whose buckets start inside `window`, from the `level`'s table
/// (totals rows read as rollup rows with a nil key and endpoint `*`).
pub async fn rows(
    db: &impl ConnectionTrait,
    question: &Question,
    granularity: Granularity,
    window: Window,
    level: Level,
) -> Result<Vec<usage_rollups::Model>> {
    if level == Level::Totals {
        let rows = totals(db, question, granularity, window).await?;
        return Ok(rows.into_iter().map(Into::into).collect());
    }
    use usage_rollups::Column;
    let condition = bucket_condition(
        [Column::Granularity, Column::BucketStart, Column::TenantId],
        question,
        granularity,
        window,
    )
    .add(question.filter.on_rollups());
    Ok(usage_rollups::Entity::find()
        .filter(condition)
        .order_by_asc(Column::BucketStart)
        .all(db)
        .await?)
}

async fn totals(
    db: &impl ConnectionTrait,
    question: &Question,
    granularity: Granularity,
    window: Window,
) -> Result<Vec<usage_rollup_totals::Model>> {
    use usage_rollup_totals::Column;
    let condition = bucket_condition(
        [Column::Granularity, Column::BucketStart, Column::TenantId],
        question,
        granularity,
        window,
    )
    .add(question.filter.on_totals());
    Ok(usage_rollup_totals::Entity::find()
        .filter(condition)
        .order_by_asc(Column::BucketStart)
        .all(db)
        .await?)
}

/// The rows covering the question's window exactly, with the fewest buckets
/// ([`Window::cover`]).
pub async fn covering(
    db: &impl ConnectionTrait,
    question: &Question,
    level: Level,
) -> Result<Vec<usage_rollups::Model>> {
    let parts = question.window.cover();
    let read = parts
        .into_iter()
        .map(|(granularity, part)| rows(db, question, granularity, part, level));
    Ok(try_join_all(read).await?.into_iter().flatten().collect())
}

/// The tenant-totals rows covering the question's window (as [`covering`] at
/// [`Level::Totals`]) and the distinct endpoint templates called in it, from the rows' endpoint
/// sets.
pub async fn covering_totals(
    db: &impl ConnectionTrait,
    question: &Question,
) -> Result<(Vec<usage_rollups::Model>, BTreeSet<String>)> {
    let parts = question.window.cover();
    let read = parts
        .into_iter()
        .map(|(granularity, part)| totals(db, question, granularity, part));
    let mut all = Vec::new();
    let mut endpoints = BTreeSet::new();
    for rows in try_join_all(read).await? {
        for row in rows {
            let called = rollup::parse_endpoints(&row.endpoints).map_err(crate::Error::internal)?;
            endpoints.extend(called.map(str::to_owned));
            all.push(row.into());
        }
    }
    Ok((all, endpoints))
}

/// Buckets of `granularity` starting in `window`, of the question's tenant; `columns` are a
/// rollup table's granularity, bucket start and tenant.
fn bucket_condition<C: ColumnTrait>(
    [granularity_column, bucket, tenant_column]: [C; 3],
    question: &Question,
    granularity: Granularity,
    window: Window,
) -> Condition {
    let condition = Condition::all()
        .add(granularity_column.eq(granularity.as_str()))
        .add(bucket.gte(window.from))
        .add(bucket.lt(window.to));
    match question.tenants {
        Tenants::One(TenantId(tenant)) => condition.add(tenant_column.eq(tenant)),
        Tenants::All => condition,
    }
}

/// `key_id` -> (name, last used) of the keys among `ids`.
pub async fn key_names(
    db: &impl ConnectionTrait,
    ids: impl IntoIterator<Item = Uuid>,
) -> Result<std::collections::HashMap<Uuid, crate::entities::api_keys::Model>> {
    use crate::entities::api_keys;
    let ids: Vec<Uuid> = ids.into_iter().filter(|id| !id.is_nil()).collect();
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let mut found = std::collections::HashMap::new();
    for chunk in ids.chunks(500) {
        for key in api_keys::Entity::find()
            .filter(api_keys::Column::Id.is_in(chunk.iter().copied()))
            .all(db)
            .await?
        {
            found.insert(key.id, key);
        }
    }
    Ok(found)
}

/// The currency of each tenant among `ids`.
pub async fn currencies(
    db: &impl ConnectionTrait,
    ids: impl IntoIterator<Item = Uuid>,
) -> Result<std::collections::HashMap<Uuid, String>> {
    use crate::entities::tenants;
    let ids: Vec<Uuid> = ids.into_iter().collect();
    let mut found = std::collections::HashMap::new();
    for chunk in ids.chunks(500) {
        for tenant in tenants::Entity::find()
            .filter(tenants::Column::Id.is_in(chunk.iter().copied()))
            .all(db)
            .await?
        {
            found.insert(tenant.id, tenant.currency);
        }
    }
    Ok(found)
}

/// Raw events of the question's window, filtered, in `order`, at most `limit`.
pub async fn events(
    db: &impl ConnectionTrait,
    question: &Question,
    extra: Condition,
    order: (usage_events::Column, sea_orm::Order),
    limit: u64,
) -> Result<Vec<usage_events::Model>> {
    use sea_orm::QuerySelect;
    use usage_events::Column;
    let window = question.window;
    let mut condition = extra
        .add(Column::OccurredAt.gte(window.from))
        .add(Column::OccurredAt.lt(window.to));
    if let Tenants::One(TenantId(tenant)) = question.tenants {
        condition = condition.add(Column::TenantId.eq(tenant));
    }
    condition = condition.add(question.filter.on_events());
    Ok(usage_events::Entity::find()
        .filter(condition)
        .order_by(order.0, order.1)
        .order_by_desc(Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}
