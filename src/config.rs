//! Typed settings: embedded defaults -> `--config FILE` -> `TOLLGATE__SECTION__KEY` env
//! (plus `DATABASE_URL`, `REDIS_URL`), validated once at start. No other module reads the
//! environment.

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use figment::{
    Figment,
    providers::{Env, Format, Toml},
};
use serde::{Deserialize, Serialize, Serializer};

mod gateway;
mod secrets;

pub use gateway::{GatewayRoute, GatewaySettings, RESERVED_PREFIXES};
pub use secrets::{Secret, SecretUrl};

/// The defaults, compiled into the binary so `tollgate` runs with no file at all.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub jobs: JobSettings,
    pub data: DataSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub auth: AuthSettings,
    pub crypto: CryptoSettings,
    pub limits: LimitSettings,
    pub keys: KeySettings,
    pub metering: MeteringSettings,
    pub retention: RetentionSettings,
    pub gateway: GatewaySettings,
    pub email: EmailSettings,
    pub log: LogSettings,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ServerSettings {
    pub addr: String,
    pub public_url: String,
    pub body_limit_bytes: usize,
    pub workers: usize,
    pub shutdown_timeout_secs: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct JobSettings {
    pub in_process: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct DataSettings {
    pub dir: PathBuf,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct DatabaseSettings {
    pub url: SecretUrl,
    pub max_connections: u32,
    pub acquire_timeout_secs: u64,
    pub migrate_on_start: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct RedisSettings {
    pub url: SecretUrl,
    pub key_prefix: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct AuthSettings {
    pub jwt_secret: Secret,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub access_token_ttl_secs: u64,
    /// Lifetime of a dashboard session (the cookie carries a token of this lifetime).
    pub session_ttl_secs: u64,
    pub open_signup: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct CryptoSettings {
    pub master_key: Secret,
}

/// Default per-key limits; `per_month = 0` means no monthly quota.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct LimitSettings {
    pub per_minute: u64,
    pub per_hour: u64,
    pub per_day: u64,
    pub per_month: u64,
    /// What the Redis limiter does while Redis cannot answer.
    pub redis_failure: RedisFailure,
    /// Nodes sharing the limits while failing open: each enforces `limit / fail_open_share`.
    pub fail_open_share: u64,
}

/// The Redis limiter's failure policy.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RedisFailure {
    /// Keep serving with in-process limits (each node its share), warn and count it.
    FailOpen,
    /// Refuse metered calls with 503 until Redis answers again.
    FailClosed,
}

/// The in-process API key cache of the hot path (`keys::cache`).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct KeySettings {
    /// Lifetime of a cached key: the bound on staleness when an invalidation is missed.
    pub cache_ttl_secs: u64,
    /// Lifetime of a cached "no such key" answer.
    pub negative_ttl_secs: u64,
    /// Most keys cached; unknown secrets are remembered in a second cache of this size.
    pub cache_capacity: u64,
    /// How long after its last load a key's copy may still be served when reloading it
    /// fails (0: never).
    pub stale_if_error_secs: u64,
}

/// The usage-event pipeline: in-memory buffer, batch writer, spool, ingestion API.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct MeteringSettings {
    pub buffer_capacity: usize,
    pub batch_size: usize,
    /// The most events one batch takes when more are waiting (a writer that falls behind
    /// commits larger batches, in which each key's calls fold into fewer pending rollup rows); a
    /// value under `batch_size` counts as `batch_size`.
    pub max_batch_size: usize,
    pub flush_interval_ms: u64,
    /// Batches committed at once on PostgreSQL, each on its own connection (SQLite: 1).
    pub writer_connections: usize,
    /// Added to the nice value of the writer's and compactor's threads (Linux; 0-19, 0 = the
    /// request path's priority): see `metering::runtime`.
    pub writer_nice: i32,
    pub spool_dir: PathBuf,
    pub ingest_max_batch: usize,
}

/// How long usage data is kept, in days (the housekeeping job deletes what is older).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct RetentionSettings {
    /// Raw `usage_events` (whole daily partitions are dropped on PostgreSQL).
    pub events_days: u32,
    pub minute_rollups_days: u32,
    pub hour_rollups_days: u32,
    pub day_rollups_days: u32,
}

impl RetentionSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        for (name, days) in [
            ("retention.events_days", self.events_days),
            ("retention.minute_rollups_days", self.minute_rollups_days),
            ("retention.hour_rollups_days", self.hour_rollups_days),
            ("retention.day_rollups_days", self.day_rollups_days),
        ] {
            positive(name, days.into())?;
        }
        if self.minute_rollups_days > self.hour_rollups_days
            || self.hour_rollups_days > self.day_rollups_days
        {
            return Err(ConfigError::new(
                "retention.hour_rollups_days",
                "coarser rollups must be kept at least as long as finer ones \
                 (minute <= hour <= day)",
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EmailTransport {
    Outbox,
    Smtp,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct EmailSettings {
    pub transport: EmailTransport,
    pub from: String,
    pub outbox_dir: PathBuf,
    pub smtp_url: SecretUrl,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Auto,
    Json,
    Pretty,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

/// A setting that cannot be used, reported as one line naming it.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting `{setting}`: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(setting: impl Into<String>, message: impl fmt::Display) -> Self {
        Self {
            setting: setting.into(),
            message: message.to_string(),
        }
    }
}

/// Which storage the process runs on; decides which secrets must be configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// SQLite + in-process counters: `cargo run` on a laptop.
    Embedded,
    /// PostgreSQL (and usually Redis): every secret must come from configuration.
    Production,
}

impl Settings {
    /// Loads defaults, then `file`, then the environment. Validation is separate
    /// ([`Settings::finalize`]) so callers (tests) can adjust values first.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::new(
                    "--config",
                    format!("{} is not a file", path.display()),
                ));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment
            .merge(Env::prefixed("TOLLGATE__").split("__"))
            .merge(
                Env::raw()
                    .only(&["DATABASE_URL"])
                    .map(|_| "database.url".into()),
            )
            .merge(Env::raw().only(&["REDIS_URL"]).map(|_| "redis.url".into()));
        figment.extract().map_err(|err| {
            let setting = err.path.join(".");
            let setting = if setting.is_empty() {
                "config".to_owned()
            } else {
                setting
            };
            ConfigError::new(setting, err.kind)
        })
    }

    /// Fills derived values (database URL, outbox and spool dirs), validates every setting
    /// and, in embedded mode, loads or generates the secrets kept in the data directory.
    pub fn finalize(mut self) -> Result<Self, ConfigError> {
        if self.database.url.is_empty() {
            let path = self.data.dir.join("tollgate.db");
            self.database.url = SecretUrl::new(format!("sqlite://{}?mode=rwc", path.display()));
        }
        if self.email.outbox_dir.as_os_str().is_empty() {
            self.email.outbox_dir = self.data.dir.join("outbox");
        }
        if self.metering.spool_dir.as_os_str().is_empty() {
            self.metering.spool_dir = self.data.dir.join("spool");
        }
        self.validate()?;
        secrets::resolve(&mut self)?;
        Ok(self)
    }

    pub fn mode(&self) -> Mode {
        if self.database.url.expose().starts_with("postgres") {
            Mode::Production
        } else {
            Mode::Embedded
        }
    }

    pub fn socket_addr(&self) -> SocketAddr {
        self.server.addr.parse().expect("validated in finalize")
    }

    /// The base URL links point at.
    pub fn public_url(&self) -> String {
        if self.server.public_url.is_empty() {
            format!("http://{}", self.server.addr)
        } else {
            self.server.public_url.trim_end_matches('/').to_owned()
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.server.addr.parse::<SocketAddr>().map_err(|_| {
            ConfigError::new(
                "server.addr",
                format!("`{}` is not HOST:PORT", self.server.addr),
            )
        })?;
        if !self.server.public_url.is_empty() {
            check_url(
                "server.public_url",
                &self.server.public_url,
                &["http", "https"],
            )?;
        }
        positive(
            "server.body_limit_bytes",
            self.server.body_limit_bytes as u64,
        )?;
        check_url(
            "database.url",
            self.database.url.expose(),
            &["sqlite", "postgres", "postgresql"],
        )?;
        positive(
            "database.max_connections",
            self.database.max_connections.into(),
        )?;
        positive(
            "database.acquire_timeout_secs",
            self.database.acquire_timeout_secs,
        )?;
        if !self.redis.url.is_empty() {
            check_url("redis.url", self.redis.url.expose(), &["redis", "rediss"])?;
        }
        if self.auth.jwt_issuer.is_empty() || self.auth.jwt_audience.is_empty() {
            return Err(ConfigError::new(
                "auth.jwt_issuer",
                "issuer and audience must not be empty",
            ));
        }
        positive(
            "auth.access_token_ttl_secs",
            self.auth.access_token_ttl_secs,
        )?;
        positive("auth.session_ttl_secs", self.auth.session_ttl_secs)?;
        positive("limits.per_minute", self.limits.per_minute)?;
        positive("limits.per_hour", self.limits.per_hour)?;
        positive("limits.per_day", self.limits.per_day)?;
        positive("limits.fail_open_share", self.limits.fail_open_share)?;
        self.keys.validate()?;
        self.metering.validate()?;
        self.retention.validate()?;
        self.gateway.validate()?;
        if self.email.transport == EmailTransport::Smtp {
            check_url(
                "email.smtp_url",
                self.email.smtp_url.expose(),
                &["smtp", "smtps"],
            )?;
        }
        if !self.email.from.contains('@') {
            return Err(ConfigError::new(
                "email.from",
                format!("`{}` is not an email address", self.email.from),
            ));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|err| ConfigError::new("log.level", err))?;
        Ok(())
    }
}

impl MeteringSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        positive("metering.buffer_capacity", self.buffer_capacity as u64)?;
        positive("metering.batch_size", self.batch_size as u64)?;
        positive("metering.flush_interval_ms", self.flush_interval_ms)?;
        positive(
            "metering.writer_connections",
            self.writer_connections as u64,
        )?;
        if self.writer_connections > 16 {
            return Err(ConfigError::new(
                "metering.writer_connections",
                "at most 16 (each is a PostgreSQL connection; batches on the same rows wait \
                 for each other's locks)",
            ));
        }
        positive("metering.ingest_max_batch", self.ingest_max_batch as u64)?;
        if !(0..=19).contains(&self.writer_nice) {
            return Err(ConfigError::new(
                "metering.writer_nice",
                "must be between 0 (the request path's priority) and 19 (the lowest)",
            ));
        }
        if self.batch_size > self.buffer_capacity {
            return Err(ConfigError::new(
                "metering.batch_size",
                "must not exceed metering.buffer_capacity",
            ));
        }
        Ok(())
    }
}

impl KeySettings {
    fn validate(&self) -> Result<(), ConfigError> {
        positive("keys.cache_ttl_secs", self.cache_ttl_secs)?;
        positive("keys.negative_ttl_secs", self.negative_ttl_secs)?;
        positive("keys.cache_capacity", self.cache_capacity)
    }
}

fn positive(setting: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::new(setting, "must be greater than 0"));
    }
    Ok(())
}

fn check_url(setting: &str, value: &str, schemes: &[&str]) -> Result<(), ConfigError> {
    let url = url::Url::parse(value)
        .map_err(|err| ConfigError::new(setting, format!("not a URL ({err})")))?;
    if !schemes.contains(&url.scheme()) {
        let expected = schemes.join(", ");
        return Err(ConfigError::new(
            setting,
            format!("scheme must be one of: {expected}"),
        ));
    }
    Ok(())
}

/// Serializes a value as `"[redacted]"` unless it is empty (used by [`Secret`]).
fn serialize_redacted<S: Serializer>(value: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(if value.is_empty() { "" } else { "[redacted]" })
}
