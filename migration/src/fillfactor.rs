//! `ALTER TABLE … SET (fillfactor = …)` on PostgreSQL; SQLite has no such setting.

use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::prelude::*;

/// Sets `setting` (e.g. `fillfactor = 70`) on each of `tables`; a no-op on SQLite.
pub async fn set(manager: &SchemaManager<'_>, tables: &[&str], setting: &str) -> Result<(), DbErr> {
    let db = manager.get_connection();
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    for table in tables {
        db.execute_unprepared(&format!("ALTER TABLE {table} SET ({setting})"))
            .await?;
    }
    Ok(())
}
