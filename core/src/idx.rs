//! MNIST's IDX files, parsed in place from byte slices.
//!
//! An IDX file is a 4-byte magic number (`0x00000803` for images, `0x00000801` for labels),
//! one big-endian `u32` per dimension, then the data, one unsigned byte per value. MNIST
//! stores images as `count × rows × cols` pixels (0 = background, 255 = full ink) and labels
//! as `count` bytes `0..=9`.
//!
//! Guarantees, whatever the input bytes:
//! - nothing here panics or allocates; the parsers only borrow from the input;
//! - the size arithmetic is checked, so huge dimensions give [`IdxError::TooLarge`] instead of
//!   wrapping around;
//! - once [`parse_images`] returned `Ok`, the data is exactly `count * rows * cols` bytes,
//!   `rows` and `cols` are non-zero, and [`IdxImages::image`] returns `Some` exactly for
//!   `i < count`;
//! - once [`parse_labels`] returned `Ok`, every label is `<= 9`.
//!
//! The file must be exactly as long as its header says: a short file is
//! [`IdxError::Truncated`], a longer one [`IdxError::TrailingBytes`] (a sign of a wrong or
//! concatenated download that a lenient parser would hide).

use core::fmt;

/// Magic number of an IDX file of unsigned bytes with 3 dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with 1 dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// Header length of an image file: magic, count, rows, cols.
pub const IMAGES_HEADER: usize = 16;
/// Header length of a label file: magic, count.
pub const LABELS_HEADER: usize = 8;

/// Why bytes are not a valid IDX image or label file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdxError {
    /// Fewer bytes than the header needs.
    TooShort {
        /// Bytes given.
        len: usize,
        /// Header length of the expected kind of file.
        header: usize,
    },
    /// The magic number is not the expected one.
    BadMagic {
        /// Magic number found (first 4 bytes, big-endian).
        found: u32,
        /// Magic number expected ([`IMAGES_MAGIC`] or [`LABELS_MAGIC`]).
        expected: u32,
    },
    /// An image file whose rows or columns are 0.
    ZeroSize {
        /// Rows in the header.
        rows: u32,
        /// Columns in the header.
        cols: u32,
    },
    /// The header's dimensions multiply to more bytes than this machine can address.
    TooLarge {
        /// Image (or label) count in the header.
        count: u32,
        /// Rows in the header (1 for labels).
        rows: u32,
        /// Columns in the header (1 for labels).
        cols: u32,
    },
    /// The file ends before the data the header announces.
    Truncated {
        /// Data bytes the header announces.
        expected: usize,
        /// Data bytes present after the header.
        actual: usize,
    },
    /// The file goes on after the data the header announces.
    TrailingBytes {
        /// Data bytes the header announces.
        expected: usize,
        /// Data bytes present after the header.
        actual: usize,
    },
    /// A label outside `0..=9`.
    BadLabel {
        /// Index of the first bad label.
        index: usize,
        /// Its value.
        value: u8,
    },
}

fn kind(magic: u32) -> &'static str {
    if magic == LABELS_MAGIC {
        "label"
    } else {
        "image"
    }
}

impl fmt::Display for IdxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            IdxError::TooShort { len, header } => write!(
                f,
                "not an IDX file: {len} bytes is shorter than the {header}-byte header"
            ),
            IdxError::BadMagic { found, expected } => write!(
                f,
                "not an IDX {} file: magic {found:#010x} (expected {expected:#010x})",
                kind(expected)
            ),
            IdxError::ZeroSize { rows, cols } => {
                write!(f, "IDX image file with empty images: {rows}x{cols} pixels")
            }
            IdxError::TooLarge { count, rows, cols } => write!(
                f,
                "IDX header dimensions {count}x{rows}x{cols} are too large for this machine"
            ),
            IdxError::Truncated { expected, actual } => write!(
                f,
                "truncated: header says {expected} bytes of data, file has {actual}"
            ),
            IdxError::TrailingBytes { expected, actual } => write!(
                f,
                "trailing bytes: header says {expected} bytes of data, file has {actual}"
            ),
            IdxError::BadLabel { index, value } => {
                write!(f, "label {index} is {value}, not a digit 0..=9")
            }
        }
    }
}

impl core::error::Error for IdxError {}

/// A borrowed IDX image file: `count` images of `rows × cols` bytes, row-major.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdxImages<'a> {
    /// Number of images.
    pub count: usize,
    /// Rows (height) of every image; never 0.
    pub rows: usize,
    /// Columns (width) of every image; never 0.
    pub cols: usize,
    data: &'a [u8],
}

impl<'a> IdxImages<'a> {
    /// Bytes per image (`rows * cols`).
    pub fn pixels(&self) -> usize {
        self.rows * self.cols
    }

    /// Image `i` (`rows * cols` bytes), or `None` if `i >= count`.
    pub fn image(&self, i: usize) -> Option<&'a [u8]> {
        let n = self.pixels();
        let start = i.checked_mul(n)?;
        self.data.get(start..start.checked_add(n)?)
    }

    /// All pixels of all images, image after image (`count * rows * cols` bytes).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.data
    }

    /// The images in file order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + 'a {
        // `pixels()` is non-zero by construction.
        self.data.chunks_exact(self.pixels())
    }
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    if let Some(src) = bytes.get(at..at + 4) {
        word.copy_from_slice(src);
    }
    u32::from_be_bytes(word)
}

fn check_header(bytes: &[u8], header: usize, expected: u32) -> Result<(), IdxError> {
    // The magic is checked first when there are at least 4 bytes, so that a file of the
    // wrong kind says so even when it is also short.
    if bytes.len() >= 4 {
        let found = be_u32(bytes, 0);
        if found != expected {
            return Err(IdxError::BadMagic { found, expected });
        }
    }
    if bytes.len() < header {
        return Err(IdxError::TooShort {
            len: bytes.len(),
            header,
        });
    }
    Ok(())
}

fn check_len(bytes: &[u8], header: usize, expected: usize) -> Result<&[u8], IdxError> {
    let data = bytes.get(header..).unwrap_or(&[]);
    let actual = data.len();
    if actual < expected {
        Err(IdxError::Truncated { expected, actual })
    } else if actual > expected {
        Err(IdxError::TrailingBytes { expected, actual })
    } else {
        Ok(data)
    }
}

/// Parses an IDX image file (magic `0x00000803`). Never panics.
pub fn parse_images(bytes: &[u8]) -> Result<IdxImages<'_>, IdxError> {
    check_header(bytes, IMAGES_HEADER, IMAGES_MAGIC)?;
    let (count, rows, cols) = (be_u32(bytes, 4), be_u32(bytes, 8), be_u32(bytes, 12));
    if rows == 0 || cols == 0 {
        return Err(IdxError::ZeroSize { rows, cols });
    }
    let too_large = IdxError::TooLarge { count, rows, cols };
    let as_usize = |v: u32| usize::try_from(v).map_err(|_| too_large);
    let (n, r, c) = (as_usize(count)?, as_usize(rows)?, as_usize(cols)?);
    let expected = n
        .checked_mul(r)
        .and_then(|v| v.checked_mul(c))
        .filter(|v| v.checked_add(IMAGES_HEADER).is_some())
        .ok_or(too_large)?;
    let data = check_len(bytes, IMAGES_HEADER, expected)?;
    Ok(IdxImages {
        count: n,
        rows: r,
        cols: c,
        data,
    })
}

/// Parses an IDX label file (magic `0x00000801`) into its labels, each `0..=9`. Never panics.
pub fn parse_labels(bytes: &[u8]) -> Result<&[u8], IdxError> {
    check_header(bytes, LABELS_HEADER, LABELS_MAGIC)?;
    let count = be_u32(bytes, 4);
    let expected = usize::try_from(count)
        .ok()
        .filter(|v| v.checked_add(LABELS_HEADER).is_some())
        .ok_or(IdxError::TooLarge {
            count,
            rows: 1,
            cols: 1,
        })?;
    let labels = check_len(bytes, LABELS_HEADER, expected)?;
    if let Some((index, &value)) = labels.iter().enumerate().find(|(_, &v)| v > 9) {
        return Err(IdxError::BadLabel { index, value });
    }
    Ok(labels)
}

/// The header of an IDX image file of `count` images of `rows` x `cols` pixels: what
/// precedes the `count * rows * cols` pixel bytes. [`parse_images`] reads it back.
pub const fn images_header(count: u32, rows: u32, cols: u32) -> [u8; IMAGES_HEADER] {
    let mut h = [0u8; IMAGES_HEADER];
    let words = [IMAGES_MAGIC, count, rows, cols];
    let mut i = 0;
    while i < IMAGES_HEADER {
        h[i] = words[i / 4].to_be_bytes()[i % 4];
        i += 1;
    }
    h
}

/// The header of an IDX label file of `count` labels (what precedes the label bytes).
/// [`parse_labels`] reads it back.
pub const fn labels_header(count: u32) -> [u8; LABELS_HEADER] {
    let m = LABELS_MAGIC.to_be_bytes();
    let c = count.to_be_bytes();
    [m[0], m[1], m[2], m[3], c[0], c[1], c[2], c[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images_file(count: u32, rows: u32, cols: u32, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for w in [IMAGES_MAGIC, count, rows, cols] {
            v.extend_from_slice(&w.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    fn labels_file(labels: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
        v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
        v.extend_from_slice(labels);
        v
    }

    #[test]
    fn valid_images() {
        let pixels: Vec<u8> = (0..18).collect();
        let file = images_file(3, 2, 3, &pixels);
        let imgs = parse_images(&file).unwrap();
        assert_eq!((imgs.count, imgs.rows, imgs.cols), (3, 2, 3));
        assert_eq!(imgs.image(0), Some(&pixels[0..6]));
        assert_eq!(imgs.image(2), Some(&pixels[12..18]));
        assert_eq!(imgs.image(3), None);
        assert_eq!(imgs.image(usize::MAX), None);
        assert_eq!(imgs.as_bytes(), &pixels[..]);
        assert_eq!(imgs.iter().len(), 3);
        assert!(imgs
            .iter()
            .zip(0..)
            .all(|(im, i)| Some(im) == imgs.image(i)));
    }

    #[test]
    fn zero_images_is_valid() {
        let file = images_file(0, 28, 28, &[]);
        let imgs = parse_images(&file).unwrap();
        assert_eq!(imgs.count, 0);
        assert_eq!(imgs.image(0), None);
        assert_eq!(imgs.iter().count(), 0);
    }

    #[test]
    fn valid_labels() {
        let file = labels_file(&[7, 2, 1, 0, 9]);
        assert_eq!(parse_labels(&file).unwrap(), &[7, 2, 1, 0, 9]);
    }

    #[test]
    fn wrong_magic() {
        let labels = labels_file(&[1, 2]);
        let err = parse_images(&labels).unwrap_err();
        assert_eq!(
            err,
            IdxError::BadMagic {
                found: LABELS_MAGIC,
                expected: IMAGES_MAGIC
            }
        );
        assert_eq!(
            err.to_string(),
            "not an IDX image file: magic 0x00000801 (expected 0x00000803)"
        );
        let images = images_file(1, 1, 1, &[0]);
        assert_eq!(
            parse_labels(&images).unwrap_err().to_string(),
            "not an IDX label file: magic 0x00000803 (expected 0x00000801)"
        );
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert!(matches!(parse_images(png), Err(IdxError::BadMagic { .. })));
    }

    #[test]
    #[cfg_attr(miri, ignore = "too slow under Miri; see .ci/run")]
    fn truncation_at_every_length() {
        let file = images_file(2, 3, 2, &[1; 12]);
        for len in 0..file.len() {
            let err = parse_images(&file[..len]).unwrap_err();
            if len < IMAGES_HEADER {
                assert_eq!(err, IdxError::TooShort { len, header: 16 }, "len {len}");
            } else {
                assert_eq!(
                    err,
                    IdxError::Truncated {
                        expected: 12,
                        actual: len - 16
                    }
                );
            }
        }
        assert_eq!(
            parse_images(&file[..20]).unwrap_err().to_string(),
            "truncated: header says 12 bytes of data, file has 4"
        );
        let labels = labels_file(&[1, 2, 3]);
        for len in 0..labels.len() {
            assert!(parse_labels(&labels[..len]).is_err(), "len {len}");
        }
    }

    #[test]
    fn trailing_bytes() {
        let mut file = images_file(1, 2, 2, &[0; 4]);
        file.push(0);
        assert_eq!(
            parse_images(&file),
            Err(IdxError::TrailingBytes {
                expected: 4,
                actual: 5
            })
        );
    }

    #[test]
    fn huge_dims_do_not_overflow() {
        let file = images_file(u32::MAX, u32::MAX, u32::MAX, &[0; 8]);
        assert!(matches!(
            parse_images(&file),
            Err(IdxError::TooLarge { .. }) | Err(IdxError::Truncated { .. })
        ));
        // (2^32 - 1)^2 * 2 does not fit in 64 bits: wrapping arithmetic would accept it.
        let file = images_file(u32::MAX, u32::MAX, 2, &[]);
        assert!(matches!(
            parse_images(&file),
            Err(IdxError::TooLarge { .. })
        ));
        // Fits in 64 bits but far exceeds the file.
        let file = images_file(u32::MAX, 65536, 65536, &[]);
        assert!(matches!(
            parse_images(&file),
            Err(IdxError::Truncated { actual: 0, .. }) | Err(IdxError::TooLarge { .. })
        ));
        let mut labels = labels_file(&[]);
        labels[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_labels(&labels).is_err());
    }

    #[test]
    fn zero_size_images() {
        let file = images_file(3, 0, 28, &[]);
        assert_eq!(
            parse_images(&file),
            Err(IdxError::ZeroSize { rows: 0, cols: 28 })
        );
    }

    #[test]
    fn bad_label_reports_index() {
        let file = labels_file(&[1, 2, 10, 255]);
        let err = parse_labels(&file).unwrap_err();
        assert_eq!(
            err,
            IdxError::BadLabel {
                index: 2,
                value: 10
            }
        );
        assert_eq!(err.to_string(), "label 2 is 10, not a digit 0..=9");
    }

    #[test]
    #[cfg_attr(miri, ignore = "too slow under Miri; see .ci/run")]
    fn random_bytes_never_panic() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..20_000 {
            let len = (next() % 40) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Most rounds get a valid magic so the parsers go past the first check.
            if len >= 4 && round % 4 != 0 {
                let magic = if round % 2 == 0 {
                    IMAGES_MAGIC
                } else {
                    LABELS_MAGIC
                };
                bytes[..4].copy_from_slice(&magic.to_be_bytes());
                // Small dimensions so that some files are complete.
                for b in (4..len.min(16)).filter(|i| i % 4 != 3) {
                    bytes[b] = 0;
                }
                for b in (7..len.min(16)).step_by(4) {
                    bytes[b] %= 4;
                }
            }
            if let Ok(imgs) = parse_images(&bytes) {
                for i in 0..imgs.count + 2 {
                    let _ = imgs.image(i);
                }
                assert_eq!(imgs.iter().count(), imgs.count);
            }
            if let Ok(labels) = parse_labels(&bytes) {
                assert!(labels.iter().all(|&l| l <= 9));
            }
        }
    }

    #[test]
    fn written_headers_parse_back() {
        let mut images = images_header(2, 2, 3).to_vec();
        images.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let parsed = parse_images(&images).unwrap();
        assert_eq!((parsed.count, parsed.rows, parsed.cols), (2, 2, 3));
        assert_eq!(parsed.image(1), Some(&[7, 8, 9, 10, 11, 12][..]));
        assert_eq!(images_file(2, 2, 3, &images[16..]), images);
        let mut labels = labels_header(3).to_vec();
        labels.extend_from_slice(&[7, 0, 9]);
        assert_eq!(parse_labels(&labels), Ok(&[7, 0, 9][..]));
    }
}
