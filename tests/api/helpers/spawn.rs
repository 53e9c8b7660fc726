//! `spawn_app()`: the real application on 127.0.0.1:0 with a fresh world per test.

use std::sync::LazyLock;

use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use tollgate::{
    config::{Secret, SecretUrl, Settings},
    startup::Application,
    state::AppState,
};
use uuid::Uuid;

use super::{
    backend::{Backends, PgDatabase},
    logs,
};

// Every log line goes to the in-memory capture; TEST_LOG=1 cargo test also prints them.
static TRACING: LazyLock<()> = LazyLock::new(logs::init);

pub struct TestApp {
    pub address: String,
    pub state: AppState,
    pub client: reqwest::Client,
    cancel: CancellationToken,
    // Dropped after the app: the database outlives the server using it.
    _data_dir: TempDir,
    _pg: Option<PgDatabase>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// `GET path` with `Authorization: Bearer token`.
    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        let request = self.client.get(self.url(path)).bearer_auth(token);
        request.send().await.expect("request sent")
    }

    /// `GET path` as `token`, asserting 200 and parsing the JSON body.
    pub async fn get_json_as(&self, path: &str, token: &str) -> serde_json::Value {
        let response = self.get_as(path, token).await;
        assert_eq!(response.status().as_u16(), 200, "GET {path}");
        response.json().await.expect("JSON body")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Settings for one test: port 0, a temp data dir, the backends from the environment.
pub async fn test_settings() -> (Settings, TempDir, Option<PgDatabase>) {
    LazyLock::force(&TRACING);
    // reqwest is built without a TLS provider of its own: the test's clients use the one
    // `serve` installs (ring), whether or not an application was built first.
    tollgate::gateway::install_tls_provider();
    let dir = tempfile::tempdir().expect("temp dir");
    let backends = Backends::from_env();
    let mut settings = Settings::load(None).expect("default settings load");
    settings.server.addr = "127.0.0.1:0".into();
    settings.server.workers = 1;
    settings.server.shutdown_timeout_secs = 5;
    settings.data.dir = dir.path().to_path_buf();
    settings.jobs.in_process = false;
    let pg = match &backends.postgres {
        Some(server) => Some(PgDatabase::create(server).await),
        None => None,
    };
    if let Some(pg) = &pg {
        settings.database.url = SecretUrl::new(pg.url.clone());
        settings.database.max_connections = 5;
        settings.auth.jwt_secret = Secret::new(format!("test-{}", Uuid::new_v4().simple()));
        settings.crypto.master_key = Secret::new(random_master_key());
    }
    if let Some(redis) = &backends.redis {
        settings.redis.url = SecretUrl::new(redis.clone());
        settings.redis.key_prefix = format!("t_{}:", Uuid::new_v4().simple());
    }
    (settings, dir, pg)
}

fn random_master_key() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like [`spawn_app`], letting the test adjust settings first.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let (mut settings, dir, pg) = test_settings().await;
    adjust(&mut settings);
    let settings = settings.finalize().expect("test settings are valid");
    start(settings, dir, pg).await
}

/// A second node of `first`'s deployment: its own process state (caches, subscriptions) on
/// the same database, data directory (secrets) and Redis prefix. Drop it before `first`.
pub async fn spawn_second_app(first: &TestApp) -> TestApp {
    let mut settings = (*first.state.settings).clone();
    settings.server.addr = "127.0.0.1:0".into();
    settings.database.migrate_on_start = false;
    let dir = tempfile::tempdir().expect("temp dir");
    // Each node spools into its own directory (the spool is locked by one process).
    settings.metering.spool_dir = dir.path().join("spool");
    start(settings, dir, None).await
}

async fn start(settings: Settings, dir: TempDir, pg: Option<PgDatabase>) -> TestApp {
    let app = Application::build(settings)
        .await
        .expect("application builds");
    let port = app.port();
    let state = app.state().clone();
    let cancel = app.cancel_token();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        state,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        cancel,
        _data_dir: dir,
        _pg: pg,
    }
}
