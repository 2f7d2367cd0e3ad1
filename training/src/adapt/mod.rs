//! Adapting a model to one person's hand: fine-tuning it, from its own weights, on the
//! drawings the person corrected, without forgetting everyone else's digits.
//!
//! One fine-tuning run ([`Adapter::run`]) is a short stretch of momentum SGD over the
//! whole network, starting from the base model's weights:
//! - every step's batch holds up to [`AdaptRecipe::corrections_per_batch`] randomly
//!   distorted copies of the corrections (rotation, scale, shear and an elastic warp of
//!   [`AdaptRecipe::elastic`] px, [`pismo_core::augment`]), so a handful of drawings becomes many
//!   slightly different ones of the same hand;
//! - the rest of the batch is *rehearsal*: MNIST training digits (never its validation
//!   split), distorted the same way, so the network keeps reading everyone else's digits;
//! - the learning rate falls linearly from [`AdaptRecipe::lr`] to zero, and every step
//!   pulls the weights back toward the base's by [`AdaptRecipe::anchor`] (an L2 penalty on
//!   the distance to the base, not to zero).
//!
//! An int8 base is dequantized ([`AnyMlp::to_f32`]), fine-tuned, and quantized again as
//! `pismo models quantize` does (per-row scales, the activation scale calibrated on the
//! first MNIST training images, [`pismo_engine::model::calibration_images`]). The result keeps
//! the base's size and its input form (deskewing).
//!
//! Fine-tuning on a few drawings of one hand can cost everyone else's digits a little.
//! [`Adapter::run`] registers the fine-tuned weights themselves when MNIST validation stays
//! within [`AdaptRecipe::keep_within`] of the base; otherwise the base moved 75 % or 50 % of
//! the way toward them ([`BLENDS`]), the first that does: a blend of two nearby solutions
//! keeps most of what was learnt and most of what was known.
//!
//! [`Adapter::run`] also measures what adapting does for the person, honestly: a k-fold
//! cross-validation over the corrections (each fold adapted on the others and scored on
//! itself, never on what it trained on). The final model and the folds run side by side
//! on the available cores. The choice of the recipe, measured writer by writer, is in
//! docs/ARCHITECTURE.md ("Adapting to a hand").
//!
//! [`session`] turns this into a recorded, registered run (`pismo adapt`, the page's
//! "Learn from my corrections").

pub mod session;

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use pismo_core::augment::{self, Distortion};
use pismo_core::mlp::{self, Block, Dropout, Mlp, Sparse, CLASSES, INPUT, SUB};
use pismo_core::quant::KEPT_BYTES;
use pismo_core::rng::{hash3, Rng};
use pismo_digits::mnist::Dataset;
use pismo_engine::aligned::Floats;
use pismo_engine::model::{AnyMlp, NetworkJob};
use pismo_engine::prune;

/// How a model is fine-tuned to a hand. [`AdaptRecipe::DEFAULT`] is the measured choice.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdaptRecipe {
    /// SGD steps.
    pub steps: u32,
    /// Samples per step.
    pub batch: u32,
    /// Distorted copies of corrections per step, at most (never more than there are
    /// corrections); the rest of the batch is rehearsal.
    pub corrections_per_batch: u32,
    /// Learning rate of the first step; it falls linearly to 0 at the last.
    pub lr: f32,
    /// SGD momentum.
    pub momentum: f32,
    /// Dropout on the hidden layer while fine-tuning.
    pub dropout_rate: f32,
    /// Elastic warp of every distorted copy, pixels (rotation, scale and shear always).
    pub elastic: f32,
    /// Only the output layer learns (the hidden layer stays the base's).
    pub output_only: bool,
    /// Pull toward the base's weights: each step moves every weight `lr · anchor` of the way
    /// back to the base's.
    pub anchor: f32,
    /// MNIST validation accuracy (a fraction) the result may lose against the base before a
    /// blend nearer the base is tried ([`Adapter::run`]).
    #[serde(default = "AdaptRecipe::default_keep_within")]
    pub keep_within: f32,
}

impl AdaptRecipe {
    /// The recipe `pismo adapt` uses (see docs/ARCHITECTURE.md, "Adapting to a hand").
    pub const DEFAULT: AdaptRecipe = AdaptRecipe {
        steps: 200,
        batch: 64,
        corrections_per_batch: 8,
        lr: 0.02,
        momentum: 0.9,
        dropout_rate: 0.15,
        elastic: 1.5,
        output_only: false,
        anchor: 0.0,
        keep_within: 0.001,
    };

    fn default_keep_within() -> f32 {
        Self::DEFAULT.keep_within
    }
}

impl Default for AdaptRecipe {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What one adaptation learns from, and how.
#[derive(Clone, Copy, Debug)]
pub struct Adapter<'a> {
    /// The model to start from.
    pub base: &'a AnyMlp,
    /// MNIST training digits to rehearse (never the validation split).
    pub rehearsal: &'a Dataset,
    /// Images the activation scale of an int8 result is calibrated on: those
    /// [`pismo_engine::model::calibration_images`] picks, for a result quantized as
    /// `pismo models quantize` quantizes.
    pub calibration: &'a [[u8; INPUT]],
    /// How.
    pub recipe: AdaptRecipe,
    /// Seed of every random choice.
    pub seed: u64,
}

/// Cross-validated figures on the corrections: each digit scored by the base, and by a
/// model adapted on the other folds only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CrossValidation {
    /// Folds (0: too few corrections to hold any out).
    pub folds: usize,
    /// Corrections scored.
    pub n: usize,
    /// Of those, right before adapting.
    pub before: usize,
    /// Of those, right after adapting on the other folds.
    pub after: usize,
}

/// Folds of the cross-validation: at most this many, and never more than the corrections.
pub const MAX_FOLDS: usize = 3;

impl Adapter<'_> {
    /// The base fine-tuned on `corrections`, as an f32 model (whatever the base's kind);
    /// `tick` is called after every step.
    fn tune(&self, corrections: &Dataset, tick: &(dyn Fn() + Sync)) -> AnyMlp {
        let mut model = self.base.to_f32();
        let deskew = model.deskew();
        let tuned = model.with_network(FineTune {
            corrections,
            rehearsal: self.rehearsal,
            recipe: &self.recipe,
            deskew,
            seed: self.seed,
            tick,
        });
        debug_assert!(tuned.is_some(), "to_f32 gives an f32 model");
        model
    }

    /// `base` (the base as f32) moved `blend` of the way to `tuned`, in the base's kind: an
    /// int8 base gets an int8 model, quantized as `pismo models quantize` does (its first
    /// layer to the base's 7 or 8 bits), and pruned to the base's pixels if the base is
    /// pruned ([`pismo_engine::prune`]).
    fn finish(&self, base: &AnyMlp, tuned: &AnyMlp, blend: f32) -> AnyMlp {
        let model = base
            .blended_toward(tuned, blend)
            .expect("the base and the tuned model are f32 of one size");
        let Some(base_view) = self.base.int8_view() else {
            return model;
        };
        let int8 = model
            .quantize(self.calibration, base_view.first_layer_kind())
            .expect("an f32 model quantizes");
        match <&[u8; KEPT_BYTES]>::try_from(base_view.kept()) {
            Ok(kept) => prune::pruned(&int8, kept).expect("an int8 model prunes"),
            Err(_) => int8,
        }
    }

    /// Steps one [`Self::run`] takes in all for `n` corrections: the final model's and each
    /// fold's.
    pub fn total_steps(&self, n: usize) -> u32 {
        (1 + folds_for(n) as u32) * self.recipe.steps
    }

    /// Adapts the base to `corrections` on up to `threads` threads (0: all cores), the
    /// final model and the cross-validation folds side by side; `progress(done, total)`
    /// counts steps as they finish. The result is the base moved the largest of
    /// [`BLENDS`] of the way to the fine-tuned weights that keeps MNIST `validation` within
    /// [`AdaptRecipe::keep_within`] of the base (all the way when none does: the caller's
    /// forgetting check then decides); the folds are blended alike before they are scored.
    pub fn run(
        &self,
        corrections: &Dataset,
        validation: &Dataset,
        threads: usize,
        progress: &(dyn Fn(u32, u32) + Sync),
    ) -> Adaptation {
        let folds = folds_for(corrections.len());
        let total = self.total_steps(corrections.len());
        let done = AtomicU32::new(0);
        let tick = || progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
        let fold_of = fold_assignment(&corrections.labels, folds, self.seed);
        let parts: Vec<(Dataset, Dataset)> = (0..folds)
            .map(|f| held_out(corrections, &fold_of, f))
            .collect();
        let tuned = self.tune_all(corrections, &parts, threads, &tick);
        let base = self.base.to_f32();
        let score = |m: &AnyMlp| {
            let (loss, right) = m.evaluate(&validation.images, &validation.labels, threads);
            let n = validation.len().max(1) as f64;
            (loss / n, right as f64 / n)
        };
        let val_before = score(self.base).1;
        let chosen = self.choose_blend(&base, &tuned[0].1, val_before, &score);
        let cross_validation = self.cross_validate(&base, &parts, &tuned[1..], chosen.blend);
        Adaptation {
            model: chosen.model,
            cross_validation,
            blend: chosen.blend,
            val_before,
            val_after: chosen.val_after,
            val_loss: chosen.val_loss,
            tuned_val: chosen.tuned_val,
        }
    }

    /// Fine-tunes the final model (job 0, on every correction) and each fold's (job
    /// `f + 1`, on every fold but `f`: `parts[f].1`), shared out over up to `threads`
    /// workers (0: all cores): the tuned models in job order.
    fn tune_all(
        &self,
        corrections: &Dataset,
        parts: &[(Dataset, Dataset)],
        threads: usize,
        tick: &(dyn Fn() + Sync),
    ) -> Vec<(usize, AnyMlp)> {
        let folds = parts.len();
        let next = AtomicUsize::new(0);
        let workers = pismo_engine::threads_or_all(threads).clamp(1, folds + 1);
        let mut tuned: Vec<(usize, AnyMlp)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    s.spawn(|| {
                        let mut mine = Vec::new();
                        loop {
                            let job = next.fetch_add(1, Ordering::Relaxed);
                            if job > folds {
                                break mine;
                            }
                            let train = if job == 0 {
                                corrections
                            } else {
                                &parts[job - 1].1
                            };
                            mine.push((job, self.tune(train, tick)));
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|w| w.join().expect("an adapting thread panicked"))
                .collect()
        });
        tuned.sort_by_key(|(job, _)| *job);
        tuned
    }

    /// The first of [`BLENDS`] of `base` (as f32) toward `tuned` whose MNIST validation
    /// accuracy (`score`: mean loss and accuracy) stays within
    /// [`AdaptRecipe::keep_within`] of `val_before`, else the first blend (all the way).
    fn choose_blend(
        &self,
        base: &AnyMlp,
        tuned: &AnyMlp,
        val_before: f64,
        score: &dyn Fn(&AnyMlp) -> (f64, f64),
    ) -> Blended {
        let floor = val_before - f64::from(self.recipe.keep_within);
        let mut chosen = None;
        let mut tuned_val = 0.0;
        for &blend in &BLENDS {
            let model = self.finish(base, tuned, blend);
            let (loss, accuracy) = score(&model);
            let keep = accuracy >= floor;
            if chosen.is_none() {
                tuned_val = accuracy;
            }
            if keep || chosen.is_none() {
                chosen = Some((blend, model, loss, accuracy));
            }
            if keep {
                break;
            }
        }
        let (blend, model, val_loss, val_after) = chosen.expect("BLENDS is not empty");
        Blended {
            blend,
            model,
            val_loss,
            val_after,
            tuned_val,
        }
    }

    /// Scores each fold's held-out corrections by the base and by its fold model
    /// (`fold_tuned`, in fold order) blended `blend` of the way, as the final model was.
    fn cross_validate(
        &self,
        base: &AnyMlp,
        parts: &[(Dataset, Dataset)],
        fold_tuned: &[(usize, AnyMlp)],
        blend: f32,
    ) -> CrossValidation {
        let mut cv = CrossValidation {
            folds: parts.len(),
            ..CrossValidation::default()
        };
        for ((held, _), (_, fold_tuned)) in parts.iter().zip(fold_tuned) {
            let fold_model = self.finish(base, fold_tuned, blend);
            cv.n += held.len();
            cv.before += self.base.evaluate(&held.images, &held.labels, 1).1;
            cv.after += fold_model.evaluate(&held.images, &held.labels, 1).1;
        }
        cv
    }
}

/// The blend [`Adapter::run`] chose and its MNIST validation figures.
struct Blended {
    /// How far from the base toward the fine-tuned weights.
    blend: f32,
    /// The blended model, in the base's kind.
    model: AnyMlp,
    /// Its mean validation loss.
    val_loss: f64,
    /// Its validation accuracy.
    val_after: f64,
    /// The validation accuracy of the fine-tuned weights themselves (blend 1).
    tuned_val: f64,
}

/// The blends of the base and its fine-tuned weights [`Adapter::run`] tries, in order: all
/// the way first.
pub const BLENDS: [f32; 3] = [1.0, 0.75, 0.5];

/// What [`Adapter::run`] gives: the adapted model and its figures.
#[derive(Debug)]
pub struct Adaptation {
    /// The adapted model, in the base's kind and size.
    pub model: AnyMlp,
    /// Its cross-validated figures on the corrections.
    pub cross_validation: CrossValidation,
    /// How far it moved from the base toward the fine-tuned weights (1: all the way).
    pub blend: f32,
    /// MNIST validation accuracy of the base, 0..1.
    pub val_before: f64,
    /// MNIST validation accuracy of the adapted model, 0..1.
    pub val_after: f64,
    /// Its mean cross-entropy on MNIST validation.
    pub val_loss: f64,
    /// MNIST validation accuracy of the fine-tuned weights themselves (blend 1), 0..1: what
    /// learning the corrections fully costs everyone else's digits, which the forgetting
    /// check judges (corrections that contradict MNIST, such as mislabelled ones, cost much).
    pub tuned_val: f64,
}

/// Fold `fold` of `corrections` and the rest: `(held out, trained on)`.
fn held_out(corrections: &Dataset, fold_of: &[usize], fold: usize) -> (Dataset, Dataset) {
    let (mut held, mut train) = (Dataset::default(), Dataset::default());
    for ((img, &label), &f) in corrections
        .images
        .iter()
        .zip(&corrections.labels)
        .zip(fold_of)
    {
        let part = if f == fold { &mut held } else { &mut train };
        part.images.push(*img);
        part.labels.push(label);
    }
    (held, train)
}

/// How many folds `n` corrections are cross-validated in (0 below 2).
pub fn folds_for(n: usize) -> usize {
    if n < 2 {
        0
    } else {
        n.min(MAX_FOLDS)
    }
}

/// The fold of each correction: dealt round-robin after sorting by digit (seeded order
/// within a digit), so every fold holds a share of every digit.
fn fold_assignment(labels: &[u8], folds: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by_key(|&i| (labels[i], hash3(seed, i as u64, 0xF01D)));
    let mut fold_of = vec![0; labels.len()];
    for (k, &i) in order.iter().enumerate() {
        fold_of[i] = k % folds.max(1);
    }
    fold_of
}

/// One fine-tuning run on a network of any size ([`NetworkJob`]).
struct FineTune<'a> {
    corrections: &'a Dataset,
    rehearsal: &'a Dataset,
    recipe: &'a AdaptRecipe,
    deskew: bool,
    seed: u64,
    tick: &'a (dyn Fn() + Sync),
}

impl NetworkJob for FineTune<'_> {
    type Output = ();

    fn run<const H: usize>(self, m: &mut Mlp<H>) {
        let r = self.recipe;
        let b = r.batch.max(1) as usize;
        let mut w1 = Floats::zeroed(INPUT * H);
        mlp::pack_columns(&m.w1, 0, H, &mut w1);
        let anchored = r.anchor > 0.0;
        let mut s = Steps {
            corrections: self.corrections,
            rehearsal: self.rehearsal,
            recipe: r,
            deskew: self.deskew,
            seed: self.seed,
            w1_base: if anchored { w1.to_vec() } else { Vec::new() },
            w2: m.w2.as_flattened().to_vec(),
            w2_base: if anchored {
                m.w2.as_flattened().to_vec()
            } else {
                Vec::new()
            },
            b1_base: if anchored { m.b1.to_vec() } else { Vec::new() },
            b2_base: m.b2,
            w1,
            v1: Floats::zeroed(INPUT * H),
            vb1: vec![0.0; H],
            vw2: vec![0.0; CLASSES * H],
            vb2: [0.0; CLASSES],
            gw2: vec![0.0; CLASSES * H],
            gb1: vec![0.0; H],
            xs: vec![Sparse::new(); b],
            labels: vec![0; b],
            a: vec![0.0; b * H],
            partial: vec![[0.0; CLASSES]; b * H / SUB],
            z: vec![[0.0; CLASSES]; b],
            dz: vec![[0.0; CLASSES]; b],
            start: [0; INPUT + 1],
            entries: vec![(0, 0.0); b * INPUT],
            rng: Rng::new(hash3(self.seed, 0xADA97, 0)),
        };
        for step in 0..r.steps {
            adapt_step(m, &mut s, step);
            (self.tick)();
        }
        mlp::unpack_columns(&s.w1, 0, H, &mut m.w1);
        m.w2.as_flattened_mut().copy_from_slice(&s.w2);
    }
}

/// A fine-tuning run's state between steps: the weights the step changes in its own
/// layout (`w1` strip-packed, [`mlp::pack_columns`]), their momentum, the base's weights
/// to anchor to (empty without an anchor), and the batch's buffers.
pub struct Steps<'a> {
    corrections: &'a Dataset,
    rehearsal: &'a Dataset,
    recipe: &'a AdaptRecipe,
    deskew: bool,
    seed: u64,
    w1: Floats,
    w1_base: Vec<f32>,
    w2: Vec<f32>,
    w2_base: Vec<f32>,
    b1_base: Vec<f32>,
    b2_base: [f32; CLASSES],
    v1: Floats,
    vb1: Vec<f32>,
    vw2: Vec<f32>,
    vb2: [f32; CLASSES],
    gw2: Vec<f32>,
    gb1: Vec<f32>,
    xs: Vec<Sparse>,
    labels: Vec<u8>,
    a: Vec<f32>,
    partial: Vec<[f32; CLASSES]>,
    z: Vec<[f32; CLASSES]>,
    dz: Vec<[f32; CLASSES]>,
    start: [u32; INPUT + 1],
    entries: Vec<(u32, f32)>,
    rng: Rng,
}

impl std::fmt::Debug for Steps<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Steps(batch of {})", self.xs.len())
    }
}

/// Step `step` of a fine-tuning run: a batch of distorted corrections and rehearsal
/// digits ([`fill_batch`]), forward and backward ([`forward_backward`]), momentum SGD and
/// the pull toward the base ([`update`]). `#[inline(always)]`, as its parts, so that
/// [`adapt_step`]'s per-CPU copies compile it whole.
#[inline(always)]
fn step<const H: usize>(m: &mut Mlp<H>, s: &mut Steps<'_>, step: u32) {
    let r = s.recipe;
    let lr = r.lr * (1.0 - step as f32 / r.steps.max(1) as f32);
    fill_batch(s, step);
    let dropout = Dropout {
        rate: r.dropout_rate,
        seed: s.seed,
        step: u64::from(step),
    };
    forward_backward(m, s, dropout);
    update(m, s, lr);
}

/// The batch of step `step`: its first slots distorted copies of corrections (at most
/// [`AdaptRecipe::corrections_per_batch`]), the rest distorted rehearsal digits, each drawn
/// from the run's generator in slot order and deskewed if the model's inputs are.
#[inline(always)]
fn fill_batch(s: &mut Steps<'_>, step: u32) {
    let r = s.recipe;
    let b = s.xs.len();
    let corrections = (r.corrections_per_batch as usize)
        .min(s.corrections.len())
        .min(b);
    let distortion = Distortion {
        elastic: r.elastic,
        shift: 0.0,
    };
    let mut x = [0.0f32; INPUT];
    for slot in 0..b {
        let from = if slot < corrections {
            s.corrections
        } else {
            s.rehearsal
        };
        let i = s.rng.below(from.len());
        augment::distort(
            &from.images[i],
            &mut x,
            s.seed,
            u64::from(step),
            slot as u64,
            &distortion,
        );
        if s.deskew {
            pismo_core::deskew::deskew_f32(&mut x);
        }
        s.xs[slot].set_f32(&x);
        s.labels[slot] = from.labels[i];
    }
}

/// Forward of the batch with `dropout`, its loss's output gradient (`s.dz`), and the
/// backward pass into the hidden layer's gradients (`s.gw2`, `s.gb1`, `s.a`).
#[inline(always)]
fn forward_backward<const H: usize>(m: &Mlp<H>, s: &mut Steps<'_>, dropout: Dropout) {
    let b = s.xs.len();
    let block = Block {
        h0: 0,
        width: H,
        w1: &s.w1,
        b1: &m.b1,
        w2: &s.w2,
    };
    mlp::block_forward(
        block,
        &[&s.xs[..]],
        b,
        Some(dropout),
        &mut s.a,
        &mut s.partial,
    );
    s.z.fill(m.b2);
    mlp::add_partials(&mut s.z, &s.partial);
    mlp::softmax_cross_entropy(&s.z, &s.labels, &mut s.dz);
    let scale = if s.recipe.dropout_rate > 0.0 {
        dropout.scale()
    } else {
        1.0
    };
    mlp::block_backward(&s.w2, H, &s.dz, scale, &mut s.a, &mut s.gw2, &mut s.gb1);
}

/// Momentum SGD at `lr` on the output layer, and on the hidden layer unless
/// [`AdaptRecipe::output_only`]; then the pull toward the base's weights
/// ([`AdaptRecipe::anchor`]).
#[inline(always)]
fn update<const H: usize>(m: &mut Mlp<H>, s: &mut Steps<'_>, lr: f32) {
    let r = s.recipe;
    let mut gb2 = [0.0f32; CLASSES];
    for d in &s.dz {
        for (g, v) in gb2.iter_mut().zip(d) {
            *g += v;
        }
    }
    mlp::sgd_momentum(&mut s.w2, &mut s.vw2, &s.gw2, lr, r.momentum, 0.0);
    mlp::sgd_momentum(&mut m.b2, &mut s.vb2, &gb2, lr, r.momentum, 0.0);
    if !r.output_only {
        mlp::sgd_momentum(&mut m.b1, &mut s.vb1, &s.gb1, lr, r.momentum, 0.0);
        mlp::pixel_columns(&[&s.xs[..]], &mut s.start, &mut s.entries);
        mlp::w1_update(
            &s.start, &s.entries, &s.a, H, &mut s.w1, &mut s.v1, lr, r.momentum, 0.0,
        );
    }
    if r.anchor > 0.0 {
        let pull = (lr * r.anchor).min(1.0);
        anchor(&mut s.w2, &s.w2_base, pull);
        anchor(&mut m.b2, &s.b2_base, pull);
        if !r.output_only {
            anchor(&mut s.w1, &s.w1_base, pull);
            anchor(&mut m.b1, &s.b1_base, pull);
        }
    }
}

pismo_engine::dispatched! {
    /// Step `step` of adapting a model to a hand ([`step`]), compiled per
    /// instruction set like training's kernels.
    pub fn adapt_step<const H: usize>(
        m: &mut Mlp<H>,
        s: &mut Steps<'_>,
        step: u32,
    ) {
        self::step(m, s, step)
    }
}

/// `w ← w − pull·(w − base)`.
#[inline(always)]
fn anchor(w: &mut [f32], base: &[f32], pull: f32) {
    for (v, &b) in w.iter_mut().zip(base) {
        *v -= pull * (*v - b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_share_out_every_digit() {
        let labels = [3, 3, 3, 3, 7, 7, 7, 7, 1, 1];
        let fold_of = fold_assignment(&labels, folds_for(labels.len()), 9);
        for f in 0..MAX_FOLDS {
            let digits: Vec<u8> = (0..labels.len())
                .filter(|&i| fold_of[i] == f)
                .map(|i| labels[i])
                .collect();
            assert!(!digits.is_empty(), "fold {f} is empty");
        }
        for digit in [3, 7] {
            let folds: std::collections::BTreeSet<usize> = (0..labels.len())
                .filter(|&i| labels[i] == digit)
                .map(|i| fold_of[i])
                .collect();
            assert_eq!(folds.len(), 3, "the four {digit}s are in all three folds");
        }
        assert_eq!(folds_for(1), 0);
        assert_eq!(folds_for(3), 3);
        assert_eq!(folds_for(200), MAX_FOLDS);
    }
}
