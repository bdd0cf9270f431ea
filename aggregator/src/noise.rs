//! Differential privacy for exported counts: the discrete Laplace mechanism, with noise fixed by
//! a keyed pseudo-random function.
//!
//! **Mechanism.** A count to which one person contributes at most Δ gets integer noise Z with
//! P(Z = z) ∝ exp(−|z|·ε/Δ) (the discrete Laplace, or two-sided geometric, distribution of scale
//! Δ/ε). For neighbouring data the count moves by at most Δ, so the probability of any output
//! changes by a factor of at most exp(ε): ε-differential privacy. Integer noise on an integer
//! count needs no rounding, and the continuous Laplace drawn with floating point was rejected:
//! its rounding leaks (Mironov 2012, "On significance of the least significant bits").
//!
//! **Sampling** is exact and uses integers only: Algorithm 2 of Canonne, Kamath and Steinke,
//! "The Discrete Gaussian for Differential Privacy" (NeurIPS 2020), which draws the discrete
//! Laplace of scale t/s from uniform integers, Bernoulli(exp(−γ)) trials for rational γ
//! (their Algorithm 1) and a fair coin. ε is a rational (thousandths), so every step is exact.
//! No maintained Rust crate offers it without pulling a whole framework (OpenDP), and the
//! algorithm is a few lines; [`tests`] check the sampled distribution against its closed form.
//!
//! **Fixed noise.** The random bits are a ChaCha20 stream seeded with HMAC-SHA256 under a secret
//! noise key of everything that names the number: who asks, the report, the range, the site,
//! the row's key and the column. Asking again gives the same number, so averaging repeated
//! answers removes nothing; a different question (another range) is a fresh draw, and is what
//! the privacy budget ([`crate::budget`]) pays for.

use std::path::Path;

use hmac::{Hmac, Mac as _};
use rand::{Rng, SeedableRng as _};
use rand_chacha::ChaCha20Rng;
use sha2::Sha256;

/// ε is counted in these parts of one.
const PER_UNIT: u32 = 1000;
/// Largest ε accepted, in thousandths.
const MAX_THOUSANDTHS: u32 = 10 * PER_UNIT;

/// A privacy parameter ε, a multiple of 0.001 from 0.001 to 10, kept in thousandths so that
/// sampling and the budget's sums are exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Epsilon(u32);

impl Epsilon {
    /// `value` if it is a multiple of 0.001 in (0, 10].
    pub fn from_f64(value: f64) -> Option<Self> {
        let scaled = value * f64::from(PER_UNIT);
        let thousandths = scaled.round();
        let exact = (scaled - thousandths).abs() < 1e-6;
        (value.is_finite() && exact && (1.0..=f64::from(MAX_THOUSANDTHS)).contains(&thousandths))
            .then_some(Self(thousandths as u32))
    }

    pub fn from_thousandths(thousandths: u32) -> Self {
        Self(thousandths)
    }

    pub fn thousandths(self) -> u32 {
        self.0
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / f64::from(PER_UNIT)
    }
}

impl std::fmt::Display for Epsilon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.as_f64())
    }
}

/// The secret that fixes the noise. Whoever holds it can recompute (and so remove) the noise:
/// it stays with the aggregator, like the rollups it protects.
#[derive(Clone)]
pub struct NoiseKey([u8; 32]);

#[derive(Debug, thiserror::Error)]
pub enum NoiseKeyError {
    #[error("the noise key file {0} holds {1} bytes; it must hold 32")]
    BadLength(String, usize),
    #[error("could not read or create the noise key {0}: {1}")]
    Io(String, std::io::Error),
}

impl NoiseKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key in `path`, created (32 random bytes, readable by the owner only) when missing:
    /// a lost key only means that noise is drawn afresh, which the budget accounts for.
    pub fn load_or_create(path: &Path) -> Result<Self, NoiseKeyError> {
        let shown = path.display().to_string();
        match std::fs::read(path) {
            Ok(bytes) => <[u8; 32]>::try_from(bytes.as_slice())
                .map(Self)
                .map_err(|_| NoiseKeyError::BadLength(shown, bytes.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill(&mut key);
                write_private(path, &key).map_err(|e| NoiseKeyError::Io(shown, e))?;
                Ok(Self(key))
            }
            Err(e) => Err(NoiseKeyError::Io(shown, e)),
        }
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Probability, per published count, that noise lifts a count below the threshold over it.
pub const DELTA: f64 = 1e-6;

/// The mechanism for one export: ε and the key.
#[derive(Clone)]
pub struct Noise {
    key: NoiseKey,
    epsilon: Epsilon,
}

impl std::fmt::Debug for Noise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Noise")
            .field("epsilon", &self.epsilon)
            .finish_non_exhaustive()
    }
}

impl Noise {
    pub fn new(key: NoiseKey, epsilon: Epsilon) -> Self {
        Self { key, epsilon }
    }

    pub fn epsilon(&self) -> Epsilon {
        self.epsilon
    }

    /// `value` plus discrete Laplace noise of scale `sensitivity`/ε, the same every time for the
    /// same `context` (the parts that name the number).
    pub fn count(&self, value: u64, sensitivity: u64, context: &[&str]) -> i64 {
        let mut rng = self.stream(context);
        let noise = discrete_laplace(
            u64::from(PER_UNIT) * sensitivity.max(1),
            u64::from(self.epsilon.0),
            &mut rng,
        );
        i64::try_from(value)
            .unwrap_or(i64::MAX)
            .saturating_add(noise)
    }

    /// How far above a threshold a noisy count must be so that a count below the threshold
    /// passes with probability at most [`DELTA`]: the smallest m with P(Z ≥ m) ≤ δ, where
    /// P(Z ≥ m) = α^m / (1 + α) and α = exp(−ε/sensitivity).
    pub fn margin(&self, sensitivity: u64) -> u64 {
        let ln_alpha = -self.epsilon.as_f64() / sensitivity.max(1) as f64;
        let alpha = ln_alpha.exp();
        ((DELTA * (1.0 + alpha)).ln() / ln_alpha).ceil().max(0.0) as u64
    }

    /// The ChaCha20 stream for one number: seeded by HMAC-SHA256 of its context, each part
    /// length-prefixed so that no two contexts share an encoding.
    fn stream(&self, context: &[&str]) -> ChaCha20Rng {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key.0).expect("HMAC takes any key");
        mac.update(b"footfall dp noise v1\0");
        mac.update(&self.epsilon.0.to_be_bytes());
        for part in context {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        ChaCha20Rng::from_seed(mac.finalize().into_bytes().into())
    }
}

/// True with probability `num`/`den` (0 ≤ num ≤ den, den > 0), exactly.
fn bernoulli(num: u64, den: u64, rng: &mut impl Rng) -> bool {
    rng.gen_range(0..den) < num
}

/// True with probability exp(−num/den), exactly (Canonne–Kamath–Steinke, Algorithm 1).
fn bernoulli_exp(num: u64, den: u64, rng: &mut impl Rng) -> bool {
    let mut num = num;
    // exp(−γ) = exp(−1)^⌊γ⌋ · exp(−(γ − ⌊γ⌋)).
    while num > den {
        if !bernoulli_exp_at_most_one(1, 1, rng) {
            return false;
        }
        num -= den;
    }
    bernoulli_exp_at_most_one(num, den, rng)
}

/// For γ = num/den in [0, 1]: draw A_k ~ Bernoulli(γ/k) for k = 1, 2, … until one is false;
/// the k it stops at is odd with probability exp(−γ).
fn bernoulli_exp_at_most_one(num: u64, den: u64, rng: &mut impl Rng) -> bool {
    let mut k = 1u64;
    while bernoulli(num, den.saturating_mul(k), rng) {
        k += 1;
    }
    k % 2 == 1
}

/// One draw of the discrete Laplace of scale t/s: P(Z = z) ∝ exp(−|z|·s/t)
/// (Canonne–Kamath–Steinke, Algorithm 2).
fn discrete_laplace(t: u64, s: u64, rng: &mut impl Rng) -> i64 {
    loop {
        let u = rng.gen_range(0..t);
        if !bernoulli_exp(u, t, rng) {
            continue;
        }
        let mut v = 0u64;
        while bernoulli_exp(1, 1, rng) {
            v += 1;
        }
        let y = ((u + t * v) / s) as i64;
        let negative = rng.r#gen::<bool>();
        if negative && y == 0 {
            continue;
        }
        return if negative { -y } else { y };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(thousandths: u32) -> Noise {
        Noise::new(NoiseKey([7; 32]), Epsilon(thousandths))
    }

    /// The sampled frequencies match P(Z = z) = (1 − α)/(1 + α) · α^|z|, α = exp(−s/t), within
    /// five standard errors for every z that has at least a hundred expected draws.
    #[test]
    fn draws_follow_the_discrete_laplace_distribution() {
        for (t, s) in [(1000u64, 1000u64), (3000, 1000), (1000, 3000)] {
            let mut rng = ChaCha20Rng::seed_from_u64(t ^ s);
            let n = 40_000;
            let mut seen = std::collections::HashMap::<i64, u64>::new();
            for _ in 0..n {
                *seen.entry(discrete_laplace(t, s, &mut rng)).or_default() += 1;
            }
            let alpha = (-(s as f64) / t as f64).exp();
            for z in -20i64..=20 {
                let p = (1.0 - alpha) / (1.0 + alpha) * alpha.powi(z.abs() as i32);
                let expected = p * n as f64;
                if expected < 100.0 {
                    continue;
                }
                let got = *seen.get(&z).unwrap_or(&0) as f64;
                let sd = (n as f64 * p * (1.0 - p)).sqrt();
                assert!(
                    (got - expected).abs() < 5.0 * sd,
                    "scale {t}/{s}, z = {z}: {got} draws, expected {expected:.0}"
                );
            }
        }
    }

    #[test]
    fn exp_bernoulli_has_probability_exp_minus_gamma() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for (num, den) in [(0u64, 1u64), (1, 2), (1, 1), (5, 2)] {
            let n = 100_000;
            let hits = (0..n).filter(|_| bernoulli_exp(num, den, &mut rng)).count() as f64;
            let p = (-(num as f64) / den as f64).exp();
            let sd = (n as f64 * p * (1.0 - p)).sqrt().max(1.0);
            assert!((hits - p * n as f64).abs() < 5.0 * sd, "exp(-{num}/{den})");
        }
    }

    #[test]
    fn the_same_question_gets_the_same_noise_and_another_question_other_noise() {
        let n = noise(1000);
        let ctx = [
            "agency",
            "pages",
            "2026-03-01",
            "2026-03-31",
            "shop",
            "/a",
            "visitors",
        ];
        assert_eq!(n.count(50, 1, &ctx), n.count(50, 1, &ctx));
        let draws: std::collections::HashSet<i64> = (0..50)
            .map(|i| n.count(50, 1, &["agency", "pages", &i.to_string()]))
            .collect();
        assert!(draws.len() > 5, "different contexts give different noise");
        let other_key = Noise::new(NoiseKey([8; 32]), Epsilon(1000));
        let differs = (0..20).any(|i| {
            let c = ["x", &i.to_string()];
            n.count(50, 1, &c) != other_key.count(50, 1, &c)
        });
        assert!(differs, "the key changes the noise");
        // Parts are length-prefixed: moving a boundary between parts is another context.
        let shifted = (0..20).any(|i| {
            let s = i.to_string();
            n.count(0, 1, &["ab", &s]) != n.count(0, 1, &["a", &format!("b{s}")])
        });
        assert!(shifted);
    }

    #[test]
    fn the_margin_bounds_the_chance_of_lifting_a_count() {
        let n = noise(1000);
        let m = n.margin(3);
        let alpha = (-1.0f64 / 3.0).exp();
        assert!(alpha.powi(m as i32) / (1.0 + alpha) <= DELTA);
        assert!(
            alpha.powi(m as i32 - 1) / (1.0 + alpha) > DELTA,
            "smallest such m"
        );
        assert!(noise(5000).margin(3) < m, "more ε, less margin");
    }

    #[test]
    fn epsilon_is_a_multiple_of_a_thousandth_up_to_ten() {
        assert_eq!(Epsilon::from_f64(1.0), Some(Epsilon(1000)));
        assert_eq!(Epsilon::from_f64(0.125), Some(Epsilon(125)));
        assert_eq!(Epsilon::from_f64(10.0), Some(Epsilon(10_000)));
        for bad in [0.0, -1.0, 10.001, 0.0001, 0.1234, f64::NAN, f64::INFINITY] {
            assert_eq!(Epsilon::from_f64(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_noise_key_is_created_once_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/dp-noise.key");
        let a = NoiseKey::load_or_create(&path).unwrap();
        let b = NoiseKey::load_or_create(&path).unwrap();
        assert_eq!(a.0, b.0);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, b"short").unwrap();
        assert!(matches!(
            NoiseKey::load_or_create(&path),
            Err(NoiseKeyError::BadLength(_, 5))
        ));
    }
}
