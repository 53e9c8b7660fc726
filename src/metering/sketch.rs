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
