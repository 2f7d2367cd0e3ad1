//! The drawn store: digits people drew and corrected ("Wrong? This is a …"), kept on disk as
//! a small labelled dataset to learn from (`pismo train --extra`) and to share as IDX.
//!
//! A store is a folder (`--drawn DIR`, else `PISMO_DRAWN`, else `./data/drawn`, see
//! [`default_dir`]) with one sub-folder per sample:
//!
//! ```text
//! data/drawn/
//!   7-20261202-031522-123-4242-0-9f3a/     label-UTC time-milliseconds-pid-counter-random
//!     drawing.png    the raw drawing as it was drawn, 8-bit grey, any size
//!     input.png      what the model saw: 28x28, 8-bit grey, light ink on black (MNIST)
//!     sample.json    {"label":7,"created_unix_ms":…,"width":280,"height":280}
//!   .tmp-7-20261202-031522-…/              a sample being written (or left by a crash)
//! ```
//!
//! Guarantees:
//! - **What is stored is what the model saw.** [`DrawnStore::save`] runs
//!   [`pismo_core::preprocess::to_input`] itself; `input.png` is its output scaled to 0..255 and
//!   rounded, and [`DrawnStore::load`] returns exactly those bytes.
//! - **Atomic.** A sample is written into a hidden `.tmp-…` folder in the store, each file
//!   and the folder are fsynced, then the folder is renamed to its final name in one step and
//!   the store folder is fsynced. Readers only look at folders whose name does not start with
//!   `.`, so they see a whole sample or none; a crash leaves at most a `.tmp-…` folder that
//!   readers ignore.
//! - **Concurrent-safe.** Names are unique across threads and processes (UTC time,
//!   milliseconds, pid, a per-process counter and random bits), and a rename never replaces a
//!   sample: renaming onto an existing non-empty folder fails, and the save then retries
//!   under the next name. Two writers at once both keep their sample.
//! - **Checked.** A label outside 0..=9 is [`DrawnError::BadLabel`], an image with nothing
//!   drawn [`DrawnError::NoInk`]; neither writes anything. A damaged sample is an error
//!   naming its folder, never a panic.
//!
//! [`DrawnStore::export_idx`] writes the store's 28x28 inputs as a pair of IDX files.
//! [`DrawnStore::import_idx`] (an IDX pair) and [`DrawnStore::import_files`] (PNG or IDX files
//! of one label) add drawings of any size, kept as they came and preprocessed as the page
//! preprocesses a drawing it saves.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::image::{self, OwnedGrey};
use crate::mnist::{self, Dataset, MnistError, PIXELS, SIDE};
use pismo_core::idx;
use pismo_core::preprocess::{GreyImage, PreprocessError};
use pismo_engine::kernels;
use pismo_files::atomic;

/// Default store folder, relative to the working directory, when `PISMO_DRAWN` is not set.
pub const DEFAULT_DIR: &str = "data/drawn";
/// The raw drawing of a sample.
pub const DRAWING_FILE: &str = "drawing.png";
/// The 28x28 model input of a sample.
pub const INPUT_FILE: &str = "input.png";
/// The label and time of a sample.
pub const META_FILE: &str = "sample.json";
/// Prefix of a sample folder being written; readers skip every name starting with `.`.
const TEMP_PREFIX: &str = ".tmp-";

/// The store folder when no `--drawn` is given: `PISMO_DRAWN` if set and not empty, else
/// `./data/drawn`.
pub fn default_dir() -> PathBuf {
    pismo_files::dirs::from_env("PISMO_DRAWN", DEFAULT_DIR)
}

/// Why a sample could not be saved, read, exported or imported.
#[derive(Debug)]
#[non_exhaustive]
pub enum DrawnError {
    /// A label that is not a digit.
    BadLabel {
        /// The label given.
        label: i64,
    },
    /// The image has nothing drawn on it.
    NoInk,
    /// The image cannot be a model input (empty, too large, wrong byte count).
    Image(PreprocessError),
    /// Reading or writing `path` failed.
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The sample at `path` is damaged (a missing or malformed file).
    Corrupt {
        /// The sample's folder or file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// An IDX labels file that does not load (see [`mnist::load_labels`]).
    Idx(MnistError),
    /// An image file (PNG or IDX) that does not load.
    File(image::ImageError),
    /// Image `index` of an imported IDX file has nothing drawn on it.
    ImportNoInk {
        /// The images file.
        path: PathBuf,
        /// The image's index in it.
        index: usize,
    },
}

impl DrawnError {
    /// Whether the error is the caller's input (a bad label or image) rather than the disk.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            DrawnError::BadLabel { .. } | DrawnError::NoInk | DrawnError::Image(_)
        )
    }
}

impl fmt::Display for DrawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DrawnError::BadLabel { label } => {
                write!(f, "bad label {label}: a label is a digit from 0 to 9")
            }
            DrawnError::NoInk => {
                f.write_str("the drawing has no ink: draw a digit before correcting it")
            }
            DrawnError::Image(e) => write!(f, "{e}"),
            DrawnError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            DrawnError::Corrupt { path, detail } => {
                write!(f, "{}: damaged sample: {detail}", path.display())
            }
            DrawnError::Idx(e) => write!(f, "{e}"),
            DrawnError::File(e) => write!(f, "{e}"),
            DrawnError::ImportNoInk { path, index } => write!(
                f,
                "{}: image {index} has no ink; nothing was imported",
                path.display()
            ),
        }
    }
}

impl std::error::Error for DrawnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DrawnError::Io { source, .. } => Some(source),
            DrawnError::Idx(e) => Some(e),
            _ => None,
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> DrawnError + '_ {
    move |source| DrawnError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A label from any integer: `0..=9`, else [`DrawnError::BadLabel`].
pub fn check_label(label: i64) -> Result<u8, DrawnError> {
    u8::try_from(label)
        .ok()
        .filter(|&l| l <= 9)
        .ok_or(DrawnError::BadLabel { label })
}

/// What `sample.json` holds.
#[derive(Serialize, Deserialize)]
struct Meta {
    label: u8,
    created_unix_ms: u64,
    width: usize,
    height: usize,
}

/// A drawing to import: the image as it came, its label, and where it came from (for
/// errors: the file and the image's index in it).
#[derive(Debug)]
pub struct Incoming {
    /// The drawing (any size) or 28x28 input.
    pub image: OwnedGrey,
    /// Its digit.
    pub label: u8,
    /// The file it came from.
    pub path: PathBuf,
    /// Its index in that file.
    pub index: usize,
}

/// One stored sample, as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SampleInfo {
    /// The sample's folder name, unique in the store.
    pub id: String,
    /// The digit it shows, `0..=9`.
    pub label: u8,
    /// When it was saved, milliseconds since 1970 (UTC).
    pub created_unix_ms: u64,
    /// Size of the raw drawing.
    pub width: usize,
    /// Size of the raw drawing.
    pub height: usize,
    /// The raw drawing (PNG).
    pub drawing: PathBuf,
    /// The 28x28 model input (PNG).
    pub input: PathBuf,
}

/// A folder of corrected drawings (see the module doc).
#[derive(Clone, Debug)]
pub struct DrawnStore {
    dir: PathBuf,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl DrawnStore {
    /// The store in `dir` (created on the first save; a missing folder lists as empty).
    pub fn open(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The store's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Saves `img` (a drawing of any size, or a 28x28 image) as a sample of `label`: the
    /// core preprocessing makes its model input, then both are written atomically.
    pub fn save(&self, label: u8, img: &GreyImage) -> Result<SampleInfo, DrawnError> {
        let label = check_label(i64::from(label))?;
        let input = input_bytes(img)?;
        fs::create_dir_all(&self.dir).map_err(io_error(&self.dir))?;
        self.write_sample(label, img, &input)
    }

    /// Every sample, oldest first (ties by name). Folders starting with `.` (samples being
    /// written) are skipped; a damaged sample is an error naming it.
    pub fn list(&self) -> Result<Vec<SampleInfo>, DrawnError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(&self.dir)(e)),
        };
        let mut samples = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_error(&self.dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') || !entry.path().is_dir() {
                continue;
            }
            samples.push(self.info(name)?);
        }
        samples.sort_by(|a, b| (a.created_unix_ms, &a.id).cmp(&(b.created_unix_ms, &b.id)));
        Ok(samples)
    }

    /// How many samples of each digit the store holds.
    pub fn counts(&self) -> Result<[usize; 10], DrawnError> {
        let mut counts = [0; 10];
        for s in self.list()? {
            counts[usize::from(s.label)] += 1;
        }
        Ok(counts)
    }

    /// The samples as a dataset, in [`DrawnStore::list`] order: each image the stored
    /// 28x28 input (0 background, 255 ink, as MNIST), each label its digit.
    pub fn load(&self) -> Result<Dataset, DrawnError> {
        let samples = self.list()?;
        let mut images = Vec::with_capacity(samples.len());
        let mut labels = Vec::with_capacity(samples.len());
        for s in &samples {
            images.push(read_input(&s.input)?);
            labels.push(s.label);
        }
        Ok(Dataset { images, labels })
    }

    /// Writes the store as an IDX3 images file and an IDX1 labels file (each through a
    /// temporary file and a rename); returns how many samples were written.
    pub fn export_idx(&self, images_path: &Path, labels_path: &Path) -> Result<usize, DrawnError> {
        let data = self.load()?;
        let count = u32::try_from(data.len()).map_err(|_| DrawnError::Corrupt {
            path: self.dir.clone(),
            detail: "more samples than an IDX file can hold".to_owned(),
        })?;
        let mut images = idx::images_header(count, SIDE as u32, SIDE as u32).to_vec();
        for img in &data.images {
            images.extend_from_slice(img);
        }
        let mut labels = idx::labels_header(count).to_vec();
        labels.extend_from_slice(&data.labels);
        atomic::replace_atomic(images_path, &images).map_err(io_error(images_path))?;
        atomic::replace_atomic(labels_path, &labels).map_err(io_error(labels_path))?;
        Ok(data.len())
    }

    /// Adds every image of an IDX3 images file (raw or gzip, images of any size: 28x28
    /// inputs or whole canvases) with the labels of an IDX1 file, as [`Self::import`] does.
    pub fn import_idx(
        &self,
        images_path: &Path,
        labels_path: &Path,
    ) -> Result<Vec<SampleInfo>, DrawnError> {
        let images = image::read_image_file(images_path).map_err(DrawnError::File)?;
        let labels = mnist::load_labels(labels_path).map_err(DrawnError::Idx)?;
        if images.len() != labels.len() {
            return Err(DrawnError::Corrupt {
                path: labels_path.to_path_buf(),
                detail: format!(
                    "{} labels for the {} images of {}",
                    labels.len(),
                    images.len(),
                    images_path.display()
                ),
            });
        }
        let incoming: Vec<Incoming> = images
            .into_iter()
            .zip(labels)
            .enumerate()
            .map(|(index, (image, label))| Incoming {
                image,
                label,
                path: images_path.to_path_buf(),
                index,
            })
            .collect();
        self.import(&incoming)
    }

    /// Adds image files (PNG, or IDX3 images; raw or gzip; any size) as samples of
    /// `label`, every image of each file, as [`Self::import`] does.
    pub fn import_files(
        &self,
        paths: &[PathBuf],
        label: u8,
    ) -> Result<Vec<SampleInfo>, DrawnError> {
        let label = check_label(i64::from(label))?;
        let mut incoming = Vec::new();
        for path in paths {
            let images = image::read_image_file(path).map_err(DrawnError::File)?;
            incoming.extend(
                images
                    .into_iter()
                    .enumerate()
                    .map(|(index, image)| Incoming {
                        image,
                        label,
                        path: path.clone(),
                        index,
                    }),
            );
        }
        self.import(&incoming)
    }

    /// Adds drawings as samples, each kept as it came (its raw drawing) with its model input
    /// made as a drawing saved from the page or the window makes it ([`input_bytes`]): a
    /// correction is the same sample whichever way it arrived. Every drawing and label is
    /// checked before any is written, so a batch with one bad drawing imports nothing.
    pub fn import(&self, incoming: &[Incoming]) -> Result<Vec<SampleInfo>, DrawnError> {
        let mut inputs = Vec::with_capacity(incoming.len());
        for item in incoming {
            check_label(i64::from(item.label))?;
            inputs.push(input_bytes(&item.image.as_grey()).map_err(|e| match e {
                DrawnError::NoInk => DrawnError::ImportNoInk {
                    path: item.path.clone(),
                    index: item.index,
                },
                e => e,
            })?);
        }
        fs::create_dir_all(&self.dir).map_err(io_error(&self.dir))?;
        let mut saved = Vec::with_capacity(incoming.len());
        for (item, input) in incoming.iter().zip(&inputs) {
            saved.push(self.write_sample(item.label, &item.image.as_grey(), input)?);
        }
        Ok(saved)
    }

    /// The sample in folder `name`, from its `sample.json`.
    fn info(&self, name: &str) -> Result<SampleInfo, DrawnError> {
        let dir = self.dir.join(name);
        let meta_path = dir.join(META_FILE);
        let bytes = fs::read(&meta_path).map_err(|e| DrawnError::Corrupt {
            path: dir.clone(),
            detail: format!("{META_FILE}: {e}"),
        })?;
        let meta: Meta = serde_json::from_slice(&bytes).map_err(|e| DrawnError::Corrupt {
            path: meta_path.clone(),
            detail: e.to_string(),
        })?;
        check_label(i64::from(meta.label)).map_err(|e| DrawnError::Corrupt {
            path: meta_path,
            detail: e.to_string(),
        })?;
        Ok(SampleInfo {
            id: name.to_owned(),
            label: meta.label,
            created_unix_ms: meta.created_unix_ms,
            width: meta.width,
            height: meta.height,
            drawing: dir.join(DRAWING_FILE),
            input: dir.join(INPUT_FILE),
        })
    }

    /// Writes one checked sample: a `.tmp-` folder, fsynced files, one rename.
    fn write_sample(
        &self,
        label: u8,
        img: &GreyImage,
        input: &[u8; PIXELS],
    ) -> Result<SampleInfo, DrawnError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let created_unix_ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        let meta = Meta {
            label,
            created_unix_ms,
            width: img.width,
            height: img.height,
        };
        let input_img = GreyImage {
            width: SIDE,
            height: SIDE,
            data: input,
        };
        let files: [(&str, Vec<u8>); 3] = [
            (DRAWING_FILE, image::encode_png(img)),
            (INPUT_FILE, image::encode_png(&input_img)),
            (
                META_FILE,
                serde_json::to_vec(&meta).expect("a sample's metadata serialises"),
            ),
        ];
        let name = unique_name(label, now);
        let temp = self.dir.join(format!("{TEMP_PREFIX}{name}"));
        let written = (|| {
            fs::create_dir(&temp).map_err(io_error(&temp))?;
            for (file, bytes) in &files {
                let path = temp.join(file);
                atomic::write_new_synced(&path, bytes).map_err(io_error(&path))?;
            }
            atomic::sync_dir(&temp);
            self.publish(&temp, &name, label, now)
        })();
        if written.is_err() {
            let _ = fs::remove_dir_all(&temp);
        }
        let name = written?;
        self.info(&name)
    }

    /// Renames the complete folder `temp` to its final name `first` (trying fresh names if
    /// one is taken: a rename onto a non-empty folder fails, it never replaces a sample).
    fn publish(
        &self,
        temp: &Path,
        first: &str,
        label: u8,
        now: std::time::Duration,
    ) -> Result<String, DrawnError> {
        let mut last = None;
        for attempt in 0..16 {
            let name = if attempt == 0 {
                first.to_owned()
            } else {
                unique_name(label, now)
            };
            let target = self.dir.join(&name);
            if target.exists() {
                continue;
            }
            match fs::rename(temp, &target) {
                Ok(()) => {
                    atomic::sync_dir(&self.dir);
                    return Ok(name);
                }
                Err(e)
                    if target.exists()
                        || matches!(
                            e.kind(),
                            io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty
                        ) =>
                {
                    last = Some(e);
                }
                Err(e) => return Err(io_error(&target)(e)),
            }
        }
        Err(io_error(temp)(last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::AlreadyExists, "no free sample name")
        })))
    }
}

/// The stored model input of `img`: [`preprocess::to_input`], scaled to 0..255, rounded:
/// what a correction of `img` holds, whichever way it arrived.
pub fn input_bytes(img: &GreyImage) -> Result<[u8; PIXELS], DrawnError> {
    let mut x = [0.0f32; PIXELS];
    kernels::to_input(img, &mut x).map_err(|e| match e {
        PreprocessError::NoInk => DrawnError::NoInk,
        e => DrawnError::Image(e),
    })?;
    let mut out = [0u8; PIXELS];
    for (o, v) in out.iter_mut().zip(x) {
        *o = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    }
    Ok(out)
}

/// Reads a stored 28x28 input back.
fn read_input(path: &Path) -> Result<[u8; PIXELS], DrawnError> {
    let corrupt = |detail: String| DrawnError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    let bytes = fs::read(path).map_err(|e| corrupt(e.to_string()))?;
    let OwnedGrey {
        width,
        height,
        data,
    } = image::decode_png(&bytes).map_err(|e| corrupt(e.to_string()))?;
    if (width, height) != (SIDE, SIDE) {
        return Err(corrupt(format!(
            "the input is {width}x{height}, not {SIDE}x{SIDE}"
        )));
    }
    data.try_into()
        .map_err(|_| corrupt("short image data".to_owned()))
}

/// `7-YYYYMMDD-HHMMSS-mmm-PID-N-RRRR`: unique across threads (the counter) and processes
/// (the pid, and 16 random bits against pid reuse on another machine sharing the folder).
fn unique_name(label: u8, now: std::time::Duration) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut h = RandomState::new().build_hasher();
    h.write_u128(now.as_nanos());
    h.write_u64(n);
    let bits = h.finish();
    format!(
        "{label}-{}-{:03}-{}-{n}-{:04x}",
        pismo_files::stamp::utc_stamp(now.as_secs()),
        now.subsec_millis(),
        std::process::id(),
        (bits ^ (bits >> 32)) & 0xffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let dir =
                std::env::temp_dir().join(format!("pismo-drawn-{tag}-{}", unique_name(0, now)));
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// A 100x80 drawing: dark bar on white paper.
    fn drawing() -> OwnedGrey {
        let (w, h) = (100, 80);
        let mut data = vec![255u8; w * h];
        for y in 10..70 {
            for x in 45..55 {
                data[y * w + x] = 0;
            }
        }
        OwnedGrey {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn a_saved_sample_keeps_its_drawing_label_and_the_input_the_model_saw() {
        let tmp = TempDir::new("save");
        let store = DrawnStore::open(tmp.0.join("drawn"));
        assert!(
            store.list().unwrap().is_empty(),
            "a missing folder is empty"
        );
        let img = drawing();
        let info = store.save(1, &img.as_grey()).unwrap();
        assert_eq!(info.label, 1);
        assert!(info.id.starts_with("1-"), "{}", info.id);
        assert_eq!((info.width, info.height), (100, 80));
        let raw = image::decode_png(&fs::read(&info.drawing).unwrap()).unwrap();
        assert_eq!(raw, img);

        let mut x = [0.0f32; PIXELS];
        kernels::to_input(&img.as_grey(), &mut x).unwrap();
        let data = store.load().unwrap();
        assert_eq!(data.labels, vec![1]);
        for (&stored, &v) in data.images[0].iter().zip(&x) {
            assert_eq!(stored, (v * 255.0).round() as u8);
        }
        // Read back through the 28x28 path of the preprocessing, the stored input is what
        // the model saw, to within the 8-bit rounding.
        let mut again = [0.0f32; PIXELS];
        let input = GreyImage::new(SIDE, SIDE, &data.images[0]).unwrap();
        kernels::to_input(&input, &mut again).unwrap();
        for (a, b) in again.iter().zip(&x) {
            assert!((a - b).abs() <= 0.5 / 255.0 + 1e-6);
        }
        assert_eq!(store.list().unwrap(), vec![info]);
        assert_eq!(store.counts().unwrap()[1], 1);
    }

    #[test]
    fn a_bad_label_or_a_blank_image_is_a_typed_error_and_writes_nothing() {
        let tmp = TempDir::new("bad");
        let store = DrawnStore::open(&tmp.0);
        let img = drawing();
        let e = store.save(10, &img.as_grey()).unwrap_err();
        assert!(matches!(e, DrawnError::BadLabel { label: 10 }), "{e:?}");
        assert!(e.is_invalid_input());
        assert_eq!(
            e.to_string(),
            "bad label 10: a label is a digit from 0 to 9"
        );
        assert!(matches!(
            check_label(-1),
            Err(DrawnError::BadLabel { label: -1 })
        ));
        assert_eq!(check_label(9).unwrap(), 9);
        let blank = vec![255u8; 50 * 50];
        let e = store
            .save(3, &GreyImage::new(50, 50, &blank).unwrap())
            .unwrap_err();
        assert!(matches!(e, DrawnError::NoInk), "{e:?}");
        let bad = GreyImage {
            width: 3,
            height: 3,
            data: &[0; 4],
        };
        assert!(matches!(
            store.save(3, &bad),
            Err(DrawnError::Image(PreprocessError::SizeMismatch { .. }))
        ));
        assert_eq!(fs::read_dir(&tmp.0).unwrap().count(), 0);
    }

    #[test]
    fn concurrent_saves_from_many_threads_all_land() {
        let tmp = TempDir::new("threads");
        let store = Arc::new(DrawnStore::open(&tmp.0));
        let img = Arc::new(drawing());
        let threads: Vec<_> = (0..8u8)
            .map(|t| {
                let (store, img) = (store.clone(), img.clone());
                std::thread::spawn(move || {
                    (0..10)
                        .map(|_| store.save(t, &img.as_grey()).unwrap().id)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut ids: Vec<String> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 80);
        let counts = store.counts().unwrap();
        assert_eq!(&counts[..8], &[10; 8]);
        assert_eq!(store.load().unwrap().len(), 80);
    }

    #[test]
    fn a_sample_left_half_written_by_a_crash_is_ignored() {
        let tmp = TempDir::new("crash");
        let store = DrawnStore::open(&tmp.0);
        store.save(4, &drawing().as_grey()).unwrap();
        // What a crash between two writes leaves: a temp folder with one file.
        let half = tmp.0.join(".tmp-4-20261202-000000-000-1-0-0000");
        fs::create_dir(&half).unwrap();
        fs::write(half.join(DRAWING_FILE), b"\x89PNG").unwrap();
        assert_eq!(store.list().unwrap().len(), 1);
        assert_eq!(store.load().unwrap().labels, vec![4]);
    }

    #[test]
    fn a_damaged_sample_is_an_error_naming_it() {
        let tmp = TempDir::new("damaged");
        let store = DrawnStore::open(&tmp.0);
        let info = store.save(2, &drawing().as_grey()).unwrap();
        fs::write(info.input.clone(), b"not a png").unwrap();
        let e = store.load().unwrap_err();
        assert!(e.to_string().contains(&info.id), "{e}");
        fs::remove_file(info.drawing.with_file_name(META_FILE)).unwrap();
        let e = store.list().unwrap_err();
        assert!(matches!(e, DrawnError::Corrupt { .. }), "{e:?}");
    }

    #[test]
    fn export_then_import_round_trips_through_idx() {
        let tmp = TempDir::new("idx");
        let store = DrawnStore::open(tmp.0.join("a"));
        let img = drawing();
        store.save(7, &img.as_grey()).unwrap();
        store.save(1, &img.as_grey()).unwrap();
        let (images, labels) = (tmp.0.join("drawn-images"), tmp.0.join("drawn-labels"));
        assert_eq!(store.export_idx(&images, &labels).unwrap(), 2);
        let exported = mnist::load_pair(&images, &labels).unwrap();
        assert_eq!(exported, store.load().unwrap());

        let other = DrawnStore::open(tmp.0.join("b"));
        let imported = other.import_idx(&images, &labels).unwrap();
        assert_eq!(imported.len(), 2);
        assert_eq!((imported[0].width, imported[0].height), (SIDE, SIDE));
        let back = other.load().unwrap();
        assert_eq!(back.images, exported.images);
        // Same images; the order is by time, so compare the sorted labels.
        let mut l = back.labels.clone();
        l.sort();
        assert_eq!(l, vec![1, 7]);
        // The drawing of an imported sample is its 28x28 image.
        let raw = image::decode_png(&fs::read(&imported[0].drawing).unwrap()).unwrap();
        assert_eq!(raw.data, exported.images[0]);

        // A blank image in the pair: nothing imported, the index named.
        let mut blank = idx::images_header(2, 28, 28).to_vec();
        blank.extend_from_slice(&exported.images[0]);
        blank.extend_from_slice(&[0; PIXELS]);
        fs::write(&images, blank).unwrap();
        let third = DrawnStore::open(tmp.0.join("c"));
        let e = third.import_idx(&images, &labels).unwrap_err();
        assert!(
            matches!(e, DrawnError::ImportNoInk { index: 1, .. }),
            "{e:?}"
        );
        assert!(third.list().unwrap().is_empty());
    }

    #[test]
    fn a_taken_name_is_never_replaced() {
        let tmp = TempDir::new("taken");
        let store = DrawnStore::open(&tmp.0);
        let first = store.save(5, &drawing().as_grey()).unwrap();
        let before = fs::read(first.drawing.with_file_name(META_FILE)).unwrap();
        // A second complete sample that would take the first one's name.
        let temp = tmp.0.join(".tmp-other");
        fs::create_dir(&temp).unwrap();
        fs::write(temp.join(META_FILE), b"{}").unwrap();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let name = store.publish(&temp, &first.id, 5, now).unwrap();
        assert_ne!(name, first.id);
        assert_eq!(
            fs::read(first.drawing.with_file_name(META_FILE)).unwrap(),
            before
        );
        assert_eq!(fs::read(tmp.0.join(&name).join(META_FILE)).unwrap(), b"{}");
    }
}
