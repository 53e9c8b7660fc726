//! The mergeable latency sketch kept in every rollup bucket: an HDR histogram of latencies in
//! microseconds with two significant digits, serialized in the HdrHistogram V2 format.
//!
//! Error bound: values below 256 µs are exact; above, a value shares its bucket with values
//! within 1/128 of it, and a quantile is reported as the middle of its bucket, so any
//! percentile is within **0.4 %** of the exact nearest-rank value of the same events (≤ 1 %
//! stated to users). Merging two sketches is exact: the merged sketch equals the sketch of
//! the union of their events, so percentiles over any range and filter merge bucket sketches.

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

#[derive(Clone, Debug)]
pub struct LatencySketch(Histogram<u64>);

impl Default for LatencySketch {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for LatencySketch {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .eq(other
                    .0
                    .iter_recorded()
                    .map(|v| (v.value_iterated_to(), v.count_at_value())))
    }
}

impl LatencySketch {
    pub fn new() -> Self {
        // Auto-resizing: the counts array grows with the largest latency recorded.
        Self(Histogram::new(SIGNIFICANT_DIGITS).expect("2 significant digits are valid"))
    }

    /// Records one call's latency (negative values count as 0).
    pub fn record(&mut self, latency_us: i64) {
        self.record_n(latency_us, 1);
    }

    pub fn record_n(&mut self, latency_us: i64, count: u64) {
        let value = latency_us.max(0) as u64;
        // Cannot fail: the histogram resizes to fit any u64.
        self.0.record_n(value, count).ok();
    }

    pub fn merge(&mut self, other: &LatencySketch) {
        // Cannot fail with auto-resize on.
        self.0.add(&other.0).ok();
    }

    /// Number of latencies recorded.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The latency at quantile `q` (0.0–1.0), within the error bound above; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<i64> {
        if self.0.is_empty() {
            return None;
        }
        let value = self.0.value_at_quantile(q.clamp(0.0, 1.0));
        Some(self.0.median_equivalent(value) as i64)
    }

    /// The V2 encoding (uncompressed: a zig-zag LEB128 run-length of the counts).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        V2Serializer::new()
            .serialize(&self.0, &mut out)
            .expect("serializing into a Vec cannot fail");
        out
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
            self.merge(&Self::decode(bytes)?);
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
                    self.0.record_n(value_at(index), n as u64).ok();
                }
                index += 1;
            }
        }
        Ok(())
    }

    /// Decodes [`encode`](Self::encode)'s output; an empty slice is an empty sketch.
    pub fn decode(bytes: &[u8]) -> Result<Self, SketchError> {
        if bytes.is_empty() {
            return Ok(Self::new());
        }
        let mut histogram: Histogram<u64> = Deserializer::new()
            .deserialize(&mut &bytes[..])
            .map_err(|err| SketchError(format!("{err:?}")))?;
        histogram.auto(true);
        Ok(Self(histogram))
    }
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
            by_decoding.merge(&LatencySketch::decode(&bytes).unwrap());
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
    fn empty_sketches_encode_decode_and_answer_none() {
        assert_eq!(LatencySketch::decode(&[]).unwrap().quantile(0.5), None);
        let empty = LatencySketch::new();
        assert_eq!(LatencySketch::decode(&empty.encode()).unwrap(), empty);
        assert!(LatencySketch::decode(b"not a sketch").is_err());
    }
}
