//! Shared application state handed to every handler and background task.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::{config::Settings, kv::Redis};

#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    /// Present in production mode; `None` means in-process counters.
    pub redis: Option<Redis>,
    pub settings: Arc<Settings>,
}
