//! Leases: how a node decides a hot key's calls without a Redis round trip each, and still
//! never admits more than a limit across any number of nodes.
//!
//! When calls for one key arrive faster than one script call at a time can answer (the
//! dispatcher finds several waiting), the node asks the script for a lease along with the
//! next batch: `n` units counted in Redis at once, in every window and the month, exactly as
//! if `n` calls had been admitted at that instant (so the other nodes see them), granted only
//! while they fit every window. The node then admits calls from the lease in-process, without
//! waiting for anything, until the lease runs out or its minute bucket ends; before it runs
//! out the dispatcher asks for more in the background.
//!
//! Why this never over-admits: a leased unit is counted in Redis before its call is admitted,
//! in the bucket holding the grant's instant. The lease is only used until that minute
//! bucket ends, measured from when the node SENT the request (Redis's clock read later, so
//! the node's deadline is never past the bucket's real end, whatever the clocks say); minute
//! buckets nest in hour and day buckets and every month starts on a 5 s boundary. So each
//! leased call lands in the very bucket that counted it, and the windows' sums are never
//! below the calls actually admitted. Units left when a lease ends go back in the key's next
//! script call (uncounted from the buckets they went into); a lost release (a timed-out script
//! call, a swept idle key) only under-admits.
//!
//! Sizing: the first ask is 4 units per call found waiting; it doubles each time a lease is
//! used up within its bucket and halves when most of what was granted into a lease went
//! unused (below 8 the key is cold again). The script grants nothing in a bucket's last
//! 100 ms, where a lease would expire before use.
//!
//! What it costs: a grant is at most a quarter of what every window has left, so a key near
//! its limit falls back to exact per-call decisions, and other nodes' leases strand little.
//! The headers of a leased call count this node's calls exactly and the other nodes' as of
//! the last grant.
//!
//! Refusals are repeated the same way, for the rest of the second they were decided in: a
//! key past its limit (a client retrying in a loop) costs one script call per second per
//! node, not one per call. The script's answer cannot change within a second unless another
//! node's call or release changes the key's counters: a refused call counts nothing, and
//! every instant its numbers depend on (bucket boundaries, the month's end) falls on a whole
//! second, so every reset and retry in seconds stays the same until then. The node repeats
//! the refusal while Redis's clock, as the node can bound it from when it SENT the call, is
//! still in that second, and only to calls with the same quota, month and cost. Never an
//! over-admission; at worst another node's release is admitted up to a second later.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use uuid::Uuid;

use super::{
    Decision, Quota, Request,
    windows::{WindowState, ceil_secs},
};

const SHARDS: usize = 16;
/// Units asked for when a key first turns hot, per call found waiting.
const FIRST_ASK_PER_CALL: u64 = 4;
/// Bounds of a lease asked for.
const MIN_ASK: u64 = 8;
const MAX_ASK: u64 = 4096;
/// A shard forgets keys idle this long once it holds more than [`SWEEP_ABOVE`].
const IDLE: Duration = Duration::from_secs(3600);
const SWEEP_ABOVE: usize = 4096;
/// Kept off a lease's deadline: the node's and Redis's clocks tick at the same rate only
/// nearly.
const DEADLINE_MARGIN: Duration = Duration::from_millis(2);

/// Units of an ended lease to give back: where they were counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Release {
    /// Start of the minute bucket (Redis's clock, ms) the units were counted in.
    pub bucket_start_ms: u64,
    pub units: u64,
    pub month_id: u32,
}

/// What the script granted, as it reported it.
#[derive(Clone, Copy, Debug)]
pub struct Grant {
    pub units: u64,
    /// How long the lease may be used, from Redis's instant of the grant.
    pub lease_ms: u64,
    pub bucket_start_ms: u64,
    /// Minute, hour, day, month once the grant is counted: used, and ms until the oldest
    /// counted bucket leaves (the month: until it ends).
    pub after: [(u64, u64); 4],
}

/// What the dispatcher sends with a key's next script call.
#[derive(Debug, Default)]
pub struct Ask {
    /// Units to ask for; 0 = none.
    pub units: u64,
    pub releases: Vec<Release>,
}

struct Lease {
    quota: Quota,
    month_id: u32,
    bucket_start_ms: u64,
    /// The last grant's size: below half of it left, more is asked for.
    last_grant: u64,
    /// Everything granted into this lease (its refills included).
    granted: u64,
    left: u64,
    expires: Instant,
    /// Per window: used once everything granted is counted, and when it next resets.
    after: [(u64, Instant); 4],
}

impl Lease {
    fn usable(&self, req: &Request, now: Instant) -> bool {
        self.quota == req.quota
            && self.month_id == req.month.id
            && now < self.expires
            && self.left >= req.cost
    }

    /// The decision of a call just taken from the lease.
    fn decision(&self, now: Instant) -> Decision {
        let window = |i: usize, limit: u64| {
            let (used, reset_at) = self.after[i];
            let reset = ceil_secs(reset_at.saturating_duration_since(now).as_millis() as u64);
            WindowState {
                limit,
                used: used.saturating_sub(self.left),
                reset_secs: reset.max(1),
                reset_if_counted_secs: reset.max(1),
                retry_after_secs: 0,
            }
        };
        let q = &self.quota;
        let sliding = [window(0, q.minute), window(1, q.hour), window(2, q.day)];
        let month = q.month.map(|limit| window(3, limit));
        Decision::new(sliding, month)
    }

    /// The units not used, to give back.
    fn release(&self) -> Option<Release> {
        (self.left > 0).then_some(Release {
            bucket_start_ms: self.bucket_start_ms,
            units: self.left,
            month_id: self.month_id,
        })
    }
}

/// A refusal the script answered, repeated to the same calls until [`Self::until`].
struct Refusal {
    quota: Quota,
    month_id: u32,
    cost: u64,
    decision: Decision,
    until: Instant,
}

impl Refusal {
    fn repeats(&self, req: &Request, now: Instant) -> bool {
        now < self.until
            && self.quota == req.quota
            && self.month_id == req.month.id
            && self.cost == req.cost
    }
}

/// One key's lease and what the dispatcher needs to know about it. Every key a node has
/// decided recently has one, and most never lease nor keep refusing, so the two large parts
/// are boxed: ~70 bytes a key instead of ~500.
struct Entry {
    lease: Option<Box<Lease>>,
    /// The script's last refusal of a call for this key, while it still holds.
    refusal: Option<Box<Refusal>>,
    releases: Vec<Release>,
    /// Units to ask for next; 0 = the key is not hot.
    ask: u64,
    /// A script call asking for a lease is on its way.
    asking: bool,
    last_active: Instant,
}

impl Entry {
    fn new(now: Instant) -> Self {
        Self {
            lease: None,
            refusal: None,
            releases: Vec::new(),
            ask: 0,
            asking: false,
            last_active: now,
        }
    }

    /// Ends the lease if it cannot serve `req` any more, keeping its unused units to give
    /// back; a lease that ended mostly unused halves the next ask.
    fn end_lease_unless_serving(&mut self, req: &Request, now: Instant) {
        let Some(lease) = &self.lease else { return };
        let serving = lease.quota == req.quota && lease.month_id == req.month.id;
        if serving && now < lease.expires {
            return;
        }
        if let Some(release) = lease.release() {
            if release.units * 2 > lease.granted {
                self.ask /= 2;
                if self.ask < MIN_ASK {
                    self.ask = 0;
                }
            }
            self.releases.push(release);
        }
        self.lease = None;
    }
}

/// Every key's lease on this node, sharded like the in-process limiter.
pub struct Leases {
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
}

#[derive(Default)]
struct Shard {
    keys: HashMap<Uuid, Entry>,
    /// Calls admitted from its leases so far (counted under the lock already held).
    taken: u64,
    /// Refusals repeated without a script call so far.
    repeated: u64,
}

impl Default for Leases {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl Leases {
    fn shard(&self, key: &Uuid) -> MutexGuard<'_, Shard> {
        lock(&self.shards[self.hasher.hash_one(key) as usize % SHARDS])
    }

    /// Decides `req` without a script call when its key's lease can admit it, or when the
    /// script's last refusal of the same call still holds: the decision, and whether the
    /// caller should ask the dispatcher for more lease (it is running low).
    pub fn take(&self, req: &Request, now: Instant) -> Option<(Decision, bool)> {
        let mut shard = self.shard(&req.key);
        let entry = shard.keys.get_mut(&req.key)?;
        if let Some(lease) = entry.lease.as_mut().filter(|l| l.usable(req, now)) {
            lease.left -= req.cost;
            let decision = lease.decision(now);
            let low = lease.left * 2 < lease.last_grant;
            let refill = low && !entry.asking;
            entry.asking |= refill;
            entry.last_active = now;
            shard.taken += 1;
            return Some((decision, refill));
        }
        let decision = entry
            .refusal
            .as_ref()
            .filter(|r| r.repeats(req, now))?
            .decision;
        shard.repeated += 1;
        Some((decision, false))
    }

    /// Calls admitted from leases so far.
    pub fn taken(&self) -> u64 {
        self.sum(|shard| shard.taken)
    }

    /// Refusals repeated without a script call so far.
    pub fn repeated(&self) -> u64 {
        self.sum(|shard| shard.repeated)
    }

    fn sum(&self, count: impl Fn(&Shard) -> u64) -> u64 {
        self.shards.iter().map(|shard| count(&lock(shard))).sum()
    }

    /// After a script call (sent at `sent`) refused `req` as `decision`, deciding at
    /// `decided_at_ms` by Redis's clock: repeats it to the same calls for the rest of that
    /// second (see the module's documentation). A script call that admitted `req` forgets
    /// any refusal held.
    pub fn remember(&self, req: &Request, decision: &Decision, decided_at_ms: u64, sent: Instant) {
        let mut shard = self.shard(&req.key);
        if decision.allowed {
            if let Some(entry) = shard.keys.get_mut(&req.key) {
                entry.refusal = None;
            }
            return;
        }
        // Redis read its clock after `sent`: the second ends no later than this.
        let rest_of_second = Duration::from_millis(1000 - decided_at_ms % 1000);
        let Some(until) = (sent + rest_of_second).checked_sub(DEADLINE_MARGIN) else {
            return;
        };
        let entry = shard
            .keys
            .entry(req.key)
            .or_insert_with(|| Entry::new(sent));
        entry.last_active = sent;
        entry.refusal = Some(Box::new(Refusal {
            quota: req.quota,
            month_id: req.month.id,
            cost: req.cost,
            decision: *decision,
            until,
        }));
    }

    /// A request for a lease that could not be queued, or whose script call failed: nothing
    /// was granted that the node knows of, so a later call may ask again. (Releases it carried
    /// are not retried: one applied twice could over-admit.)
    pub fn ask_failed(&self, key: &Uuid) {
        if let Some(entry) = self.shard(key).keys.get_mut(key) {
            entry.asking = false;
        }
    }

    /// Redis failed: every lease, and every release still to be given back, is forfeited,
    /// so the failure policy decides the calls the leases would have admitted. Their units
    /// stay counted in Redis if it kept them (this only under-admits); given back to a Redis
    /// that restarted empty they could uncount other nodes' calls. Keys stay hot: their next
    /// script call after Redis is back asks for a lease again.
    pub fn forfeit_all(&self) {
        for shard in &self.shards {
            for entry in lock(shard).keys.values_mut() {
                entry.lease = None;
                entry.refusal = None;
                entry.releases.clear();
            }
        }
    }

    /// Before a script call deciding `calls` calls like `req` (and/or refilling): the lease to
    /// ask for and the units to give back.
    pub fn prepare(&self, req: &Request, calls: usize, refill: bool, now: Instant) -> Ask {
        let mut shard = self.shard(&req.key);
        if shard.keys.len() > SWEEP_ABOVE {
            shard
                .keys
                .retain(|_, entry| now.duration_since(entry.last_active) < IDLE);
        }
        let hot = refill || calls >= 2;
        if !hot && !shard.keys.contains_key(&req.key) {
            return Ask::default();
        }
        let entry = shard.keys.entry(req.key).or_insert_with(|| Entry::new(now));
        entry.last_active = now;
        entry.end_lease_unless_serving(req, now);
        if hot && entry.ask == 0 {
            entry.ask = (calls as u64 * FIRST_ASK_PER_CALL).clamp(MIN_ASK, MAX_ASK);
        }
        // A key stays hot while its leases get used (the ask halves to nothing otherwise), so
        // steady traffic that never queues keeps deciding locally too.
        let units = entry.ask;
        entry.asking |= units > 0;
        Ask {
            units,
            releases: std::mem::take(&mut entry.releases),
        }
    }

    /// After the script call: installs `grant` (sent at `sent`, answered at `received`).
    pub fn install(&self, req: &Request, grant: Grant, sent: Instant, received: Instant) {
        let mut shard = self.shard(&req.key);
        let entry = shard
            .keys
            .entry(req.key)
            .or_insert_with(|| Entry::new(received));
        entry.asking = false;
        if grant.units == 0 {
            return;
        }
        // Redis had room for the grant: whatever it refused before no longer holds.
        entry.refusal = None;
        let after = grant
            .after
            .map(|(used, reset_ms)| (used, received + Duration::from_millis(reset_ms)));
        let expires = (sent + Duration::from_millis(grant.lease_ms))
            .checked_sub(DEADLINE_MARGIN)
            .unwrap_or(sent);
        match &mut entry.lease {
            Some(lease)
                if lease.bucket_start_ms == grant.bucket_start_ms
                    && lease.quota == req.quota
                    && lease.month_id == req.month.id =>
            {
                // A refill of a lease that was being used up: more next time.
                lease.left += grant.units;
                lease.last_grant = grant.units;
                lease.granted += grant.units;
                lease.after = after;
                lease.expires = lease.expires.min(expires);
                entry.ask = (entry.ask * 2).min(MAX_ASK);
            }
            _ => {
                if let Some(release) = entry.lease.as_deref().and_then(Lease::release) {
                    entry.releases.push(release);
                }
                entry.lease = Some(Box::new(Lease {
                    quota: req.quota,
                    month_id: req.month.id,
                    bucket_start_ms: grant.bucket_start_ms,
                    last_grant: grant.units,
                    granted: grant.units,
                    left: grant.units,
                    expires,
                    after,
                }));
            }
        }
    }
}

/// A shard's lock, taken even after a panic while it was held: nothing here panics between
/// two writes that must agree, so the shard is still sound.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::month::MonthSpan;

    fn request(cost: u64) -> Request {
        let month = MonthSpan {
            id: 202611,
            start_ms: 0,
            end_ms: u64::MAX / 2,
        };
        Request {
            key: Uuid::nil(),
            quota: Quota {
                minute: 1000,
                hour: 10_000,
                day: 100_000,
                month: Some(1_000_000),
            },
            cost,
            month,
            next_month: month,
        }
    }

    /// A key made hot by 4 waiting calls and granted 16 units (16 used with them).
    fn leased() -> (Leases, Instant, Request) {
        let (leases, now, req) = (Leases::default(), Instant::now(), request(1));
        leases.prepare(&req, 4, false, now);
        leases.install(&req, grant(16, 16), now, now);
        (leases, now, req)
    }

    fn grant(units: u64, used: u64) -> Grant {
        Grant {
            units,
            lease_ms: 4_000,
            bucket_start_ms: 60_000,
            after: [
                (used, 50_500),
                (used, 3_000_000),
                (used, 80_000_000),
                (used, 9_000),
            ],
        }
    }

    #[test]
    fn a_cold_key_asks_for_nothing_and_a_hot_one_gets_a_lease() {
        let leases = Leases::default();
        let now = Instant::now();
        let req = request(1);
        assert_eq!(leases.prepare(&req, 1, false, now).units, 0);
        assert!(leases.take(&req, now).is_none());
        let ask = leases.prepare(&req, 5, false, now);
        assert_eq!(ask.units, 20);
        leases.install(&req, grant(20, 120), now, now);
        let (first, refill) = leases.take(&req, now).unwrap();
        assert!(first.allowed && !refill);
        // 120 counted with the lease, 19 of it still unused: 101 calls so far.
        assert_eq!(first.sliding[0].used, 101);
        assert_eq!(first.sliding[0].reset_secs, 51);
        assert_eq!(first.month.unwrap().reset_secs, 9);
        for _ in 0..9 {
            leases.take(&req, now).unwrap();
        }
        // Below half: the 11th call asks for more, once.
        let (_, refill) = leases.take(&req, now).unwrap();
        assert!(refill);
        let (_, again) = leases.take(&req, now).unwrap();
        assert!(!again, "one refill at a time");
    }

    #[test]
    fn a_lease_ends_with_its_bucket_and_gives_back_what_it_did_not_use() {
        let (leases, now, req) = leased();
        leases.take(&req, now).unwrap();
        let later = now + Duration::from_millis(3_999);
        assert!(leases.take(&req, later).is_none(), "past the deadline");
        let ask = leases.prepare(&req, 1, false, later);
        assert_eq!(
            ask.releases,
            vec![Release {
                bucket_start_ms: 60_000,
                units: 15,
                month_id: 202611
            }]
        );
        // The lease went mostly unused: the next ask halves; below the smallest ask, the
        // key is cold again.
        assert_eq!(ask.units, 8);
        let next = later + Duration::from_secs(5);
        leases.install(&req, grant(8, 8), next, next);
        let ask = leases.prepare(&req, 1, false, next + Duration::from_secs(5));
        assert_eq!((ask.units, ask.releases.len()), (0, 1));
    }

    #[test]
    fn a_busy_lease_ending_just_after_a_refill_keeps_its_ask() {
        let (leases, now, req) = leased();
        for _ in 0..16 {
            leases.take(&req, now).unwrap();
        }
        // Used up, refilled (the ask doubles to 32), and the bucket ends with the refill
        // unused: 16 of 32 granted went unused, which is not "mostly".
        leases.install(&req, grant(16, 32), now, now);
        let ask = leases.prepare(&req, 1, false, now + Duration::from_secs(4));
        assert_eq!(ask.releases[0].units, 16);
        assert_eq!(ask.units, 32);
    }

    #[test]
    fn a_lease_serves_only_the_quota_it_was_granted_under() {
        let (leases, now, req) = leased();
        let mut changed = req;
        changed.quota.minute = 10;
        assert!(leases.take(&changed, now).is_none());
        let ask = leases.prepare(&changed, 1, false, now);
        assert_eq!(ask.releases.len(), 1);
        assert!(leases.take(&req, now).is_none(), "the old lease is gone");
        let costly = request(17);
        leases.install(&req, grant(16, 16), now, now);
        assert!(leases.take(&costly, now).is_none(), "more than is left");
    }

    #[test]
    fn a_redis_failure_forfeits_every_lease_and_release_but_not_the_heat() {
        let (leases, now, req) = leased();
        let mut other = request(1);
        other.key = Uuid::from_u128(7);
        leases.prepare(&other, 4, false, now);
        leases.install(&other, grant(16, 16), now, now);
        // A release waiting to be given back, from a lease ended by a quota change.
        let mut changed = req;
        changed.quota.minute = 10;
        leases.prepare(&changed, 1, false, now);
        leases.install(&changed, grant(16, 16), now, now);
        assert!(leases.take(&other, now).is_some());

        leases.forfeit_all();
        assert!(leases.take(&changed, now).is_none());
        assert!(leases.take(&other, now).is_none());
        let ask = leases.prepare(&changed, 1, false, now);
        assert!(
            ask.releases.is_empty(),
            "nothing given back after a failure"
        );
        assert!(ask.units > 0, "the key is still hot");
    }

    /// The script's refusal of a call for a minute limit of 1000 already used up.
    fn refused() -> Decision {
        let window = |limit, used, retry| WindowState {
            limit,
            used,
            reset_secs: 55,
            retry_after_secs: retry,
            reset_if_counted_secs: 55,
        };
        let sliding = [
            window(1000, 1000, 55),
            window(10_000, 1000, 0),
            window(100_000, 1000, 0),
        ];
        Decision::new(sliding, Some(window(1_000_000, 1000, 0)))
    }

    #[test]
    fn a_refusal_is_repeated_to_the_same_calls_for_the_rest_of_its_second() {
        let (leases, sent, req) = (Leases::default(), Instant::now(), request(1));
        let refusal = refused();
        assert!(!refusal.allowed);
        // Decided 250 ms into a second: repeated for the 750 ms left, less the margin.
        leases.remember(&req, &refusal, 60_250, sent);
        let ms = |n| sent + Duration::from_millis(n);
        assert_eq!(leases.take(&req, ms(700)), Some((refusal, false)));
        assert_eq!(leases.take(&req, ms(747)), Some((refusal, false)));
        assert!(leases.take(&req, ms(748)).is_none(), "the second has ended");
        let mut other = req;
        other.cost = 2;
        assert!(leases.take(&other, ms(1)).is_none(), "another cost");
        other = req;
        other.quota.minute = 2000;
        assert!(leases.take(&other, ms(1)).is_none(), "another quota");
        other = req;
        other.month.id = 202612;
        assert!(leases.take(&other, ms(1)).is_none(), "another month");
        assert_eq!(leases.repeated(), 2);
        assert_eq!(leases.taken(), 0, "nothing admitted");

        // A call the script admitted forgets the refusal.
        let admitted = Decision::new([WindowState::default(); 3], None);
        leases.remember(&req, &admitted, 60_300, sent);
        assert!(leases.take(&req, ms(1)).is_none());
        // A refusal decided in a second's last 2 ms is not repeated at all.
        leases.remember(&req, &refusal, 60_998, sent);
        assert!(leases.take(&req, sent).is_none());
    }

    #[test]
    fn a_grant_ends_the_refusal_it_proves_wrong() {
        let (leases, now, req) = leased();
        // More than the lease will hold after the refill below.
        let costly = request(40);
        leases.remember(&costly, &refused(), 60_000, now);
        assert!(leases.take(&costly, now).is_some());
        leases.install(&req, grant(16, 16), now, now);
        assert!(leases.take(&costly, now).is_none(), "Redis had room since");
        assert!(leases.take(&req, now).unwrap().0.allowed);
    }
}
