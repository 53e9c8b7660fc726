//! `Idempotency-Key` for creating POSTs: the first completed response is stored (its body
//! sealed with the master key, as it may carry a secret) and replayed for 24 hours; the same
//! key with another request is a 422; a duplicate arriving while the first is in flight is a
//! 409. A failed first attempt is forgotten, so the client may retry it.

use chrono::{Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
};
use sha2::{Digest, Sha256};

use crate::{
    crypto::MasterKey,
    entities::idempotency_keys,
    error::{Error, ErrorKind, Result},
};

/// How long a completed response is replayed.
const RETENTION_HOURS: i64 = 24;
const MAX_KEY_LEN: usize = 255;

/// One idempotent request: who sent it (scope), its key, and what it asked for.
pub struct Request<'a> {
    /// The owner of the key space, e.g. the tenant id: keys of different tenants never meet.
    pub scope: &'a str,
    pub key: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    /// The request body as sent (any stable serialization of it).
    pub body: &'a [u8],
}

impl Request<'_> {
    fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        for part in [self.method.as_bytes(), self.path.as_bytes(), self.body] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        hex::encode(hasher.finalize())
    }

    fn aad(&self) -> Vec<u8> {
        format!("idempotency:{}:{}", self.scope, self.key).into_bytes()
    }
}

/// A response recorded by the first request.
pub struct Stored {
    pub status: u16,
    pub body: Vec<u8>,
}

pub enum Begin {
    /// First time: go ahead, then [`complete`] or [`abandon`].
    Fresh,
    /// Already done: answer with this.
    Replay(Stored),
}

/// Claims the key for this request, or returns what to replay.
pub async fn begin(
    db: &impl ConnectionTrait,
    crypto: &MasterKey,
    req: &Request<'_>,
) -> Result<Begin> {
    validate_key(req.key)?;
    let fingerprint = req.fingerprint();
    let now = Utc::now();
    let row = idempotency_keys::ActiveModel {
        scope: Set(req.scope.to_owned()),
        key: Set(req.key.to_owned()),
        request_hash: Set(fingerprint.clone()),
        method: Set(req.method.to_owned()),
        path: Set(req.path.to_owned()),
        status: Set("in_progress".to_owned()),
        response_status: Set(None),
        response_headers: Set(None),
        response_body: Set(None),
        created_at: Set(now),
        expires_at: Set(now + Duration::hours(RETENTION_HOURS)),
    };
    let existing = match row.clone().insert(db).await {
        Ok(_) => return Ok(Begin::Fresh),
        Err(err) if Error::from(err.clone()).kind == ErrorKind::Conflict => find(db, req).await?,
        Err(err) => return Err(err.into()),
    };
    let Some(existing) = existing else {
        return Ok(Begin::Fresh);
    };
    if existing.expires_at <= now {
        // Expired but not yet purged: start over.
        abandon(db, req).await?;
        row.insert(db).await?;
        return Ok(Begin::Fresh);
    }
    if existing.request_hash != fingerprint {
        return Err(Error::invalid(
            "",
            "This Idempotency-Key was already used with a different request.",
        ));
    }
    match (
        existing.status.as_str(),
        existing.response_status,
        existing.response_body,
    ) {
        ("completed", Some(status), Some(sealed)) => Ok(Begin::Replay(Stored {
            status: status as u16,
            body: crypto.open(&sealed, &req.aad())?,
        })),
        _ => Err(Error::conflict(
            "A request with this Idempotency-Key is still being processed; retry shortly.",
        )),
    }
}

/// Stores the response of a successful first request for replay.
pub async fn complete(
    db: &impl ConnectionTrait,
    crypto: &MasterKey,
    req: &Request<'_>,
    response: &Stored,
) -> Result<()> {
    let sealed = crypto.seal(&response.body, &req.aad())?;
    idempotency_keys::ActiveModel {
        scope: Set(req.scope.to_owned()),
        key: Set(req.key.to_owned()),
        status: Set("completed".to_owned()),
        response_status: Set(Some(i32::from(response.status))),
        response_body: Set(Some(sealed)),
        ..Default::default()
    }
    .update(db)
    .await?;
    Ok(())
}

/// Forgets the key after a failed first attempt, so a retry runs again.
pub async fn abandon(db: &impl ConnectionTrait, req: &Request<'_>) -> Result<()> {
    idempotency_keys::Entity::delete_many()
        .filter(idempotency_keys::Column::Scope.eq(req.scope))
        .filter(idempotency_keys::Column::Key.eq(req.key))
        .exec(db)
        .await?;
    Ok(())
}

async fn find(
    db: &impl ConnectionTrait,
    req: &Request<'_>,
) -> Result<Option<idempotency_keys::Model>> {
    Ok(
        idempotency_keys::Entity::find_by_id((req.scope.to_owned(), req.key.to_owned()))
            .one(db)
            .await?,
    )
}

fn validate_key(key: &str) -> Result<()> {
    let printable = key.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if key.is_empty() || key.len() > MAX_KEY_LEN || !printable {
        return Err(Error::bad_request(format!(
            "The Idempotency-Key header must be 1 to {MAX_KEY_LEN} printable ASCII characters."
        )));
    }
    Ok(())
}
