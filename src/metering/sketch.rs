//! The mergeable latency sketch kept in every rollup bucket: an HDR histogram of latencies in
//! microseconds with two significant digits, serialized in the HdrHistogram V2 format.
//!
//! Error bound: values below 256 µs are exact; above, a value shares its bucket with values
//! within 1/128 of it, and a quantile is reported as the middle of its bucket, so any
//! percentile is within **0.4 %** of the exact nearest-rank value of the same events (≤ 1 %
//! stated to users). Merging two sketches is exact: the merged sketch equals the sketch of
//! the union of their events, so percentiles over any range and filter merge bucket sketches.

use std::{borrow::Cow, sync::OnceLock};

use hdrhistogram::{
    Histogram,
    serialization::{Deserializer, Serializer, V2Serializer},
};

const SIGNIFICANT_DIGITS: u8 = 2;

/// The V2 (uncompressed) cookie of the HdrHistogram encoding.
const V2_COOKIE: u32 = 0x1c84_9303 | 0x10;
/// Bytes before the counts: cookie, payload length, normalizing offset, digits (u32 each),
/// lowest and highest trackable values (u64), integer-to-double ratio (f64), big-endian.
const V2_HEADER: usize = 40;
/// Our layout (lowest value 1, two digits): 128 = half of 2^⌈log2(2·10²)⌉ sub-buckets.
const HALF_COUNT_MAGNITUDE: u32 = 7;
const HALF_COUNT: u64 = 1 << HALF_COUNT_MAGNITUDE;

/// Distinct buckets a sketch keeps as a sorted list before it becomes a histogram.
const SPARSE_MAX: usize = 32;

/// A sketch of few latencies (most rollup rows of a batch hold one to three) is a sorted list
/// of (bucket index, count) pairs, 16 bytes a bucket; past [`SPARSE_MAX`] buckets it is the
/// histogram itself, whose counts array is 2-9 KB from the first value on. Both record the
/// same buckets, so encodings, merges and quantiles do not depend on which one a sketch is.
#[derive(Clone, Debug)]
pub struct LatencySketch(Repr);

#[derive(Clone, Debug)]
enum Repr {
    Sparse(Vec<(u16, u64)>),
    /// Boxed: a histogram's header is ~100 bytes, and most sketches (every pending row's,
    /// thousands in a batch) are short lists.
    Dense(Box<Histogram<u64>>),
}

impl Default for LatencySketch {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for LatencySketch {
    fn eq(&self, other: &Self) -> bool {
        self.buckets().eq(other.buckets())
    }
}

impl LatencySketch {
    pub fn new() -> Self {
        Self(Repr::Sparse(Vec::new()))
    }

    /// Records one call's latency (negative values count as 0).
    pub fn record(&mut self, latency_us: i64) {
        self.record_n(latency_us, 1);
    }

    pub fn record_n(&mut self, latency_us: i64, count: u64) {
        self.record_index(index_of(latency_us.max(0) as u64), count);
    }

    /// Adds `count` to the bucket at `index` (of our layout).
    fn record_index(&mut self, index: u16, count: u64) {
        if count == 0 {
            return;
        }
        match &mut self.0 {
            Repr::Sparse(buckets) => {
                match buckets.binary_search_by_key(&index, |(i, _)| *i) {
                    Ok(at) => buckets[at].1 = buckets[at].1.saturating_add(count),
                    Err(at) => buckets.insert(at, (index, count)),
                }
                if buckets.len() > SPARSE_MAX {
                    self.0 = Repr::Dense(Box::new(self.histogram().into_owned()));
                }
            }
            Repr::Dense(histogram) => {
                // Cannot fail: the histogram resizes to fit any u64.
                histogram.record_n(value_at(index.into()), count).ok();
            }
        }
    }

    pub fn merge(&mut self, other: &LatencySketch) {
        match (&mut self.0, &other.0) {
            (Repr::Dense(ours), Repr::Dense(theirs)) => {
                // Cannot fail with auto-resize on.
                ours.add(&**theirs).ok();
            }
            _ => {
                for (index, count) in other.buckets() {
                    self.record_index(index, count);
                }
            }
        }
    }

    /// Number of latencies recorded.
    pub fn count(&self) -> u64 {
        match &self.0 {
            Repr::Sparse(buckets) => buckets.iter().map(|(_, n)| n).sum(),
            Repr::Dense(histogram) => histogram.len(),
        }
    }

    /// The latency at quantile `q` (0.0–1.0), within the error bound above; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<i64> {
        let histogram = self.histogram();
        if histogram.is_empty() {
            return None;
        }
        let value = histogram.value_at_quantile(q.clamp(0.0, 1.0));
        Some(histogram.median_equivalent(value) as i64)
    }

    /// The V2 encoding (uncompressed: a zig-zag LEB128 run-length of the counts).
    pub fn encode(&self) -> Vec<u8> {
        match &self.0 {
            Repr::Sparse(buckets) if buckets.iter().all(|(_, n)| i64::try_from(*n).is_ok()) => {
                encode_list(buckets)
            }
            _ => self.encode_histogram(),
        }
    }

    /// The V2 encoding through HdrHistogram's serializer.
    fn encode_histogram(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        V2Serializer::new()
            .serialize(&self.histogram(), &mut out)
            .expect("serializing into a Vec cannot fail");
        out
    }

    /// The non-empty buckets in index order, with their counts.
    fn buckets(&self) -> Box<dyn Iterator<Item = (u16, u64)> + '_> {
        match &self.0 {
            Repr::Sparse(buckets) => Box::new(buckets.iter().copied()),
            Repr::Dense(histogram) => Box::new(
                histogram
                    .iter_recorded()
                    .map(|v| (index_of(v.value_iterated_to()), v.count_at_value())),
            ),
        }
    }

    /// This sketch as a histogram (built for the moment when it is a list).
    fn histogram(&self) -> Cow<'_, Histogram<u64>> {
        match &self.0 {
            Repr::Dense(histogram) => Cow::Borrowed(&**histogram),
            Repr::Sparse(buckets) => {
                let mut histogram =
                    Histogram::new(SIGNIFICANT_DIGITS).expect("2 significant digits are valid");
                for (index, count) in buckets {
                    histogram.record_n(value_at((*index).into()), *count).ok();
                }
                Cow::Owned(histogram)
            }
        }
    }

    /// Adds an encoded sketch ([`encode`](Self::encode)'s output) to this one, reading its
    /// counts straight from the bytes: no histogram is built for it. Same result as
    /// `merge(&decode(bytes)?)`, which is what other layouts fall back to.
    pub fn merge_encoded(&mut self, bytes: &[u8]) -> Result<(), SketchError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let Some((header, counts)) = bytes.split_at_checked(V2_HEADER) else {
            return Err(SketchError("truncated header".into()));
        };
        let word = |at: usize| u32::from_be_bytes(header[at..at + 4].try_into().expect("4 bytes"));
        let lowest = u64::from_be_bytes(header[16..24].try_into().expect("8 bytes"));
        let ours = word(0) == V2_COOKIE
            && word(8) == 0
            && word(12) == u32::from(SIGNIFICANT_DIGITS)
            && lowest == 1
            && f64::from_be_bytes(header[32..40].try_into().expect("8 bytes")) == 1.0;
        if !ours {
            self.merge(&Self::decode_histogram(bytes)?);
            return Ok(());
        }
        let Some(counts) = counts.get(..word(4) as usize) else {
            return Err(SketchError("truncated counts".into()));
        };
        let (mut at, mut index) = (0usize, 0u64);
        while at < counts.len() {
            let (zig_zag, read) = varint(&counts[at..])?;
            at += read;
            // Zig-zag: a negative number is a run of empty buckets.
            let n = (zig_zag >> 1) as i64 ^ -((zig_zag & 1) as i64);
            if n < 0 {
                index = index.saturating_add(n.unsigned_abs());
            } else {
                if n > 0 {
                    // Beyond the last bucket a corrupt index cannot name a value: it counts
                    // in the last one.
                    self.record_index(index.min(MAX_INDEX) as u16, n as u64);
                }
                index += 1;
            }
        }
        Ok(())
    }

    /// Decodes [`encode`](Self::encode)'s output; an empty slice is an empty sketch. A sketch
    /// of few buckets comes back as a list, like the one that was encoded: the compactor
    /// reads back every pending row's sketch, and most hold one to three calls (a histogram
    /// built for each, with its 2-9 KB counts array, cost about a quarter of the metering
    /// threads' CPU with calls spread over 100,000 keys: `docs/benchmarks.md`, Memory).
    pub fn decode(bytes: &[u8]) -> Result<Self, SketchError> {
        let mut sketch = Self::new();
        sketch.merge_encoded(bytes)?;
        Ok(sketch)
    }

    /// Decodes any V2 encoding through HdrHistogram's deserializer, as a histogram.
    fn decode_histogram(bytes: &[u8]) -> Result<Self, SketchError> {
        if bytes.is_empty() {
            return Ok(Self::new());
        }
        let mut histogram: Histogram<u64> = Deserializer::new()
            .deserialize(&mut &bytes[..])
            .map_err(|err| SketchError(format!("{err:?}")))?;
        histogram.auto(true);
        Ok(Self(Repr::Dense(Box::new(histogram))))
    }
}

/// [`LatencySketch::encode`] of a list, written straight from it: the bytes of building its
/// histogram and serializing that (test `lists_encode_to_their_histograms_bytes`), without
/// allocating, zeroing and scanning the histogram's 2-9 KB counts array. A batch encodes a
/// sketch for each of its rollup rows and most are lists: with calls spread over many keys,
/// nearly every row holds one call.
fn encode_list(buckets: &[(u16, u64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(V2_HEADER + 2 + 4 * buckets.len());
    let top = buckets.last().map_or(0, |(index, _)| *index);
    out.extend(V2_COOKIE.to_be_bytes());
    out.extend(0u32.to_be_bytes()); // the counts' length, set at the end
    out.extend(0u32.to_be_bytes()); // normalizing offset
    out.extend(u32::from(SIGNIFICANT_DIGITS).to_be_bytes());
    out.extend(1u64.to_be_bytes()); // lowest discernible value
    out.extend(highest_trackable(top).to_be_bytes());
    out.extend(1f64.to_be_bytes()); // integer-to-double ratio
    // Counts from index 0 to the top one; a run of two or more empty buckets is one negative
    // number, a single empty bucket a 0. An empty sketch is one empty bucket.
    let mut next = 0u16;
    for &(index, count) in buckets {
        match index - next {
            0 => {}
            1 => push_varint(&mut out, 0),
            empty => push_varint(&mut out, zig_zag(-i64::from(empty))),
        }
        push_varint(&mut out, zig_zag(count as i64));
        next = index + 1;
    }
    if buckets.is_empty() {
        push_varint(&mut out, 0);
    }
    let counts = (out.len() - V2_HEADER) as u32;
    out[4..8].copy_from_slice(&counts.to_be_bytes());
    out
}

/// The highest trackable value in the header of a histogram whose top bucket is at `index`:
/// the histogram grows (auto-resize) by HdrHistogram buckets of 128 indexes, so it depends
/// only on the top one's; computed once per bucket the way the histogram computes it.
fn highest_trackable(index: u16) -> u64 {
    static BY_BUCKET: [OnceLock<u64>; (MAX_INDEX >> HALF_COUNT_MAGNITUDE) as usize + 1] =
        [const { OnceLock::new() }; (MAX_INDEX >> HALF_COUNT_MAGNITUDE) as usize + 1];
    let bucket = (u64::from(index).min(MAX_INDEX) >> HALF_COUNT_MAGNITUDE) as usize;
    *BY_BUCKET[bucket].get_or_init(|| {
        let mut histogram: Histogram<u64> =
            Histogram::new(SIGNIFICANT_DIGITS).expect("2 significant digits are valid");
        histogram.record(value_at(index.into())).ok();
        histogram.high()
    })
}

fn zig_zag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

/// Appends `value` as a V2 LEB128 number (at most 9 bytes, the ninth holding 8 bits; the
/// inverse of [`varint`]).
fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    for _ in 0..8 {
        if value < 0x80 {
            out.push(value as u8);
            return;
        }
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The last bucket's index, the one holding `u64::MAX`.
const MAX_INDEX: u64 = 57 * HALF_COUNT + HALF_COUNT - 1;

/// The index of the bucket holding `value` in our layout (HdrHistogram's `index_for`), at
/// most [`MAX_INDEX`].
fn index_of(value: u64) -> u16 {
    // Bucket 0 holds 0..256 one by one; bucket b > 0 holds 128..256 << b in steps of 2^b.
    let bucket = 56 - (value | (2 * HALF_COUNT - 1)).leading_zeros();
    let sub_bucket = value >> bucket;
    (((u64::from(bucket) + 1) << HALF_COUNT_MAGNITUDE) + sub_bucket - HALF_COUNT) as u16
}

/// The lowest value of the bucket at `index` in our layout (HdrHistogram's `value_for`).
fn value_at(index: u64) -> u64 {
    let bucket = (index >> HALF_COUNT_MAGNITUDE) as i64 - 1;
    let sub_bucket = (index & (HALF_COUNT - 1)) + HALF_COUNT;
    match bucket {
        ..0 => sub_bucket - HALF_COUNT,
        // Beyond 2^64 a corrupt index cannot name a value: record it as the largest.
        56.. => u64::MAX,
        _ => sub_bucket << bucket,
    }
}

/// One LEB128 number of the V2 counts (at most 9 bytes, the ninth holding 8 bits) and the
/// bytes it took.
fn varint(bytes: &[u8]) -> Result<(u64, usize), SketchError> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(9) {
        if i == 8 {
            return Ok((value | u64::from(b) << 56, 9));
        }
        value |= u64::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(SketchError("truncated count".into()))
}

#[derive(Debug, thiserror::Error)]
#[error("invalid latency sketch: {0}")]
pub struct SketchError(String);

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(sorted: &[i64], q: f64) -> i64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    #[test]
    fn lists_encode_to_their_histograms_bytes() {
        use rand::{RngExt, SeedableRng, rngs::StdRng};
        let mut cases: Vec<Vec<(i64, u64)>> = vec![
            vec![],
            vec![(0, 1)],
            vec![(1, 1)],
            vec![(2, 3)],
            vec![(255, 1)],
            vec![(256, 1)],
            vec![(0, 1), (2, 1), (5, 2), (6, 1)],
            vec![(120, 7), (40_000, 1), (9_000_000_000, 2)],
            vec![(1, u32::MAX as u64 + 9)],
            vec![(i64::MAX, 1)],
        ];
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..500 {
            let top: i64 = 10i64.pow(rng.random_range(1..13));
            let n = rng.random_range(1..=SPARSE_MAX);
            cases.push(
                (0..n)
                    .map(|_| (rng.random_range(0..top), rng.random_range(1..1000)))
                    .collect(),
            );
        }
        for case in cases {
            let mut sketch = LatencySketch::new();
            for (latency, count) in &case {
                sketch.record_n(*latency, *count);
            }
            assert!(matches!(sketch.0, Repr::Sparse(_)), "{case:?}");
            assert_eq!(sketch.encode(), sketch.encode_histogram(), "{case:?}");
        }
    }

    #[test]
    fn merging_encoded_bytes_equals_decoding_then_merging() {
        let spreads: [&dyn Fn(i64) -> i64; 4] = [
            &|i| 1 + (i * i * 7919) % 30_000_000,
            &|i| i % 300,
            &|i| 1_000 + (i * 37) % 5_000,
            &|i| if i % 2 == 0 { 0 } else { 4_000_000_000_000 + i },
        ];
        let mut by_bytes = LatencySketch::new();
        let mut by_decoding = LatencySketch::new();
        for (n, spread) in spreads.iter().enumerate() {
            let mut part = LatencySketch::new();
            (0..2_000 * (n as i64 + 1)).for_each(|i| part.record(spread(i)));
            let bytes = part.encode();
            let mut alone = LatencySketch::new();
            alone.merge_encoded(&bytes).unwrap();
            assert_eq!(alone, part, "spread {n} alone");
            by_bytes.merge_encoded(&bytes).unwrap();
            by_decoding.merge(&LatencySketch::decode_histogram(&bytes).unwrap());
            assert_eq!(by_bytes, by_decoding, "after spread {n}");
            assert_eq!(by_bytes.quantile(0.99), by_decoding.quantile(0.99));
        }
        by_bytes.merge_encoded(&[]).unwrap();
        assert_eq!(by_bytes, by_decoding);

        // Damaged bytes are an error, never a panic.
        let bytes = by_bytes.encode();
        for cut in [1, V2_HEADER - 1, V2_HEADER + 1, bytes.len() - 1] {
            assert!(
                LatencySketch::new().merge_encoded(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn percentiles_are_within_the_stated_error_and_survive_encoding_and_merging() {
        // A skewed spread from 1 µs to ~30 s, in two halves merged after a round trip.
        let values: Vec<i64> = (0..20_000i64)
            .map(|i| 1 + (i * i * 7919) % 30_000_000)
            .collect();
        let (left, right) = values.split_at(7_000);
        let mut a = LatencySketch::new();
        left.iter().for_each(|v| a.record(*v));
        let mut b = LatencySketch::new();
        right.iter().for_each(|v| b.record(*v));
        let mut merged = LatencySketch::decode(&a.encode()).unwrap();
        merged.merge(&LatencySketch::decode(&b.encode()).unwrap());

        let mut sorted = values.clone();
        sorted.sort_unstable();
        assert_eq!(merged.count(), values.len() as u64);
        for q in [0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let (got, want) = (merged.quantile(q).unwrap(), exact(&sorted, q));
            let error = (got - want).abs() as f64 / want as f64;
            assert!(error <= 0.004, "q={q}: {got} vs exact {want} ({error})");
        }
    }

    #[test]
    fn bucket_indexes_are_hdrhistograms() {
        let mut values: Vec<u64> = (0..600).collect();
        for shift in 8..63 {
            let p = 1u64 << shift;
            values.extend([p - 1, p, p + 1, p + p / 3]);
        }
        values.push(u64::MAX);
        for v in values {
            let mut histogram: Histogram<u64> = Histogram::new(SIGNIFICANT_DIGITS).unwrap();
            histogram.record(v).unwrap();
            let recorded = histogram
                .iter_recorded()
                .next()
                .unwrap()
                .value_iterated_to();
            assert_eq!(index_of(recorded), index_of(v), "{v}");
            if v < 1 << 63 {
                assert_eq!(
                    value_at(index_of(v).into()),
                    histogram.lowest_equivalent(v),
                    "{v}"
                );
            }
        }
        assert_eq!(u64::from(index_of(u64::MAX)), MAX_INDEX);
    }

    #[test]
    fn lists_and_histograms_agree_whatever_the_order_of_merging() {
        // 200 calls over ~100 buckets: the whole is a histogram, each part of 5 a list.
        let values: Vec<i64> = (0..200i64).map(|i| 40 + (i * 7919) % 20_000).collect();
        let mut whole = LatencySketch::new();
        values.iter().for_each(|v| whole.record(*v));
        assert!(matches!(whole.0, Repr::Dense(_)));

        let parts: Vec<LatencySketch> = values
            .chunks(5)
            .map(|chunk| {
                let mut part = LatencySketch::new();
                chunk.iter().for_each(|v| part.record(*v));
                assert!(matches!(part.0, Repr::Sparse(_)));
                part
            })
            .collect();
        let empty_histogram =
            LatencySketch::decode_histogram(&LatencySketch::new().encode()).unwrap();
        assert!(matches!(empty_histogram.0, Repr::Dense(_)));
        let (mut merged, mut by_bytes, mut into_dense) =
            (LatencySketch::new(), LatencySketch::new(), empty_histogram);
        for part in &parts {
            merged.merge(part);
            by_bytes.merge_encoded(&part.encode()).unwrap();
            into_dense.merge(part);
        }
        for other in [&merged, &by_bytes, &into_dense] {
            assert_eq!(other, &whole);
            assert_eq!(other.encode(), whole.encode());
            assert_eq!(other.count(), 200);
            for q in [0.0, 0.5, 0.95, 0.99, 1.0] {
                assert_eq!(other.quantile(q), whole.quantile(q), "q={q}");
            }
        }
        // A list's encoding decodes to the same sketch, a list again; a histogram's to a
        // histogram; both as HdrHistogram's own deserializer reads them.
        for sketch in [&parts[0], &whole] {
            let bytes = sketch.encode();
            let decoded = LatencySketch::decode(&bytes).unwrap();
            assert_eq!(&decoded, sketch);
            assert_eq!(
                matches!(decoded.0, Repr::Sparse(_)),
                matches!(sketch.0, Repr::Sparse(_))
            );
            assert_eq!(decoded, LatencySketch::decode_histogram(&bytes).unwrap());
        }
    }

    #[test]
    fn empty_sketches_encode_decode_and_answer_none() {
        assert_eq!(LatencySketch::decode(&[]).unwrap().quantile(0.5), None);
        let empty = LatencySketch::new();
        assert_eq!(LatencySketch::decode(&empty.encode()).unwrap(), empty);
        assert!(LatencySketch::decode(b"not a sketch").is_err());
    }
}
