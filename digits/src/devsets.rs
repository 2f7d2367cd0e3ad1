//! The labelled sets a model is measured on, by name, each made the way a user's input would
//! reach the model (a drawing or a scan through [`pismo_core::preprocess`]), and whose writing
//! each one is ([`writers`]):
//!
//! | name | what | whose writing | trained on? |
//! |---|---|---|---|
//! | `mnist-val` | the MNIST training images the model held out for validation (its own seeded split; `pismo eval` makes it from the model's file) | MNIST's training writers, their other digits | never by that model |
//! | `mnist-test` | the 10000 MNIST test images, as they are | other writers: MNIST's test writers are disjoint from its training writers (LeCun et al.) | never |
//! | `unipen-dev` | the 3556 digits of UNIPEN's 99 dev writers ([`unipen`]), pen trajectories drawn on the 280x280 canvas with the page's 18 px pen, each 150–230 px tall | other writers: the file's split is by writer | never |
//! | `semeion-dev` | the last fifth of every digit run of semeion (309 digits, 28–32 of each), enlarged to 160x160 ([`corpora`](crate::corpora)) | probably other writers, not certainly ([`corpora`](crate::corpora) says why) | never |
//! | `optdigits-cv` | 946 scanned paper digits, 32x32 bitmaps ([`corpora`](crate::corpora)) | **the same 30 writers as `optdigits-train`**: writer-dependent | never (its writers' other digits are) |
//! | `canvas-thick` | the first [`CANVAS_DIGITS`] MNIST test digits redrawn on a 280x280 canvas with an 18 px round pen (the web page's) | MNIST test digits through the same skeleton-and-pen code as `--redrawn` training digits: a check of the drawing pipeline | never |
//! | `canvas-thin` | the same with a 6 px pen | the same | never |
//! | `optdigits-train`, `semeion-train` | the trainable corpora, to see what training on them did | — | when the recipe names them |
//!
//! The canvas sets vary the digit's height (120–250 px), its place and its slant (±0.3) per
//! digit, from a fixed seed, so every run measures the same drawings; `unipen-dev` likewise
//! fixes each digit's height from its index.

use std::path::Path;

use crate::corpora::{Corpus, CorpusError};
use crate::mnist::{self, Dataset, MnistError, Split};
use crate::pen::Canvas;
use crate::redraw::{Placement, Skeleton};
use crate::synth;
use crate::unipen;
use pismo_core::rng::{hash3, Rng};

/// MNIST test digits in each canvas set.
pub const CANVAS_DIGITS: usize = 2000;
/// Side of the canvas sets' canvas (the web page's and the window's).
pub const CANVAS_SIDE: usize = 280;
/// Pen of `canvas-thick`: the web page's brush at 280 px.
pub const THICK_PEN: f32 = 18.0;
/// Pen of `canvas-thin`.
pub const THIN_PEN: f32 = 6.0;

/// Heights of `unipen-dev`'s digits on the canvas, in pixels (one per digit, from its index).
pub const UNIPEN_HEIGHTS: (f32, f32) = (150.0, 230.0);

/// The set that is each model's own validation split: [`load`] cannot make it, the caller
/// that knows the model does.
pub const MNIST_VAL: &str = "mnist-val";

/// Every set's name, dev sets first, then the trainable corpora and [`MNIST_VAL`].
pub const NAMES: [&str; 9] = [
    "mnist-test",
    "unipen-dev",
    "semeion-dev",
    "optdigits-cv",
    "canvas-thick",
    "canvas-thin",
    "optdigits-train",
    "semeion-train",
    MNIST_VAL,
];

/// The sets never trained on (`pismo eval --set dev`): other writers first, then
/// `optdigits-cv` (the training writers' other digits), then the pipeline checks.
pub const DEV: [&str; 6] = [
    "mnist-test",
    "unipen-dev",
    "semeion-dev",
    "optdigits-cv",
    "canvas-thick",
    "canvas-thin",
];

/// Whose writing the set `name` is, in a few words (the module doc's table; empty for an
/// unknown name).
pub fn writers(name: &str) -> &'static str {
    match name {
        "mnist-test" => "other writers (MNIST keeps test and training writers apart)",
        "unipen-dev" => "other writers (UNIPEN's 99 dev writers)",
        "semeion-dev" => "probably other writers (held out by position in every digit run)",
        "optdigits-cv" => "writer-dependent: the 30 writers of optdigits-train",
        "canvas-thick" | "canvas-thin" => "pipeline check: MNIST test digits redrawn",
        "optdigits-train" | "semeion-train" => "trainable: the training writers",
        MNIST_VAL => "MNIST's training writers, the digits this model held out",
        _ => "",
    }
}

/// Why a set could not be made.
#[derive(Debug)]
pub enum DevSetError {
    /// Not a known name.
    Unknown(String),
    /// MNIST is missing.
    Mnist(MnistError),
    /// A corpus (or the UNIPEN file) is missing.
    Corpus(CorpusError),
    /// [`MNIST_VAL`], which depends on the model.
    PerModel,
}

impl std::fmt::Display for DevSetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DevSetError::Unknown(name) => write!(
                f,
                "no set `{name}` (have: {}, or dev for all that are never trained on)",
                NAMES.join(", ")
            ),
            DevSetError::Mnist(e) => e.fmt(f),
            DevSetError::Corpus(e) => e.fmt(f),
            DevSetError::PerModel => write!(
                f,
                "{MNIST_VAL} is each model's own validation split: `pismo eval --set {MNIST_VAL}` makes it"
            ),
        }
    }
}

impl std::error::Error for DevSetError {}

/// The set `name` as model inputs (MNIST bytes) with labels, and a description of it.
pub fn load(
    name: &str,
    mnist_dir: &Path,
    corpora_dir: &Path,
) -> Result<(Dataset, String), DevSetError> {
    let test = || mnist::load_split(mnist_dir, Split::Test).map_err(DevSetError::Mnist);
    match name {
        "mnist-test" => Ok((test()?, "MNIST test images, as they are".into())),
        "unipen-dev" => {
            let digits = unipen::load(corpora_dir).map_err(DevSetError::Corpus)?;
            let dev: Vec<&unipen::PenDigit> = digits
                .iter()
                .filter(|d| d.split == unipen::Split::Dev)
                .collect();
            let (lo, hi) = UNIPEN_HEIGHTS;
            Ok((
                unipen_dev(&dev),
                format!(
                    "UNIPEN dev writers' pen trajectories in {}, drawn {lo}–{hi} px tall on a {CANVAS_SIDE}x{CANVAS_SIDE} canvas with a {THICK_PEN} px pen",
                    corpora_dir.display()
                ),
            ))
        }
        "canvas-thick" | "canvas-thin" => {
            let pen = if name == "canvas-thick" {
                THICK_PEN
            } else {
                THIN_PEN
            };
            let t = test()?;
            Ok((
                canvas(&t, CANVAS_DIGITS, pen),
                format!(
                    "the first {CANVAS_DIGITS} MNIST test digits redrawn on a {CANVAS_SIDE}x{CANVAS_SIDE} canvas, {pen} px pen"
                ),
            ))
        }
        MNIST_VAL => Err(DevSetError::PerModel),
        _ => {
            let corpus =
                Corpus::from_name(name).ok_or_else(|| DevSetError::Unknown(name.to_owned()))?;
            let data = corpus
                .dataset(corpora_dir, false)
                .map_err(DevSetError::Corpus)?;
            let what = if corpus.trainable() {
                "may be trained on"
            } else {
                "never trained on"
            };
            Ok((
                data,
                format!("{name} in {} ({what})", corpora_dir.display()),
            ))
        }
    }
}

/// `digits` drawn on the canvas as `unipen-dev` draws them: digit `i` with the page's pen,
/// [`UNIPEN_HEIGHTS`] apart by a hash of `i`.
pub fn unipen_dev(digits: &[&unipen::PenDigit]) -> Dataset {
    let (lo, hi) = UNIPEN_HEIGHTS;
    synth::made_on_all_cores(digits.len(), |i| {
        let height = lo + (hi - lo) * Rng::new(hash3(0x0419_13E4, i as u64, 0)).next_f32();
        let canvas = unipen::draw(&digits[i].strokes, height, THICK_PEN);
        (digits[i].label, synth::to_bytes(&canvas))
    })
}

/// The first `n` digits of `test` redrawn on the canvas with a `pen` px round pen, each at
/// its own size, place and slant.
pub fn canvas(test: &Dataset, n: usize, pen: f32) -> Dataset {
    synth::made_on_all_cores(n.min(test.len()), |i| {
        let canvas = drawing(&test.images[i], i as u64, pen);
        (test.labels[i], synth::to_bytes(&canvas))
    })
}

/// MNIST digit number `index` drawn on the 280x280 canvas with a `pen` px pen.
pub fn drawing(image: &[u8; pismo_core::mlp::INPUT], index: u64, pen: f32) -> Canvas {
    let mut rng = Rng::new(hash3(0x00CA_27A5, index, 0));
    let side = CANVAS_SIDE as f32;
    let height = 120.0 + 130.0 * rng.next_f32();
    let room = ((side - height - pen) * 0.5).max(0.0);
    let place = Placement {
        scale: height / 20.0,
        slant: 0.6 * rng.next_f32() - 0.3,
        offset: (
            room * (2.0 * rng.next_f32() - 1.0),
            room * (2.0 * rng.next_f32() - 1.0),
        ),
    };
    let mut canvas = Canvas::new(CANVAS_SIDE, CANVAS_SIDE);
    Skeleton::of(image).draw(&mut canvas, pen, place.map(side));
    canvas
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn devsets_semeion_parts_split_the_file_and_unipen_dev_is_its_dev_writers() {
        let dir = workspace().join("datasets");
        let (dev, _) = load("semeion-dev", Path::new("."), &dir).unwrap();
        let train = Corpus::SemeionTrain.dataset(&dir, false).unwrap();
        assert_eq!(dev.len() + train.len(), 1593);
        let (pen, what) = load("unipen-dev", Path::new("."), &dir).unwrap();
        assert_eq!(pen.len(), 3556, "{what}");
        // Drawn, not blank, and the same drawings every time.
        assert!(pen.images.iter().all(|i| i.iter().any(|&v| v > 200)));
        assert_eq!(load("unipen-dev", Path::new("."), &dir).unwrap().0, pen);
        assert!(DEV.iter().all(|n| !writers(n).is_empty()));
    }
}
