//! Handwriting from writers who are not MNIST's, shipped in `datasets/` (licences there):
//! scanned paper digits (optdigits) and Italian hands with European styles (semeion).
//!
//! Each file is read (raw or gzip, by [`crate::known`]), its SHA-256 checked against the
//! digest its README gives, and every digit becomes a grey bitmap (ink 255 on 0) that goes
//! through [`pismo_core::preprocess`] like a drawing, giving MNIST bytes for training or
//! evaluation.
//!
//! - **optdigits** (`optdigits-orig.tra`, 30 writers; `optdigits-orig.cv`, its validation
//!   file): 32x32 bitmaps. The `.tra` file may be trained on; `.cv` is a dev set only, and a
//!   **writer-dependent** one: UCI split the same 30 writers' 3823 digits into `.tra` (1934),
//!   `.cv` (946) and a writer-dependent test file (943), so `.cv` holds other digits of the
//!   writers `.tra` trains on, not other writers.
//! - **semeion** (1593 digits, about 80 writers, each digit written twice): 16x16 bitmaps,
//!   each stretched to fill its box, so a 1 is as wide as a 0. The file has no writer ids and
//!   is not in blocks per writer: it is six blocks, each sorted by digit (four blocks with
//!   about 20 of each digit, then two with about 40), so it is 60 runs of one digit. The dev
//!   set is the last fifth of every run ([`semeion_dev`], 309 digits, 28–32 of each digit);
//!   the rest may be trained on. If a block holds its writers in the same order in every
//!   digit's run, as its nearly equal run lengths suggest, the same positions are the same
//!   people and the dev writers' digits of that block are all held out; nothing in the file
//!   proves it, and each person wrote every digit twice, the second copy perhaps in another
//!   block at other positions. So every digit is represented, and the writers are probably,
//!   not certainly, disjoint from the trainable part's. For the dev set a digit is enlarged
//!   10x to 160x160 (nearest neighbour). For training, each digit is given twice: as it is,
//!   and squeezed back to a width-to-height ratio typical of its class (the stretching lost
//!   the true one).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::known::{self, KnownFile, ReadError};
use crate::mnist::Dataset;
use pismo_core::mlp::INPUT;
use pismo_core::preprocess::{GreyImage, PIXELS};
use pismo_core::rng::Rng;
use pismo_engine::kernels;

/// The name of UNIPEN's training writers drawn on the canvas as a training corpus
/// ([`crate::unipen::training_set`]).
pub const UNIPEN_TRAIN: &str = "unipen-train";

/// The shipped corpora that may be trained on, by name: the trainable bitmap corpora
/// ([`Corpus::trainable`]), then [`UNIPEN_TRAIN`].
pub fn trainable() -> Vec<&'static str> {
    let bitmaps = Corpus::ALL.into_iter().filter(|c| c.trainable());
    bitmaps.map(Corpus::name).chain([UNIPEN_TRAIN]).collect()
}

/// The trainable corpus `name` ([`trainable`]) as training inputs, or `None` for another name.
pub fn training_set(name: &str, dir: &Path) -> Option<Result<Dataset, CorpusError>> {
    if name == UNIPEN_TRAIN {
        return Some(crate::unipen::training_set(dir));
    }
    let corpus = Corpus::from_name(name).filter(|c| c.trainable())?;
    Some(corpus.dataset(dir, true))
}

/// Default folder of the shipped corpora, relative to the working directory.
pub const DEFAULT_DIR: &str = "datasets";

/// The dev set's share of every digit run of `semeion.data`: its last `1 / SEMEION_DEV_PART`
/// (rounded down: 4 of a run of 20, 8 of a run of 40).
pub const SEMEION_DEV_PART: usize = 5;

/// Which digits of `semeion.data` (its labels in file order) are the dev set: in every run
/// of one digit, the last [`SEMEION_DEV_PART`]th (see the module doc).
pub fn semeion_dev(labels: &[u8]) -> Vec<bool> {
    let mut dev = Vec::with_capacity(labels.len());
    for run in labels.chunk_by(|a, b| a == b) {
        let first_out = run.len() - run.len() / SEMEION_DEV_PART;
        dev.extend((0..run.len()).map(|p| p >= first_out));
    }
    dev
}

/// One of the shipped handwriting files, or a part of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corpus {
    /// optdigits-orig.tra: may be trained on.
    OptdigitsTrain,
    /// optdigits-orig.cv: dev set, never trained on; the same 30 writers as
    /// optdigits-orig.tra (writer-dependent).
    OptdigitsDev,
    /// semeion.data without its dev digits ([`semeion_dev`]): may be trained on.
    SemeionTrain,
    /// The last fifth of every digit run of semeion.data ([`semeion_dev`]): dev set, never
    /// trained on.
    SemeionDev,
}

impl Corpus {
    /// Every corpus.
    pub const ALL: [Corpus; 4] = [
        Corpus::OptdigitsTrain,
        Corpus::OptdigitsDev,
        Corpus::SemeionTrain,
        Corpus::SemeionDev,
    ];

    /// Its name on the command line and in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Corpus::OptdigitsTrain => "optdigits-train",
            Corpus::OptdigitsDev => "optdigits-cv",
            Corpus::SemeionTrain => "semeion-train",
            Corpus::SemeionDev => "semeion-dev",
        }
    }

    /// The corpus called `name`.
    pub fn from_name(name: &str) -> Option<Corpus> {
        Corpus::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Whether it may be trained on.
    pub const fn trainable(self) -> bool {
        matches!(self, Corpus::OptdigitsTrain | Corpus::SemeionTrain)
    }

    /// Its file (uncompressed name) inside the corpora folder, and the file's SHA-256.
    const fn file(self) -> KnownFile {
        match self {
            Corpus::OptdigitsTrain => KnownFile {
                name: "optdigits/optdigits-orig.tra",
                sha256: "6f1012a107d37856f83cb332b26d54738647c1d197278f8ff74c5f55312124ca",
            },
            Corpus::OptdigitsDev => KnownFile {
                name: "optdigits/optdigits-orig.cv",
                sha256: "29b0ea16767a56815aa39b608520aa18d4acc087b9db85847f4c79addb7d09d3",
            },
            Corpus::SemeionTrain | Corpus::SemeionDev => KnownFile {
                name: "semeion/semeion.data",
                sha256: "7c74222dd9beb6a5b30c7b41104e7486cabc274e013689db1cd62b1ca56d0dd4",
            },
        }
    }

    /// The digits as they are fed to a model for evaluation: grey bitmaps (ink 255) at the
    /// size a user would send them (optdigits 32x32, semeion enlarged to 160x160).
    pub fn bitmaps(self, dir: &Path) -> Result<Vec<Bitmap>, CorpusError> {
        let text = self.read(dir)?;
        let path = || dir.join(self.file().name);
        match self {
            Corpus::OptdigitsTrain | Corpus::OptdigitsDev => {
                parse_optdigits(&text).map_err(|why| CorpusError::Format { path: path(), why })
            }
            Corpus::SemeionTrain | Corpus::SemeionDev => {
                let all = parse_semeion(&text)
                    .map_err(|why| CorpusError::Format { path: path(), why })?;
                let labels: Vec<u8> = all.iter().map(|b| b.label).collect();
                let want_dev = self == Corpus::SemeionDev;
                Ok(all
                    .iter()
                    .zip(semeion_dev(&labels))
                    .filter(|&(_, dev)| dev == want_dev)
                    .map(|(b, _)| b.enlarged(10))
                    .collect())
            }
        }
    }

    /// The corpus as model inputs (MNIST bytes) with labels: each bitmap preprocessed as
    /// a drawing. For training (`for_training`), semeion digits also come squeezed to a
    /// typical width (see the module doc).
    pub fn dataset(self, dir: &Path, for_training: bool) -> Result<Dataset, CorpusError> {
        let bitmaps = self.bitmaps(dir)?;
        let mut data = Dataset {
            images: Vec::with_capacity(bitmaps.len() * 2),
            labels: Vec::with_capacity(bitmaps.len() * 2),
        };
        let mut rng = Rng::new(0x5E4E_1014);
        for b in &bitmaps {
            data.images.push(b.to_input());
            data.labels.push(b.label);
            if for_training && matches!(self, Corpus::SemeionTrain) {
                let ratio = if b.label == 1 {
                    0.25 + 0.25 * rng.next_f32()
                } else {
                    0.6 + 0.3 * rng.next_f32()
                };
                data.images.push(b.squeezed(ratio).to_input());
                data.labels.push(b.label);
            }
        }
        Ok(data)
    }

    fn read(self, dir: &Path) -> Result<String, CorpusError> {
        let (path, bytes) = known::read_checked(dir, self.file())?;
        String::from_utf8(bytes).map_err(|_| CorpusError::Format {
            path,
            why: "not text".into(),
        })
    }
}

/// The corpora folder: `$PISMO_DATASETS` if set and not empty, else `./datasets`.
pub fn default_dir() -> PathBuf {
    pismo_files::dirs::from_env("PISMO_DATASETS", DEFAULT_DIR)
}

/// A labelled grey bitmap, ink 255 on 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bitmap {
    /// The digit.
    pub label: u8,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height` grey levels.
    pub data: Vec<u8>,
}

impl Bitmap {
    /// As a grey image for [`pismo_core::preprocess`].
    pub fn as_grey(&self) -> GreyImage<'_> {
        GreyImage {
            width: self.width,
            height: self.height,
            data: &self.data,
        }
    }

    /// The model input, as MNIST bytes (blank if the bitmap has no ink).
    pub fn to_input(&self) -> [u8; INPUT] {
        let mut input = [0.0f32; PIXELS];
        let mut out = [0u8; INPUT];
        if kernels::to_input(&self.as_grey(), &mut input).is_ok() {
            for (o, v) in out.iter_mut().zip(input) {
                *o = (v * 255.0).round() as u8;
            }
        }
        out
    }

    /// Enlarged `k` times, nearest neighbour.
    fn enlarged(&self, k: usize) -> Bitmap {
        let (w, h) = (self.width * k, self.height * k);
        let data = (0..w * h)
            .map(|i| self.data[(i / w / k) * self.width + (i % w) / k])
            .collect();
        Bitmap {
            label: self.label,
            width: w,
            height: h,
            data,
        }
    }

    /// Squeezed horizontally to `ratio` of its height (area-averaged), on a canvas as wide
    /// as it is tall.
    fn squeezed(&self, ratio: f32) -> Bitmap {
        let side = self.height;
        let new_w = ((side as f32 * ratio).round() as usize).clamp(1, side);
        let left = (side - new_w) / 2;
        let mut data = vec![0u8; side * side];
        for y in 0..self.height {
            for x in 0..new_w {
                // Source span of output column x.
                let a = x as f32 * self.width as f32 / new_w as f32;
                let b = (x + 1) as f32 * self.width as f32 / new_w as f32;
                let mut sum = 0.0;
                let mut sx = a.floor() as usize;
                while (sx as f32) < b && sx < self.width {
                    let lo = a.max(sx as f32);
                    let hi = b.min(sx as f32 + 1.0);
                    sum += (hi - lo) * f32::from(self.data[y * self.width + sx]);
                    sx += 1;
                }
                data[y * side + left + x] = (sum / (b - a)).round().min(255.0) as u8;
            }
        }
        Bitmap {
            label: self.label,
            width: side,
            height: side,
            data,
        }
    }
}

/// Why a corpus could not be read.
#[derive(Debug)]
pub enum CorpusError {
    /// The file could not be read.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Its content is not the published file.
    Digest {
        path: PathBuf,
        found: String,
        expected: &'static str,
    },
    /// The file, or what it decompresses to, is larger than [`known::MAX_BYTES`].
    TooLarge { path: PathBuf },
    /// Its content does not parse.
    Format { path: PathBuf, why: String },
}

impl fmt::Display for CorpusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorpusError::Io { path, source } => write!(
                f,
                "cannot read {}: {source} (the corpora ship in `datasets/`; run from the repository or set PISMO_DATASETS)",
                path.display()
            ),
            CorpusError::Digest {
                path,
                found,
                expected,
            } => write!(
                f,
                "{} has SHA-256 {found}, not the published {expected}: the file is damaged or not the one its README names",
                path.display()
            ),
            CorpusError::TooLarge { path } => {
                write!(f, "{}: {}", path.display(), known::too_large())
            }
            CorpusError::Format { path, why } => write!(f, "{}: {why}", path.display()),
        }
    }
}

impl std::error::Error for CorpusError {}

impl From<ReadError> for CorpusError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Missing { name, dir } => CorpusError::Io {
                path: dir.join(name),
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no such file, nor {name}.gz"),
                ),
            },
            ReadError::Io { path, source } | ReadError::Gzip { path, source } => {
                CorpusError::Io { path, source }
            }
            ReadError::TooLarge { path } => CorpusError::TooLarge { path },
            ReadError::Digest {
                path,
                expected,
                actual,
                ..
            } => CorpusError::Digest {
                path,
                found: actual,
                expected,
            },
        }
    }
}

/// optdigits: a count line, then per digit 32 lines of 32 `0`/`1` and a label line.
fn parse_optdigits(text: &str) -> Result<Vec<Bitmap>, String> {
    let mut lines = text.lines();
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or("the first line is not the number of digits")?;
    let mut out = Vec::with_capacity(count.min(10_000));
    for n in 0..count {
        let mut data = Vec::with_capacity(32 * 32);
        for r in 0..32 {
            let row = lines
                .next()
                .ok_or_else(|| format!("digit {n}: row {r} is missing"))?;
            let row = row.trim_end();
            if row.len() != 32 || !row.bytes().all(|b| b == b'0' || b == b'1') {
                return Err(format!(
                    "digit {n}: row {r} is not 32 characters of 0 and 1"
                ));
            }
            data.extend(row.bytes().map(|b| if b == b'1' { 255 } else { 0 }));
        }
        let label = lines
            .next()
            .and_then(|l| l.trim().parse::<u8>().ok())
            .filter(|&d| d <= 9)
            .ok_or_else(|| format!("digit {n}: no label line"))?;
        out.push(Bitmap {
            label,
            width: 32,
            height: 32,
            data,
        });
    }
    Ok(out)
}

/// semeion: per line 256 pixel values (0/1, as decimals) then 10 one-hot label values.
fn parse_semeion(text: &str) -> Result<Vec<Bitmap>, String> {
    let mut out = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let values: Vec<f32> = line
            .split_whitespace()
            .map(|v| {
                v.parse::<f32>()
                    .map_err(|_| format!("line {}: `{v}` is not a number", n + 1))
            })
            .collect::<Result<_, _>>()?;
        if values.len() != 266 {
            return Err(format!(
                "line {}: {} values, expected 266",
                n + 1,
                values.len()
            ));
        }
        let hot: Vec<usize> = (0..10).filter(|&d| values[256 + d] > 0.5).collect();
        let [label] = hot[..] else {
            return Err(format!("line {}: the label is not one-hot", n + 1));
        };
        out.push(Bitmap {
            label: label as u8,
            width: 16,
            height: 16,
            data: values[..256]
                .iter()
                .map(|&v| if v > 0.5 { 255 } else { 0 })
                .collect(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets")
    }

    #[test]
    fn the_shipped_corpora_parse_with_their_published_sizes() {
        let dir = shipped();
        let sizes: Vec<usize> = Corpus::ALL
            .iter()
            .map(|c| c.bitmaps(&dir).unwrap().len())
            .collect();
        assert_eq!(sizes, [1934, 946, 1593 - 309, 309]);
        let dev = Corpus::SemeionDev.bitmaps(&dir).unwrap();
        assert_eq!((dev[0].width, dev[0].height), (160, 160));
        // Training semeion: each digit as it is and squeezed.
        let train = Corpus::SemeionTrain.dataset(&dir, true).unwrap();
        assert_eq!(train.len(), 2 * (1593 - 309));
        assert!(train.images.iter().all(|i| i.iter().any(|&v| v > 200)));
    }

    #[test]
    fn semeion_dev_is_the_last_fifth_of_every_digit_run() {
        // Two runs of 20 and one of 19 (a block of the file may miss one digit).
        let mut labels = vec![0u8; 20];
        labels.extend([1u8; 19]);
        labels.extend([2u8; 40]);
        let dev = semeion_dev(&labels);
        let out: Vec<usize> = (0..labels.len()).filter(|&i| dev[i]).collect();
        let want: Vec<usize> = (16..20).chain(36..39).chain(71..79).collect();
        assert_eq!(out, want);
        assert!(semeion_dev(&[]).is_empty());
    }

    #[test]
    fn a_damaged_file_is_refused_by_its_digest() {
        let tmp = std::env::temp_dir().join(format!("pismo-corpora-{}", std::process::id()));
        std::fs::create_dir_all(tmp.join("optdigits")).unwrap();
        std::fs::write(tmp.join("optdigits/optdigits-orig.cv"), "1\n").unwrap();
        let err = Corpus::OptdigitsDev.bitmaps(&tmp).unwrap_err();
        assert!(err.to_string().contains("not the published"), "{err}");
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
