//! The in-process limiter: embedded mode, and the fallback when Redis is unreachable. One
//! mutex-guarded map per shard; a decision touches one shard for a few hundred nanoseconds.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::Mutex,
};

use uuid::Uuid;

use super::{
    Decision, Request,
    windows::{SLIDING, SLOTS, WindowState, judge_month, judge_sliding},
};

const SHARDS: usize = 16;
/// Keys idle longer than this (and outside the current month) are forgotten by a sweep.
const IDLE_MS: u64 = 35 * 24 * 3600 * 1000;
/// A shard sweeps idle keys when it grows past this many.
const SWEEP_ABOVE: usize = 8192;

/// Counters of one key: 184 bytes while its counts fit in 32 bits (336 with a bucket number
/// per ring and 64-bit counts). Boxed in the shard's map, whose slots are then 24 bytes: a
/// hash table is up to half empty after it grows (100,000 keys fill 16 tables of 8,192
/// slots: 26 MB of 200-byte slots, against 22 MB boxed).
#[derive(Clone, Default)]
struct KeyState {
    buckets: Buckets,
    /// The latest instant counted (ms, the latest when the clock stepped back): each window's
    /// latest bucket is the one holding it. Also when the key was last active.
    head_ms: u64,
    month_id: u32,
    month_used: u64,
}

/// Bucket counts of the three sliding windows: `count[w][b % SLOTS]` is window `w`'s bucket
/// `b`, for the [`SLOTS`] buckets up to the one holding `head_ms` (slots are emptied as it
/// moves on). 32-bit counts, widened for good the first time one would overflow (a limit
/// above 4,294,967,295 units per bucket).
#[derive(Clone)]
enum Buckets {
    Narrow([[u32; SLOTS]; 3]),
    Wide(Box<[[u64; SLOTS]; 3]>),
}

impl Default for Buckets {
    fn default() -> Self {
        Self::Narrow([[0; SLOTS]; 3])
    }
}

impl Buckets {
    fn get(&self, w: usize, slot: usize) -> u64 {
        match self {
            Self::Narrow(count) => count[w][slot].into(),
            Self::Wide(count) => count[w][slot],
        }
    }

    fn clear(&mut self, w: usize, slot: usize) {
        match self {
            Self::Narrow(count) => count[w][slot] = 0,
            Self::Wide(count) => count[w][slot] = 0,
        }
    }

    fn add(&mut self, w: usize, slot: usize, cost: u64) {
        if let Self::Narrow(count) = self {
            match u32::try_from(u64::from(count[w][slot]) + cost) {
                Ok(sum) => {
                    count[w][slot] = sum;
                    return;
                }
                Err(_) => *self = Self::Wide(Box::new(count.map(|c| c.map(u64::from)))),
            }
        }
        if let Self::Wide(count) = self {
            count[w][slot] += cost;
        }
    }
}

fn slot(b: u64) -> usize {
    (b % SLOTS as u64) as usize
}

/// Whether bucket `b` has its count in its slot, `head` being the window's latest bucket.
fn holds(head: u64, b: u64) -> bool {
    b <= head && head - b < SLOTS as u64
}

impl KeyState {
    /// Counts of window `i`'s buckets ending with `current`, oldest first.
    fn window(&self, i: usize, current: u64) -> [u64; SLOTS] {
        let head = SLIDING[i].bucket(self.head_ms);
        let mut out = [0; SLOTS];
        for (k, count) in out.iter_mut().enumerate() {
            let b = (current + k as u64 + 1).wrapping_sub(SLOTS as u64);
            if holds(head, b) {
                *count = self.buckets.get(i, slot(b));
            }
        }
        out
    }

    /// Counts `cost` at `now_ms` in every sliding window.
    fn add(&mut self, now_ms: u64, cost: u64) {
        if now_ms > self.head_ms {
            for (i, w) in SLIDING.iter().enumerate() {
                // The buckets after the old head, up to the new one, start empty.
                let (old, new) = (w.bucket(self.head_ms), w.bucket(now_ms));
                let fresh = (new - old).min(SLOTS as u64);
                for b in new + 1 - fresh..=new {
                    self.buckets.clear(i, slot(b));
                }
            }
            self.head_ms = now_ms;
        }
        for (i, w) in SLIDING.iter().enumerate() {
            // A bucket older than every slot (the clock stepped back that far) counts nowhere.
            let b = w.bucket(now_ms);
            if holds(w.bucket(self.head_ms), b) {
                self.buckets.add(i, slot(b), cost);
            }
        }
    }
}

pub struct MemoryLimiter {
    shards: Vec<Mutex<HashMap<Uuid, Box<KeyState>>>>,
    hasher: RandomState,
    /// Each limit is divided by this (rounded up): the node's share when several nodes fall
    /// back to local limits at once. 1 in embedded mode.
    share: u64,
}

impl MemoryLimiter {
    pub fn new(share: u64) -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect();
        Self {
            shards,
            hasher: RandomState::new(),
            share: share.max(1),
        }
    }

    /// Decides every window at once: all admit and all count, or nothing counts.
    pub fn decide(&self, req: &Request, now_ms: u64) -> Decision {
        let shard = &self.shards[self.hasher.hash_one(req.key) as usize % SHARDS];
        let mut map = shard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if map.len() > SWEEP_ABOVE {
            map.retain(|_, state| now_ms.saturating_sub(state.head_ms) < IDLE_MS);
        }
        let state = map.entry(req.key).or_default();
        let limits = [req.quota.minute, req.quota.hour, req.quota.day].map(|l| self.scaled(l));
        let mut sliding = [WindowState::default(); 3];
        for (i, w) in SLIDING.iter().enumerate() {
            let counts = state.window(i, w.bucket(now_ms));
            sliding[i] = judge_sliding(w, &counts, limits[i], req.cost, now_ms);
        }
        let month = req.quota.month.map(|limit| {
            let used = if state.month_id == req.month.id {
                state.month_used
            } else {
                0
            };
            judge_month(used, self.scaled(limit), req.cost, now_ms, req.month.end_ms)
        });
        let decision = Decision::new(sliding, month);
        if decision.allowed {
            commit(state, req, now_ms);
        }
        decision.counted(req.cost)
    }

    fn scaled(&self, limit: u64) -> u64 {
        limit.div_ceil(self.share)
    }
}

fn commit(state: &mut KeyState, req: &Request, now_ms: u64) {
    state.add(now_ms, req.cost);
    if state.month_id != req.month.id {
        state.month_id = req.month.id;
        state.month_used = 0;
    }
    state.month_used += req.cost;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::windows::HOUR;

    /// The minute window's buckets are 5 s: bucket `b` holds the instants `b * 5000 ..`.
    const MINUTE_MS: u64 = 5_000;

    #[test]
    fn a_key_keeps_the_last_slots_buckets_and_forgets_older_ones() {
        let mut state = KeyState::default();
        let start = 1_000_000;
        for b in start..start + 20 {
            state.add(b * MINUTE_MS + 1, b - start + 1);
        }
        // Buckets start+7 ..= start+19 held counts 8 ..= 20.
        let expected: Vec<u64> = (8..=20).collect();
        assert_eq!(state.window(0, start + 19).to_vec(), expected);
        // Two buckets later (nothing counted meanwhile): the two oldest left, two empty came.
        let mut later: Vec<u64> = (10..=20).collect();
        later.extend([0, 0]);
        assert_eq!(state.window(0, start + 21).to_vec(), later);
        // A gap longer than the ring empties it.
        state.add((start + 100) * MINUTE_MS, 5);
        let mut fresh = vec![0; SLOTS - 1];
        fresh.push(5);
        assert_eq!(state.window(0, start + 100).to_vec(), fresh);
        // The clock stepping back within the ring counts in that bucket; further, nowhere.
        state.add((start + 98) * MINUTE_MS, 2);
        state.add((start + 50) * MINUTE_MS, 9);
        let mut stepped = vec![0; SLOTS - 3];
        stepped.extend([2, 0, 5]);
        assert_eq!(state.window(0, start + 100).to_vec(), stepped);
        // The hour window's ring (5-minute buckets) still holds every call: they lie ~8
        // minutes apart at most, the stepped-back one included.
        let hour: u64 = state.window(1, HOUR.bucket(state.head_ms)).iter().sum();
        assert_eq!(hour, (1..=20).sum::<u64>() + 5 + 2 + 9);
    }

    #[test]
    fn counts_past_32_bits_stay_exact() {
        let mut state = KeyState::default();
        let now = 1_700_000_000_000;
        state.add(now, u64::from(u32::MAX) - 1);
        assert!(matches!(state.buckets, Buckets::Narrow(_)));
        state.add(now + 1, 3);
        assert!(matches!(state.buckets, Buckets::Wide(_)));
        state.add(now + 2, 5);
        for (i, w) in SLIDING.iter().enumerate() {
            let used: u64 = state.window(i, w.bucket(now)).iter().sum();
            assert_eq!(used, u64::from(u32::MAX) + 7, "{}", w.name);
        }
    }

    #[test]
    fn a_limit_above_32_bits_is_enforced_exactly() {
        let limiter = MemoryLimiter::new(1);
        let limit = 10_000_000_000;
        let now_ms = 1_700_000_000_000;
        let month = super::super::month::MonthSpan {
            id: 202311,
            start_ms: 0,
            end_ms: u64::MAX / 2,
        };
        let request = |cost| Request {
            key: Uuid::nil(),
            quota: super::super::Quota {
                minute: limit,
                hour: limit,
                day: limit,
                month: None,
            },
            cost,
            month,
            next_month: month,
        };
        assert!(limiter.decide(&request(6_000_000_000), now_ms).allowed);
        assert!(limiter.decide(&request(4_000_000_000), now_ms).allowed);
        let refused = limiter.decide(&request(1), now_ms);
        assert!(!refused.allowed);
        assert_eq!(refused.sliding[0].used, limit);
    }

    #[test]
    fn a_key_s_state_stays_small() {
        assert!(
            size_of::<KeyState>() <= 184,
            "{} bytes",
            size_of::<KeyState>()
        );
    }
}
