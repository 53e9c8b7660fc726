//! The in-process API key cache of the hot path: SHA-256 digest of a secret -> the resolved
//! key ([`CachedKey`], limits already effective), plus negative entries for digests no key
//! answers to, so a client retrying a bad secret never reaches the database.
//!
//! A hit costs one concurrent-map lookup and no allocation. The rules (`resolve::check`)
//! are applied to every answer, cached or not. Entries live `keys.cache_ttl_secs` (negative
//! ones `keys.negative_ttl_secs`) as a safety net; changes are pushed out by `keys::events`.
//!
//! Stale if error: the last copy loaded of each key is also kept for
//! `keys.stale_if_error_secs` more. When a key's entry has expired and reloading it fails, or
//! takes longer than [`RELOAD_WAIT`], that copy is put back for another lifetime, so calls of
//! known keys go on through an outage of the database, each key paying at most one bounded
//! reload attempt per lifetime. Invalidations drop both copies.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use moka::future::Cache;
use sea_orm::ConnectionTrait;
use tokio::time::timeout;

use super::{
    resolve::{self, CachedKey, INVALID},
    secret::{Digest, digest},
};
use crate::{
    config::{KeySettings, LimitSettings},
    error::{Error, Result},
};

/// Loads racing a stream of changes retry this often, then answer uncached.
const MAX_LOAD_ATTEMPTS: usize = 3;

/// How long a reload waits for the database when a last good copy could be served instead
/// (a database that is down can take the pool's whole acquire timeout to say so).
pub const RELOAD_WAIT: Duration = Duration::from_millis(250);

/// Cheap to clone: every clone shares the same entries.
#[derive(Clone)]
pub struct KeyCache {
    inner: Arc<Inner>,
}

struct Inner {
    known: Cache<Digest, Arc<CachedKey>>,
    /// The last copy loaded of each key, outliving `known`'s by `keys.stale_if_error_secs`:
    /// served when a reload fails. `None` when that is 0.
    last_good: Option<Cache<Digest, Arc<CachedKey>>>,
    unknown: Cache<Digest, ()>,
    /// Bumped before every invalidation, so a load that overlapped one knows its answer
    /// may predate the change.
    generation: AtomicU64,
    defaults: LimitSettings,
}

/// Why a load did not produce a key (shared between the callers coalesced on one load).
#[derive(Debug)]
enum Miss {
    Unknown,
    Failed(Error),
}

impl KeyCache {
    pub fn new(settings: &KeySettings, defaults: &LimitSettings) -> Self {
        let known = Cache::builder()
            .name("api_keys")
            .max_capacity(settings.cache_capacity)
            .time_to_live(Duration::from_secs(settings.cache_ttl_secs))
            .build();
        let last_good = (settings.stale_if_error_secs > 0).then(|| {
            let grace = Duration::from_secs(settings.stale_if_error_secs);
            Cache::builder()
                .name("api_keys_last_good")
                .max_capacity(settings.cache_capacity)
                .time_to_live(Duration::from_secs(settings.cache_ttl_secs) + grace)
                .build()
        });
        let unknown = Cache::builder()
            .name("unknown_api_keys")
            .max_capacity(settings.cache_capacity)
            .time_to_live(Duration::from_secs(settings.negative_ttl_secs))
            .build();
        Self {
            inner: Arc::new(Inner {
                known,
                last_good,
                unknown,
                generation: AtomicU64::new(0),
                defaults: defaults.clone(),
            }),
        }
    }

    /// Resolves a presented secret: 401 when missing or unknown, 403 when not usable.
    pub async fn resolve(
        &self,
        db: &impl ConnectionTrait,
        presented: &str,
        now: DateTime<Utc>,
    ) -> Result<Arc<CachedKey>> {
        let digest = resolve::presented(Some(presented))?;
        self.resolve_digest(db, &digest, now).await
    }

    /// Resolves by digest (see `resolve::presented`): from the cache, else the database.
    pub async fn resolve_digest(
        &self,
        db: &impl ConnectionTrait,
        digest: &Digest,
        now: DateTime<Utc>,
    ) -> Result<Arc<CachedKey>> {
        let key = self.known(db, digest).await?;
        resolve::check(&key, now)?;
        Ok(key)
    }

    /// The key answering to `digest`, usable or not (401 when none does); callers apply
    /// `resolve::check`.
    pub async fn known(
        &self,
        db: &impl ConnectionTrait,
        digest: &Digest,
    ) -> Result<Arc<CachedKey>> {
        match self.inner.known.get(digest).await {
            Some(key) => Ok(key),
            None => self.load(db, digest).await,
        }
    }

    /// The cached answer for `secret`, if any, without loading: `Some(None)` is a negative
    /// entry. For tests and diagnostics.
    pub async fn peek(&self, secret: &str) -> Option<Option<Arc<CachedKey>>> {
        let digest = digest(secret);
        if let Some(key) = self.inner.known.get(&digest).await {
            return Some(Some(key));
        }
        self.inner.unknown.get(&digest).await.map(|()| None)
    }

    /// Drops whatever is cached for these digests (hex SHA-256, as stored), known or not.
    pub async fn invalidate(&self, hashes: &[String]) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        for hash in hashes {
            let mut digest = Digest::default();
            if hex::decode_to_slice(hash, &mut digest).is_ok() {
                self.inner.known.invalidate(&digest).await;
                if let Some(last_good) = &self.inner.last_good {
                    last_good.invalidate(&digest).await;
                }
                self.inner.unknown.invalidate(&digest).await;
            }
        }
    }

    /// Drops everything (after changes may have been missed).
    pub fn invalidate_all(&self) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        self.inner.known.invalidate_all();
        if let Some(last_good) = &self.inner.last_good {
            last_good.invalidate_all();
        }
        self.inner.unknown.invalidate_all();
    }

    /// A cache miss: one database load per digest however many callers wait for it.
    async fn load(&self, db: &impl ConnectionTrait, digest: &Digest) -> Result<Arc<CachedKey>> {
        let inner = &self.inner;
        if inner.unknown.get(digest).await.is_some() {
            return Err(Error::unauthorized(INVALID));
        }
        for _ in 0..MAX_LOAD_ATTEMPTS {
            let generation = inner.generation.load(Ordering::Acquire);
            let last_good = match &inner.last_good {
                Some(copies) => copies.get(digest).await,
                None => None,
            };
            let fetch = self.fetch_within(db, digest, last_good.is_some());
            let loaded = inner.known.try_get_with(*digest, fetch).await;
            // Inserted first, checked second: an invalidation that overlapped the load either
            // bumped the generation before this check (the entry is dropped here) or removes
            // the entry itself afterwards.
            let changed = inner.generation.load(Ordering::Acquire) != generation;
            match loaded {
                Ok(key) if !changed => {
                    if let Some(copies) = &inner.last_good {
                        copies.insert(*digest, key.clone()).await;
                    }
                    return Ok(key);
                }
                Ok(_) => inner.known.invalidate(digest).await,
                Err(miss) => match &*miss {
                    Miss::Unknown => {
                        // Deleted behind the cache's back: nothing may revive it later.
                        if let Some(copies) = &inner.last_good {
                            copies.invalidate(digest).await;
                        }
                        inner.unknown.insert(*digest, ()).await;
                        if inner.generation.load(Ordering::Acquire) == generation {
                            return Err(Error::unauthorized(INVALID));
                        }
                        inner.unknown.invalidate(digest).await;
                    }
                    Miss::Failed(err) => {
                        let Some(stale) = last_good else {
                            return Err(reowned(err));
                        };
                        if let Some(served) = self.revive(digest, stale, generation, err).await {
                            return Ok(served);
                        }
                    }
                },
            }
        }
        // Changes keep racing the load: answer from the database without caching.
        self.fetch(db, digest).await.map_err(|miss| match miss {
            Miss::Unknown => Error::unauthorized(INVALID),
            Miss::Failed(err) => err,
        })
    }

    /// Puts `stale` (the last good copy) back for another lifetime after a reload failed
    /// with `err`; `None` when a change overlapped (the caller loads again).
    async fn revive(
        &self,
        digest: &Digest,
        stale: Arc<CachedKey>,
        generation: u64,
        err: &Error,
    ) -> Option<Arc<CachedKey>> {
        let inner = &self.inner;
        if let Some(revived) = inner.known.get(digest).await {
            // Another caller of the same failed reload put it back already.
            return Some(revived);
        }
        inner.known.insert(*digest, stale.clone()).await;
        if inner.generation.load(Ordering::Acquire) != generation {
            inner.known.invalidate(digest).await;
            return None;
        }
        metrics::counter!("tollgate_key_cache_stale_served_total").increment(1);
        let cause = err.source.as_ref().map(|s| format!("{s:#}"));
        tracing::warn!(
            key_id = %stale.id,
            error = %cause.as_deref().unwrap_or(&err.detail),
            "reloading an API key failed; serving its last good copy for another cache lifetime"
        );
        Some(stale)
    }

    /// [`Self::fetch`], given at most [`RELOAD_WAIT`] when a last good copy can stand in.
    async fn fetch_within(
        &self,
        db: &impl ConnectionTrait,
        digest: &Digest,
        bounded: bool,
    ) -> Result<Arc<CachedKey>, Miss> {
        if !bounded {
            return self.fetch(db, digest).await;
        }
        match timeout(RELOAD_WAIT, self.fetch(db, digest)).await {
            Ok(fetched) => fetched,
            Err(elapsed) => Err(Miss::Failed(Error::unavailable(
                "The database did not answer in time.",
                elapsed,
            ))),
        }
    }

    async fn fetch(
        &self,
        db: &impl ConnectionTrait,
        digest: &Digest,
    ) -> Result<Arc<CachedKey>, Miss> {
        let hash = hex::encode(digest);
        match resolve::load(db, &hash, &self.inner.defaults).await {
            Ok(Some(key)) => Ok(Arc::new(key)),
            Ok(None) => Err(Miss::Unknown),
            Err(err) => Err(Miss::Failed(err)),
        }
    }
}

/// An owned copy of an error shared by coalesced callers (kind, detail and cause text).
fn reowned(err: &Error) -> Error {
    let copy = Error::new(err.kind, err.detail.clone()).with_errors(err.errors.clone());
    match &err.source {
        Some(source) => copy.with_source(anyhow::anyhow!("{source:#}")),
        None => copy,
    }
}
