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
    windows::{SLIDING, SLOTS, Sliding, WindowState, judge_month, judge_sliding},
};

const SHARDS: usize = 16;
/// Keys idle longer than this (and outside the current month) are forgotten by a sweep.
const IDLE_MS: u64 = 35 * 24 * 3600 * 1000;
/// A shard sweeps idle keys when it grows past this many.
const SWEEP_ABOVE: usize = 8192;

/// Counters of one key.
#[derive(Clone, Default)]
struct KeyState {
    sliding: [Ring; 3],
    month_id: u32,
    month_used: u64,
    last_ms: u64,
}

/// Bucket counts of one window: `count[b % SLOTS]` is bucket `b`'s for the [`SLOTS`]
/// buckets up to `head`, the latest bucket counted (slots are emptied as it moves on). One
/// bucket number per ring rather than one per slot: 112 bytes instead of 208, which for
/// 100,000 active keys is ~30 MB.
#[derive(Clone, Copy, Default)]
struct Ring {
    head: u64,
    count: [u64; SLOTS],
}

impl Ring {
    /// Whether bucket `b`'s count is in its slot.
    fn holds(&self, b: u64) -> bool {
        b <= self.head && self.head - b < SLOTS as u64
    }

    fn slot(b: u64) -> usize {
        (b % SLOTS as u64) as usize
    }

    /// Counts of the buckets ending with `current`, oldest first.
    fn window(&self, current: u64) -> [u64; SLOTS] {
        let mut out = [0; SLOTS];
        for (i, slot) in out.iter_mut().enumerate() {
            let b = (current + i as u64 + 1).wrapping_sub(SLOTS as u64);
            if self.holds(b) {
                *slot = self.count[Self::slot(b)];
            }
        }
        out
    }

    fn add(&mut self, current: u64, cost: u64) {
        if current > self.head {
            // The buckets after the old head, up to `current`, start empty.
            let fresh = (current - self.head).min(SLOTS as u64);
            for b in current + 1 - fresh..=current {
                self.count[Self::slot(b)] = 0;
            }
            self.head = current;
        }
        // A bucket older than every slot (the clock stepped back that far) counts nowhere.
        if self.holds(current) {
            self.count[Self::slot(current)] += cost;
        }
    }
}

pub struct MemoryLimiter {
    shards: Vec<Mutex<HashMap<Uuid, KeyState>>>,
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
            map.retain(|_, state| now_ms.saturating_sub(state.last_ms) < IDLE_MS);
        }
        let state = map.entry(req.key).or_default();
        let limits = [req.quota.minute, req.quota.hour, req.quota.day].map(|l| self.scaled(l));
        let mut sliding = [WindowState::default(); 3];
        for (i, w) in SLIDING.iter().enumerate() {
            let counts = state.sliding[i].window(w.bucket(now_ms));
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
    for (ring, w) in state.sliding.iter_mut().zip(SLIDING.iter()) {
        ring.add(Sliding::bucket(w, now_ms), req.cost);
    }
    if state.month_id != req.month.id {
        state.month_id = req.month.id;
        state.month_used = 0;
    }
    state.month_used += req.cost;
    state.last_ms = now_ms;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_keeps_the_last_slots_buckets_and_forgets_older_ones() {
        let mut ring = Ring::default();
        let start = 1_000_000;
        for b in start..start + 20 {
            ring.add(b, b - start + 1);
        }
        // Buckets start+7 ..= start+19 held counts 8 ..= 20.
        let expected: Vec<u64> = (8..=20).collect();
        assert_eq!(ring.window(start + 19).to_vec(), expected);
        // Two buckets later (nothing counted meanwhile): the two oldest left, two empty came.
        let mut later: Vec<u64> = (10..=20).collect();
        later.extend([0, 0]);
        assert_eq!(ring.window(start + 21).to_vec(), later);
        // A gap longer than the ring empties it.
        ring.add(start + 100, 5);
        let mut fresh = vec![0; SLOTS - 1];
        fresh.push(5);
        assert_eq!(ring.window(start + 100).to_vec(), fresh);
        // The clock stepping back within the ring counts in that bucket; further, nowhere.
        ring.add(start + 98, 2);
        ring.add(start + 50, 9);
        let mut stepped = vec![0; SLOTS - 3];
        stepped.extend([2, 0, 5]);
        assert_eq!(ring.window(start + 100).to_vec(), stepped);
    }
}
