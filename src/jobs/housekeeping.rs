//! Housekeeping: keeps daily `usage_events` partitions ready ahead of time (PostgreSQL),
//! applies usage-data retention (`metering::retention`) and deletes idempotency records past
//! their expiry. Idempotent; safe on several workers.

use chrono::Utc;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::{config::RetentionSettings, db, entities::idempotency_keys, metering::retention};

pub async fn run(db: &DatabaseConnection, retention: &RetentionSettings) -> anyhow::Result<()> {
    let now = Utc::now();
    db::ensure_event_partitions(db, now.date_naive()).await?;
    let removed = retention::run(db, retention, now).await?;
    tracing::info!(
        partitions_dropped = removed.partitions_dropped,
        events_deleted = removed.events_deleted,
        rollups_deleted = removed.rollups_deleted,
        "usage retention applied"
    );
    let purged = idempotency_keys::Entity::delete_many()
        .filter(idempotency_keys::Column::ExpiresAt.lt(now))
        .exec(db)
        .await?
        .rows_affected;
    tracing::info!(purged_idempotency_keys = purged, "housekeeping done");
    Ok(())
}
