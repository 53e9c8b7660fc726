//! Secret-holding setting types (redacted in logs and `Debug`) and the embedded-mode secret
//! store: keys production must configure are generated once into the data directory.

use std::{fmt, fs, io::Write, path::Path};

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use serde::{Deserialize, Serialize, Serializer};

use super::{ConfigError, Mode, Settings, serialize_redacted};

/// A secret string: never printed, never serialized in clear.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "[redacted]"
        })
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_redacted(&self.0, serializer)
    }
}

/// A connection URL whose password is masked when printed (`postgres://app:***@db/tollgate`).
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("***"));
                url.to_string()
            }
            Ok(_) => self.0.clone(),
            Err(_) if self.0.is_empty() => String::new(),
            Err(_) => "[redacted]".to_owned(),
        }
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

/// Checks the configured secrets and, in embedded mode, loads or creates missing ones.
pub(super) fn resolve(settings: &mut Settings) -> Result<(), ConfigError> {
    let mode = settings.mode();
    let dir = settings.data.dir.clone();
    let jwt = &mut settings.auth.jwt_secret;
    ensure(jwt, "auth.jwt_secret", "jwt.key", mode, &dir)?;
    if jwt.expose().len() < 32 {
        return Err(ConfigError::new(
            "auth.jwt_secret",
            "must be at least 32 bytes long",
        ));
    }
    let master = &mut settings.crypto.master_key;
    ensure(master, "crypto.master_key", "master.key", mode, &dir)?;
    match BASE64.decode(master.expose()) {
        Ok(bytes) if bytes.len() == 32 => Ok(()),
        _ => Err(ConfigError::new(
            "crypto.master_key",
            "must be 32 bytes encoded as base64",
        )),
    }
}

fn ensure(
    secret: &mut Secret,
    setting: &str,
    file: &str,
    mode: Mode,
    dir: &Path,
) -> Result<(), ConfigError> {
    if !secret.is_empty() {
        return Ok(());
    }
    if mode == Mode::Production {
        let env = format!("TOLLGATE__{}", setting.replace('.', "__").to_uppercase());
        return Err(ConfigError::new(
            setting,
            format!("must be set with PostgreSQL (set {env})"),
        ));
    }
    *secret =
        Secret::new(load_or_generate(&dir.join(file)).map_err(|e| ConfigError::new(setting, e))?);
    Ok(())
}

/// Reads a generated secret, or writes a fresh one (32 random bytes, base64) readable by the
/// owner only.
fn load_or_generate(path: &Path) -> std::io::Result<String> {
    if let Ok(existing) = fs::read_to_string(path) {
        return Ok(existing.trim().to_owned());
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let bytes: [u8; 32] = rand::random();
    let value = BASE64.encode(bytes);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(value.as_bytes())?;
    Ok(value)
}
