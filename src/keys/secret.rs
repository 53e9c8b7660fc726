//! API key secrets: `tg_live_` + 43 base62 characters (256 bits of randomness). Only the
//! SHA-256 digest, a display prefix and the last four characters are ever stored.

use rand::{RngExt, distr::Alphanumeric};
use sha2::{Digest as _, Sha256};

pub const PREFIX: &str = "tg_live_";
const RANDOM_CHARS: usize = 43;
/// Characters of the secret kept for display (`tg_live_AbCd`).
const DISPLAY_PREFIX_LEN: usize = PREFIX.len() + 4;

/// A key secret in clear. Deliberately not `Debug`/`Display`: it must not reach a log.
pub struct KeySecret(String);

impl KeySecret {
    pub fn generate() -> Self {
        let random: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(RANDOM_CHARS)
            .map(char::from)
            .collect();
        Self(format!("{PREFIX}{random}"))
    }

    /// A secret brought from elsewhere (key import); its format is the caller's concern.
    pub fn from_existing(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Hex SHA-256: what the database stores and lookups use.
    pub fn hash(&self) -> String {
        hash_secret(&self.0)
    }

    pub fn display_prefix(&self) -> String {
        self.0.chars().take(DISPLAY_PREFIX_LEN).collect()
    }

    pub fn last4(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        chars[chars.len().saturating_sub(4)..].iter().collect()
    }
}

/// A raw SHA-256 digest: the key-cache's key (hashing without allocating).
pub type Digest = [u8; 32];

/// SHA-256 of a presented secret.
pub fn digest(secret: &str) -> Digest {
    Sha256::digest(secret.as_bytes()).into()
}

/// Hex SHA-256 of a presented secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(digest(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_prefixed_base62_and_unique() {
        let a = KeySecret::generate();
        let b = KeySecret::generate();
        assert!(a.expose().starts_with(PREFIX));
        assert_eq!(a.expose().len(), PREFIX.len() + RANDOM_CHARS);
        assert!(
            a.expose()[PREFIX.len()..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric())
        );
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.hash().len(), 64);
        assert_eq!(a.display_prefix().len(), 12);
        assert_eq!(a.last4(), a.expose()[a.expose().len() - 4..]);
    }
}
