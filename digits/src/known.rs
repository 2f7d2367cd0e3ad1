//! Known files: data files whose name and SHA-256 are published (MNIST's four files, the
//! shipped corpora, the UNIPEN digits), stored in a folder raw or gzipped, read only when
//! their raw bytes have the published digest. One reader for all of them:
//!
//! - In a folder, `<name>` (raw) wins over `<name>.gz`; which one is stored is told by the
//!   gzip magic bytes, not by the name, so a gzipped file under the raw name reads too.
//! - **One size limit**, [`MAX_BYTES`] (1 GiB, 16x MNIST's training images, larger than
//!   any shipped file): neither the stored file nor its decompressed content may be larger.
//!   A larger one is [`ReadError::TooLarge`], never read in full and never cut short, so a
//!   gzip bomb given as `--images` costs at most 1 GiB of memory and says what happened.
//! - Every error names the path it is about.
//!
//! The callers ([`crate::mnist`], [`crate::corpora`], [`crate::unipen`]) turn a
//! [`ReadError`] into their own error type, whose message says what to do about it.

use std::fmt::{self, Write as _};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Largest file this module reads, stored or decompressed: 1 GiB.
pub const MAX_BYTES: u64 = 1 << 30;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A published file: its name in its folder (which may include a subfolder, e.g.
/// `semeion/semeion.data`) and the SHA-256 (lowercase hex) of its raw, uncompressed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KnownFile {
    pub name: &'static str,
    pub sha256: &'static str,
}

/// Why a known file (or any file given by path) could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// Neither `<name>` nor `<name>.gz` is a file in `dir`.
    Missing { name: &'static str, dir: PathBuf },
    /// Reading `path` failed.
    Io { path: PathBuf, source: io::Error },
    /// `path` starts like gzip but does not decompress (truncated or corrupt).
    Gzip { path: PathBuf, source: io::Error },
    /// `path`, or what it decompresses to, is larger than [`MAX_BYTES`].
    TooLarge { path: PathBuf },
    /// The raw bytes of `path` (the known file `name`) do not have the published SHA-256.
    Digest {
        path: PathBuf,
        name: &'static str,
        expected: &'static str,
        actual: String,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Missing { name, dir } => {
                write!(f, "{name} (or {name}.gz) not found in {}", dir.display())
            }
            ReadError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            ReadError::Gzip { path, source } => {
                write!(f, "{}: corrupt gzip data: {source}", path.display())
            }
            ReadError::TooLarge { path } => write!(f, "{}: {}", path.display(), too_large()),
            ReadError::Digest {
                path,
                name,
                expected,
                actual,
            } => write!(
                f,
                "{}: SHA-256 mismatch for {name}: expected {expected}, got {actual}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Io { source, .. } | ReadError::Gzip { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// What [`ReadError::TooLarge`] says after the path.
pub fn too_large() -> String {
    format!(
        "larger than {} MiB (stored or decompressed), more than pismo reads",
        MAX_BYTES >> 20
    )
}

/// `dir/<name>` or else `dir/<name>.gz`, without reading it.
pub fn find(dir: &Path, known: KnownFile) -> Result<PathBuf, ReadError> {
    let raw = dir.join(known.name);
    if raw.is_file() {
        return Ok(raw);
    }
    let gz = dir.join(format!("{}.gz", known.name));
    if gz.is_file() {
        return Ok(gz);
    }
    Err(ReadError::Missing {
        name: known.name,
        dir: dir.to_path_buf(),
    })
}

/// Finds `known` in `dir` ([`find`]), reads and decompresses it ([`read_raw`]) and checks
/// its digest ([`check_digest`]): the path read and the raw bytes.
pub fn read_checked(dir: &Path, known: KnownFile) -> Result<(PathBuf, Vec<u8>), ReadError> {
    let path = find(dir, known)?;
    let raw = read_raw(&path)?;
    check_digest(&path, known, &raw)?;
    Ok((path, raw))
}

/// The raw bytes of the file at `path`: gunzipped if it starts with the gzip magic. No
/// digest check.
pub fn read_raw(path: &Path) -> Result<Vec<u8>, ReadError> {
    unpack(read_stored(path)?, path)
}

/// The bytes of the file at `path` as they are stored (perhaps gzip), at most [`MAX_BYTES`].
pub fn read_stored(path: &Path) -> Result<Vec<u8>, ReadError> {
    let file = fs::File::open(path).map_err(|source| io_error(path, source))?;
    read_limited(file, MAX_BYTES)
        .map_err(|source| io_error(path, source))?
        .ok_or_else(|| too_large_error(path))
}

/// Whether `stored` is gzip data (starts with its magic bytes).
pub fn is_gzip(stored: &[u8]) -> bool {
    stored.starts_with(&GZIP_MAGIC)
}

/// The raw bytes of a file stored as `stored`: decompressed (every gzip member) if it is
/// gzip, else as they are; larger than [`MAX_BYTES`] either way is an error. `path` only
/// names the file in errors.
pub fn unpack(stored: Vec<u8>, path: &Path) -> Result<Vec<u8>, ReadError> {
    unpack_within(stored, path, MAX_BYTES)
}

/// [`unpack`] with the limit `max` in place of [`MAX_BYTES`].
fn unpack_within(stored: Vec<u8>, path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    if !is_gzip(&stored) {
        return if stored.len() as u64 > max {
            Err(too_large_error(path))
        } else {
            Ok(stored)
        };
    }
    read_limited(flate2::read::MultiGzDecoder::new(&stored[..]), max)
        .map_err(|source| ReadError::Gzip {
            path: path.to_path_buf(),
            source,
        })?
        .ok_or_else(|| too_large_error(path))
}

/// Checks that `raw` (read from `path`) is the published `known` file.
pub fn check_digest(path: &Path, known: KnownFile, raw: &[u8]) -> Result<(), ReadError> {
    let actual = sha256_hex(raw);
    if actual == known.sha256 {
        Ok(())
    } else {
        Err(ReadError::Digest {
            path: path.to_path_buf(),
            name: known.name,
            expected: known.sha256,
            actual,
        })
    }
}

/// SHA-256 of `bytes` in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    to_hex(&Sha256::digest(bytes))
}

/// Lowercase hex of `bytes`.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Everything `reader` gives, or `None` if that is more than `max` bytes (reading stops one
/// byte past the limit).
pub fn read_limited(reader: impl Read, max: u64) -> io::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    reader.take(max + 1).read_to_end(&mut out)?;
    Ok((out.len() as u64 <= max).then_some(out))
}

/// [`ReadError::TooLarge`] for `path`.
pub fn too_large_error(path: &Path) -> ReadError {
    ReadError::TooLarge {
        path: path.to_path_buf(),
    }
}

fn io_error(path: &Path, source: io::Error) -> ReadError {
    ReadError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    const HELLO: KnownFile = KnownFile {
        name: "hello.txt",
        // sha256("hello\n")
        sha256: "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03",
    };

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn raw_wins_over_gz_and_gz_is_decompressed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("hello.txt.gz"), gzip(b"hello\n")).unwrap();
        let (path, raw) = read_checked(dir.path(), HELLO).unwrap();
        assert_eq!(
            (path.file_name().unwrap(), &raw[..]),
            ("hello.txt.gz".as_ref(), &b"hello\n"[..])
        );
        fs::write(dir.path().join("hello.txt"), b"hello\n").unwrap();
        let (path, _) = read_checked(dir.path(), HELLO).unwrap();
        assert_eq!(path.file_name().unwrap(), "hello.txt");
    }

    #[test]
    fn a_wrong_digest_or_a_missing_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_checked(dir.path(), HELLO).unwrap_err();
        assert!(matches!(err, ReadError::Missing { .. }), "{err}");
        fs::write(dir.path().join("hello.txt"), b"hullo\n").unwrap();
        let err = read_checked(dir.path(), HELLO).unwrap_err();
        assert!(matches!(err, ReadError::Digest { .. }), "{err}");
        assert!(err.to_string().contains("hello.txt"), "{err}");
    }

    #[test]
    fn content_over_the_limit_is_an_error_not_a_truncation() {
        // The limit scaled down to 1000 bytes: at the limit it reads, one byte over it is an
        // error, raw or gzipped (a bomb of 1 GiB would only cost the test time).
        for n in [1000, 1001] {
            let zeros = vec![0u8; n];
            for stored in [zeros.clone(), gzip(&zeros)] {
                match unpack_within(stored, Path::new("big"), 1000) {
                    Ok(raw) => assert_eq!((n, raw.len()), (1000, 1000)),
                    Err(err) => {
                        assert_eq!(n, 1001);
                        assert!(matches!(err, ReadError::TooLarge { .. }), "{err}");
                    }
                }
            }
        }
        let err = too_large_error(Path::new("bomb.gz"));
        assert_eq!(
            err.to_string(),
            "bomb.gz: larger than 1024 MiB (stored or decompressed), more than pismo reads"
        );
    }

    #[test]
    fn corrupt_gzip_is_a_gzip_error() {
        let mut packed = gzip(b"hello\n");
        packed.truncate(packed.len() - 6);
        let err = unpack(packed, Path::new("cut.gz")).unwrap_err();
        assert!(matches!(err, ReadError::Gzip { .. }), "{err}");
    }
}
