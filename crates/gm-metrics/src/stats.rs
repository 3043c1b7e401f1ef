//! Aggregation of per-case scores: means with 95% intervals and paired comparisons.
//!
//! - [`bootstrap_mean`]: the mean with a percentile bootstrap interval over cases.
//! - [`wilson`]: a pass rate with the Wilson score interval, better than the normal
//!   approximation near 0 and 1 and for few cases.
//! - [`paired_bootstrap`]: the difference of two runs on the same cases, resampling cases
//!   jointly so that the per-case correlation of the two runs is kept.
//!
//! Resampling uses a small self-contained generator (SplitMix64) seeded by the caller, so the
//! same scores and seed give the same interval on every platform and in every release.

use crate::Error;

/// z for a two-sided 95% interval.
const Z_95: f64 = 1.959_963_984_540_054;

/// A mean with a 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The mean of the values (for [`wilson`], the pass rate).
    pub mean: f64,
    /// Lower end of the 95% interval.
    pub low: f64,
    /// Upper end of the 95% interval.
    pub high: f64,
    /// Number of cases.
    pub n: usize,
}

/// Options of the bootstrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootstrapOptions {
    /// Number of resamples (1000 by default).
    pub resamples: usize,
    /// Seed of the generator (0 by default).
    pub seed: u64,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        BootstrapOptions { resamples: 1000, seed: 0 }
    }
}

/// SplitMix64 (Steele, Lea and Flood 2014): tiny, fast and good enough to pick cases.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform index below `n` (Lemire's multiply-shift; the bias is below 2^-32 for any
    /// realistic `n`).
    fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// The `q`-quantile of sorted values with linear interpolation (NumPy's default method).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

fn check_values(values: &[f64]) -> Result<(), Error> {
    if values.is_empty() {
        return Err(Error::Aggregate { reason: "no values" });
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(Error::Aggregate { reason: "a value is not finite" });
    }
    Ok(())
}

/// The mean of `values` with a 95% percentile-bootstrap interval over cases.
///
/// ```
/// use gm_metrics::stats::{bootstrap_mean, BootstrapOptions};
/// let scores = [0.2, 0.4, 0.6, 0.8, 1.0];
/// let e = bootstrap_mean(&scores, BootstrapOptions::default()).unwrap();
/// assert!((e.mean - 0.6).abs() < 1e-12);
/// assert!(e.low < e.mean && e.mean < e.high);
/// assert_eq!(e, bootstrap_mean(&scores, BootstrapOptions::default()).unwrap());
/// ```
///
/// # Errors
/// [`Error::Aggregate`] when `values` is empty or holds a non-finite value.
pub fn bootstrap_mean(values: &[f64], options: BootstrapOptions) -> Result<Estimate, Error> {
    check_values(values)?;
    let m = mean(values);
    let resamples = options.resamples.max(1);
    let mut rng = SplitMix64(options.seed);
    let n = values.len();
    let mut means = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        let mut sum = 0.0;
        for _ in 0..n {
            sum += values[rng.below(n)];
        }
        means.push(sum / n as f64);
    }
    means.sort_unstable_by(f64::total_cmp);
    Ok(Estimate { mean: m, low: quantile(&means, 0.025), high: quantile(&means, 0.975), n })
}

/// A pass rate with its 95% Wilson score interval.
///
/// ```
/// use gm_metrics::stats::wilson;
/// let e = wilson(8, 10).unwrap();
/// assert!((e.mean - 0.8).abs() < 1e-12);
/// assert!((e.low - 0.4902).abs() < 1e-4 && (e.high - 0.9433).abs() < 1e-4);
/// assert_eq!(wilson(0, 5).unwrap().low, 0.0);
/// ```
///
/// # Errors
/// [`Error::Aggregate`] when `trials` is 0 or `successes > trials`.
pub fn wilson(successes: u64, trials: u64) -> Result<Estimate, Error> {
    if trials == 0 {
        return Err(Error::Aggregate { reason: "no trials" });
    }
    if successes > trials {
        return Err(Error::Aggregate { reason: "more successes than trials" });
    }
    let n = trials as f64;
    let p = successes as f64 / n;
    let z2 = Z_95 * Z_95;
    let denominator = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denominator;
    let half = Z_95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denominator;
    // The interval always contains p; rounding can put an end a few ulps past it (at p = 0
    // the lower end is 0 exactly, analytically).
    Ok(Estimate {
        mean: p,
        low: (center - half).clamp(0.0, 1.0).min(p),
        high: (center + half).clamp(0.0, 1.0).max(p),
        n: trials as usize,
    })
}

/// The pass rate of pass/fail scores (a score of at least 0.5 passes) with its Wilson
/// interval.
///
/// # Errors
/// [`Error::Aggregate`] when `values` is empty.
pub fn wilson_of_scores(values: &[f64]) -> Result<Estimate, Error> {
    check_values(values)?;
    let passes = values.iter().filter(|&&v| v >= 0.5).count();
    wilson(passes as u64, values.len() as u64)
}

/// The outcome of a paired comparison of runs `a` and `b` on the same cases.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedComparison {
    /// Mean score of `a`.
    pub mean_a: f64,
    /// Mean score of `b`.
    pub mean_b: f64,
    /// `mean_a - mean_b`.
    pub difference: f64,
    /// Lower end of the 95% bootstrap interval of the difference.
    pub low: f64,
    /// Upper end of the 95% bootstrap interval of the difference.
    pub high: f64,
    /// Two-sided bootstrap p-value: twice the fraction of resamples on the far side of zero
    /// (`<= 0` when `a` is better, `>= 0` when `b` is better), at most 1. Small values mean the
    /// sign of the difference is unlikely to be an accident of which cases were drawn.
    pub p_value: f64,
    /// Number of shared cases.
    pub n: usize,
}

/// Paired bootstrap over shared cases: `a[i]` and `b[i]` are the two runs' scores on case `i`.
///
/// ```
/// use gm_metrics::stats::{paired_bootstrap, BootstrapOptions};
/// let a = [0.9, 0.8, 0.95, 0.7, 0.85, 0.9, 0.8, 0.75];
/// let b = [0.6, 0.5, 0.7, 0.4, 0.65, 0.55, 0.6, 0.5];
/// let c = paired_bootstrap(&a, &b, BootstrapOptions::default()).unwrap();
/// assert!(c.difference > 0.0 && c.low > 0.0);
/// assert!(c.p_value < 0.01);
/// ```
///
/// # Errors
/// [`Error::Aggregate`] when the lists are empty, differ in length or hold non-finite values.
pub fn paired_bootstrap(a: &[f64], b: &[f64], options: BootstrapOptions) -> Result<PairedComparison, Error> {
    if a.len() != b.len() {
        return Err(Error::Aggregate { reason: "paired score lists differ in length" });
    }
    check_values(a)?;
    check_values(b)?;
    let n = a.len();
    let differences: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let observed = mean(&differences);
    let resamples = options.resamples.max(1);
    let mut rng = SplitMix64(options.seed);
    let mut deltas = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        let mut sum = 0.0;
        for _ in 0..n {
            sum += differences[rng.below(n)];
        }
        deltas.push(sum / n as f64);
    }
    deltas.sort_unstable_by(f64::total_cmp);
    let at_or_below = deltas.iter().filter(|&&d| d <= 0.0).count() as f64;
    let at_or_above = deltas.iter().filter(|&&d| d >= 0.0).count() as f64;
    let one_sided = if observed > 0.0 {
        at_or_below
    } else if observed < 0.0 {
        at_or_above
    } else {
        at_or_below.max(at_or_above)
    } / resamples as f64;
    Ok(PairedComparison {
        mean_a: mean(a),
        mean_b: mean(b),
        difference: observed,
        low: quantile(&deltas, 0.025),
        high: quantile(&deltas, 0.975),
        p_value: (2.0 * one_sided).min(1.0),
        n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_values_have_a_point_interval() {
        let e = bootstrap_mean(&[0.5; 20], BootstrapOptions::default()).unwrap();
        assert_eq!((e.low, e.mean, e.high), (0.5, 0.5, 0.5));
    }

    #[test]
    fn seeds_change_the_resamples() {
        let v: Vec<f64> = (0..50).map(|i| (i % 7) as f64 / 7.0).collect();
        let a = bootstrap_mean(&v, BootstrapOptions { resamples: 200, seed: 1 }).unwrap();
        let b = bootstrap_mean(&v, BootstrapOptions { resamples: 200, seed: 2 }).unwrap();
        assert_eq!(a.mean, b.mean);
        assert_ne!((a.low, a.high), (b.low, b.high));
    }

    #[test]
    fn identical_runs_are_not_different() {
        let v = [0.1, 0.5, 0.9];
        let c = paired_bootstrap(&v, &v, BootstrapOptions::default()).unwrap();
        assert_eq!(c.difference, 0.0);
        assert_eq!(c.p_value, 1.0);
    }

    #[test]
    fn errors() {
        assert!(bootstrap_mean(&[], BootstrapOptions::default()).is_err());
        assert!(paired_bootstrap(&[1.0], &[1.0, 2.0], BootstrapOptions::default()).is_err());
        assert!(wilson(3, 2).is_err());
        assert!(wilson(0, 0).is_err());
        assert_eq!(wilson(0, 3).unwrap().low, 0.0);
        assert_eq!(wilson(3, 3).unwrap().high, 1.0);
        assert!(bootstrap_mean(&[f64::NAN], BootstrapOptions::default()).is_err());
    }

    #[test]
    fn index_generator_stays_in_range() {
        let mut rng = SplitMix64(7);
        for n in 1..100 {
            assert!(rng.below(n) < n);
        }
    }
}
