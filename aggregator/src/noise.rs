//! Differential privacy for exported counts: the Laplace mechanism.
//!
//! A count to which one visitor contributes at most `sensitivity` gets noise drawn from
//! Laplace(0, sensitivity / ε), whose variance is 2·(sensitivity/ε)². The noisy value is rounded
//! and floored at 0, which is post-processing and costs no privacy. The generator is seeded
//! from the OS unless a seed is given (FOOTFALL_DP_SEED, for tests only: a known seed makes the
//! noise predictable and so removes the protection).

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

#[derive(Debug, Clone)]
pub struct Laplace {
    epsilon: f64,
    rng: StdRng,
}

impl Laplace {
    pub fn new(epsilon: f64, seed: Option<u64>) -> Self {
        let rng = match seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_entropy(),
        };
        Self { epsilon, rng }
    }

    pub fn epsilon(&self) -> f64 {
        self.epsilon
    }

    /// One draw from Laplace(0, sensitivity / ε), by inverting its distribution function.
    pub fn sample(&mut self, sensitivity: f64) -> f64 {
        let scale = sensitivity / self.epsilon;
        // u in (-1/2, 1/2), never an endpoint, so the logarithm stays finite.
        let u: f64 = loop {
            let u = self.rng.r#gen::<f64>() - 0.5;
            if u > -0.5 {
                break u;
            }
        };
        -scale * u.signum() * (1.0 - 2.0 * u.abs()).ln()
    }

    /// `count` with noise, rounded, never below 0.
    pub fn count(&mut self, count: u64, sensitivity: f64) -> u64 {
        (count as f64 + self.sample(sensitivity)).round().max(0.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The empirical variance of many draws is 2·(Δ/ε)² within 5% (with 200 000 draws the
    /// standard error of the variance of a Laplace sample is about 1.2%).
    #[test]
    fn noise_has_the_configured_scale() {
        for (epsilon, sensitivity) in [(0.5, 1.0), (1.0, 1.0), (2.0, 1.0), (1.0, 30.0)] {
            let mut noise = Laplace::new(epsilon, Some(7));
            let n = 200_000;
            let draws: Vec<f64> = (0..n).map(|_| noise.sample(sensitivity)).collect();
            let mean = draws.iter().sum::<f64>() / n as f64;
            let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            let expected = 2.0 * (sensitivity / epsilon).powi(2);
            assert!(
                (var / expected - 1.0).abs() < 0.05,
                "ε={epsilon} Δ={sensitivity}: variance {var}, expected {expected}"
            );
            assert!(
                mean.abs() < 0.05 * sensitivity / epsilon * 2.0,
                "mean {mean}"
            );
        }
    }

    #[test]
    fn a_seed_fixes_the_noise_and_counts_stay_natural() {
        let draw = |seed| Laplace::new(1.0, Some(seed)).sample(1.0);
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
        let mut noise = Laplace::new(0.1, Some(1));
        assert!((0..1000).all(|_| noise.count(0, 1.0) < 1000));
    }
}
