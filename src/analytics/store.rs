//! Reading rollup rows for a [`Question`]: tenant scope and filters applied in SQL, always.

use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use super::{Question, Tenants, Window};
use crate::{
    Result,
    entities::{usage_events, usage_rollups},
    ids::TenantId,
    metering::rollup::Granularity,
};

/// The rows of `granularity` whose buckets start inside `window`.
pub async fn rows(
    db: &impl ConnectionTrait,
    question: &Question,
    granularity: Granularity,
    window: Window,
) -> Result<Vec<usage_rollups::Model>> {
    use usage_rollups::Column;
    let mut condition = Condition::all()
        .add(Column::Granularity.eq(granularity.as_str()))
        .add(Column::BucketStart.gte(window.from))
        .add(Column::BucketStart.lt(window.to));
    if let Tenants::One(TenantId(tenant)) = question.tenants {
        condition = condition.add(Column::TenantId.eq(tenant));
    }
    condition = condition.add(question.filter.on_rollups());
    Ok(usage_rollups::Entity::find()
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
) -> Result<Vec<usage_rollups::Model>> {
    let mut all = Vec::new();
    for (granularity, part) in question.window.cover() {
        all.extend(rows(db, question, granularity, part).await?);
    }
    Ok(all)
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
