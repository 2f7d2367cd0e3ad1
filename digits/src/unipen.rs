//! UNIPEN isolated digits: real pen trajectories with a writer for each digit, shipped in
//! `datasets/unipen/` (licence and source there).
//!
//! Each digit is a list of pen-down strokes in tablet points (x right, y down, the digit's
//! left edge at x = 0 and its top at y = 0; the tablets' scales differ). The file fixes a
//! writer-disjoint split: [`Split::Dev`] holds 99 writers who are never trained on, and
//! [`Split::Train`] 407 others.
//!
//! [`draw`] puts a digit on the 280x280 canvas the way a person draws it on the web page or
//! in the window: scaled to a given height (the width follows, capped so the digit stays on
//! the canvas), centred, each stroke drawn with the page's round pen ([`crate::pen`]).
//! [`training_set`] draws the [`Split::Train`] writers' digits that way for training
//! (`--corpus unipen-train`), each at its own height and with its own pen, thin to thick.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::corpora::CorpusError;
use crate::devsets::CANVAS_SIDE;
use crate::known::{self, KnownFile};
use crate::mnist::Dataset;
use crate::pen::Canvas;
use crate::synth;
use pismo_core::rng::{hash3, Rng};

/// The file inside the corpora folder (raw, or with `.gz`).
pub const FILE: &str = "unipen/digits.jsonl";
/// The file and the SHA-256 of its uncompressed bytes.
const KNOWN: KnownFile = KnownFile {
    name: FILE,
    sha256: "64a373274cb58110c1987ca3c0dbfb1d0793e889cc6e4f711002f81e157fa5a2",
};

/// Which side of the file's writer-disjoint split a writer is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// May be trained on.
    Train,
    /// Never trained on: other writers.
    Dev,
}

/// One pen-drawn digit.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct PenDigit {
    /// `contributor/session`: one writer.
    pub writer: String,
    /// The writer's side of the split.
    pub split: Split,
    /// The digit.
    pub label: u8,
    /// Pen-down strokes in writing order, tablet points.
    pub strokes: Vec<Vec<(f32, f32)>>,
}

/// Every digit of the file, in file order (each writer's digits in the order written).
pub fn load(dir: &Path) -> Result<Vec<PenDigit>, CorpusError> {
    let (_, bytes) = known::read_checked(dir, KNOWN)?;
    let format = |line: usize, why: String| CorpusError::Format {
        path: dir.join(FILE),
        why: format!("line {line}: {why}"),
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| format(0, "not text".into()))?;
    let mut digits = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
        let digit: PenDigit =
            serde_json::from_str(line).map_err(|e| format(i + 1, e.to_string()))?;
        if digit.label > 9 || digit.strokes.iter().all(Vec::is_empty) {
            return Err(format(i + 1, "a label above 9 or no points".into()));
        }
        digits.push(digit);
    }
    Ok(digits)
}

/// The digits of `split`, grouped by writer (writers by name, each writer's digits in the
/// order written).
pub fn writers(digits: &[PenDigit], split: Split) -> BTreeMap<&str, Vec<&PenDigit>> {
    let mut by_writer: BTreeMap<&str, Vec<&PenDigit>> = BTreeMap::new();
    for d in digits.iter().filter(|d| d.split == split) {
        by_writer.entry(&d.writer).or_default().push(d);
    }
    by_writer
}

/// Heights of [`training_set`]'s digits on the canvas, in pixels: a little wider than
/// `unipen-dev`'s, as people draw small and large.
pub const TRAINING_HEIGHTS: (f32, f32) = (120.0, 240.0);
/// Pens of [`training_set`]'s digits, in pixels: from the thin pen of `canvas-thin` to a
/// little more than the page's brush.
pub const TRAINING_PENS: (f32, f32) = (6.0, 22.0);

/// The [`Split::Train`] writers' digits (in file order) drawn on the canvas and preprocessed
/// as the page preprocesses a drawing: digit `i` at a height in [`TRAINING_HEIGHTS`] and with
/// a pen in [`TRAINING_PENS`], both from a hash of `i`, so the set is the same every time.
pub fn training_set(dir: &Path) -> Result<Dataset, CorpusError> {
    let digits = load(dir)?;
    let train: Vec<&PenDigit> = digits.iter().filter(|d| d.split == Split::Train).collect();
    Ok(synth::made_on_all_cores(train.len(), |i| {
        (train[i].label, training_drawing(train[i], i))
    }))
}

/// Training digit number `i` ([`training_set`]) as its model input: drawn at a height and
/// with a pen drawn from a hash of `i`, and preprocessed.
fn training_drawing(digit: &PenDigit, i: usize) -> [u8; pismo_core::mlp::INPUT] {
    let ((h_lo, h_hi), (p_lo, p_hi)) = (TRAINING_HEIGHTS, TRAINING_PENS);
    let mut rng = Rng::new(hash3(0x0419_7EA1, i as u64, 0));
    let height = h_lo + (h_hi - h_lo) * rng.next_f32();
    let pen = p_lo + (p_hi - p_lo) * rng.next_f32();
    synth::to_bytes(&draw(&digit.strokes, height, pen))
}

/// `strokes` drawn on the 280x280 canvas as a person would: the digit `height` pixels tall
/// (its width in proportion, but at most the canvas less a margin), centred, with a round
/// pen `pen` pixels wide.
pub fn draw(strokes: &[Vec<(f32, f32)>], height: f32, pen: f32) -> Canvas {
    let side = CANVAS_SIDE as f32;
    let points = || strokes.iter().flatten();
    let (mut lo, mut hi) = ((f32::MAX, f32::MAX), (f32::MIN, f32::MIN));
    for p in points() {
        lo = (lo.0.min(p.0), lo.1.min(p.1));
        hi = (hi.0.max(p.0), hi.1.max(p.1));
    }
    let (w, h) = ((hi.0 - lo.0).max(1.0), (hi.1 - lo.1).max(1.0));
    let room = side - pen - 8.0;
    let scale = (height / h).min(room / w);
    let dx = (side - w * scale) * 0.5 - lo.0 * scale;
    let dy = (side - h * scale) * 0.5 - lo.1 * scale;
    let mut canvas = Canvas::new(CANVAS_SIDE, CANVAS_SIDE);
    for stroke in strokes {
        let line: Vec<(f32, f32)> = stroke
            .iter()
            .map(|p| (p.0 * scale + dx, p.1 * scale + dy))
            .collect();
        canvas.stroke(&line, pen);
    }
    canvas
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Vec<PenDigit> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets");
        load(&dir).expect("the shipped UNIPEN file loads")
    }

    #[test]
    fn the_shipped_file_has_its_documented_split() {
        let digits = shipped();
        assert_eq!(digits.len(), 15287);
        let dev = writers(&digits, Split::Dev);
        let train = writers(&digits, Split::Train);
        assert_eq!(dev.len(), 99);
        assert_eq!(train.len(), 407);
        assert_eq!(dev.values().map(Vec::len).sum::<usize>(), 3556);
        assert!(dev.keys().all(|w| !train.contains_key(w)));
    }

    #[test]
    fn training_drawings_are_inked_varied_and_the_same_every_time() {
        // The whole set is drawn by the dev-set test (training/tests/devsets.rs); here the
        // first 200, cheaply enough for the emulated aarch64 run.
        let digits = shipped();
        let train: Vec<&PenDigit> = digits.iter().filter(|d| d.split == Split::Train).collect();
        assert_eq!(train.len(), 11731);
        let drawn: Vec<[u8; pismo_core::mlp::INPUT]> =
            (0..200).map(|i| training_drawing(train[i], i)).collect();
        // Inked, and the pens differ: some drawings carry far more ink than others.
        let inks: Vec<usize> = drawn
            .iter()
            .map(|d| d.iter().filter(|&&p| p > 128).count())
            .collect();
        assert!(inks.iter().all(|&n| n > 10), "{inks:?}");
        assert!(inks.iter().max().unwrap() > &(2 * inks.iter().min().unwrap()));
        assert!((0..200).all(|i| training_drawing(train[i], i) == drawn[i]));
    }

    #[test]
    fn a_drawn_digit_is_centred_at_its_height() {
        let strokes = vec![
            vec![(0.0, 0.0), (0.0, 100.0)],
            vec![(0.0, 0.0), (50.0, 0.0)],
        ];
        let canvas = draw(&strokes, 200.0, 18.0);
        let inked = |x: usize, y: usize| canvas.data[y * CANVAS_SIDE + x] < 128;
        let rows: Vec<usize> = (0..CANVAS_SIDE)
            .filter(|&y| (0..CANVAS_SIDE).any(|x| inked(x, y)))
            .collect();
        let (top, bottom) = (rows[0], rows[rows.len() - 1]);
        // 200 px of stroke plus the pen's 9 px on each end.
        assert!(((bottom - top) as i32 - 218).abs() <= 2, "{top}..{bottom}");
        assert!(((top + bottom) as i32 - CANVAS_SIDE as i32).abs() <= 2);
    }
}
