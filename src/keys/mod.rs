//! API keys: secrets (generation, hashing, display parts).

pub mod secret;
