//! Housekeeping: keeps daily `usage_events` partitions ready ahead of time (PostgreSQL) and
//! deletes idempotency records past their expiry. Idempotent; safe on several workers.

use chrono::Utc;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::{db, entities::idempotency_keys};

pub async fn run(db: &DatabaseConnection) -> anyhow::Result<()> {
    let now = Utc::now();
    db::ensure_event_partitions(db, now.date_naive()).await?;
    let purged = idempotency_keys::Entity::delete_many()
        .filter(idempotency_keys::Column::ExpiresAt.lt(now))
        .exec(db)
        .await?
        .rows_affected;
    tracing::info!(purged_idempotency_keys = purged, "housekeeping done");
    Ok(())
}
