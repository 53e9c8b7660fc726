//! Resolving a presented secret to its key: by SHA-256 hash, current secret or one still in
//! rotation grace. Unknown -> 401 `Invalid API key`; revoked, inactive or expired -> 403
//! `API key is inactive` (the exact texts clients match on).

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter};

use super::{secret::hash_secret, status_of};
use crate::{
    entities::api_keys,
    error::{Error, Result},
};

pub const MISSING: &str = "Missing API key";
pub const INVALID: &str = "Invalid API key";
pub const INACTIVE: &str = "API key is inactive";

/// The key a request presented, once verified usable.
pub async fn resolve(
    db: &impl ConnectionTrait,
    presented: &str,
    now: DateTime<Utc>,
) -> Result<api_keys::Model> {
    if presented.is_empty() {
        return Err(Error::unauthorized(MISSING));
    }
    let hash = hash_secret(presented);
    let matches = Condition::any()
        .add(api_keys::Column::KeyHash.eq(&hash))
        .add(api_keys::Column::PreviousKeyHash.eq(&hash));
    let key = api_keys::Entity::find()
        .filter(matches)
        .one(db)
        .await?
        .ok_or_else(|| Error::unauthorized(INVALID))?;
    let current = key.key_hash == hash;
    let in_grace = key.previous_expires_at.is_some_and(|until| until > now);
    if !current && !in_grace {
        // A replaced secret past its grace is as unknown as one never issued.
        return Err(Error::unauthorized(INVALID));
    }
    if status_of(&key, now) != "active" {
        return Err(Error::forbidden(INACTIVE));
    }
    Ok(key)
}
