//! The binary end to end: `migrate` twice, `openapi --check`, `serve --addr` answering and
//! draining on SIGTERM with exit 0, `demo` and `admin create-user`.

use std::{
    net::TcpListener,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::helpers::{PgDatabase, test_settings};

/// The environment that points the binary at this test's backends, and what must outlive it.
pub(crate) struct BackendEnv {
    pub(crate) vars: Vec<(String, String)>,
    _dir: tempfile::TempDir,
    _pg: Option<PgDatabase>,
}

pub(crate) async fn backend_env() -> BackendEnv {
    let (settings, dir, pg) = test_settings().await;
    let mut vars = vec![(
        "TOLLGATE__DATA__DIR".to_owned(),
        dir.path().display().to_string(),
    )];
    if let Some(pg) = &pg {
        vars.push(("DATABASE_URL".into(), pg.url.clone()));
        vars.push((
            "TOLLGATE__AUTH__JWT_SECRET".into(),
            settings.auth.jwt_secret.expose().into(),
        ));
        vars.push((
            "TOLLGATE__CRYPTO__MASTER_KEY".into(),
            settings.crypto.master_key.expose().into(),
        ));
    }
    if !settings.redis.url.is_empty() {
        vars.push(("REDIS_URL".into(), settings.redis.url.expose().into()));
        vars.push((
            "TOLLGATE__REDIS__KEY_PREFIX".into(),
            settings.redis.key_prefix.clone(),
        ));
    }
    BackendEnv {
        vars,
        _dir: dir,
        _pg: pg,
    }
}

pub(crate) fn tollgate(args: &[&str], env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
    cmd.args(args)
        .env("TOLLGATE__LOG__FORMAT", "json")
        .envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

#[tokio::test]
async fn migrate_runs_twice_on_the_configured_backend() {
    let backend = backend_env().await;
    let env = &backend.vars;
    for run in 1..=2 {
        let out = tollgate(&["migrate"], env).output().unwrap();
        assert!(
            out.status.success(),
            "run {run}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn openapi_check_passes_on_the_committed_file_and_fails_on_drift() {
    let committed = format!(
        "{}/{}",
        env!("CARGO_MANIFEST_DIR"),
        tollgate::http::openapi::SPEC_PATH
    );
    let out = tollgate(&["openapi", "--check", "--output", &committed], &[])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("openapi.json");
    std::fs::write(&stale, "{}").unwrap();
    let out = tollgate(
        &["openapi", "--check", "--output", stale.to_str().unwrap()],
        &[],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test]
async fn serve_binds_the_given_address_and_exits_zero_on_sigterm() {
    let backend = backend_env().await;
    let env = &backend.vars;
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = tollgate(&["serve", "--addr", &addr], env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let ready = client.get(format!("http://{addr}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server did not become ready"
        );
        assert!(child.try_wait().unwrap().is_none(), "server exited early");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("server did not stop within 20 s of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0), "clean exit after draining");
}

#[tokio::test]
async fn demo_and_admin_create_user_are_idempotent() {
    let backend = backend_env().await;
    let env = &backend.vars;
    for _ in 0..2 {
        let out = tollgate(&["demo"], env).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(tollgate::demo::OWNER_EMAIL), "{stdout}");
        let out = tollgate(
            &["admin", "create-user", "--email", "Root@Example.com"],
            env,
        )
        .env("TOLLGATE_ADMIN_PASSWORD", "correct horse battery")
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("root@example.com"));
    }
    let out = tollgate(&["admin", "create-user", "--email", "x@example.com"], env)
        .env("TOLLGATE_ADMIN_PASSWORD", "short")
        .output()
        .unwrap();
    assert!(!out.status.success(), "a short password is refused");
}

/// The database URL the binary uses under `env`.
pub(crate) fn database_url(env: &[(String, String)]) -> String {
    let var = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    var("DATABASE_URL").unwrap_or_else(|| {
        format!(
            "sqlite://{}/tollgate.db?mode=rwc",
            var("TOLLGATE__DATA__DIR").unwrap()
        )
    })
}

#[tokio::test]
async fn admin_import_key_creates_the_tenant_when_asked_and_the_secret_then_works() {
    let backend = backend_env().await;
    let env = &backend.vars;
    let secret = "legacy_gateway_secret_0123456789";
    let import = |args: &[&str]| {
        let mut cmd = tollgate(&[&["admin", "import-key"], args].concat(), env);
        cmd.env("TOLLGATE_IMPORT_SECRET", secret);
        cmd.output().unwrap()
    };
    let out = import(&[
        "--create-tenant",
        "Legacy Co",
        "--name",
        "legacy",
        "--per-minute",
        "50",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("imported key key_") && stdout.contains("into tenant tnt_"),
        "{stdout}"
    );
    assert!(!stdout.contains(secret) && !String::from_utf8_lossy(&out.stderr).contains(secret));

    let again = import(&["--tenant", "legacy-co", "--name", "dup"]);
    assert!(!again.status.success(), "a secret already known is refused");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already registered"));
    let missing = import(&["--tenant", "no-such-tenant", "--name", "x"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("No tenant `no-such-tenant`"));

    let settings = tollgate::config::DatabaseSettings {
        url: tollgate::config::SecretUrl::new(database_url(env)),
        max_connections: 2,
        acquire_timeout_secs: 5,
        migrate_on_start: false,
    };
    let db = tollgate::db::connect(&settings).await.unwrap();
    let key = tollgate::keys::resolve::resolve(&db, secret, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(key.name, "legacy");
    assert_eq!(key.limit_per_minute, Some(50));
    assert_eq!(key.source, "imported");
}
