//! The model's honest answer: sure of one digit, or torn between two.
//!
//! A softmax always names a winner, even for a scribble halfway between a 3 and a 9. Every
//! shell (`pismo predict`, the window, the web page, `/api/predict`) asks [`verdict`] instead
//! of showing the arg-max alone, so the rule lives here, once:
//!
//! - **Sure** when the top probability is at least [`MIN_TOP`] *and* it leads the runner-up
//!   by at least [`MIN_MARGIN`].
//! - **Unsure** otherwise; the answer then names the two most likely digits
//!   ("not sure: 3 or 9?"), most likely first.
//!
//! The thresholds are fitted on one half of the dev sets and measured on the other
//! (`pismo eval --set dev --calibrate`; docs/ARCHITECTURE.md, "Honest uncertainty"): of a grid of pairs, the
//! strictest that flags at most one answer in 12 on the even-numbered answers of every dev
//! set but MNIST test. For the shipped default the fit gives 0.80 / 0.60; what that pair flags
//! and catches on the odd-numbered answers, which took no part, is measured in
//! docs/ARCHITECTURE.md, "Honest uncertainty". With a top threshold of 0.80 the lead of 0.60
//! is implied (the runner-up has at most 0.20 left); it is kept as its own constant so a
//! model with another calibration can set it. Changing these two constants changes every
//! shell at once. Probabilities that are not finite (a broken model) are never sure.
//!
//! No allocation, no `std`: the firmware could use it too.

use core::fmt;

use crate::mlp::CLASSES;

/// Lowest top probability of a sure answer (fitted on half of the dev sets: see the module doc).
pub const MIN_TOP: f32 = 0.80;
/// Smallest lead of the top probability over the second of a sure answer (implied by
/// [`MIN_TOP`] at its calibrated value; see the module doc).
pub const MIN_MARGIN: f32 = 0.60;

/// What the model can honestly say about one image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Verdict {
    /// One digit, clearly.
    Sure {
        /// The digit.
        digit: usize,
        /// Its probability.
        p: f32,
    },
    /// The two most likely digits, neither clearly.
    Unsure {
        /// The most likely digit (what an arg-max would answer).
        first: usize,
        /// Its probability.
        p_first: f32,
        /// The runner-up.
        second: usize,
        /// Its probability.
        p_second: f32,
    },
}

impl Verdict {
    /// Whether the model is sure.
    pub fn is_sure(&self) -> bool {
        matches!(self, Verdict::Sure { .. })
    }

    /// The most likely digit, sure or not (the arg-max, lowest digit on a tie).
    pub fn digit(&self) -> usize {
        match *self {
            Verdict::Sure { digit, .. } => digit,
            Verdict::Unsure { first, .. } => first,
        }
    }

    /// The digits to show: one when sure, the two most likely when unsure.
    pub fn candidates(&self) -> &'static [usize] {
        // Slices of a static table of every pair, so no allocation and no tie to `self`.
        static PAIRS: [[usize; 2]; CLASSES * CLASSES] = {
            let mut t = [[0; 2]; CLASSES * CLASSES];
            let mut i = 0;
            while i < CLASSES * CLASSES {
                t[i] = [i / CLASSES, i % CLASSES];
                i += 1;
            }
            t
        };
        let (a, b, len) = match *self {
            Verdict::Sure { digit, .. } => (digit, 0, 1),
            Verdict::Unsure { first, second, .. } => (first, second, 2),
        };
        // Digits out of range (a hand-made value) have no candidates rather than a panic.
        if a >= CLASSES || b >= CLASSES {
            return &[];
        }
        &PAIRS[a * CLASSES + b][..len]
    }
}

/// The verdict on the ten probabilities of a softmax (see the module doc for the rule).
pub fn verdict(p: &[f32; CLASSES]) -> Verdict {
    verdict_at(p, MIN_TOP, MIN_MARGIN)
}

/// The verdict with other thresholds than the shipped ones (to calibrate them:
/// `pismo eval --set dev --calibrate`).
pub fn verdict_at(p: &[f32; CLASSES], min_top: f32, min_margin: f32) -> Verdict {
    let first = crate::mlp::argmax(p);
    let mut second = if first == 0 { 1 } else { 0 };
    for (d, &v) in p.iter().enumerate() {
        if d != first && v > p[second] {
            second = d;
        }
    }
    let (p_first, p_second) = (p[first], p[second]);
    // A NaN or infinity anywhere (a broken model) is never sure.
    let finite = p.iter().all(|v| v.is_finite());
    if finite && p_first >= min_top && p_first - p_second >= min_margin {
        Verdict::Sure {
            digit: first,
            p: p_first,
        }
    } else {
        Verdict::Unsure {
            first,
            p_first,
            second,
            p_second,
        }
    }
}

/// The digits in order of probability, most likely first; equal probabilities in the
/// order of the digits.
pub fn ranked(p: &[f32; CLASSES]) -> [usize; CLASSES] {
    let mut order: [usize; CLASSES] = core::array::from_fn(|i| i);
    // No two digits compare equal, so the unstable sort (no allocation) is deterministic.
    order.sort_unstable_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
    order
}

/// `7` when sure, `not sure: 3 or 9?` when not: the words every shell shows.
impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Verdict::Sure { digit, .. } => write!(f, "{digit}"),
            Verdict::Unsure { first, second, .. } => write!(f, "not sure: {first} or {second}?"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranked_orders_by_probability_then_digit() {
        let mut p = [0.0; CLASSES];
        p[7] = 0.9;
        p[1] = 0.05;
        p[9] = 0.05;
        assert_eq!(&ranked(&p)[..4], &[7, 1, 9, 0]);
    }

    fn probs(pairs: &[(usize, f32)]) -> [f32; CLASSES] {
        let rest: f32 = pairs.iter().map(|&(_, v)| v).sum();
        let mut p = [(1.0 - rest) / (CLASSES - pairs.len()) as f32; CLASSES];
        for &(d, v) in pairs {
            p[d] = v;
        }
        p
    }

    #[test]
    fn a_clear_winner_is_sure() {
        let v = verdict(&probs(&[(7, 0.98), (2, 0.01)]));
        assert_eq!(v, Verdict::Sure { digit: 7, p: 0.98 });
        assert!(v.is_sure());
        assert_eq!(v.digit(), 7);
        assert_eq!(v.candidates(), &[7]);
        assert_eq!(v.to_string(), "7");
    }

    #[test]
    fn a_low_top_probability_is_unsure_and_names_the_two_most_likely_first_first() {
        let v = verdict(&probs(&[(3, 0.55), (9, 0.10)]));
        assert!(!v.is_sure());
        assert_eq!(v.digit(), 3);
        assert_eq!(v.candidates(), &[3, 9]);
        assert_eq!(v.to_string(), "not sure: 3 or 9?");
    }

    #[test]
    fn a_small_margin_is_unsure_even_with_a_high_top() {
        // With the shipped pair the lead is implied by the top (top >= 0.8 leaves at most
        // 0.2 for the runner-up); with a lower top threshold the lead decides on its own.
        // The leads are 0.29 and 0.31, either side of 0.3.
        let close = verdict_at(&probs(&[(9, 0.61), (3, 0.32)]), 0.5, 0.3);
        assert_eq!(close.candidates(), &[9, 3]);
        let clear = verdict_at(&probs(&[(9, 0.61), (3, 0.30)]), 0.5, 0.3);
        assert!(clear.is_sure(), "{clear:?}");
    }

    #[test]
    fn the_thresholds_are_inclusive() {
        let mut p = [0.0; CLASSES];
        p[4] = MIN_TOP;
        p[1] = MIN_TOP - MIN_MARGIN;
        assert!(verdict(&p).is_sure());
        p[4] = MIN_TOP - 0.001;
        assert!(!verdict(&p).is_sure());
    }

    #[test]
    fn ties_go_to_the_lower_digit_and_the_runner_up_is_another_digit() {
        let p = [0.1; CLASSES];
        assert_eq!(verdict(&p).candidates(), &[0, 1]);
        let mut p = [0.0; CLASSES];
        p[0] = 1.0;
        assert_eq!(verdict(&p), Verdict::Sure { digit: 0, p: 1.0 });
    }

    #[test]
    fn not_finite_probabilities_are_never_sure() {
        let mut p = [0.0; CLASSES];
        p[5] = 1.0;
        p[6] = f32::NAN;
        assert!(!verdict(&p).is_sure());
        assert!(!verdict(&[f32::NAN; CLASSES]).is_sure());
    }
}
