//! A latency histogram: counts of nanosecond values in log-linear buckets (64 per power of
//! two, so a percentile is at most 1/64 ≈ 1.6 % above the true value), mergeable across
//! threads. `loadgen` and `soak` record every answer's latency into one.

/// Sub-buckets per power of two (2^6): a bucket is at most 1/64 of its value wide.
pub const SUB_BITS: u32 = 6;
pub const SUB: u64 = 1 << SUB_BITS;

/// Counts of nanosecond values in log-linear buckets: exact below 64 ns, then 64 buckets
/// per power of two.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    /// Values recorded.
    pub total: u64,
    sum_ns: u128,
    /// The largest value recorded (exact).
    pub max_ns: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub fn new() -> Self {
        Self {
            counts: vec![0; Self::index(u64::MAX) + 1],
            total: 0,
            sum_ns: 0,
            max_ns: 0,
        }
    }

    pub fn index(v: u64) -> usize {
        if v < SUB {
            return v as usize;
        }
        let k = 63 - v.leading_zeros(); // v in [2^k, 2^(k+1)), k >= SUB_BITS
        let shift = k - SUB_BITS;
        ((k - SUB_BITS + 1) as usize) * SUB as usize + ((v >> shift) - SUB) as usize
    }

    /// The largest value that falls into bucket `i`.
    pub fn upper(i: usize) -> u64 {
        let i = i as u64;
        if i < SUB {
            return i;
        }
        let shift = (i / SUB - 1) as u32;
        let low = (SUB + i % SUB) << shift;
        low + ((1u64 << shift) - 1)
    }

    pub fn record(&mut self, ns: u64) {
        self.counts[Self::index(ns)] += 1;
        self.total += 1;
        self.sum_ns += u128::from(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.sum_ns += other.sum_ns;
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    /// The value at quantile `q` (0..=1) in nanoseconds: the upper edge of the bucket that
    /// holds the `ceil(q · total)`-th value, capped by the maximum.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::upper(i).min(self.max_ns);
            }
        }
        self.max_ns
    }

    pub fn mean_ns(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum_ns as f64 / self.total as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_contiguous_and_tight() {
        for v in (0..5000u64).chain([1 << 20, 123_456_789, u64::MAX / 3, u64::MAX]) {
            let i = Histogram::index(v);
            assert!(Histogram::upper(i) >= v, "{v}");
            assert!(i == 0 || Histogram::upper(i - 1) < v, "{v}");
            assert!(
                (Histogram::upper(i) - v) as f64 <= v as f64 / 64.0 + 1.0,
                "{v}"
            );
        }
    }

    #[test]
    fn quantiles_of_a_known_distribution() {
        let mut h = Histogram::new();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        let p99 = h.quantile(0.99) as f64;
        assert!((p50 / 500_000.0 - 1.0).abs() < 0.02, "{p50}");
        assert!((p99 / 990_000.0 - 1.0).abs() < 0.02, "{p99}");
        assert_eq!(h.quantile(1.0), 1_000_000);
    }
}
