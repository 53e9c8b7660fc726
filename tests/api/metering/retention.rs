//! Retention: raw events past `retention.events_days` are removed (whole daily partitions
//! dropped on PostgreSQL), each rollup granularity past its own horizon; newer data stays.

use std::{collections::BTreeMap, sync::Arc};

use chrono::{Duration, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, Statement};
use tollgate::{
    db,
    entities::{usage_events, usage_rollups},
    ids::TenantId,
    metering::{
        Source, UsageEvent,
        event::method,
        retention,
        store::{compact_all, insert_events},
    },
};

use crate::helpers::spawn_app;

#[tokio::test]
async fn retention_removes_old_events_and_rollups_per_granularity() {
    let app = spawn_app().await;
    let conn = &app.state.db;
    let now = Utc::now();
    let tenant = TenantId::new();
    let ages = [Duration::days(100), Duration::days(10), Duration::hours(1)];
    let postgres = conn.get_database_backend() == DatabaseBackend::Postgres;
    let old_day = (now - ages[0]).date_naive();
    if postgres {
        // The old day gets its own partition, as it would have had when it was today.
        db::ensure_event_partitions(conn, old_day).await.unwrap();
    }
    let events: Vec<UsageEvent> = ages
        .iter()
        .map(|age| {
            let mut e = UsageEvent::new(
                Source::Ingest,
                tenant,
                None,
                Arc::from("/v1/things"),
                method("GET"),
                200,
            );
            e.occurred_at = now - *age;
            e
        })
        .collect();
    assert_eq!(insert_events(conn, &events).await.unwrap(), 3);
    compact_all(conn).await.unwrap();

    let settings = &app.state.settings.retention;
    assert_eq!(
        (
            settings.events_days,
            settings.minute_rollups_days,
            settings.hour_rollups_days
        ),
        (90, 7, 90),
        "the defaults this test is written for"
    );
    let report = retention::run(conn, settings, now).await.unwrap();
    assert_eq!(report.rollups_deleted, 3, "{report:?}");

    let kept = usage_events::Entity::find()
        .filter(usage_events::Column::TenantId.eq(tenant.0))
        .all(conn)
        .await
        .unwrap();
    assert_eq!(kept.len(), 2, "the 100-day-old event is gone");
    let mut rollups: BTreeMap<String, usize> = BTreeMap::new();
    for row in usage_rollups::Entity::find()
        .filter(usage_rollups::Column::TenantId.eq(tenant.0))
        .all(conn)
        .await
        .unwrap()
    {
        *rollups.entry(row.granularity).or_default() += 1;
    }
    // Minutes: only the last hour's; hours: 10 days and 1 hour ago; days: all three (unless
    // the 10-day-old and the recent event share nothing — they never share a day).
    assert_eq!(rollups["minute"], 1);
    assert_eq!(rollups["hour"], 2);
    assert_eq!(rollups["day"], 3);

    if postgres {
        assert!(report.partitions_dropped >= 1, "{report:?}");
        let name = format!("usage_events_{}", old_day.format("%Y%m%d"));
        let exists = conn
            .query_one_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT 1 FROM pg_class WHERE relname = $1",
                [name.clone().into()],
            ))
            .await
            .unwrap();
        assert!(exists.is_none(), "{name} was dropped");
    } else {
        assert_eq!(report.events_deleted, 1);
    }
    let again = retention::run(conn, settings, now).await.unwrap();
    assert_eq!(
        again,
        retention::Report::default(),
        "a second run removes nothing"
    );
}
