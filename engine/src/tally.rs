//! What a model makes of a set of labelled images, answer by answer: the confusion matrix,
//! the summed loss and each image's ten probabilities ([`Tally`]), counted on all cores.
//!
//! It feeds each image to the model as its bytes / 255 through [`AnyMlp::logits`], one at a
//! time, as `pismo predict` does for one digit, and computes the loss in `f64` from those
//! logits. [`crate::eval`] (behind [`AnyMlp::evaluate`]) answers a narrower question for the
//! trainer — loss and correct count only, batched through the strip-packed kernels and in
//! `f32` — so its loss differs in the last digits. The two are not interchangeable: the
//! trainer's figures come from [`crate::eval`], `pismo eval`'s and what `pismo models
//! quantize` and `join` measure from a tally.

use pismo_core::mlp::{CLASSES, INPUT};

use crate::model::AnyMlp;

/// One answer: the ten probabilities and whether the arg-max was right.
pub type Score = ([f32; CLASSES], bool);

/// What one evaluation found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Tally {
    /// `confusion[true][predicted]`.
    confusion: [[u64; CLASSES]; CLASSES],
    /// Sum of the cross-entropy of every image.
    loss: f64,
    /// Per image, in order: its ten probabilities and whether the arg-max was right.
    scores: Vec<Score>,
}

/// Images between two calls of the progress callback.
const PROGRESS_EVERY: usize = 250;

impl Tally {
    /// `model` over `images` with their `labels` on `threads` threads (0: all cores), in
    /// contiguous shares ([`crate::fan_out`]) whose tallies are added in order. `progress`
    /// is called from the threads with the number of images done since its last call: one
    /// per image in all.
    pub fn of(
        model: &AnyMlp,
        images: &[[u8; INPUT]],
        labels: &[u8],
        threads: usize,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Tally {
        let threads = crate::threads_or_all(threads);
        let n = images.len().min(labels.len());
        let parts = crate::fan_out::map_shares(n, threads, |share| {
            Tally::of_share(model, &images[share.clone()], &labels[share], progress)
        });
        let mut total = Tally::default();
        for part in &parts {
            total.add(part);
        }
        total
    }

    /// [`Tally::of`] one share, on this thread.
    fn of_share(
        model: &AnyMlp,
        images: &[[u8; INPUT]],
        labels: &[u8],
        progress: &(dyn Fn(u64) + Sync),
    ) -> Tally {
        let mut t = Tally::default();
        let mut x = [0.0f32; INPUT];
        for (k, (image, &label)) in images.iter().zip(labels).enumerate() {
            if k % PROGRESS_EVERY == PROGRESS_EVERY - 1 {
                progress(PROGRESS_EVERY as u64);
            }
            for (v, &b) in x.iter_mut().zip(image) {
                *v = f32::from(b) / 255.0;
            }
            t.count(&model.logits(&x), label);
        }
        progress((images.len() % PROGRESS_EVERY) as u64);
        t
    }

    /// Counts one answer: the logits `z` of an image labelled `label`.
    fn count(&mut self, z: &[f32; CLASSES], label: u8) {
        let (mut best, mut max) = (0, f32::NEG_INFINITY);
        for (i, &v) in z.iter().enumerate() {
            if v > max {
                (best, max) = (i, v);
            }
        }
        let sum: f64 = z.iter().map(|&v| f64::from(v - max).exp()).sum();
        let label = usize::from(label).min(CLASSES - 1);
        self.loss += sum.ln() - f64::from(z[label] - max);
        self.confusion[label][best] += 1;
        let p = z.map(|v| (f64::from(v - max).exp() / sum) as f32);
        self.scores.push((p, best == label));
    }

    /// Adds `other`'s counts, its scores after these.
    fn add(&mut self, other: &Tally) {
        for (row, other) in self.confusion.iter_mut().zip(&other.confusion) {
            for (c, o) in row.iter_mut().zip(other) {
                *c += o;
            }
        }
        self.loss += other.loss;
        self.scores.extend_from_slice(&other.scores);
    }

    /// Images counted.
    pub fn n(&self) -> u64 {
        self.confusion.iter().flatten().sum()
    }

    /// Images whose arg-max was their label.
    pub fn correct(&self) -> u64 {
        (0..CLASSES).map(|i| self.confusion[i][i]).sum()
    }

    /// The share of images read right (0 for no images).
    pub fn accuracy(&self) -> f64 {
        self.correct() as f64 / self.n().max(1) as f64
    }

    /// Mean cross-entropy per image (0 for no images).
    pub fn mean_loss(&self) -> f64 {
        self.loss / self.n().max(1) as f64
    }

    /// `confusion()[true][predicted]`: images of each true digit by the digit read.
    pub fn confusion(&self) -> &[[u64; CLASSES]; CLASSES] {
        &self.confusion
    }

    /// Per image, in order: its ten probabilities and whether the arg-max was right.
    pub fn scores(&self) -> &[Score] {
        &self.scores
    }

    /// Per true digit: the fraction recognised, `None` for a digit with no images.
    pub fn recall(&self) -> [Option<f64>; CLASSES] {
        let mut out = [None; CLASSES];
        for (o, (i, row)) in out.iter_mut().zip(self.confusion.iter().enumerate()) {
            let total: u64 = row.iter().sum();
            if total > 0 {
                *o = Some(row[i] as f64 / total as f64);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_rows_by_true_label() {
        let mut t = Tally::default();
        t.confusion[3][3] = 8;
        t.confusion[3][5] = 2;
        t.confusion[7][7] = 10;
        assert_eq!((t.n(), t.correct()), (20, 18));
        assert_eq!(t.accuracy(), 0.9);
        let recall = t.recall();
        assert_eq!(recall[3], Some(0.8));
        assert_eq!(recall[7], Some(1.0));
        assert_eq!(recall[0], None);
    }

    #[test]
    fn shares_add_up_to_one_thread_and_progress_counts_every_image() {
        let model = AnyMlp::zeroed(16).expect("16 is a supported size");
        let images: Vec<[u8; INPUT]> = (0..600u32).map(|k| [(k % 251) as u8; INPUT]).collect();
        let labels: Vec<u8> = (0..600u32).map(|k| (k % 10) as u8).collect();
        let done = std::sync::atomic::AtomicU64::new(0);
        let progress = |n: u64| {
            done.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        };
        let one = Tally::of(&model, &images, &labels, 1, &progress);
        let three = Tally::of(&model, &images, &labels, 3, &progress);
        assert_eq!(one.n(), 600);
        assert_eq!(one.confusion, three.confusion);
        assert_eq!(one.scores, three.scores);
        assert_eq!(done.into_inner(), 1200);
    }
}
