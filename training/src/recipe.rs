//! What a model learns from besides MNIST: the training-data recipe of a run.
//!
//! MNIST's scanned ballpoint digits by American writers are not what people draw on a canvas.
//! A recipe adds, after MNIST's training images (the validation split stays pure MNIST):
//! - `redrawn`: MNIST training digits thinned to strokes and redrawn with a round canvas pen
//!   of random width, size, place and slant ([`pismo_digits::redraw`]); never a validation digit;
//! - `synthetic`: digits written in common and European styles ([`pismo_digits::synth`]);
//! - `corpora`: the shipped handwriting of other writers ([`pismo_digits::corpora`], trainable
//!   parts only), each repeated `oversample` times per epoch;
//! - `extra`: folders of corrected drawings ([`pismo_digits::drawn`], `pismo train --extra`), each
//!   repeated `extra_repeat` times per epoch (default [`DEFAULT_EXTRA_REPEAT`]: a few dozen
//!   corrections among 100000 images would be lost otherwise), its accuracy reported per
//!   epoch;
//! - `elastic`: the strength of the elastic warp added to the affine distortions when
//!   `augment` is on ([`pismo_core::augment`]), and `shift`, how far they move a digit (±2 px
//!   unless set; 0 keeps digits centred, as preprocessing does);
//! - `deskew`: the model deskews every input ([`pismo_core::deskew`]), training digits after
//!   their distortions; the model file records it, so every prediction does the same;
//! - `average`: the model kept is the running average of the weights over about this many
//!   epochs ([`crate::trainer`]); 0 keeps one epoch's weights.
//!
//! Everything is a function of the recipe and the run's seed. A recipe is recorded with the
//! run (its log and `run.json`); it is not part of the model file's hyperparameters.

use serde::{Deserialize, Serialize};

use crate::trainer::Part;
use pismo_core::augment::Distortion;
use pismo_core::mlp::INPUT;
use pismo_core::rng::{hash3, Rng};
use pismo_digits::corpora::{self, CorpusError};
use pismo_digits::drawn::{DrawnError, DrawnStore};
use pismo_digits::mnist::Dataset;
use pismo_digits::pen::Canvas;
use pismo_digits::redraw::{Placement, Skeleton};
use pismo_digits::synth;

/// The training-data recipe (all off by default: MNIST only, as the original). A field
/// missing from a recorded recipe takes its default (older runs stay readable).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Recipe {
    /// Elastic warp strength in pixels (used when `augment` is on; 0: affine only).
    pub elastic: f32,
    /// Largest shift of a distortion in pixels (used when `augment` is on).
    pub shift: f32,
    /// Whether the model deskews its inputs.
    pub deskew: bool,
    /// Epochs over which the kept weights are averaged (0: no averaging).
    pub average: u32,
    /// MNIST training digits also given redrawn with a canvas pen.
    pub redrawn: u32,
    /// Synthetic pen-written digits in common and European styles.
    pub synthetic: u32,
    /// Shipped corpora to train on, by name ([`corpora::trainable`]).
    pub corpora: Vec<String>,
    /// Times each corpus digit is seen per epoch (at least 1).
    pub oversample: u32,
    /// Folders of corrected drawings to train on.
    pub extra: Vec<std::path::PathBuf>,
    /// Times each corrected drawing is seen per epoch (0: [`DEFAULT_EXTRA_REPEAT`]).
    pub extra_repeat: u32,
    /// Networks trained side by side and joined into one model of their total width
    /// ([`pismo_engine::model::AnyMlp::committee`]; 0 or 1: one network).
    pub members: u32,
    /// Which committee member a run of one network is (0: the first, or a network of its
    /// own); see [`crate::trainer::TrainSet::member`].
    pub member: u32,
}

impl Default for Recipe {
    fn default() -> Self {
        Recipe {
            elastic: 0.0,
            shift: Distortion::AFFINE.shift,
            deskew: false,
            average: 0,
            redrawn: 0,
            synthetic: 0,
            corpora: Vec::new(),
            oversample: 0,
            extra: Vec::new(),
            extra_repeat: 0,
            members: 0,
            member: 0,
        }
    }
}

/// The most networks a committee may have.
pub const MAX_MEMBERS: u32 = 16;

/// Times each corrected drawing is seen per epoch unless the recipe says otherwise.
pub const DEFAULT_EXTRA_REPEAT: u32 = 20;

/// Why a recipe cannot be made.
#[derive(Debug)]
pub enum RecipeError {
    /// A corpus name that is not a trainable corpus.
    UnknownCorpus(String),
    /// A corpus could not be read.
    Corpus(CorpusError),
    /// A field out of range.
    Range(&'static str),
    /// A folder of corrected drawings could not be read.
    Drawn(DrawnError),
    /// A folder of corrected drawings does not exist.
    NoFolder(std::path::PathBuf),
}

impl std::fmt::Display for RecipeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecipeError::UnknownCorpus(name) => write!(
                f,
                "`{name}` is not a corpus that may be trained on (have: {})",
                corpora::trainable().join(", ")
            ),
            RecipeError::Corpus(e) => e.fmt(f),
            RecipeError::Range(what) => f.write_str(what),
            RecipeError::Drawn(e) => e.fmt(f),
            RecipeError::NoFolder(dir) => write!(
                f,
                "{} is not a folder of corrected drawings (make one with the page's \"Wrong?\", the window's W key or `pismo data drawn import`)",
                dir.display()
            ),
        }
    }
}

impl std::error::Error for RecipeError {}

impl Recipe {
    /// Checks the ranges and names.
    pub fn validate(&self) -> Result<(), RecipeError> {
        if !(0.0..=8.0).contains(&self.elastic) {
            return Err(RecipeError::Range(
                "invalid elastic: expected 0 <= elastic <= 8",
            ));
        }
        if !(0.0..=8.0).contains(&self.shift) {
            return Err(RecipeError::Range(
                "invalid shift: expected 0 <= shift <= 8",
            ));
        }
        if self.average > 1000 {
            return Err(RecipeError::Range(
                "invalid average: expected 0 <= average <= 1000 epochs",
            ));
        }
        if self.redrawn > 200_000 || self.synthetic > 200_000 {
            return Err(RecipeError::Range(
                "invalid redrawn/synthetic: expected at most 200000 each",
            ));
        }
        if self.oversample > 100 || self.extra_repeat > 1000 {
            return Err(RecipeError::Range(
                "invalid oversample/extra_repeat: expected at most 100 / 1000",
            ));
        }
        if self.members > MAX_MEMBERS || self.member >= 1000 {
            return Err(RecipeError::Range(
                "invalid members/member: expected at most 16 members, member below 1000",
            ));
        }
        if self.members > 1 && self.member > 0 {
            return Err(RecipeError::Range(
                "member picks one network of a committee and members trains them all: give one",
            ));
        }
        if let Some(dir) = self.extra.iter().find(|d| !d.is_dir()) {
            return Err(RecipeError::NoFolder(dir.clone()));
        }
        if let Some(name) = self
            .corpora
            .iter()
            .find(|n| !corpora::trainable().contains(&n.as_str()))
        {
            return Err(RecipeError::UnknownCorpus(name.clone()));
        }
        Ok(())
    }

    /// How far training digits are distorted when augmenting.
    pub fn distortion(&self) -> Distortion {
        Distortion {
            elastic: self.elastic,
            shift: self.shift,
        }
    }

    /// Whether this is the default recipe: MNIST alone, distorted (if at all) as the original
    /// `--augment`, inputs as they are.
    pub fn is_default(&self) -> bool {
        *self == Recipe::default()
    }

    /// Networks in the model (1 unless a committee).
    pub fn committee_size(&self) -> u32 {
        self.members.max(1)
    }

    /// The hidden units of each network of a model of `hidden` units: `hidden` divided among
    /// the committee's members, or `None` if the share is not a supported hidden size.
    pub fn member_hidden(&self, hidden: u32) -> Option<u32> {
        let n = self.committee_size();
        let each = hidden / n;
        (each * n == hidden && pismo_core::hyper::HIDDEN_SIZES.contains(&each)).then_some(each)
    }

    /// Makes the extra images and their parts. `train_idx` are MNIST's training (not
    /// validation) indices, from which redrawn digits are picked.
    pub fn build(
        &self,
        mnist: &Dataset,
        train_idx: &[u32],
        seed: u64,
        corpora_dir: &std::path::Path,
    ) -> Result<(Dataset, Vec<Part>), RecipeError> {
        self.validate()?;
        let mut extra = Dataset {
            images: Vec::new(),
            labels: Vec::new(),
        };
        let mut parts = Vec::new();
        let mut add = |extra: &mut Dataset, name: &str, data: Dataset, repeat: u32, report| {
            parts.push(Part {
                name: name.to_owned(),
                start: extra.len(),
                len: data.len(),
                repeat,
                report,
            });
            extra.images.extend(data.images);
            extra.labels.extend(data.labels);
        };
        for name in &self.corpora {
            let data = corpora::training_set(name, corpora_dir)
                .ok_or_else(|| RecipeError::UnknownCorpus(name.clone()))?
                .map_err(RecipeError::Corpus)?;
            add(&mut extra, name, data, self.oversample.max(1), true);
        }
        for dir in &self.extra {
            let data = DrawnStore::open(dir).load().map_err(RecipeError::Drawn)?;
            let repeat = if self.extra_repeat == 0 {
                DEFAULT_EXTRA_REPEAT
            } else {
                self.extra_repeat
            };
            let name = dir
                .file_name()
                .map_or_else(|| "drawn".to_owned(), |n| n.to_string_lossy().into_owned());
            add(&mut extra, &name, data, repeat, true);
        }
        if self.redrawn > 0 && !train_idx.is_empty() {
            add(
                &mut extra,
                "redrawn",
                redrawn(mnist, train_idx, self.redrawn as usize, seed),
                1,
                false,
            );
        }
        if self.synthetic > 0 {
            add(
                &mut extra,
                "synthetic",
                synth::dataset(seed, self.synthetic as usize),
                1,
                false,
            );
        }
        Ok((extra, parts))
    }
}

/// The corpora folder a recipe reads: see [`corpora::default_dir`].
pub fn corpora_dir() -> std::path::PathBuf {
    corpora::default_dir()
}

/// Canvas side for redrawn training digits.
const REDRAW_CANVAS: usize = 112;

/// `n` MNIST digits from `train_idx` (cycling, each pass in a seeded order), redrawn with a
/// random pen, size, place and slant, made on all cores.
pub fn redrawn(mnist: &Dataset, train_idx: &[u32], n: usize, seed: u64) -> Dataset {
    let mut order = train_idx.to_vec();
    Rng::new(seed ^ 0x012E_D2A3).shuffle(&mut order);
    synth::made_on_all_cores(n, |k| {
        let i = order[k % order.len()] as usize;
        let mut rng = Rng::new(hash3(seed ^ 0x012E_D2A3, k as u64, 1));
        (mnist.labels[i], redraw_random(&mnist.images[i], &mut rng))
    })
}

/// One MNIST digit redrawn with a random canvas pen: digit height 30–90 % of the canvas,
/// pen 3–30 % of the digit's height (log-uniform), slant ±0.3, anywhere on the canvas.
pub fn redraw_random(image: &[u8; INPUT], rng: &mut Rng) -> [u8; INPUT] {
    let side = REDRAW_CANVAS as f32;
    let height = side * (0.3 + 0.6 * rng.next_f32());
    // MNIST's box is 20 px high for most digits.
    let scale = height / 20.0;
    let pen = (height * 0.03 * libm::powf(10.0, rng.next_f32())).max(1.0);
    let room = ((side - height - pen) * 0.5).max(0.0);
    let place = Placement {
        scale,
        slant: (0.15 * rng.normal()).clamp(-0.3, 0.3),
        offset: (
            room * (2.0 * rng.next_f32() - 1.0),
            room * (2.0 * rng.next_f32() - 1.0),
        ),
    };
    let mut canvas = Canvas::new(REDRAW_CANVAS, REDRAW_CANVAS);
    Skeleton::of(image).draw(&mut canvas, pen, place.map(side));
    synth::to_bytes(&canvas)
}
