//! The Tree-structured Parzen Estimator (Bergstra et al. 2011), as hyperopt and Optuna use it.
//!
//! After `startup` random points, the finished trials are split by score: the best `γ`
//! fraction are "good", the rest "bad". For every dimension separately, a Parzen estimator
//! (a mixture of truncated normals, one per observed point, plus a flat prior) is fitted to
//! each group: `l(x)` to the good, `g(x)` to the bad. `candidates` points are drawn from `l`
//! and the one with the largest `l(x) / g(x)` is suggested: likely under the good trials,
//! unlikely under the bad. A choice dimension uses smoothed frequencies instead of normals.
//!
//! Scores are maximised. Points are in search coordinates ([`crate::space::Domain::bounds`]):
//! logarithms for log domains, so learning rates are compared by ratio.

use pismo_core::rng::Rng;

use crate::space::{Domain, Space};

/// A finished trial, as the sampler sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// Its point, in search coordinates.
    pub point: Vec<f64>,
    /// Its score (higher is better).
    pub score: f64,
}

/// The sampler's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tpe {
    /// Random points before the estimators are used.
    pub startup: usize,
    /// Fraction of the finished trials that count as good (at most 25 of them).
    pub gamma: f64,
    /// Points drawn from `l` to pick the suggestion from.
    pub candidates: usize,
    /// Weight of the flat prior in each estimator, as one observation's.
    pub prior_weight: f64,
}

impl Default for Tpe {
    /// hyperopt's and Optuna's defaults: 10 random points, γ = 0.25, 24 candidates.
    fn default() -> Self {
        Tpe {
            startup: 10,
            gamma: 0.25,
            candidates: 24,
            prior_weight: 1.0,
        }
    }
}

/// A uniform `f64` in `[0, 1)`.
fn unit(rng: &mut Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A point drawn uniformly from the space (in search coordinates).
pub fn random_point(space: &Space, rng: &mut Rng) -> Vec<f64> {
    space
        .dims
        .iter()
        .map(|d| match &d.domain {
            Domain::Choice(options) => rng.below(options.len()) as f64,
            other => {
                let (lo, hi) = other.bounds();
                lo + unit(rng) * (hi - lo)
            }
        })
        .collect()
}

impl Tpe {
    /// The next point to try, given every finished trial so far.
    pub fn suggest(&self, space: &Space, history: &[Observation], rng: &mut Rng) -> Vec<f64> {
        if history.len() < self.startup.max(2) {
            return random_point(space, rng);
        }
        let mut order: Vec<&Observation> = history.iter().collect();
        order.sort_by(|a, b| b.score.total_cmp(&a.score));
        let n_good = ((self.gamma * history.len() as f64).ceil() as usize).clamp(1, 25);
        let (good, bad) = order.split_at(n_good.min(order.len() - 1));

        let estimators: Vec<(Parzen, Parzen)> = space
            .dims
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let column = |group: &[&Observation]| -> Vec<f64> {
                    group.iter().map(|o| o.point[i]).collect()
                };
                (
                    Parzen::fit(&d.domain, &column(good), self.prior_weight),
                    Parzen::fit(&d.domain, &column(bad), self.prior_weight),
                )
            })
            .collect();

        let mut best: Option<(f64, Vec<f64>)> = None;
        for _ in 0..self.candidates.max(1) {
            let point: Vec<f64> = estimators.iter().map(|(l, _)| l.sample(rng)).collect();
            let gain: f64 = estimators
                .iter()
                .zip(&point)
                .map(|((l, g), &x)| l.log_density(x) - g.log_density(x))
                .sum();
            if best.as_ref().is_none_or(|(b, _)| gain > *b) {
                best = Some((gain, point));
            }
        }
        best.expect("at least one candidate").1
    }
}

/// A one-dimensional Parzen estimator over a dimension's search coordinate.
#[derive(Clone, Debug)]
enum Parzen {
    /// Truncated normals on `[lo, hi]`: (centre, width, weight) each, the prior among them.
    Continuous {
        lo: f64,
        hi: f64,
        parts: Vec<(f64, f64, f64)>,
    },
    /// Probabilities of each option.
    Choice(Vec<f64>),
}

impl Parzen {
    fn fit(domain: &Domain, xs: &[f64], prior_weight: f64) -> Parzen {
        if let Domain::Choice(options) = domain {
            let k = options.len();
            let mut p = vec![prior_weight / k as f64; k];
            for &x in xs {
                p[(x.round() as usize).min(k - 1)] += 1.0;
            }
            let total: f64 = p.iter().sum();
            return Parzen::Choice(p.into_iter().map(|c| c / total).collect());
        }
        let (lo, hi) = domain.bounds();
        let span = hi - lo;
        // Each point's width is the larger gap to its neighbours (the bounds count as
        // neighbours), kept between span/min(100, n+1) and span: hyperopt's rule.
        let mut sorted: Vec<f64> = xs.iter().map(|x| x.clamp(lo, hi)).collect();
        sorted.sort_by(f64::total_cmp);
        let min_width = span / (sorted.len() as f64 + 1.0).min(100.0);
        let mut parts: Vec<(f64, f64, f64)> = sorted
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let left = if i == 0 { lo } else { sorted[i - 1] };
                let right = sorted.get(i + 1).copied().unwrap_or(hi);
                let width = (x - left).max(right - x).clamp(min_width, span);
                (x, width, 1.0)
            })
            .collect();
        parts.push((0.5 * (lo + hi), span, prior_weight));
        let total: f64 = parts.iter().map(|p| p.2).sum();
        for p in &mut parts {
            p.2 /= total;
        }
        Parzen::Continuous { lo, hi, parts }
    }

    fn sample(&self, rng: &mut Rng) -> f64 {
        match self {
            Parzen::Choice(p) => pick(p, rng) as f64,
            Parzen::Continuous { lo, hi, parts } => {
                let weights: Vec<f64> = parts.iter().map(|p| p.2).collect();
                let (mu, sigma, _) = parts[pick(&weights, rng)];
                // Rejection keeps the truncated normal's shape; its mass inside [lo, hi] is
                // at least a third (the centre is inside, the width at most the span).
                for _ in 0..64 {
                    let x = mu + sigma * normal(rng);
                    if (*lo..=*hi).contains(&x) {
                        return x;
                    }
                }
                mu.clamp(*lo, *hi)
            }
        }
    }

    fn log_density(&self, x: f64) -> f64 {
        match self {
            Parzen::Choice(p) => p[(x.round() as usize).min(p.len() - 1)].ln(),
            Parzen::Continuous { lo, hi, parts } => {
                let density: f64 = parts
                    .iter()
                    .map(|&(mu, sigma, w)| {
                        let mass = normal_cdf((hi - mu) / sigma) - normal_cdf((lo - mu) / sigma);
                        let z = (x - mu) / sigma;
                        w * (-0.5 * z * z).exp()
                            / (sigma * (2.0 * core::f64::consts::PI).sqrt() * mass.max(1e-12))
                    })
                    .sum();
                density.max(1e-300).ln()
            }
        }
    }
}

/// An index drawn with probabilities proportional to `weights`.
fn pick(weights: &[f64], rng: &mut Rng) -> usize {
    let total: f64 = weights.iter().sum();
    let mut r = unit(rng) * total;
    for (i, &w) in weights.iter().enumerate() {
        if r < w {
            return i;
        }
        r -= w;
    }
    weights.len() - 1
}

fn normal(rng: &mut Rng) -> f64 {
    let u1 = 1.0 - unit(rng);
    let u2 = unit(rng);
    (-2.0 * u1.ln()).sqrt() * (2.0 * core::f64::consts::PI * u2).cos()
}

fn normal_cdf(z: f64) -> f64 {
    0.5 * (1.0 + libm::erf(z / core::f64::consts::SQRT_2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::Dimension;

    /// A bumpy objective with its best region small: the kind of surface a tuner meets.
    fn objective(p: &[f64]) -> f64 {
        let (x, y, c) = (p[0], p[1], p[2].round());
        let bump = -((x - 0.013f64.ln()).powi(2) + 4.0 * (y - 0.7).powi(2));
        let choice = [0.0, -0.6, -0.3, -1.0][c as usize];
        bump + choice + 0.05 * (7.0 * x).sin()
    }

    fn space() -> Space {
        let dim = Dimension::new;
        Space {
            dims: vec![
                dim(
                    "initial_lr",
                    Domain::Log {
                        low: 1e-4,
                        high: 1.0,
                    },
                ),
                dim(
                    "dropout_rate",
                    Domain::Uniform {
                        low: 0.0,
                        high: 1.0,
                    },
                ),
                dim("batch_size", Domain::Choice(vec![16.0, 32.0, 64.0, 128.0])),
            ],
        }
    }

    fn best_after(trials: usize, seed: u64, tpe: Option<Tpe>) -> f64 {
        let space = space();
        let mut rng = Rng::new(seed);
        let mut history = Vec::new();
        for _ in 0..trials {
            let point = match tpe {
                Some(t) => t.suggest(&space, &history, &mut rng),
                None => random_point(&space, &mut rng),
            };
            let (lo, hi) = space.dims[0].domain.bounds();
            assert!((lo..=hi).contains(&point[0]), "{point:?}");
            let score = objective(&point);
            history.push(Observation { point, score });
        }
        history
            .iter()
            .map(|o| o.score)
            .fold(f64::NEG_INFINITY, f64::max)
    }

    #[test]
    fn tpe_beats_random_search_over_many_seeds() {
        // 40 seeds, 40 trials each: TPE's best must beat random search's on most seeds
        // (a sign test: under "no better", ≥ 29 wins of 40 has probability < 0.3 %).
        let seeds = 40;
        let mut wins = 0;
        let (mut sum_tpe, mut sum_random) = (0.0, 0.0);
        for seed in 0..seeds {
            let t = best_after(40, 1000 + seed, Some(Tpe::default()));
            let r = best_after(40, 1000 + seed, None);
            sum_tpe += t;
            sum_random += r;
            if t > r {
                wins += 1;
            }
        }
        println!(
            "TPE wins {wins}/{seeds}; mean best TPE {:.4}, random {:.4}",
            sum_tpe / seeds as f64,
            sum_random / seeds as f64
        );
        assert!(wins >= 29, "TPE won only {wins} of {seeds} seeds");
    }

    #[test]
    fn the_same_seed_suggests_the_same_points() {
        assert_eq!(
            best_after(25, 7, Some(Tpe::default())),
            best_after(25, 7, Some(Tpe::default()))
        );
    }

    #[test]
    fn densities_are_normalised_over_the_bounds() {
        let domain = Domain::Uniform {
            low: -1.0,
            high: 2.0,
        };
        let p = Parzen::fit(&domain, &[0.1, 0.2, 1.9], 1.0);
        let n = 30_000;
        let step = 3.0 / n as f64;
        let integral: f64 = (0..n)
            .map(|i| p.log_density(-1.0 + (i as f64 + 0.5) * step).exp() * step)
            .sum();
        assert!((integral - 1.0).abs() < 1e-3, "{integral}");
    }
}
