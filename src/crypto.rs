//! Encryption at rest with AES-256-GCM under the configured master key: provider credentials,
//! webhook secrets and replayable responses that carry a secret. A sealed blob is
//! `nonce (12 bytes) || ciphertext+tag`; the associated data binds it to its owner row.

use std::sync::Arc;

use aes_gcm::{
    Aes256Gcm, Key, KeyInit, Nonce,
    aead::{Aead, Generate, Payload},
};
use base64::{Engine, engine::general_purpose::STANDARD as BASE64};

use crate::{
    config::CryptoSettings,
    error::{Error, Result},
};

const NONCE_LEN: usize = 12;

/// The cipher built from `crypto.master_key`; cheap to clone.
#[derive(Clone)]
pub struct MasterKey(Arc<Aes256Gcm>);

impl MasterKey {
    /// From the validated setting (base64 of 32 bytes).
    pub fn from_settings(settings: &CryptoSettings) -> anyhow::Result<Self> {
        let bytes = BASE64.decode(settings.master_key.expose())?;
        anyhow::ensure!(
            bytes.len() == 32,
            "crypto.master_key must decode to 32 bytes"
        );
        let key = Key::<Aes256Gcm>::try_from(bytes.as_slice())?;
        Ok(Self(Arc::new(Aes256Gcm::new(&key))))
    }

    /// Encrypts `plaintext`, bound to `aad` (e.g. the row's natural key).
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let nonce = Nonce::generate();
        let ciphertext = self
            .0
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| Error::internal(anyhow::anyhow!("encryption failed")))?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// Decrypts a blob made by [`MasterKey::seal`] with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return Err(Error::internal(anyhow::anyhow!("sealed blob too short")));
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).map_err(Error::internal)?;
        self.0
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| Error::internal(anyhow::anyhow!("decryption failed (wrong key or data)")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn key() -> MasterKey {
        let settings = CryptoSettings {
            master_key: Secret::new(BASE64.encode([7u8; 32])),
        };
        MasterKey::from_settings(&settings).unwrap()
    }

    #[test]
    fn seal_and_open_round_trip_and_bind_the_associated_data() {
        let key = key();
        let sealed = key.seal(b"tg_live_secret", b"row-1").unwrap();
        assert!(!sealed.windows(14).any(|w| w == b"tg_live_secret"));
        assert_eq!(key.open(&sealed, b"row-1").unwrap(), b"tg_live_secret");
        assert!(key.open(&sealed, b"row-2").is_err());
        assert_ne!(
            key.seal(b"x", b"").unwrap(),
            key.seal(b"x", b"").unwrap(),
            "fresh nonce"
        );
    }
}
