//! Password hashing with argon2id at OWASP's recommended parameters (19 MiB, t=2, p=1), run on
//! the blocking pool so hashing never stalls the async executor.

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};

use crate::error::{Error, Result};

/// The shortest password accepted.
pub const MIN_LENGTH: usize = 12;

/// Checks the password policy; the pointer names the field for the caller.
pub fn check_policy(password: &str, pointer: &str) -> Result<()> {
    if password.chars().count() < MIN_LENGTH {
        return Err(Error::invalid(
            pointer,
            format!("must be at least {MIN_LENGTH} characters"),
        ));
    }
    Ok(())
}

/// Hashes into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
pub async fn hash(password: &str) -> Result<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|err| Error::internal(anyhow::anyhow!("hashing a password: {err}")))
    })
    .await
    .map_err(Error::internal)?
}

/// True when `password` matches the stored PHC string.
pub async fn verify(password: &str, stored: &str) -> Result<bool> {
    let (password, stored) = (password.to_owned(), stored.to_owned());
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&stored)
            .map_err(|err| Error::internal(anyhow::anyhow!("stored hash unreadable: {err}")))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(Error::internal)?
}
