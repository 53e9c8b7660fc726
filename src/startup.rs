//! The one start-up path, shared by `main` and the tests: connect, migrate, build the state,
//! bind, and run HTTP plus background jobs until one cancellation token fires.

use std::{net::TcpListener, sync::Arc, time::Duration};

use actix_web::{HttpServer, dev::Server, web};
use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{
    config::Settings,
    crypto::MasterKey,
    db,
    gateway::Gateway,
    http::{self, ApiDocument, KnownRoutes},
    jobs,
    keys::{cache::KeyCache, events::KeyEvents},
    kv::{Redis, bus::Bus},
    limits::Limiter,
    metering::{self, Recorder, live::LiveHub},
    state::AppState,
    telemetry,
};

pub struct Application {
    port: u16,
    server: Server,
    state: AppState,
    cancel: CancellationToken,
    background: Vec<JoinHandle<()>>,
    metering: metering::Pipeline,
}

impl Application {
    /// Builds everything from finalized settings; binds `server.addr` (port 0 picks a free one).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        telemetry::metrics_handle();
        let mut state = build_state(settings).await?;
        let settings = state.settings.clone();
        let listener = TcpListener::bind(settings.socket_addr())
            .with_context(|| format!("binding {}", settings.server.addr))?;
        let port = listener.local_addr()?.port();
        let grace = Duration::from_secs(settings.server.shutdown_timeout_secs);
        let cancel = CancellationToken::new();
        let live_bus = match &state.redis {
            Some(redis) => Some(Bus::new(redis, &settings.redis, "live")?),
            None => None,
        };
        state.live = LiveHub::start(cancel.clone(), live_bus);
        let metering = metering::start(
            &settings.database,
            &settings.metering,
            grace,
            state.live.clone(),
        )
        .await?;
        state.recorder = metering.recorder();
        let spec = http::openapi::spec();
        let known = web::Data::new(KnownRoutes::from_openapi(&spec));
        let document = ApiDocument::of(&spec).context("serializing the OpenAPI document")?;
        let document = web::Data::new(document);
        drop(spec);
        let app_state = state.clone();
        let mut server =
            HttpServer::new(move || http::app(app_state.clone(), known.clone(), document.clone()))
                .disable_signals()
                .shutdown_timeout(settings.server.shutdown_timeout_secs)
                .listen(listener)?;
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        let mut background = if settings.jobs.in_process {
            jobs::spawn_all(&state, &cancel)
        } else {
            Vec::new()
        };
        background.extend(state.key_events.spawn_subscriber(cancel.clone()));
        Ok(Self {
            port,
            server: server.run(),
            state,
            cancel,
            background,
            metering,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The token that stops the whole application when cancelled.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Serves until the token is cancelled, then drains HTTP (in-flight requests finish),
    /// waits for background tasks, each bounded by `server.shutdown_timeout_secs`, and drains
    /// the usage-event buffer (committed, or spooled when the database is down).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let cancel = self.cancel.clone();
        tokio::spawn(async move {
            cancel.cancelled().await;
            handle.stop(true).await;
        });
        let served = self.server.await;
        self.cancel.cancel();
        let grace = Duration::from_secs(self.state.settings.server.shutdown_timeout_secs);
        for task in self.background {
            if tokio::time::timeout(grace, task).await.is_err() {
                tracing::warn!("a background task did not stop within the shutdown timeout");
            }
        }
        // After HTTP: every event recorded by a request is in the buffer by now.
        self.metering.shutdown().await;
        self.state.db.clone().close().await.ok();
        served.context("HTTP server failed")
    }
}

/// Connects the database (migrating when configured) and Redis.
pub async fn build_state(settings: Settings) -> anyhow::Result<AppState> {
    let db = db::connect(&settings.database).await?;
    if settings.database.migrate_on_start {
        db::migrate(&db).await?;
    }
    let redis = match settings.redis.url.is_empty() {
        true => None,
        false => Some(Redis::connect(&settings.redis)?),
    };
    if let Some(redis) = &redis {
        redis.connect_now();
    }
    let crypto = MasterKey::from_settings(&settings.crypto)?;
    let key_cache = KeyCache::new(&settings.keys, &settings.limits);
    let key_events = KeyEvents::new(key_cache.clone(), redis.as_ref(), &settings.redis)?;
    let limiter = Arc::new(Limiter::from_settings(redis.as_ref(), &settings.limits));
    let gateway = Gateway::from_settings(&settings.gateway)?;
    Ok(AppState {
        db,
        redis,
        crypto,
        recorder: Recorder::disabled(),
        live: LiveHub::default(),
        key_cache,
        limiter,
        key_events,
        gateway,
        settings: Arc::new(settings),
        demo_login: Arc::default(),
    })
}

/// Runs background jobs only (`tollgate worker`) until `cancel` fires.
pub async fn run_workers(state: AppState, cancel: CancellationToken) {
    for task in jobs::spawn_all(&state, &cancel) {
        let _ = task.await;
    }
}

/// Cancels `token` on SIGTERM or SIGINT.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate()).expect("installing SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown signal received; draining");
        token.cancel();
    });
}
