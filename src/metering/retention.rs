//! Retention: deletes usage data older than `[retention]` allows. Raw events go first (on
//! PostgreSQL whole daily partitions are dropped, and the default partition is trimmed); each
//! rollup granularity has its own horizon. Idempotent, safe on several workers at once.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, Statement,
};

use super::rollup::Granularity;
use crate::{
    config::RetentionSettings,
    entities::{usage_events, usage_rollup_totals, usage_rollups, usage_utilization},
};

/// What one run removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub partitions_dropped: u64,
    pub events_deleted: u64,
    pub rollups_deleted: u64,
}

/// The oldest instant kept for data retained `days` days.
pub fn horizon(now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    now - Duration::days(days.into())
}

impl RetentionSettings {
    pub fn days(&self, granularity: Granularity) -> u32 {
        match granularity {
            Granularity::Minute => self.minute_rollups_days,
            Granularity::Hour => self.hour_rollups_days,
            Granularity::Day => self.day_rollups_days,
        }
    }
}

pub async fn run(
    db: &DatabaseConnection,
    settings: &RetentionSettings,
    now: DateTime<Utc>,
) -> Result<Report, DbErr> {
    let mut report = Report::default();
    let cutoff = horizon(now, settings.events_days);
    if db.get_database_backend() == DatabaseBackend::Postgres {
        report.partitions_dropped = drop_partitions(db, cutoff).await?;
    }
    // SQLite: the table; PostgreSQL: what the dropped partitions did not hold (the default
    // partition, the cutoff day's partition).
    report.events_deleted = usage_events::Entity::delete_many()
        .filter(usage_events::Column::OccurredAt.lt(cutoff))
        .exec(db)
        .await?
        .rows_affected;
    use {usage_rollup_totals as totals, usage_rollups as rollups, usage_utilization as peaks};
    for granularity in Granularity::ALL {
        let cutoff = horizon(now, settings.days(granularity));
        // Whole buckets only: a bucket is removed once it has ended before the horizon.
        let cutoff = granularity.truncate(cutoff) - granularity.step();
        let bucket = (granularity, cutoff);
        report.rollups_deleted += delete_buckets::<rollups::Entity>(
            db,
            [rollups::Column::Granularity, rollups::Column::BucketStart],
            bucket,
        )
        .await?;
        // The tenant totals and the utilization history follow the rollups' horizon.
        delete_buckets::<totals::Entity>(
            db,
            [totals::Column::Granularity, totals::Column::BucketStart],
            bucket,
        )
        .await?;
        delete_buckets::<peaks::Entity>(
            db,
            [peaks::Column::Granularity, peaks::Column::BucketStart],
            bucket,
        )
        .await?;
    }
    Ok(report)
}

/// Deletes a bucketed table's buckets of `granularity` starting at or before `cutoff`;
/// `columns` are its granularity and bucket start.
async fn delete_buckets<E: EntityTrait>(
    db: &DatabaseConnection,
    [granularity_column, bucket]: [E::Column; 2],
    (granularity, cutoff): (Granularity, DateTime<Utc>),
) -> Result<u64, DbErr> {
    Ok(E::delete_many()
        .filter(granularity_column.eq(granularity.as_str()))
        .filter(bucket.lte(cutoff))
        .exec(db)
        .await?
        .rows_affected)
}

/// Drops the daily partitions `usage_events_YYYYMMDD` whose whole day is before `cutoff`.
async fn drop_partitions(db: &DatabaseConnection, cutoff: DateTime<Utc>) -> Result<u64, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DatabaseBackend::Postgres,
            "SELECT c.relname AS name FROM pg_inherits i \
             JOIN pg_class c ON c.oid = i.inhrelid \
             JOIN pg_class p ON p.oid = i.inhparent \
             WHERE p.relname = 'usage_events'",
        ))
        .await?;
    let mut dropped = 0;
    for row in rows {
        let name: String = row.try_get("", "name")?;
        let Some(day) = partition_day(&name) else {
            continue;
        };
        let end = day
            .succ_opt()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| d.and_utc());
        if end.is_some_and(|end| end <= cutoff) {
            // The name was read from the catalogue and matched `usage_events_` + 8 digits.
            db.execute_unprepared(&format!("DROP TABLE IF EXISTS {name}"))
                .await?;
            dropped += 1;
        }
    }
    Ok(dropped)
}

/// `usage_events_20261123` -> 2026-11-23.
fn partition_day(name: &str) -> Option<NaiveDate> {
    let digits = name.strip_prefix("usage_events_")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDate::parse_from_str(digits, "%Y%m%d").ok()
}

#[cfg(test)]
mod tests {
    use super::partition_day;

    #[test]
    fn only_daily_partition_names_parse() {
        assert_eq!(
            partition_day("usage_events_20261123"),
            chrono::NaiveDate::from_ymd_opt(2026, 11, 23)
        );
        for name in [
            "usage_events_default",
            "usage_events_2026112",
            "usage_events_2026112x",
        ] {
            assert_eq!(partition_day(name), None, "{name}");
        }
    }
}
