//! Run metrics: latency percentiles, throughput and cost.
//!
//! ```
//! use gm_core::metrics::{LatencySummary, Price};
//! let s = LatencySummary::from_millis(&[100.0, 200.0, 300.0, 400.0]).unwrap();
//! assert_eq!(s.p50_ms, 250.0);
//! let p = Price { input_per_million: 0.4, output_per_million: 1.6 };
//! assert!((p.cost_usd(1_000_000, 500_000) - 1.2).abs() < 1e-12);
//! ```

use serde::{Deserialize, Serialize};

/// Latency distribution of a set of requests, in milliseconds.
///
/// Percentiles use linear interpolation between closest ranks (numpy's default), so they agree with
/// `numpy.percentile` on the same samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// How many samples.
    pub count: usize,
    /// The mean.
    pub mean_ms: f64,
    /// The fastest.
    pub min_ms: f64,
    /// The median.
    pub p50_ms: f64,
    /// The 95th percentile.
    pub p95_ms: f64,
    /// The 99th percentile.
    pub p99_ms: f64,
    /// The slowest.
    pub max_ms: f64,
}

/// The `q`-th percentile (0..=100) of sorted samples, by linear interpolation. `None` when empty.
pub fn percentile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q.clamp(0.0, 100.0) / 100.0) * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let frac = rank - lo as f64;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * frac)
}

impl LatencySummary {
    /// Summarises samples in milliseconds; `None` when there are none. NaNs are ignored.
    pub fn from_millis(samples: &[f64]) -> Option<Self> {
        let mut v: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        Some(Self {
            count: v.len(),
            mean_ms: mean,
            min_ms: v[0],
            p50_ms: percentile_sorted(&v, 50.0)?,
            p95_ms: percentile_sorted(&v, 95.0)?,
            p99_ms: percentile_sorted(&v, 99.0)?,
            max_ms: v[v.len() - 1],
        })
    }
}

/// Output tokens per second of generation time; `None` when no time passed.
pub fn tokens_per_second(output_tokens: u64, millis: f64) -> Option<f64> {
    (millis > 0.0).then(|| output_tokens as f64 / (millis / 1000.0))
}

/// A model's price in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Price {
    /// Dollars per million input tokens.
    pub input_per_million: f64,
    /// Dollars per million output tokens.
    pub output_per_million: f64,
}

impl Price {
    /// The cost of a request or run with these token counts.
    pub fn cost_usd(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        (input_tokens as f64 * self.input_per_million + output_tokens as f64 * self.output_per_million) / 1e6
    }
}

/// Quality per dollar: mean quality divided by cost; `None` when the cost is zero (free or cached).
pub fn quality_per_dollar(quality: f64, cost_usd: f64) -> Option<f64> {
    (cost_usd > 0.0).then(|| quality / cost_usd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_match_numpy() {
        // numpy.percentile([1..=10], [50, 95, 99]) == [5.5, 9.55, 9.91]
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        let s = LatencySummary::from_millis(&v).unwrap();
        assert!((s.p50_ms - 5.5).abs() < 1e-12);
        assert!((s.p95_ms - 9.55).abs() < 1e-12);
        assert!((s.p99_ms - 9.91).abs() < 1e-12);
        assert_eq!((s.min_ms, s.max_ms, s.count), (1.0, 10.0, 10));
        assert!(LatencySummary::from_millis(&[]).is_none());
        let one = LatencySummary::from_millis(&[7.0]).unwrap();
        assert_eq!((one.p50_ms, one.p99_ms), (7.0, 7.0));
    }

    #[test]
    fn throughput_and_cost() {
        assert_eq!(tokens_per_second(100, 500.0), Some(200.0));
        assert_eq!(tokens_per_second(100, 0.0), None);
        assert_eq!(quality_per_dollar(0.5, 0.0), None);
        assert_eq!(quality_per_dollar(0.5, 0.25), Some(2.0));
    }
}
