//! Asynchronous successive halving (ASHA, Li et al. 2018): weak trials stop early.
//!
//! Epochs are the budget. Rungs sit at `min_epochs · ηᵏ` epochs below `max_epochs`. When a
//! trial finishes a rung's epoch, its validation score joins that rung's record and it goes
//! on only if it is among the best `⌊n/η⌋` (at least one) of the `n` scores the rung has seen,
//! its own included; otherwise it stops there and frees its slot at once. No trial waits for
//! others: a decision uses the scores recorded so far, which is what makes it asynchronous.
//! With `η = 3`, about a third of the trials pass each rung, so most of the budget goes to the
//! promising ones, and every trial that reaches `max_epochs` has beaten its peers at each rung.

/// What happens to a trial at a rung.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Train on.
    Continue,
    /// Stop: it is not among the rung's best.
    Stop,
}

/// The rungs and their records.
#[derive(Clone, Debug, PartialEq)]
pub struct Asha {
    /// Epochs of the first rung.
    pub min_epochs: u32,
    /// Reduction factor η (≥ 2).
    pub eta: u32,
    /// Epochs of a trial that is never stopped.
    pub max_epochs: u32,
    /// Scores recorded at each rung, in rung order.
    records: Vec<Vec<f64>>,
}

impl Asha {
    /// Rungs at `min_epochs · ηᵏ < max_epochs`, with nothing recorded.
    pub fn new(min_epochs: u32, eta: u32, max_epochs: u32) -> Asha {
        let mut asha = Asha {
            min_epochs: min_epochs.max(1),
            eta: eta.max(2),
            max_epochs,
            records: Vec::new(),
        };
        asha.records = vec![Vec::new(); asha.rungs().len()];
        asha
    }

    /// The epochs at which trials are judged.
    pub fn rungs(&self) -> Vec<u32> {
        let mut rungs = Vec::new();
        let mut r = self.min_epochs as u64;
        while r < self.max_epochs as u64 {
            rungs.push(r as u32);
            r *= self.eta as u64;
        }
        rungs
    }

    /// The rung index at `epoch`, if there is one.
    pub fn rung_at(&self, epoch: u32) -> Option<usize> {
        self.rungs().iter().position(|&r| r == epoch)
    }

    /// Records a trial's score at the end of `epoch` and decides whether it goes on. Epochs
    /// that are not rungs always continue.
    pub fn report(&mut self, epoch: u32, score: f64) -> Decision {
        let Some(rung) = self.rung_at(epoch) else {
            return Decision::Continue;
        };
        let record = &mut self.records[rung];
        record.push(score);
        let keep = (record.len() / self.eta as usize).max(1);
        let better = record.iter().filter(|&&s| s > score).count();
        if better < keep {
            Decision::Continue
        } else {
            Decision::Stop
        }
    }

    /// Scores recorded at each rung (for reports and for replaying a journal).
    pub fn records(&self) -> &[Vec<f64>] {
        &self.records
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rungs_grow_by_eta_below_the_maximum() {
        assert_eq!(Asha::new(1, 3, 27).rungs(), vec![1, 3, 9]);
        assert_eq!(Asha::new(2, 2, 20).rungs(), vec![2, 4, 8, 16]);
        assert_eq!(Asha::new(5, 3, 5).rungs(), Vec::<u32>::new());
    }

    #[test]
    fn the_top_third_of_a_rung_goes_on() {
        let mut asha = Asha::new(1, 3, 27);
        // The first trial at a rung has no peers: it goes on (ASHA promotes optimistically).
        assert_eq!(asha.report(1, 0.90), Decision::Continue);
        // Two scores: keep one; a worse score stops, a better one goes on.
        assert_eq!(asha.report(1, 0.80), Decision::Stop);
        assert_eq!(asha.report(1, 0.95), Decision::Continue);
        // Six scores: keep two. 0.92 is second best of [0.90, 0.80, 0.95, 0.70, 0.60, 0.92].
        assert_eq!(asha.report(1, 0.70), Decision::Stop);
        assert_eq!(asha.report(1, 0.60), Decision::Stop);
        assert_eq!(asha.report(1, 0.92), Decision::Continue);
        assert_eq!(asha.report(1, 0.91), Decision::Stop);
        // Epochs between rungs always continue and are not recorded.
        assert_eq!(asha.report(2, 0.10), Decision::Continue);
        assert_eq!(asha.records()[0].len(), 7);
        // Each rung has its own record.
        assert_eq!(asha.report(3, 0.5), Decision::Continue);
    }

    #[test]
    fn about_one_in_eta_passes_each_rung_over_many_trials() {
        let mut asha = Asha::new(1, 3, 27);
        let mut rng = pismo_core::rng::Rng::new(5);
        let mut passed = [0usize; 3];
        let trials = 900;
        for _ in 0..trials {
            // A trial's quality shows at every rung, with noise.
            let quality = rng.next_f32() as f64;
            for (k, &epoch) in [1u32, 3, 9].iter().enumerate() {
                let score = quality + 0.05 * rng.normal() as f64;
                if asha.report(epoch, score) == Decision::Stop {
                    break;
                }
                passed[k] += 1;
            }
        }
        let first = passed[0] as f64 / trials as f64;
        assert!((0.25..0.45).contains(&first), "{passed:?}");
        assert!(
            passed[1] < passed[0] / 2 && passed[2] < passed[1],
            "{passed:?}"
        );
    }
}
