//! Settings: layering, validation with one line naming the setting, secrets generated once in
//! embedded mode and required in production, redaction in the logged configuration.

use std::process::{Command, Output};

use tollgate::config::{Mode, SecretUrl, Settings};

/// Runs the real binary with a clean environment plus `envs`.
fn tollgate(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TOLLGATE__DATA__DIR", dir.path())
        .envs(envs.iter().copied())
        .output()
        .expect("tollgate runs")
}

fn assert_config_error(output: &Output, setting: &str) {
    assert_eq!(output.status.code(), Some(2), "exit code for a bad setting");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected, got: {stderr}");
    assert!(
        lines[0].contains(&format!("`{setting}`")),
        "must name {setting}: {stderr}"
    );
}

#[test]
fn a_bad_value_exits_with_one_line_naming_the_setting() {
    let out = tollgate(
        &["migrate"],
        &[("TOLLGATE__SERVER__ADDR", "not-an-address")],
    );
    assert_config_error(&out, "server.addr");
    let out = tollgate(
        &["migrate"],
        &[("TOLLGATE__DATABASE__MAX_CONNECTIONS", "many")],
    );
    assert_config_error(&out, "database.max_connections");
    let out = tollgate(&["migrate"], &[("REDIS_URL", "http://localhost")]);
    assert_config_error(&out, "redis.url");
    let out = tollgate(&["migrate"], &[("TOLLGATE__LOG__FORMAT", "xml")]);
    assert_config_error(&out, "log.format");
    let out = tollgate(
        &["migrate"],
        &[("TOLLGATE__METERING__WRITER_CONNECTIONS", "0")],
    );
    assert_config_error(&out, "metering.writer_connections");
    let out = tollgate(&["migrate"], &[("TOLLGATE__METERING__WRITER_NICE", "20")]);
    assert_config_error(&out, "metering.writer_nice");
}

#[test]
fn production_mode_requires_its_secrets() {
    // Validation happens before any connection, so no server is needed at this URL.
    let pg = (
        "DATABASE_URL",
        "postgres://app:hunter2@127.0.0.1:1/tollgate",
    );
    let out = tollgate(&["migrate"], &[pg]);
    assert_config_error(&out, "auth.jwt_secret");
    let jwt = (
        "TOLLGATE__AUTH__JWT_SECRET",
        "0123456789abcdef0123456789abcdef",
    );
    let out = tollgate(&["migrate"], &[pg, jwt]);
    assert_config_error(&out, "crypto.master_key");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("hunter2"));
}

#[tokio::test]
async fn embedded_mode_generates_secrets_once_and_keeps_them() {
    let (settings, dir, _pg) = crate::helpers::test_settings().await;
    let mut embedded = settings.clone();
    embedded.database.url = SecretUrl::default();
    embedded.auth.jwt_secret = Default::default();
    embedded.crypto.master_key = Default::default();
    let first = embedded.clone().finalize().unwrap();
    let second = embedded.finalize().unwrap();
    assert_eq!(first.mode(), Mode::Embedded);
    assert!(first.auth.jwt_secret.expose().len() >= 32);
    assert_eq!(first.auth.jwt_secret, second.auth.jwt_secret);
    assert_eq!(first.crypto.master_key, second.crypto.master_key);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("jwt.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn logged_configuration_redacts_secrets() {
    let mut settings = Settings::load(None).unwrap();
    settings.database.url = SecretUrl::new("postgres://app:hunter2@db.internal/tollgate");
    settings.auth.jwt_secret = tollgate::config::Secret::new("super-secret-signing-key-0123456789");
    let logged = serde_json::to_string(&settings).unwrap();
    assert!(!logged.contains("hunter2"), "{logged}");
    assert!(!logged.contains("super-secret"), "{logged}");
    assert!(
        logged.contains("postgres://app:***@db.internal/tollgate"),
        "{logged}"
    );
    assert!(format!("{settings:?}").contains("[redacted]"));
    assert!(!format!("{settings:?}").contains("hunter2"));
}

#[test]
fn a_config_file_overrides_defaults_and_env_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tollgate.toml");
    std::fs::write(
        &file,
        "[server]\naddr = \"127.0.0.1:9999\"\n[limits]\nper_minute = 7\n",
    )
    .unwrap();
    let settings = Settings::load(Some(&file)).unwrap();
    assert_eq!(settings.server.addr, "127.0.0.1:9999");
    assert_eq!(settings.limits.per_minute, 7);
    assert_eq!(
        settings.limits.per_hour, 1000,
        "untouched settings keep their default"
    );
    let out = tollgate(
        &["--config", file.to_str().unwrap(), "migrate"],
        &[("TOLLGATE__LIMITS__PER_MINUTE", "0")],
    );
    assert_config_error(&out, "limits.per_minute");
}
