//! Shared application state handed to every handler and background task.

use std::sync::{Arc, OnceLock};

use sea_orm::DatabaseConnection;

use crate::{
    config::Settings,
    crypto::MasterKey,
    gateway::Gateway,
    keys::{cache::KeyCache, events::KeyEvents},
    kv::Redis,
    limits::Limiter,
    metering::{Recorder, live::LiveHub},
};

#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    /// Present in production mode; `None` means in-process counters.
    pub redis: Option<Redis>,
    /// Encrypts secrets at rest (`crypto.master_key`).
    pub crypto: MasterKey,
    /// Records usage events without waiting (`metering`); disabled outside `serve`.
    pub recorder: Recorder,
    /// Committed events for the live feed (`metering::live`); silent outside `serve`.
    pub live: LiveHub,
    /// API keys of the hot path, resolved in-process (`keys::cache`).
    pub key_cache: KeyCache,
    /// Announces key changes to every node's cache (`keys::events`).
    pub key_events: KeyEvents,
    /// Decides rate limits: Redis-backed when configured, else in-process (`limits`).
    pub limiter: Arc<Limiter>,
    /// The reverse proxy's routes and its upstream client (`gateway`).
    pub gateway: Gateway,
    pub settings: Arc<Settings>,
    /// The demo logins, shown on the dashboard's login page when `serve --demo` seeded them.
    pub demo_login: Arc<OnceLock<String>>,
}
