//! pass@k (Chen et al. 2021, the HumanEval paper) and pass^k.

use crate::Error;

fn check(n: u64, c: u64, k: u64) -> Result<(), Error> {
    if c > n || k == 0 || k > n {
        return Err(Error::PassKArguments { n, c, k });
    }
    Ok(())
}

/// The unbiased pass@k estimate for one problem with `n` samples of which `c` pass: the
/// probability that at least one of `k` samples drawn without replacement passes,
/// `1 - C(n-c, k) / C(n, k)`.
///
/// Computed as HumanEval's `estimate_pass_at_k` does, as a product rather than with
/// binomials, so that it is stable for large `n`.
///
/// ```
/// use gm_metrics::metrics::pass_at_k;
/// let p = pass_at_k(10, 3, 5).unwrap();
/// assert!((p - 0.916_666_666_7).abs() < 1e-9);
/// assert!(pass_at_k(3, 4, 1).is_err());
/// ```
///
/// # Errors
/// [`Error::PassKArguments`] when `c > n`, `k == 0` or `k > n`.
pub fn pass_at_k(n: u64, c: u64, k: u64) -> Result<f64, Error> {
    check(n, c, k)?;
    if n - c < k {
        return Ok(1.0);
    }
    let kf = k as f64;
    let product: f64 = (n - c + 1..=n).map(|i| 1.0 - kf / i as f64).product();
    Ok((1.0 - product).clamp(0.0, 1.0))
}

/// pass^k for one problem: the probability that `k` samples drawn without replacement from
/// `n`, of which `c` pass, *all* pass, `C(c, k) / C(n, k)`.
///
/// Where pass@k rewards a model that solves a problem at least once in `k` tries, pass^k
/// rewards one that solves it every time (the reliability measure of τ-bench); it falls as
/// `k` grows, and pass^1 = pass@1 = c / n.
///
/// ```
/// use gm_metrics::metrics::{pass_at_k, pass_hat_k};
/// assert_eq!(pass_hat_k(10, 10, 5).unwrap(), 1.0);
/// assert_eq!(pass_hat_k(10, 4, 5).unwrap(), 0.0);
/// let p = pass_hat_k(10, 6, 2).unwrap(); // (6/10) * (5/9)
/// assert!((p - 1.0 / 3.0).abs() < 1e-12);
/// assert!((pass_hat_k(10, 3, 1).unwrap() - pass_at_k(10, 3, 1).unwrap()).abs() < 1e-12);
/// ```
///
/// # Errors
/// [`Error::PassKArguments`] when `c > n`, `k == 0` or `k > n`.
pub fn pass_hat_k(n: u64, c: u64, k: u64) -> Result<f64, Error> {
    check(n, c, k)?;
    if c < k {
        return Ok(0.0);
    }
    let product: f64 = (0..k).map(|i| (c - i) as f64 / (n - i) as f64).product();
    Ok(product.clamp(0.0, 1.0))
}

/// The mean of pass@k over problems, each given as `(n, c)`.
///
/// # Errors
/// As [`pass_at_k`], for the first problem that is invalid, and [`Error::Aggregate`] when there are no problems.
pub fn mean_pass_at_k(problems: &[(u64, u64)], k: u64) -> Result<f64, Error> {
    mean_of(problems, |n, c| pass_at_k(n, c, k))
}

/// The mean of pass^k over problems, each given as `(n, c)`.
///
/// # Errors
/// As [`pass_hat_k`], for the first problem that is invalid, and [`Error::Aggregate`] when there are no problems.
pub fn mean_pass_hat_k(problems: &[(u64, u64)], k: u64) -> Result<f64, Error> {
    mean_of(problems, |n, c| pass_hat_k(n, c, k))
}

fn mean_of(problems: &[(u64, u64)], f: impl Fn(u64, u64) -> Result<f64, Error>) -> Result<f64, Error> {
    if problems.is_empty() {
        return Err(Error::Aggregate { reason: "no problems to average over" });
    }
    let mut sum = 0.0;
    for &(n, c) in problems {
        sum += f(n, c)?;
    }
    Ok(sum / problems.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_cases() {
        assert_eq!(pass_at_k(5, 0, 3).unwrap(), 0.0);
        assert_eq!(pass_at_k(5, 5, 3).unwrap(), 1.0);
        assert_eq!(pass_at_k(5, 3, 3).unwrap(), 1.0);
        assert!(pass_at_k(5, 1, 0).is_err());
        assert!(pass_at_k(5, 1, 6).is_err());
        assert_eq!(pass_hat_k(5, 0, 1).unwrap(), 0.0);
        let mean = mean_pass_at_k(&[(10, 10), (10, 0)], 1).unwrap();
        assert_eq!(mean, 0.5);
        assert!(mean_pass_hat_k(&[], 1).is_err());
    }
}
