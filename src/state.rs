//! Shared application state handed to every handler and background task.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::{config::Settings, crypto::MasterKey, kv::Redis};

#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    /// Present in production mode; `None` means in-process counters.
    pub redis: Option<Redis>,
    /// Encrypts secrets at rest (`crypto.master_key`).
    pub crypto: MasterKey,
    pub settings: Arc<Settings>,
}
