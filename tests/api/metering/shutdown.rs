//! Shutdown: the buffer is drained into the database, and the rollups of what it held are
//! added (waiting for the pending rows another transaction holds), before
//! `run_until_stopped` returns; with the database down everything goes to the spool, and the
//! next start replays it.

use sea_orm::{
    ColumnTrait, ConnectionTrait, Database, DatabaseBackend, EntityTrait, QueryFilter, Statement,
    TransactionTrait,
};
use tollgate::{
    config::Settings, entities::usage_rollups, ids::TenantId, metering::store::insert_events,
    startup::Application,
};

use super::{break_events_table, count_events, event, pending_rows};
use crate::helpers::{PgDatabase, require_or_skip, test_settings};

/// Settings whose writer never flushes on its own: only shutdown can store the events.
async fn lazy_writer() -> (Settings, tempfile::TempDir, Option<PgDatabase>) {
    let (mut settings, dir, pg) = test_settings().await;
    settings.metering.batch_size = 10_000;
    settings.metering.buffer_capacity = 10_000;
    settings.metering.flush_interval_ms = 3_600_000;
    (settings.finalize().unwrap(), dir, pg)
}

/// Starts the application, records `n` events of a new tenant, stops it and waits for
/// `run_until_stopped` to return.
async fn record_then_stop(settings: &Settings, n: i64, break_db: bool) {
    let app = Application::build(settings.clone()).await.unwrap();
    let state = app.state().clone();
    let cancel = app.cancel_token();
    let running = tokio::spawn(app.run_until_stopped());
    let tenant: TenantId = new_tenant_in(&state.db).await;
    for i in 0..n {
        state.recorder.record(event(tenant, None, i));
    }
    if break_db {
        break_events_table(&state.db, true).await;
    }
    cancel.cancel();
    running.await.unwrap().unwrap();
}

/// The events the minute rollups count.
async fn counted_in_minutes(db: &sea_orm::DatabaseConnection) -> i64 {
    let minutes = usage_rollups::Entity::find()
        .filter(usage_rollups::Column::Granularity.eq("minute"))
        .all(db)
        .await
        .unwrap();
    minutes.iter().map(|r| r.count).sum()
}

async fn new_tenant_in(db: &sea_orm::DatabaseConnection) -> TenantId {
    let name = tollgate::tenants::TenantName::parse("Shutdown test", "/name").unwrap();
    let ctx = tollgate::audit::Context::system("test");
    tollgate::tenants::create(db, &ctx, &name)
        .await
        .unwrap()
        .id
        .into()
}

#[tokio::test]
async fn shutdown_drains_the_buffer_into_the_database() {
    let (settings, _dir, _pg) = lazy_writer().await;
    record_then_stop(&settings, 1000, false).await;
    // The application closed its pool; count through a new connection.
    let db = Database::connect(settings.database.url.expose())
        .await
        .unwrap();
    assert_eq!(count_events(&db).await, 1000);
    // And their rollups were added before the process exited.
    assert_eq!(pending_rows(&db, None).await, 0, "nothing left pending");
    assert_eq!(counted_in_minutes(&db).await, 1000);
}

#[tokio::test]
async fn with_the_database_down_shutdown_spools_and_the_next_start_replays() {
    let (settings, _dir, _pg) = lazy_writer().await;
    record_then_stop(&settings, 300, true).await;
    let spooled: usize = std::fs::read_dir(&settings.metering.spool_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap().lines().count())
        .sum();
    assert_eq!(spooled, 300, "every buffered event is in the spool");

    let db = Database::connect(settings.database.url.expose())
        .await
        .unwrap();
    break_events_table(&db, false).await;
    assert_eq!(count_events(&db).await, 0);
    // A new start replays what the spool holds, then the spool is empty.
    let app = Application::build(settings.clone()).await.unwrap();
    let cancel = app.cancel_token();
    let running = tokio::spawn(app.run_until_stopped());
    super::wait_for_events(&db, 300).await;
    cancel.cancel();
    running.await.unwrap().unwrap();
    assert_eq!(count_events(&db).await, 300);
}

/// PostgreSQL: pending rows another transaction holds when shutdown begins (another node's
/// take, or one of this node's that shutdown interrupted, until its rollback goes through)
/// are waited for by the last passes, not skipped and left behind.
#[tokio::test]
async fn the_last_passes_wait_for_pending_rows_another_transaction_holds() {
    let test = "the_last_passes_wait_for_pending_rows_another_transaction_holds";
    let (mut settings, _dir, pg) = lazy_writer().await;
    if require_or_skip("postgres", pg.as_ref().map(|pg| pg.url.clone()), test).is_none() {
        return;
    }
    // A grace no busy machine runs out of while the rows are held.
    settings.server.shutdown_timeout_secs = 60;
    let db = Database::connect(settings.database.url.expose())
        .await
        .unwrap();
    tollgate::db::migrate(&db).await.unwrap();
    let tenant = new_tenant_in(&db).await;
    let events: Vec<_> = (0..100).map(|i| event(tenant, None, i)).collect();
    insert_events(&db, &events).await.unwrap();
    // Held before the application starts, so its running compactor only ever skips them.
    let holder = db.begin().await.unwrap();
    holder
        .execute_unprepared("SELECT seq FROM usage_rollup_pending FOR UPDATE")
        .await
        .unwrap();

    let app = Application::build(settings.clone()).await.unwrap();
    let cancel = app.cancel_token();
    let running = tokio::spawn(app.run_until_stopped());
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(pending_rows(&db, None).await > 0, "skipped while running");
    cancel.cancel();
    // Shutdown's last pass waits on the held rows; then the holder lets go (rolls back).
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                   AND wait_event_type = 'Lock' AND query LIKE '%usage_rollup_pending%'";
    let started = std::time::Instant::now();
    loop {
        assert!(
            !running.is_finished(),
            "shutdown returned while the pending rows were held: they were skipped"
        );
        let row = db
            .query_one_raw(Statement::from_string(DatabaseBackend::Postgres, waiting))
            .await
            .unwrap()
            .unwrap();
        if row.try_get_by_index::<i64>(0).unwrap() > 0 {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 30,
            "no pass waited on the held rows"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    holder.rollback().await.unwrap();
    running.await.unwrap().unwrap();
    assert_eq!(pending_rows(&db, None).await, 0, "nothing left pending");
    assert_eq!(counted_in_minutes(&db).await, 100);
}
