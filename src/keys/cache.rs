//! The in-process API key cache of the hot path: SHA-256 digest of a secret -> the resolved
//! key ([`CachedKey`], limits already effective), plus negative entries for digests no key
//! answers to, so a client retrying a bad secret never reaches the database.
//!
//! A hit costs one concurrent-map lookup and no allocation. The rules (`resolve::check`)
//! are applied to every answer, cached or not. Entries answer for `keys.cache_ttl_secs`
//! (negative ones `keys.negative_ttl_secs`) as a safety net; changes are pushed out by
//! `keys::events`.
//!
//! Reload ahead: a call that finds its key in the last [`AHEAD_FRACTION`] of the entry's
//! lifetime is answered from the cache at once and starts a reload in the background (one per
//! key, at most [`MAX_RELOADING_AHEAD`] at a time), so a key in steady use is reloaded before
//! it expires and no call of it waits for the database. The bound on staleness is unchanged:
//! no copy answers longer than a lifetime after its load.
//!
//! Stale if error: an entry past its lifetime stays in the cache, as the key's last good
//! copy, for `keys.stale_if_error_secs` more. The next call reloads it; when that fails, or
//! takes longer than [`RELOAD_WAIT`], the copy answers for another lifetime, so calls of
//! known keys go on through an outage of the database, each key paying at most one bounded
//! reload attempt per lifetime. Invalidations drop the entry, copy and all. One entry per
//! key either way: a second cache of last good copies cost ~0.4 KB per key.

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use moka::{Entry, future::Cache, ops::compute::Op};
use sea_orm::DatabaseConnection;
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

/// The last part of an entry's lifetime (this fraction of it) in which a call starts a reload
/// in the background.
pub const AHEAD_FRACTION: u32 = 5;

/// Most reloads ahead running at once: beyond it a call due to start one does not, and its
/// key is reloaded by a later call (ahead, or at expiry as without them). Bounds the tasks and
/// the pool's connections the reloads take when many keys come due together (half of the
/// default pool, so cache misses and other reads still find connections).
pub const MAX_RELOADING_AHEAD: usize = 8;

/// Cheap to clone: every clone shares the same entries.
#[derive(Clone)]
pub struct KeyCache {
    inner: Arc<Inner>,
}

struct Inner {
    /// Fresh entries, and past their lifetime the last good copies (see the module docs).
    known: Cache<Digest, Cached>,
    unknown: Cache<Digest, ()>,
    /// Bumped before every invalidation, so a load that overlapped one knows its answer
    /// may predate the change.
    generation: AtomicU64,
    lifetime: Duration,
    /// The part of the lifetime, before its end, in which calls start reloads ahead.
    ahead: Duration,
    /// The keys being reloaded ahead.
    reloading: Mutex<HashSet<Digest>>,
    /// `keys.stale_if_error_secs`.
    grace: Duration,
    defaults: LimitSettings,
}

/// A key's entry.
#[derive(Clone)]
struct Cached {
    key: Arc<CachedKey>,
    /// Until then it answers without the database.
    fresh_until: Instant,
    /// Until then a failed reload may serve it again: its last load, plus a lifetime, plus
    /// the grace.
    servable_until: Instant,
}

impl Inner {
    /// The keys being reloaded ahead (a panic elsewhere while it was held leaves it usable:
    /// every change to it is one insert or remove).
    fn reloading(&self) -> MutexGuard<'_, HashSet<Digest>> {
        self.reloading
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Cached {
    fn is_fresh(&self) -> bool {
        Instant::now() < self.fresh_until
    }

    /// Whether it is due for a reload at `now`: past its lifetime, within its last `ahead`,
    /// or not yet (`None`).
    fn due(&self, now: Instant, ahead: Duration) -> Option<Due> {
        if now >= self.fresh_until {
            Some(Due::Expired)
        } else if self
            .fresh_until
            .checked_sub(ahead)
            .is_none_or(|from| now >= from)
        {
            Some(Due::Ahead)
        } else {
            None
        }
    }
}

/// Why a load did not produce a key (shared between the callers coalesced on one load).
#[derive(Debug)]
enum Miss {
    Unknown,
    Failed(Error),
}

/// What one attempt at a missing or expired entry came to.
enum Loaded {
    /// A key: loaded, or its last good copy served again after `Some(reload error)`.
    Key(Arc<CachedKey>, Option<Error>),
    /// No key answers to the digest (now remembered as unknown).
    Unknown,
    /// The database failed and no copy may stand in.
    Failed(Error),
    /// Another caller refreshed or dropped the entry meanwhile: look again.
    Again,
}

impl KeyCache {
    pub fn new(settings: &KeySettings, defaults: &LimitSettings) -> Self {
        let lifetime = Duration::from_secs(settings.cache_ttl_secs);
        let grace = Duration::from_secs(settings.stale_if_error_secs);
        let known = Cache::builder()
            .name("api_keys")
            .max_capacity(settings.cache_capacity)
            .time_to_live(lifetime + grace)
            .build();
        let unknown = Cache::builder()
            .name("unknown_api_keys")
            .max_capacity(settings.cache_capacity)
            .time_to_live(Duration::from_secs(settings.negative_ttl_secs))
            .build();
        Self {
            inner: Arc::new(Inner {
                known,
                unknown,
                generation: AtomicU64::new(0),
                lifetime,
                ahead: lifetime / AHEAD_FRACTION,
                reloading: Mutex::default(),
                grace,
                defaults: defaults.clone(),
            }),
        }
    }

    /// Resolves a presented secret: 401 when missing or unknown, 403 when not usable.
    pub async fn resolve(
        &self,
        db: &DatabaseConnection,
        presented: &str,
        now: DateTime<Utc>,
    ) -> Result<Arc<CachedKey>> {
        let digest = resolve::presented(Some(presented))?;
        self.resolve_digest(db, &digest, now).await
    }

    /// Resolves by digest (see `resolve::presented`): from the cache, else the database.
    pub async fn resolve_digest(
        &self,
        db: &DatabaseConnection,
        digest: &Digest,
        now: DateTime<Utc>,
    ) -> Result<Arc<CachedKey>> {
        let key = self.known(db, digest).await?;
        resolve::check(&key, now)?;
        Ok(key)
    }

    /// The key answering to `digest`, usable or not (401 when none does); callers apply
    /// `resolve::check`. One database load per digest however many callers wait for it.
    pub async fn known(&self, db: &DatabaseConnection, digest: &Digest) -> Result<Arc<CachedKey>> {
        let inner = &self.inner;
        for _ in 0..MAX_LOAD_ATTEMPTS {
            let cached = inner.known.get(digest).await;
            if let Some(cached) = &cached {
                match cached.due(Instant::now(), inner.ahead) {
                    None => return Ok(cached.key.clone()),
                    Some(Due::Ahead) => {
                        self.reload_ahead(db, digest);
                        return Ok(cached.key.clone());
                    }
                    Some(Due::Expired) => {}
                }
            }
            let generation = inner.generation.load(Ordering::Acquire);
            // Boxed: the loads' futures (moka's and the query's) are kilobytes, and a hit,
            // which needs none of them, would otherwise carry and move them on every call.
            let loaded = match cached {
                Some(_) => Box::pin(self.refresh(db, digest, Due::Expired)).await,
                None => Box::pin(self.load(db, digest)).await,
            };
            if self.overlapped_a_change(digest, generation).await {
                continue;
            }
            match loaded {
                Loaded::Key(key, None) => return Ok(key),
                Loaded::Key(stale, Some(err)) => {
                    metrics::counter!("tollgate_key_cache_stale_served_total").increment(1);
                    let cause = err.source.as_ref().map(|s| format!("{s:#}"));
                    tracing::warn!(
                        key_id = %stale.id,
                        error = %cause.as_deref().unwrap_or(&err.detail),
                        "reloading an API key failed; serving its last good copy for another \
                         cache lifetime"
                    );
                    return Ok(stale);
                }
                Loaded::Unknown => return Err(Error::unauthorized(INVALID)),
                Loaded::Failed(err) => return Err(err),
                Loaded::Again => {}
            }
        }
        // Changes keep racing the load: answer from the database without caching.
        Box::pin(self.fetch(db, digest))
            .await
            .map_err(|miss| match miss {
                Miss::Unknown => Error::unauthorized(INVALID),
                Miss::Failed(err) => err,
            })
    }

    /// The cached answer for `secret`, if any, without loading: `Some(None)` is a negative
    /// entry. A last good copy past its lifetime is not an answer. For tests and
    /// diagnostics.
    pub async fn peek(&self, secret: &str) -> Option<Option<Arc<CachedKey>>> {
        let digest = digest(secret);
        if let Some(cached) = self.inner.known.get(&digest).await
            && cached.is_fresh()
        {
            return Some(Some(cached.key));
        }
        self.inner.unknown.get(&digest).await.map(|()| None)
    }

    /// Drops whatever is cached for these digests (hex SHA-256, as stored), known or not.
    pub async fn invalidate(&self, hashes: &[String]) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        for hash in hashes {
            let mut digest = Digest::default();
            if hex::decode_to_slice(hash, &mut digest).is_ok() {
                self.forget(&digest).await;
            }
        }
    }

    /// Drops everything (after changes may have been missed).
    pub fn invalidate_all(&self) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        self.inner.known.invalidate_all();
        self.inner.unknown.invalidate_all();
    }

    /// Cached first, checked second: an invalidation that overlapped a load begun at
    /// `generation` either bumped the generation before this check (the entry is dropped
    /// here, and the load's answer must not be used) or drops the entry itself afterwards.
    async fn overlapped_a_change(&self, digest: &Digest, generation: u64) -> bool {
        if self.inner.generation.load(Ordering::Acquire) == generation {
            return false;
        }
        self.forget(digest).await;
        true
    }

    /// Starts reloading `digest`'s entry in the background, unless it is being reloaded
    /// already or [`MAX_RELOADING_AHEAD`] others are.
    fn reload_ahead(&self, db: &DatabaseConnection, digest: &Digest) {
        {
            let mut reloading = self.inner.reloading();
            if reloading.len() >= MAX_RELOADING_AHEAD || !reloading.insert(*digest) {
                return;
            }
        }
        let (cache, db, digest) = (self.clone(), db.clone(), *digest);
        tokio::spawn(async move {
            // Taken out of the set however the task ends (a worker's runtime stopping drops it).
            let _done = Reloading(&cache, digest);
            let generation = cache.inner.generation.load(Ordering::Acquire);
            let loaded = cache.refresh(&db, &digest, Due::Ahead).await;
            if !cache.overlapped_a_change(&digest, generation).await
                && let Loaded::Key(key, None) = loaded
            {
                metrics::counter!("tollgate_key_cache_reloaded_ahead_total").increment(1);
                tracing::trace!(key_id = %key.id, "reloaded an API key ahead of its expiry");
            }
        });
    }

    async fn forget(&self, digest: &Digest) {
        self.inner.known.invalidate(digest).await;
        self.inner.unknown.invalidate(digest).await;
    }

    /// No entry: loads the key, or remembers that none answers.
    async fn load(&self, db: &DatabaseConnection, digest: &Digest) -> Loaded {
        let inner = &self.inner;
        if inner.unknown.get(digest).await.is_some() {
            return Loaded::Unknown;
        }
        let fetch = async { self.fetch(db, digest).await.map(|key| self.fresh(key)) };
        match inner.known.try_get_with(*digest, fetch).await {
            Ok(cached) => Loaded::Key(cached.key, None),
            Err(miss) => match &*miss {
                Miss::Unknown => {
                    inner.unknown.insert(*digest, ()).await;
                    Loaded::Unknown
                }
                Miss::Failed(err) => Loaded::Failed(reowned(err)),
            },
        }
    }

    /// An entry `due` for reloading: reloads it, one caller at a time (the callers queued
    /// behind the first find it reloaded), and, past its lifetime, serves the last good copy
    /// again when reloading fails within the grace. A failed reload ahead leaves the entry as
    /// it was.
    async fn refresh(&self, db: &DatabaseConnection, digest: &Digest, due: Due) -> Loaded {
        let mut loaded = Loaded::Again;
        let outcome = &mut loaded;
        let ahead = self.inner.ahead;
        self.inner
            .known
            .entry(*digest)
            .and_compute_with(|current| async move {
                let now = Instant::now();
                let is_due = |c: &Cached| c.due(now, ahead) == Some(due);
                let Some(stale) = current.map(Entry::into_value).filter(is_due) else {
                    return Op::Nop;
                };
                let servable = due == Due::Ahead || now < stale.servable_until;
                match self.fetch_within(db, digest, servable).await {
                    Ok(key) => {
                        *outcome = Loaded::Key(key.clone(), None);
                        Op::Put(self.fresh(key))
                    }
                    Err(Miss::Unknown) => {
                        // Deleted behind the cache's back: nothing may revive it later.
                        *outcome = Loaded::Unknown;
                        Op::Remove
                    }
                    Err(Miss::Failed(err)) if due == Due::Ahead => {
                        *outcome = Loaded::Failed(err);
                        Op::Nop
                    }
                    Err(Miss::Failed(err)) if servable => {
                        *outcome = Loaded::Key(stale.key.clone(), Some(err));
                        Op::Put(Cached {
                            fresh_until: Instant::now() + self.inner.lifetime,
                            ..stale
                        })
                    }
                    Err(Miss::Failed(err)) => {
                        *outcome = Loaded::Failed(err);
                        Op::Remove
                    }
                }
            })
            .await;
        if let Loaded::Unknown = loaded {
            self.inner.unknown.insert(*digest, ()).await;
        }
        loaded
    }

    /// A key just loaded, as an entry.
    fn fresh(&self, key: Arc<CachedKey>) -> Cached {
        let fresh_until = Instant::now() + self.inner.lifetime;
        Cached {
            key,
            fresh_until,
            servable_until: fresh_until + self.inner.grace,
        }
    }

    /// [`Self::fetch`], given at most [`RELOAD_WAIT`] when a last good copy can stand in.
    async fn fetch_within(
        &self,
        db: &DatabaseConnection,
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
        db: &DatabaseConnection,
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

/// Which entries a reload is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Due {
    /// Past their lifetime: a call is waiting.
    Expired,
    /// In the last part of their lifetime (see [`AHEAD_FRACTION`]): in the background.
    Ahead,
}

/// A key being reloaded ahead: out of the set when dropped.
struct Reloading<'a>(&'a KeyCache, Digest);

impl Drop for Reloading<'_> {
    fn drop(&mut self) {
        self.0.inner.reloading().remove(&self.1);
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
