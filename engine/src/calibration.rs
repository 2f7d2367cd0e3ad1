//! The "not sure" thresholds of [`pismo_core::verdict`] fitted out of sample: the rule
//! behind `pismo eval --set … --calibrate`.
//!
//! Every set's answers are cut into two interleaved halves by position (even: the **fit**
//! half, odd: the **report** half), so each half has every digit and every kind of writing of
//! its set. The rule, applied to the fit halves only: of the pairs in [`GRID`] (ordered from
//! lenient to strict, each flagging a superset of the one before), take the strictest that
//! flags at most one answer in [`MAX_FLAGGED_1_IN`] on every set's fit half; stricter pairs
//! catch more errors, so this is the most caught within that budget. `mnist-test` never takes
//! part in the fit (the test split chooses nothing). The report halves, which took no part in
//! the choice, are where a pair is measured ([`flagged`]).

use pismo_core::verdict::verdict_at;

use crate::tally::Score;

/// Threshold pairs (top probability, lead over the runner-up) tried, lenient to strict.
pub const GRID: [(f32, f32); 7] = [
    (0.5, 0.1),
    (0.5, 0.2),
    (0.6, 0.3),
    (0.7, 0.4),
    (0.8, 0.6),
    (0.9, 0.8),
    (0.95, 0.9),
];

/// The fit asks about at most one answer in this many on each set.
pub const MAX_FLAGGED_1_IN: usize = 12;

/// The set whose answers never take part in the fit.
pub const NEVER_FITTED: &str = "mnist-test";

/// With thresholds `(top, margin)` on `scores`: what share of the answers is flagged unsure,
/// what share of the wrong answers, and how many of the sure answers are right (NaN where a
/// share has nothing to count).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Flagged {
    pub answers: f64,
    pub errors: f64,
    pub sure_right: f64,
}

pub fn flagged(scores: &[Score], top: f32, margin: f32) -> Flagged {
    let (mut unsure, mut wrong, mut wrong_unsure, mut sure_right) = (0u64, 0u64, 0u64, 0u64);
    for (p, right) in scores {
        let is_unsure = !verdict_at(p, top, margin).is_sure();
        unsure += u64::from(is_unsure);
        wrong += u64::from(!right);
        wrong_unsure += u64::from(!right && is_unsure);
        sure_right += u64::from(*right && !is_unsure);
    }
    let n = scores.len() as u64;
    let share = |a: u64, b: u64| {
        if b == 0 {
            f64::NAN
        } else {
            a as f64 / b as f64
        }
    };
    Flagged {
        answers: share(unsure, n),
        errors: share(wrong_unsure, wrong),
        sure_right: share(sure_right, n - unsure),
    }
}

/// The fit half (even positions) and the report half (odd positions) of `scores`.
pub fn halves(scores: &[Score]) -> (Vec<Score>, Vec<Score>) {
    let (fit, report): (Vec<_>, Vec<_>) = scores.iter().enumerate().partition(|(i, _)| i % 2 == 0);
    let strip = |v: Vec<(usize, &Score)>| v.into_iter().map(|(_, s)| *s).collect();
    (strip(fit), strip(report))
}

/// The pair the rule picks from the fit halves `fit` (set name, its fit half), or `None`
/// when no set takes part or even the most lenient pair flags too much.
pub fn fit(fit: &[(&str, Vec<Score>)]) -> Option<(f32, f32)> {
    let sets: Vec<&[Score]> = fit
        .iter()
        .filter(|(name, s)| *name != NEVER_FITTED && !s.is_empty())
        .map(|(_, s)| s.as_slice())
        .collect();
    if sets.is_empty() {
        return None;
    }
    GRID.into_iter()
        .take_while(|&(top, margin)| {
            sets.iter()
                .all(|s| flagged(s, top, margin).answers * MAX_FLAGGED_1_IN as f64 <= 1.0)
        })
        .last()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pismo_core::mlp::CLASSES;

    fn sure(p: f32, right: bool) -> Score {
        let mut probs = [(1.0 - p) / 9.0; CLASSES];
        probs[0] = p;
        (probs, right)
    }

    #[test]
    fn halves_interleave_and_keep_every_answer() {
        let scores: Vec<Score> = (0..5)
            .map(|i| sure(0.1 * i as f32 + 0.5, i % 2 == 0))
            .collect();
        let (f, r) = halves(&scores);
        assert_eq!(f, vec![scores[0], scores[2], scores[4]]);
        assert_eq!(r, vec![scores[1], scores[3]]);
    }

    #[test]
    fn flagged_counts_answers_errors_and_sure_accuracy() {
        // Top 0.95 (sure at 0.8), 0.55 (unsure): one right and one wrong of each.
        let s = vec![
            sure(0.95, true),
            sure(0.95, false),
            sure(0.55, true),
            sure(0.55, false),
        ];
        let f = flagged(&s, 0.8, 0.6);
        assert_eq!((f.answers, f.errors, f.sure_right), (0.5, 0.5, 0.5));
        assert!(flagged(&[], 0.8, 0.6).answers.is_nan());
    }

    #[test]
    fn the_fit_takes_the_strictest_pair_within_the_budget_and_never_mnist_test() {
        // 100 answers: 5 at top 0.85 (flagged from T 0.9 on), the rest at 0.92 (flagged at
        // T 0.95).
        let mut s: Vec<Score> = (0..95).map(|_| sure(0.92, true)).collect();
        s.extend((0..5).map(|_| sure(0.85, false)));
        assert_eq!(fit(&[("a", s.clone())]), Some((0.9, 0.8)));
        // 10 % at 0.75 flags too much from T 0.8 on: the fit stops before.
        let mut t: Vec<Score> = (0..90).map(|_| sure(0.99, true)).collect();
        t.extend((0..10).map(|_| sure(0.75, false)));
        assert_eq!(fit(&[("a", s.clone()), ("b", t.clone())]), Some((0.7, 0.4)));
        // The same answers under the name mnist-test take no part.
        assert_eq!(
            fit(&[("a", s), (NEVER_FITTED, t.clone())]),
            Some((0.9, 0.8))
        );
        assert_eq!(fit(&[(NEVER_FITTED, t)]), None);
    }
}
