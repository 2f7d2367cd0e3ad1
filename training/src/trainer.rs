//! Mini-batch training over epochs, on all cores.
//!
//! One epoch: shuffle the training indices (seeded), then run each mini-batch through the
//! [`Team`] of threads: images stay bytes and only the batch's are turned into sparse `f32`
//! inputs (a full run stays under 100 MB), every thread owns a block of hidden units, and the
//! trained model is bit-identical for any number of threads (see [`crate::team`]).
//!
//! The training set is MNIST's training images (the validation split is always held out of
//! these, so validation stays comparable across recipes) plus, optionally, training-only
//! [`Part`]s after them: corpora of other writers, corrected drawings, redrawn and synthetic
//! digits, each repeated `repeat` times per epoch. Parts marked `report` get their own
//! accuracy (no dropout, no distortion) after every epoch.
//!
//! After each epoch the validation split is evaluated; the weights with the lowest validation
//! loss are kept, and training stops after `patience` epochs without improvement. The
//! learning rate of epoch `e` (from 0) is `initial_lr / (1 + decay · e)`.
//!
//! With [`TrainSet::average`] = `n`, the model that is evaluated, kept and returned is not the
//! weights at the end of an epoch but their running average over epochs: after epoch `e`
//! (from 1) the average moves `max(1/e, 1/n)` of the way to the new weights. For the first
//! `n` epochs that is the plain mean of every epoch's weights, then an exponential average
//! over about the last `n`. Training itself is unchanged; averaging takes out the noise
//! that SGD's step size leaves in the weights, as a smaller final step size would, without
//! slowing learning (Polyak and Juditsky 1992; Izmailov et al. 2018).

use std::borrow::Cow;
use std::ops::ControlFlow;
use std::time::Instant;

use serde::Serialize;

use crate::inked::InkedImages;
use crate::kernels::Source;
use crate::team::{self, Team};
use pismo_core::augment::Distortion;
use pismo_core::hyper::{Hyper, HyperError, Metrics};
use pismo_core::mlp::{Dropout, Mlp, INPUT};
use pismo_core::rng::Rng;
use pismo_digits::mnist::Dataset;
use pismo_engine::boxed_zeroed;
use pismo_engine::eval::evaluate;
use pismo_engine::kernels;
use pismo_engine::model::{model_inputs, AnyMlp, IntoAny};

/// Metrics of one finished epoch.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EpochReport {
    /// 1-based epoch.
    pub epoch: u32,
    /// Maximum epochs of the run.
    pub epochs: u32,
    /// Learning rate used in this epoch.
    pub lr: f32,
    /// Mean training loss (cross-entropy with dropout on, plus the L2 term).
    pub train_loss: f32,
    /// Training accuracy with dropout on, 0..1.
    pub train_accuracy: f32,
    /// Validation cross-entropy (NaN without a validation split), of the weights that would
    /// be kept: the averaged ones when averaging.
    pub val_loss: f32,
    /// Validation accuracy, 0..1 (NaN without a validation split).
    pub val_accuracy: f32,
    /// Wall time of the epoch, seconds.
    pub seconds: f32,
    /// Estimated seconds until the last epoch ends (if it is not stopped early).
    pub eta_seconds: f32,
    /// Whether the validation loss reached a new minimum (these weights are kept).
    pub improved: bool,
    /// Accuracy (0..1) on each reported training part, by name, in the parts' order.
    pub parts: Vec<(String, f32)>,
}

/// A named range of the extra training images.
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    /// Its name in reports and metrics (e.g. `drawn`, `semeion-train`).
    pub name: String,
    /// First image, as an index into the extra images.
    pub start: usize,
    /// Number of images.
    pub len: usize,
    /// Times each image is seen per epoch (at least 1).
    pub repeat: u32,
    /// Whether its accuracy is reported after each epoch.
    pub report: bool,
}

/// What to train on: MNIST's training images, and training-only extra images in parts.
#[derive(Clone, Copy, Debug)]
pub struct TrainSet<'a> {
    /// MNIST's training images; the validation split is held out of these.
    pub mnist: &'a Dataset,
    /// Extra images, trained on only.
    pub extra: &'a Dataset,
    /// The parts of `extra` (ranges may not overlap; images outside every part are unused).
    pub parts: &'a [Part],
    /// How far training digits are distorted when `augment` is on.
    pub distortion: Distortion,
    /// Whether every input is deskewed ([`pismo_core::deskew`]): training digits after their
    /// distortion, validation and test digits as they are; the model records it.
    pub deskew: bool,
    /// Epochs over which the weights are averaged (0 or 1: no averaging; see the module
    /// docs).
    pub average: u32,
    /// Which member of a committee this network is (0 for a network of its own): member `k`
    /// draws its initial weights, order, dropout and distortions from `seed + k` and holds
    /// out the validation split of `seed` itself, so every member of a committee is
    /// validated on the same images ([`pismo_engine::model::AnyMlp::committee`]).
    pub member: u32,
}

/// The seed of committee member `member`'s random choices other than the validation split
/// (member 0's is `seed` itself).
pub fn member_seed(seed: u64, member: u32) -> u64 {
    seed.wrapping_add(u64::from(member))
}

/// What the trainer reports while it runs. Return [`ControlFlow::Break`] from the callback
/// to stop training; the best weights so far are kept.
#[derive(Debug)]
pub enum Event<'a> {
    /// A human-readable log line (start, early stop, …).
    Log(&'a str),
    /// Progress inside an epoch, a few times per second at most.
    Batch {
        /// 1-based epoch.
        epoch: u32,
        /// Batches done in this epoch.
        done: usize,
        /// Batches per epoch.
        total: usize,
        /// Wall time of this epoch's batches so far, seconds: with `done`, the measured pace
        /// an estimate of the time left can be based on (`pismo train`'s bar).
        seconds: f32,
    },
    /// An epoch finished.
    Epoch(&'a EpochReport),
}

/// Why training did not start.
#[derive(Debug)]
pub enum TrainError {
    /// A hyperparameter is out of range.
    Hyper(HyperError),
    /// Not enough images for the validation split and at least one batch.
    TooFewImages {
        /// Images available.
        have: usize,
        /// Validation images requested.
        val_size: usize,
    },
}

impl std::fmt::Display for TrainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrainError::Hyper(e) => e.fmt(f),
            TrainError::TooFewImages { have, val_size } => write!(
                f,
                "{have} training images cannot hold a validation split of {val_size} and a batch"
            ),
        }
    }
}

impl std::error::Error for TrainError {}

/// The result of a run.
#[derive(Debug)]
pub struct Outcome {
    /// The kept weights (lowest validation loss).
    pub model: AnyMlp,
    /// Final metrics (`test_accuracy` filled when a test set was given).
    pub metrics: Metrics,
    /// Every epoch's report.
    pub history: Vec<EpochReport>,
    /// True if the callback asked to stop.
    pub cancelled: bool,
    /// True if early stopping ended the run.
    pub stopped_early: bool,
}

/// Trains a model on `data` (validation split held out of it) and evaluates it on `test`.
/// `threads = 0` uses every core.
pub fn train(
    hyper: &Hyper,
    data: &Dataset,
    test: Option<&Dataset>,
    threads: usize,
    on_event: &mut dyn FnMut(Event<'_>) -> ControlFlow<()>,
) -> Result<Outcome, TrainError> {
    let none = Dataset {
        images: Vec::new(),
        labels: Vec::new(),
    };
    let set = TrainSet {
        mnist: data,
        extra: &none,
        parts: &[],
        distortion: Distortion::AFFINE,
        deskew: false,
        average: 0,
        member: 0,
    };
    train_set(hyper, &set, test, threads, on_event)
}

/// Trains a model on `set` (validation split held out of its MNIST images) and evaluates it
/// on `test`. `threads = 0` uses every core.
pub fn train_set(
    hyper: &Hyper,
    set: &TrainSet<'_>,
    test: Option<&Dataset>,
    threads: usize,
    on_event: &mut dyn FnMut(Event<'_>) -> ControlFlow<()>,
) -> Result<Outcome, TrainError> {
    hyper.validate().map_err(TrainError::Hyper)?;
    let data = set.mnist;
    let val_size = hyper.val_size as usize;
    if data.len() < val_size + 1 {
        return Err(TrainError::TooFewImages {
            have: data.len(),
            val_size,
        });
    }
    let threads = pismo_engine::threads_or_all(threads);
    pismo_engine::with_hidden!(hyper.hidden_size, H => train_h::<H>(hyper, set, test, threads, on_event))
        .expect("hidden_size validated")
}

/// The validation split of a run: a seeded permutation of `0..len` whose first `val_size`
/// indices are held out (returned first) and the rest trained on.
pub fn validation_split(len: usize, val_size: usize, seed: u64) -> (Vec<u32>, Vec<u32>) {
    let mut order: Vec<u32> = (0..len as u32).collect();
    Rng::new(seed ^ 0x5EED_5A17).shuffle(&mut order);
    let train = order.split_off(val_size.min(len));
    (order, train)
}

/// The images a run of `seed` holds out for validation ([`validation_split`]), in its order.
pub fn validation_set(data: &Dataset, val_size: usize, seed: u64) -> Dataset {
    split_sets(data, val_size, seed).0
}

/// A run's validation split ([`validation_split`]) and the images it trains on, as
/// datasets: `(held out, trained on)`.
pub fn split_sets(data: &Dataset, val_size: usize, seed: u64) -> (Dataset, Dataset) {
    let (held, trained) = validation_split(data.len(), val_size, seed);
    (data.subset(&held), data.subset(&trained))
}

fn sum_squares<const H: usize>(m: &Mlp<H>) -> f64 {
    let s1: f64 =
        m.w1.as_flattened()
            .iter()
            .map(|&w| (w as f64) * (w as f64))
            .sum();
    let s2: f64 =
        m.w2.as_flattened()
            .iter()
            .map(|&w| (w as f64) * (w as f64))
            .sum();
    s1 + s2
}

/// [`train_set`] for a network of `H` hidden units, in steps: the initial weights (the
/// member's seed), the validation split and the inputs ([`RunImages`], [`epoch_indices`]),
/// the start line, the inked store of undistorted images ([`inked_store`]), the epoch loop
/// on a [`Team`] ([`EpochLoop::epochs`]), then the kept weights' test pass. Random numbers
/// are drawn in that order, so a seed gives the same model whatever the thread count.
fn train_h<const H: usize>(
    hyper: &Hyper,
    set: &TrainSet<'_>,
    test: Option<&Dataset>,
    threads: usize,
    on_event: &mut dyn FnMut(Event<'_>) -> ControlFlow<()>,
) -> Result<Outcome, TrainError>
where
    Box<Mlp<H>>: IntoAny,
{
    let batch = hyper.batch_size as usize;
    let seed = member_seed(hyper.seed, set.member);
    let mut rng = Rng::new(seed);
    let mut current: Box<Mlp<H>> = boxed_zeroed();
    current.init(&mut rng);
    let best = Best::new(&current);
    let averaged: Option<Box<Mlp<H>>> = (set.average > 1).then(boxed_zeroed);
    let team_threads = team::team_size::<H>(threads);

    let (val_idx, train_idx) =
        validation_split(set.mnist.len(), hyper.val_size as usize, hyper.seed);
    let images = RunImages::new(hyper, set, &val_idx);
    let train_idx = epoch_indices(train_idx, set);
    let batches = train_idx.len().div_ceil(batch);
    let line = start_line::<H>(hyper, set, &val_idx, &train_idx, batches, team_threads);
    let cancelled = on_event(Event::Log(&line)).is_break();

    let mut run = EpochLoop {
        hyper,
        set,
        images: &images,
        reported: set.parts.iter().filter(|p| p.report).collect(),
        batches,
        seed,
        threads,
        rng,
        train_idx,
        current,
        averaged,
        best,
        history: Vec::new(),
        epoch: 0,
        step: 0,
        cancelled,
        stopped_early: false,
        started: Instant::now(),
    };
    let extra_images = images.extra_images(set);
    let inked = inked_store(hyper, &images, extra_images, &val_idx, threads);
    let src = Source {
        base_images: &images.mnist_fixed,
        base_labels: &set.mnist.labels,
        extra_images,
        extra_labels: &set.extra.labels,
        inked: inked.as_ref(),
        distortion: set.distortion,
        deskew: set.deskew && hyper.augment,
        seed,
    };
    let shared = team::shared(&run.current, src, team_threads, batch);
    std::thread::scope(|scope| {
        let mut team = Team::start(scope, &shared, &run.current, batch);
        run.epochs(&mut team, on_event);
    });

    let test_accuracy = test.map(|t| test_accuracy(&run.best.model, t, set.deskew, threads));
    let metrics = run.best.metrics(run.epoch, test_accuracy);
    Ok(Outcome {
        model: run.best.model.into_any().with_deskew(set.deskew),
        metrics,
        history: run.history,
        cancelled: run.cancelled,
        stopped_early: run.stopped_early,
    })
}

/// The accuracy of `model` on `test` (0..1), its inputs deskewed if the model's are.
fn test_accuracy<const H: usize>(
    model: &Mlp<H>,
    test: &Dataset,
    deskew: bool,
    threads: usize,
) -> f32 {
    let (_, c) = evaluate(
        model,
        &model_inputs(&test.images, deskew),
        &test.labels,
        threads,
    );
    c as f32 / test.len().max(1) as f32
}

/// The images of a run as the model reads them: the validation split's inputs and labels,
/// and the images batches start from.
struct RunImages<'a> {
    /// The validation split's inputs (deskewed if the run deskews).
    val_images: Vec<[u8; INPUT]>,
    /// Their labels.
    val_labels: Vec<u8>,
    /// The extra images as the model reads them (deskewed if the run deskews): what the
    /// reported parts are scored on.
    extra_inputs: Cow<'a, [[u8; INPUT]]>,
    /// MNIST's images as batches start from: deskewed here, once, when the run deskews
    /// and never distorts them.
    mnist_fixed: Cow<'a, [[u8; INPUT]]>,
    /// Whether training inputs are deskewed here once ([`RunImages::mnist_fixed`]).
    fixed: bool,
}

impl<'a> RunImages<'a> {
    /// The images of a run on `set` that holds out `val_idx`.
    fn new(hyper: &Hyper, set: &TrainSet<'a>, val_idx: &[u32]) -> Self {
        let data = set.mnist;
        let val_raw: Vec<[u8; INPUT]> = val_idx.iter().map(|&i| data.images[i as usize]).collect();
        // Deskewed copies, or the held-out images themselves: never a second copy of them
        // (7.8 MB for 10000 images, which peak memory showed).
        let val_images = match model_inputs(&val_raw, set.deskew) {
            Cow::Owned(deskewed) => deskewed,
            Cow::Borrowed(_) => val_raw,
        };
        let extra_inputs = model_inputs(&set.extra.images, set.deskew);
        // Distortions start from the raw digits and the result is deskewed each time; without
        // them the training inputs never change, so they are deskewed once, here.
        let fixed = set.deskew && !hyper.augment;
        let mnist_fixed = model_inputs(&data.images, fixed);
        let val_labels: Vec<u8> = val_idx.iter().map(|&i| data.labels[i as usize]).collect();
        RunImages {
            val_images,
            val_labels,
            extra_inputs,
            mnist_fixed,
            fixed,
        }
    }

    /// The extra images batches start from: deskewed once when MNIST's are.
    fn extra_images<'s>(&'s self, set: &TrainSet<'a>) -> &'s [[u8; INPUT]] {
        if self.fixed {
            &self.extra_inputs
        } else {
            &set.extra.images
        }
    }
}

/// The indices an epoch trains on: MNIST's (`train_idx`, the validation split left out),
/// then every part's images, each part `repeat` times (at least once). Extra image `i` is
/// index `mnist.len() + i`.
fn epoch_indices(mut train_idx: Vec<u32>, set: &TrainSet<'_>) -> Vec<u32> {
    let base = set.mnist.len();
    for part in set.parts {
        let range = (base + part.start) as u32..(base + part.start + part.len) as u32;
        for _ in 0..part.repeat.max(1) {
            train_idx.extend(range.clone());
        }
    }
    train_idx
}

/// The log line a run starts with: the network, the images, the epochs, threads and kernels.
fn start_line<const H: usize>(
    hyper: &Hyper,
    set: &TrainSet<'_>,
    val_idx: &[u32],
    train_idx: &[u32],
    batches: usize,
    team_threads: usize,
) -> String {
    let extra_seen = train_idx.len() - (set.mnist.len() - val_idx.len());
    format!(
        "training 784-{H}-10 on {} images ({} held out for validation{}), {} epochs of {batches} batches, {team_threads} thread{}, {} kernels",
        train_idx.len(),
        val_idx.len(),
        if extra_seen > 0 {
            format!("; {extra_seen} of them from {} extra parts", set.parts.len())
        } else {
            String::new()
        },
        hyper.epochs,
        if team_threads == 1 { "" } else { "s" },
        kernels::level().name()
    )
}

/// Undistorted images are the same input every epoch: compacted to their ink once (none
/// when the run distorts them). The held-out images are never drawn into a batch: they
/// stand in as blank ones.
fn inked_store(
    hyper: &Hyper,
    images: &RunImages<'_>,
    extra_images: &[[u8; INPUT]],
    val_idx: &[u32],
    threads: usize,
) -> Option<InkedImages> {
    (!hyper.augment).then(|| {
        const BLANK: [u8; INPUT] = [0; INPUT];
        let mut inked: Vec<&[u8; INPUT]> = images.mnist_fixed.iter().chain(extra_images).collect();
        for &i in val_idx {
            inked[i as usize] = &BLANK;
        }
        InkedImages::new(&inked, threads)
    })
}

/// The weights kept so far (lowest validation loss), and how many epochs since they were.
struct Best<const H: usize> {
    /// The kept weights.
    model: Box<Mlp<H>>,
    /// Their validation loss (infinite before the first epoch).
    val_loss: f64,
    /// Their epoch's report (none before the first epoch ends).
    report: Option<EpochReport>,
    /// Epochs since the last improvement.
    waited: u32,
}

impl<const H: usize> Best<H> {
    /// Nothing kept yet: a copy of the initial weights, which no epoch has beaten.
    fn new(initial: &Mlp<H>) -> Self {
        let mut model: Box<Mlp<H>> = boxed_zeroed();
        model.copy_from(initial);
        Best {
            model,
            val_loss: f64::INFINITY,
            report: None,
            waited: 0,
        }
    }

    /// Keeps `model` if its `val_loss` is a new minimum, or always without a validation
    /// split; returns whether it was kept (else counts one more epoch waited).
    fn offer(&mut self, model: &Mlp<H>, val_loss: f64, no_validation: bool) -> bool {
        let improved = no_validation || val_loss < self.val_loss;
        if improved {
            self.val_loss = val_loss;
            self.model.copy_from(model);
            self.waited = 0;
        } else {
            self.waited += 1;
        }
        improved
    }

    /// The run's final metrics: the kept epoch's, after `epochs_run` epochs (NaN and
    /// epoch 0 when no epoch ended).
    fn metrics(&self, epochs_run: u32, test_accuracy: Option<f32>) -> Metrics {
        match &self.report {
            Some(r) => Metrics {
                epochs_run,
                best_epoch: r.epoch,
                train_loss: r.train_loss,
                val_loss: r.val_loss,
                val_accuracy: r.val_accuracy,
                test_accuracy,
            },
            None => Metrics {
                epochs_run,
                best_epoch: 0,
                train_loss: f32::NAN,
                val_loss: f32::NAN,
                val_accuracy: f32::NAN,
                test_accuracy,
            },
        }
    }
}

/// A run's epoch loop: what it reads (fixed for the run) and what it changes from epoch to
/// epoch.
struct EpochLoop<'r, const H: usize> {
    hyper: &'r Hyper,
    set: &'r TrainSet<'r>,
    images: &'r RunImages<'r>,
    /// The parts whose accuracy every epoch reports.
    reported: Vec<&'r Part>,
    /// Batches per epoch.
    batches: usize,
    /// The member's seed (dropout).
    seed: u64,
    /// Threads for evaluation.
    threads: usize,
    /// Draws the epochs' orders.
    rng: Rng,
    /// The indices trained on, in this epoch's order.
    train_idx: Vec<u32>,
    /// The weights at the end of the last epoch.
    current: Box<Mlp<H>>,
    /// Their running average over epochs, when averaging.
    averaged: Option<Box<Mlp<H>>>,
    best: Best<H>,
    history: Vec<EpochReport>,
    /// Epochs ended.
    epoch: u32,
    /// Batches run, over all epochs (dropout's step).
    step: u64,
    /// The callback asked to stop.
    cancelled: bool,
    /// Early stopping ended the run.
    stopped_early: bool,
    /// When the run started, for the time left.
    started: Instant,
}

impl<const H: usize> EpochLoop<'_, H> {
    /// Runs epochs on `team` until the last, a stop request or early stopping; every
    /// finished epoch is reported, in order, before the next starts.
    fn epochs(
        &mut self,
        team: &mut Team<'_, '_, H>,
        on_event: &mut dyn FnMut(Event<'_>) -> ControlFlow<()>,
    ) {
        let hyper = self.hyper;
        while self.epoch < hyper.epochs && !self.cancelled {
            let t0 = Instant::now();
            let lr = hyper.initial_lr / (1.0 + hyper.decay * self.epoch as f32);
            self.rng.shuffle(&mut self.train_idx);
            let Some((loss_sum, correct)) = self.batches(team, lr, t0, on_event) else {
                break;
            };
            self.epoch += 1;
            team.snapshot(&mut self.current);
            let report = self.end_epoch(lr, loss_sum, correct, t0);
            self.cancelled |= on_event(Event::Epoch(&report)).is_break();
            self.history.push(report);
            if self.stops_early() {
                self.stopped_early = true;
                let msg = format!(
                    "early stop after epoch {}: validation loss has not improved for {} epochs; keeping epoch {}",
                    self.epoch,
                    self.best.waited,
                    self.best.report.as_ref().map_or(0, |r| r.epoch)
                );
                self.cancelled |= on_event(Event::Log(&msg)).is_break();
                break;
            }
        }
    }

    /// One epoch's batches in `train_idx`'s order at learning rate `lr`, with progress
    /// events at most every 250 ms: the summed loss and correct count, or `None` if the
    /// callback asked to stop (the epoch is then not finished).
    fn batches(
        &mut self,
        team: &mut Team<'_, '_, H>,
        lr: f32,
        t0: Instant,
        on_event: &mut dyn FnMut(Event<'_>) -> ControlFlow<()>,
    ) -> Option<(f64, usize)> {
        let hyper = self.hyper;
        let batch = hyper.batch_size as usize;
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        let mut last_report = Instant::now();
        for (bi, idx) in self.train_idx.chunks(batch).enumerate() {
            let dropout = Dropout {
                rate: hyper.dropout_rate,
                seed: self.seed,
                step: self.step,
            };
            let (l, c) = team.step(idx, dropout, lr, hyper.momentum, hyper.reg_lambda);
            self.step += 1;
            loss_sum += l;
            correct += c;
            if last_report.elapsed().as_millis() >= 250 {
                last_report = Instant::now();
                let ev = Event::Batch {
                    epoch: self.epoch + 1,
                    done: bi + 1,
                    total: self.batches,
                    seconds: t0.elapsed().as_secs_f32(),
                };
                if on_event(ev).is_break() {
                    self.cancelled = true;
                    return None;
                }
            }
        }
        Some((loss_sum, correct))
    }

    /// After the epoch's snapshot: averages the weights (when averaging), scores them on
    /// the validation split and the reported parts, keeps them if they are the best so
    /// far, and returns the epoch's report.
    fn end_epoch(&mut self, lr: f32, loss_sum: f64, correct: usize, t0: Instant) -> EpochReport {
        let (hyper, set, threads, epoch) = (self.hyper, self.set, self.threads, self.epoch);
        let batch = hyper.batch_size as usize;
        let seen = self.train_idx.len() as f64;
        let reg = hyper.reg_lambda as f64 / (2.0 * batch as f64) * sum_squares(&self.current);
        let model: &Mlp<H> = match self.averaged.as_mut() {
            Some(avg) => {
                let share = 1.0 / epoch.min(set.average) as f32;
                avg.blend_toward(&self.current, share);
                avg
            }
            None => &self.current,
        };
        let val = &self.images;
        let (val_loss, val_accuracy) = if val.val_images.is_empty() {
            (f64::NAN, f64::NAN)
        } else {
            let (l, c) = evaluate(model, &val.val_images, &val.val_labels, threads);
            (
                l / val.val_images.len() as f64,
                c as f64 / val.val_images.len() as f64,
            )
        };
        let parts = self
            .reported
            .iter()
            .map(|p| {
                let range = p.start..p.start + p.len;
                let images = &val.extra_inputs[range.clone()];
                let (_, c) = evaluate(model, images, &set.extra.labels[range], threads);
                (p.name.clone(), c as f32 / p.len.max(1) as f32)
            })
            .collect();
        let improved = self.best.offer(model, val_loss, val.val_images.is_empty());
        let seconds = t0.elapsed().as_secs_f32();
        let per_epoch = self.started.elapsed().as_secs_f32() / epoch as f32;
        let report = EpochReport {
            epoch,
            epochs: hyper.epochs,
            lr,
            train_loss: (loss_sum / seen + reg) as f32,
            train_accuracy: (correct as f64 / seen) as f32,
            val_loss: val_loss as f32,
            val_accuracy: val_accuracy as f32,
            seconds,
            eta_seconds: per_epoch * (hyper.epochs - epoch) as f32,
            improved,
            parts,
        };
        if improved {
            self.best.report = Some(report.clone());
        }
        report
    }

    /// Whether validation has not improved for `patience` epochs (0: never stop early)
    /// and epochs are left.
    fn stops_early(&self) -> bool {
        let hyper = self.hyper;
        hyper.patience > 0 && self.best.waited >= hyper.patience && self.epoch < hyper.epochs
    }
}
