//! The labelled sets a model is measured on, by name, each made the way a user's input would
//! reach the model (a drawing or a scan through [`crate::preprocess`]):
//!
//! | name | what | trained on? |
//! |---|---|---|
//! | `mnist-test` | the 10000 MNIST test images, as they are | never |
//! | `optdigits-cv` | 946 scanned paper digits, 32x32 bitmaps ([`corpora`]) | never |
//! | `semeion-dev` | the last 319 semeion digits, enlarged to 160x160 ([`corpora`]) | never |
//! | `canvas-thick` | the first [`CANVAS_DIGITS`] MNIST test digits redrawn on a 280x280 canvas with an 18 px round pen (the web page's) | never |
//! | `canvas-thin` | the same with a 6 px pen | never |
//! | `optdigits-train`, `semeion-train` | the trainable corpora, to see what training on them did | when the recipe names them |
//!
//! The canvas sets vary the digit's height (120–250 px), its place and its slant (±0.3) per
//! digit, from a fixed seed, so every run measures the same drawings.

use std::path::Path;

use crate::host::corpora::{Corpus, CorpusError};
use crate::host::mnist::{self, Dataset, MnistError, Split};
use crate::host::pen::Canvas;
use crate::host::redraw::{Placement, Skeleton};
use crate::host::synth;
use crate::rng::{hash3, Rng};

/// MNIST test digits in each canvas set.
pub const CANVAS_DIGITS: usize = 2000;
/// Side of the canvas sets' canvas (the web page's and the window's).
pub const CANVAS_SIDE: usize = 280;
/// Pen of `canvas-thick`: the web page's brush at 280 px.
pub const THICK_PEN: f32 = 18.0;
/// Pen of `canvas-thin`.
pub const THIN_PEN: f32 = 6.0;

/// Every set's name, dev sets first.
pub const NAMES: [&str; 7] = [
    "mnist-test",
    "optdigits-cv",
    "semeion-dev",
    "canvas-thick",
    "canvas-thin",
    "optdigits-train",
    "semeion-train",
];

/// The sets never trained on (`pismo eval --set dev`).
pub const DEV: [&str; 5] = [
    "mnist-test",
    "optdigits-cv",
    "semeion-dev",
    "canvas-thick",
    "canvas-thin",
];

/// Why a set could not be made.
#[derive(Debug)]
pub enum DevSetError {
    /// Not a known name.
    Unknown(String),
    /// MNIST is missing.
    Mnist(MnistError),
    /// A corpus is missing.
    Corpus(CorpusError),
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

/// The first `n` digits of `test` redrawn on the canvas with a `pen` px round pen, each at
/// its own size, place and slant.
pub fn canvas(test: &Dataset, n: usize, pen: f32) -> Dataset {
    synth::made_on_all_cores(n.min(test.len()), |i| {
        let canvas = drawing(&test.images[i], i as u64, pen);
        (test.labels[i], synth::to_bytes(&canvas))
    })
}

/// MNIST digit number `index` drawn on the 280x280 canvas with a `pen` px pen.
pub fn drawing(image: &[u8; crate::mlp::INPUT], index: u64, pen: f32) -> Canvas {
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
