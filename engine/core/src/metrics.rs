//! [`Histogram`]: a fixed-bucket, lock-free histogram that a hot-path stage observes into
//! directly (atomics only, no allocation per observation) and the server renders in the
//! Prometheus text format.
//!
//! It lives here, beside the stage types, so that every stage crate can own its
//! histograms without depending on the server.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Latency buckets in seconds, 1 ms to 10 s (Prometheus convention: `_seconds`).
pub const LATENCY_BUCKETS_S: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Batch-size buckets (images per session run).
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// A fixed-bucket histogram. Observing is a few relaxed atomic adds.
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds, ascending; `+Inf` is implicit (the last count).
    bounds: Vec<f64>,
    /// Observations per bucket (not cumulative); one more than `bounds`.
    counts: Vec<AtomicU64>,
    /// Sum of the observations in millionths (microseconds for latencies).
    sum_micro: AtomicU64,
    /// Number of observations.
    count: AtomicU64,
}

/// A consistent-enough copy of a [`Histogram`] for rendering.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound, cumulative count)` per bucket, `+Inf` last (as `f64::INFINITY`).
    pub buckets: Vec<(f64, u64)>,
    /// Sum of the observations.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    /// A histogram with these upper bounds (ascending); `+Inf` is implicit.
    pub fn new(bounds: &[f64]) -> Histogram {
        Histogram {
            bounds: bounds.to_vec(),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micro: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// A latency histogram with [`LATENCY_BUCKETS_S`].
    pub fn latency() -> Histogram {
        Histogram::new(LATENCY_BUCKETS_S)
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        self.observe_n(v, 1);
    }

    /// Records `n` observations of the same value.
    pub fn observe_n(&self, v: f64, n: u64) {
        if n == 0 {
            return;
        }
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(n, Relaxed);
        self.sum_micro
            .fetch_add((v.max(0.0) * 1e6) as u64 * n, Relaxed);
        self.count.fetch_add(n, Relaxed);
    }

    /// Records a duration in seconds.
    pub fn observe_duration(&self, d: std::time::Duration) {
        self.observe(d.as_secs_f64());
    }

    /// Number of observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// Cumulative bucket counts, sum and count. The `+Inf` bucket equals `count` (read
    /// from the same loads, so a concurrent observation never makes them disagree).
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cum = 0;
        let mut buckets = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            cum += c.load(Relaxed);
            buckets.push((self.bounds.get(i).copied().unwrap_or(f64::INFINITY), cum));
        }
        HistogramSnapshot {
            buckets,
            sum: self.sum_micro.load(Relaxed) as f64 / 1e6,
            count: cum,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_inf_equals_count() {
        let h = Histogram::new(&[1.0, 2.0, 4.0]);
        h.observe(0.5);
        h.observe_n(3.0, 2);
        h.observe(9.0);
        h.observe_n(1.0, 0);
        let s = h.snapshot();
        assert_eq!(
            s.buckets,
            vec![(1.0, 1), (2.0, 1), (4.0, 3), (f64::INFINITY, 4)]
        );
        assert_eq!(s.count, 4);
        assert!((s.sum - 15.5).abs() < 1e-9, "{}", s.sum);
        assert_eq!(h.count(), 4);
    }

    #[test]
    fn durations_are_seconds() {
        let h = Histogram::latency();
        h.observe_duration(std::time::Duration::from_millis(30));
        let s = h.snapshot();
        // 30 ms falls in the 0.05 s bucket, not the 0.025 s one.
        let at = |b: f64| s.buckets.iter().find(|(x, _)| *x == b).map(|x| x.1);
        assert_eq!(at(0.025), Some(0));
        assert_eq!(at(0.05), Some(1));
        assert!((s.sum - 0.03).abs() < 1e-6);
    }
}
