//! Image files on the host: PNG of any colour type and bit depth, and IDX3 image files (raw
//! or gzip), decoded to 8-bit grey for [`pismo_core::preprocess`].
//!
//! Decoding is for untrusted input (uploads, files given on the command line): no input makes
//! it panic, and the size is checked before any pixel is decoded: PNGs are limited to
//! [`MAX_PNG_SIDE`] pixels a side, files (after gzip decompression) to [`MAX_FILE_BYTES`].
//!
//! Colour becomes grey by Rec. 601 luma (`0.299 R + 0.587 G + 0.114 B`), and transparency
//! is composited over **white**: a transparent canvas with black strokes (what a browser's
//! `canvas.toBlob()` gives) is dark ink on light paper, which the preprocessing recognises.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use pismo_core::idx::{self, IdxError};
use pismo_core::preprocess::GreyImage;

/// Largest accepted PNG width or height.
pub const MAX_PNG_SIDE: u32 = 4096;
/// Largest accepted image file, after gzip decompression (MNIST's training images are 47 MB).
pub const MAX_FILE_BYTES: u64 = 256 << 20;

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// An owned 8-bit grey image, row-major, 0 = black, 255 = white;
/// `data.len() == width * height`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedGrey {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height` bytes, row after row.
    pub data: Vec<u8>,
}

impl OwnedGrey {
    /// Borrows the image for [`pismo_core::preprocess`].
    pub fn as_grey(&self) -> GreyImage<'_> {
        GreyImage {
            width: self.width,
            height: self.height,
            data: &self.data,
        }
    }
}

/// Why an image could not be read. `Display` gives the whole story in one line (including
/// the path for [`ImageError::File`]), so `source()` is always `None`.
#[derive(Debug)]
pub enum ImageError {
    /// The bytes do not start with the PNG signature.
    NotPng,
    /// A PNG larger than [`MAX_PNG_SIDE`] on a side (refused before decoding its pixels).
    TooLarge {
        /// Width in the PNG header.
        width: u32,
        /// Height in the PNG header.
        height: u32,
    },
    /// A PNG that the decoder rejects (truncated, bad checksum, bad chunk...).
    Corrupt(String),
    /// A file that is neither PNG nor IDX3, raw or gzip.
    UnknownFormat,
    /// An IDX file that does not parse.
    Idx(IdxError),
    /// An IDX file with no images.
    NoImages,
    /// A gzip stream that does not decompress.
    Gzip(String),
    /// A file larger than [`MAX_FILE_BYTES`] (after decompression).
    FileTooLarge,
    /// The file could not be read.
    Io(std::io::Error),
    /// Any of the above, in the file at `path`.
    File {
        /// The file that failed.
        path: PathBuf,
        /// What went wrong.
        error: Box<ImageError>,
    },
}

impl ImageError {
    /// The file the error is about, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            ImageError::File { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The error without its path.
    pub fn kind(&self) -> &ImageError {
        match self {
            ImageError::File { error, .. } => error.kind(),
            e => e,
        }
    }

    fn in_file(self, path: &Path) -> ImageError {
        ImageError::File {
            path: path.to_path_buf(),
            error: Box::new(self),
        }
    }
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageError::NotPng => f.write_str("not a PNG file"),
            ImageError::TooLarge { width, height } => write!(
                f,
                "the image is {width}x{height} pixels, larger than the limit of \
                 {MAX_PNG_SIDE}x{MAX_PNG_SIDE}"
            ),
            ImageError::Corrupt(msg) => write!(f, "corrupt PNG: {msg}"),
            ImageError::UnknownFormat => {
                f.write_str("not an image file: expected PNG or IDX3 images (raw or gzip)")
            }
            ImageError::Idx(e) => write!(f, "{e}"),
            ImageError::NoImages => f.write_str("the IDX file holds no images"),
            ImageError::Gzip(msg) => write!(f, "corrupt gzip data: {msg}"),
            ImageError::FileTooLarge => write!(
                f,
                "the file is larger than the limit of {} MiB",
                MAX_FILE_BYTES >> 20
            ),
            ImageError::Io(e) => write!(f, "{e}"),
            ImageError::File { path, error } => write!(f, "{}: {error}", path.display()),
        }
    }
}

impl std::error::Error for ImageError {}

impl From<IdxError> for ImageError {
    fn from(e: IdxError) -> Self {
        ImageError::Idx(e)
    }
}

fn corrupt(e: png::DecodingError) -> ImageError {
    match e {
        png::DecodingError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            ImageError::Corrupt("truncated".into())
        }
        png::DecodingError::LimitsExceeded => {
            ImageError::Corrupt("decoder memory limit exceeded".into())
        }
        e => ImageError::Corrupt(e.to_string()),
    }
}

/// Rec. 601 luma of an 8-bit RGB pixel, rounded.
fn luma(r: u8, g: u8, b: u8) -> u8 {
    let y = 299 * u32::from(r) + 587 * u32::from(g) + 114 * u32::from(b);
    ((y + 500) / 1000) as u8
}

/// Grey level `v` with opacity `a` over white, rounded.
fn over_white(v: u8, a: u8) -> u8 {
    let (v, a) = (u32::from(v), u32::from(a));
    ((v * a + 255 * (255 - a) + 127) / 255) as u8
}

/// Most bytes [`decode_png`] holds per pixel while it decodes: the decoded frame (at most 4,
/// RGBA after 16-bit samples are stripped to 8) and the grey copy (1).
pub const PNG_BYTES_PER_PIXEL: u64 = 5;

/// The most memory [`decode_png`] takes for its pixels on a `width` x `height` PNG, in
/// bytes: `width * height * PNG_BYTES_PER_PIXEL`. A server can budget decodes with it
/// before it decodes (see [`png_size`]).
pub fn png_decode_cost(width: u32, height: u32) -> u64 {
    u64::from(width) * u64::from(height) * PNG_BYTES_PER_PIXEL
}

/// The width and height in a PNG's header, read without decoding any pixel, with the same
/// checks as [`decode_png`] (signature, at most [`MAX_PNG_SIDE`] a side, not empty).
pub fn png_size(bytes: &[u8]) -> Result<(u32, u32), ImageError> {
    let mut decoder = header_checked(bytes)?;
    // The header was read and checked: this returns it again.
    let header = decoder.read_header_info().map_err(corrupt)?;
    Ok((header.width, header.height))
}

/// A decoder past the PNG header, once the header is checked.
fn header_checked(bytes: &[u8]) -> Result<png::Decoder<&[u8]>, ImageError> {
    if !bytes.starts_with(&PNG_SIGNATURE) {
        return Err(ImageError::NotPng);
    }
    let mut decoder = png::Decoder::new(bytes);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let header = decoder.read_header_info().map_err(corrupt)?;
    let (width, height) = (header.width, header.height);
    if width > MAX_PNG_SIDE || height > MAX_PNG_SIDE {
        return Err(ImageError::TooLarge { width, height });
    }
    if width == 0 || height == 0 {
        return Err(ImageError::Corrupt(format!("{width}x{height} pixels")));
    }
    Ok(decoder)
}

/// Decodes a PNG of any colour type and bit depth into 8-bit grey (see the module doc).
/// Only the first frame of an animated PNG is read. Its pixels take at most
/// [`png_decode_cost`] bytes.
pub fn decode_png(bytes: &[u8]) -> Result<OwnedGrey, ImageError> {
    let decoder = header_checked(bytes)?;
    let mut reader = decoder.read_info().map_err(corrupt)?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf).map_err(corrupt)?;
    let (w, h) = (frame.width as usize, frame.height as usize);
    let channels = match frame.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => {
            return Err(ImageError::Corrupt("palette was not expanded".into()))
        }
    };
    if frame.bit_depth != png::BitDepth::Eight || frame.line_size < w * channels {
        return Err(ImageError::Corrupt(format!(
            "unexpected decoded layout {:?} {:?}",
            frame.color_type, frame.bit_depth
        )));
    }
    let mut data = Vec::with_capacity(w * h);
    for line in buf.chunks(frame.line_size.max(1)).take(h) {
        let line = line.get(..w * channels).unwrap_or(&[]);
        data.extend(line.chunks_exact(channels).map(|p| match *p {
            [v] => v,
            [v, a] => over_white(v, a),
            [r, g, b] => luma(r, g, b),
            [r, g, b, a] => over_white(luma(r, g, b), a),
            _ => 255,
        }));
    }
    if data.len() != w * h {
        return Err(ImageError::Corrupt("short image data".into()));
    }
    Ok(OwnedGrey {
        width: w,
        height: h,
        data,
    })
}

/// Encodes a grey image as an 8-bit greyscale PNG.
///
/// # Panics
/// If `img` breaks the invariants [`GreyImage::new`] checks (its fields are public); images
/// from `GreyImage::new` and [`OwnedGrey::as_grey`] always encode.
pub fn encode_png(img: &GreyImage) -> Vec<u8> {
    let mut out = Vec::new();
    let width = u32::try_from(img.width).expect("image width fits in u32");
    let height = u32::try_from(img.height).expect("image height fits in u32");
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder
        .write_header()
        .expect("a non-empty grey image has a valid PNG header");
    writer
        .write_image_data(img.data)
        .expect("grey image data is width * height bytes");
    writer.finish().expect("writing to memory cannot fail");
    out
}

fn read_limited(reader: impl Read, gzip: bool) -> Result<Vec<u8>, ImageError> {
    crate::known::read_limited(reader, MAX_FILE_BYTES)
        .map_err(|e| {
            if gzip {
                ImageError::Gzip(e.to_string())
            } else {
                ImageError::Io(e)
            }
        })?
        .ok_or(ImageError::FileTooLarge)
}

/// Decodes the bytes of an image file: a PNG (one image) or an IDX3 image file (all its
/// images), either of them raw or gzip-compressed (detected by the magic bytes `1f 8b`).
pub fn decode_image_file(bytes: &[u8]) -> Result<Vec<OwnedGrey>, ImageError> {
    if bytes.starts_with(&GZIP_MAGIC) {
        let inner = read_limited(flate2::read::GzDecoder::new(bytes), true)?;
        if inner.starts_with(&GZIP_MAGIC) {
            return Err(ImageError::UnknownFormat);
        }
        return decode_image_file(&inner);
    }
    if bytes.starts_with(&PNG_SIGNATURE) {
        return Ok(vec![decode_png(bytes)?]);
    }
    // IDX: two zero bytes, then type 0x08 (unsigned bytes); `parse_images` checks the rest.
    if bytes.starts_with(&[0, 0, 0x08]) {
        let images = idx::parse_images(bytes)?;
        if images.count == 0 {
            return Err(ImageError::NoImages);
        }
        return Ok(images
            .iter()
            .map(|data| OwnedGrey {
                width: images.cols,
                height: images.rows,
                data: data.to_vec(),
            })
            .collect());
    }
    Err(ImageError::UnknownFormat)
}

/// Reads a PNG or IDX3 image file, raw or gzip (see [`decode_image_file`]). Errors are
/// [`ImageError::File`] and name the path.
pub fn read_image_file(path: &Path) -> Result<Vec<OwnedGrey>, ImageError> {
    let read = || {
        let file = std::fs::File::open(path).map_err(ImageError::Io)?;
        let bytes = read_limited(file, false)?;
        decode_image_file(&bytes)
    };
    read().map_err(|e| e.in_file(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_of(
        w: u32,
        h: u32,
        color: png::ColorType,
        depth: png::BitDepth,
        data: &[u8],
        palette: Option<(&[u8], &[u8])>,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(color);
        enc.set_depth(depth);
        if let Some((plte, trns)) = palette {
            enc.set_palette(plte.to_vec());
            if !trns.is_empty() {
                enc.set_trns(trns.to_vec());
            }
        }
        let mut wr = enc.write_header().unwrap();
        wr.write_image_data(data).unwrap();
        wr.finish().unwrap();
        out
    }

    #[test]
    fn round_trip() {
        let data: Vec<u8> = (0..=255u8).chain(0..=43).collect();
        let img = GreyImage::new(20, 15, &data).unwrap();
        let png = encode_png(&img);
        let back = decode_png(&png).unwrap();
        assert_eq!((back.width, back.height), (20, 15));
        assert_eq!(back.data, data);
        assert_eq!(back.as_grey().data, &data[..]);
    }

    #[test]
    fn transparent_rgba_canvas_is_dark_ink_on_white() {
        // A transparent canvas (alpha 0, colour black as browsers store it) with one opaque
        // black stroke pixel and one half-transparent red pixel.
        let mut data = vec![0u8; 3 * 4];
        data[4..8].copy_from_slice(&[0, 0, 0, 255]);
        data[8..12].copy_from_slice(&[255, 0, 0, 128]);
        let png = png_of(
            3,
            1,
            png::ColorType::Rgba,
            png::BitDepth::Eight,
            &data,
            None,
        );
        let img = decode_png(&png).unwrap();
        // Red's luma is 76; half over white: (76 * 128 + 255 * 127) / 255 = 165.
        assert_eq!(img.data, vec![255, 0, 165]);
    }

    #[test]
    fn rgb_uses_rec601() {
        let data = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 10, 10];
        let png = png_of(4, 1, png::ColorType::Rgb, png::BitDepth::Eight, &data, None);
        assert_eq!(decode_png(&png).unwrap().data, vec![76, 150, 29, 10]);
    }

    #[test]
    fn grey_alpha_and_sixteen_bit() {
        let ga = png_of(
            2,
            1,
            png::ColorType::GrayscaleAlpha,
            png::BitDepth::Eight,
            &[0, 0, 0, 255],
            None,
        );
        assert_eq!(decode_png(&ga).unwrap().data, vec![255, 0]);
        // 16-bit grey: big-endian samples, the high byte survives.
        let g16 = png_of(
            3,
            1,
            png::ColorType::Grayscale,
            png::BitDepth::Sixteen,
            &[0xff, 0xff, 0x80, 0x00, 0x00, 0x10],
            None,
        );
        assert_eq!(decode_png(&g16).unwrap().data, vec![255, 128, 0]);
        let rgba16 = png_of(
            1,
            1,
            png::ColorType::Rgba,
            png::BitDepth::Sixteen,
            &[0, 0, 0, 0, 0, 0, 0xff, 0xff],
            None,
        );
        assert_eq!(decode_png(&rgba16).unwrap().data, vec![0]);
    }

    #[test]
    fn low_bit_depth_grey_is_scaled() {
        // 1-bit grey: 0b1010_0000 → white, black, white, black.
        let g1 = png_of(
            4,
            1,
            png::ColorType::Grayscale,
            png::BitDepth::One,
            &[0b1010_0000],
            None,
        );
        assert_eq!(decode_png(&g1).unwrap().data, vec![255, 0, 255, 0]);
    }

    #[test]
    fn palette_with_transparency() {
        let plte = [0, 0, 0, 255, 255, 255, 0, 0, 255];
        // Entry 0 (black) fully transparent, the others opaque.
        let png = png_of(
            3,
            1,
            png::ColorType::Indexed,
            png::BitDepth::Eight,
            &[0, 1, 2],
            Some((&plte, &[0])),
        );
        assert_eq!(decode_png(&png).unwrap().data, vec![255, 255, 29]);
        // 2-bit palette without transparency.
        let png = png_of(
            3,
            1,
            png::ColorType::Indexed,
            png::BitDepth::Two,
            &[0b0001_1000],
            Some((&plte, &[])),
        );
        assert_eq!(decode_png(&png).unwrap().data, vec![0, 255, 29]);
    }

    #[test]
    fn too_large_is_refused_from_the_header() {
        // Only the header is needed: a truncated 5000x10 file is refused for its size.
        let png = png_of(
            5000,
            10,
            png::ColorType::Grayscale,
            png::BitDepth::Eight,
            &vec![0; 50_000],
            None,
        );
        let err = decode_png(&png[..40]).unwrap_err();
        assert!(matches!(
            err,
            ImageError::TooLarge {
                width: 5000,
                height: 10
            }
        ));
        assert_eq!(
            err.to_string(),
            "the image is 5000x10 pixels, larger than the limit of 4096x4096"
        );
    }

    #[test]
    fn png_size_reads_only_the_header() {
        let png = png_of(
            300,
            20,
            png::ColorType::Rgba,
            png::BitDepth::Sixteen,
            &vec![0; 300 * 20 * 8],
            None,
        );
        // The header alone (signature + IHDR) is enough.
        assert_eq!(png_size(&png[..33]).unwrap(), (300, 20));
        assert_eq!(png_decode_cost(300, 20), 300 * 20 * 5);
        assert!(matches!(
            png_size(&png_of(
                5000,
                1,
                png::ColorType::Grayscale,
                png::BitDepth::Eight,
                &[0; 5000],
                None
            )),
            Err(ImageError::TooLarge { .. })
        ));
        assert!(matches!(png_size(b"GIF89a"), Err(ImageError::NotPng)));
    }

    #[test]
    fn garbage_and_truncated() {
        assert!(matches!(decode_png(b""), Err(ImageError::NotPng)));
        assert_eq!(
            decode_png(b"GIF89a...").unwrap_err().to_string(),
            "not a PNG file"
        );
        let data: Vec<u8> = (0..64 * 64).map(|i| (i * 7 % 256) as u8).collect();
        let png = encode_png(&GreyImage::new(64, 64, &data).unwrap());
        // Cut anywhere: an error. (Only a missing CRC of the final, empty IEND chunk goes
        // unnoticed once all pixels are in, as in browsers.)
        for len in 0..png.len() - 4 {
            let r = decode_png(&png[..len]);
            assert!(r.is_err(), "truncated to {len} bytes decoded");
        }
        assert!(decode_png(&png[..png.len() - 20])
            .unwrap_err()
            .to_string()
            .starts_with("corrupt PNG"));
        // Flipped bytes anywhere: an error or an image, never a panic.
        let mut state = 12345u32;
        for _ in 0..2000 {
            let mut bad = png.clone();
            for _ in 0..3 {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let i = (state >> 8) as usize % bad.len();
                bad[i] ^= (state >> 3) as u8 | 1;
            }
            let _ = decode_png(&bad);
            let _ = decode_image_file(&bad);
        }
    }

    #[test]
    fn image_files_png_idx_and_gzip() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("pismo-image-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();

        let mut idx3 = Vec::new();
        for w in [0x803u32, 2, 2, 3] {
            idx3.extend_from_slice(&w.to_be_bytes());
        }
        idx3.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&idx3).unwrap();
        let idx3_gz = gz.finish().unwrap();
        let png = encode_png(&GreyImage::new(2, 1, &[0, 255]).unwrap());

        for (name, bytes, n) in [
            ("a.idx3", &idx3, 2),
            ("a.idx3.gz", &idx3_gz, 2),
            ("a.png", &png, 1),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            let imgs = read_image_file(&path).unwrap();
            assert_eq!(imgs.len(), n, "{name}");
        }
        let imgs = read_image_file(&dir.join("a.idx3.gz")).unwrap();
        assert_eq!((imgs[1].width, imgs[1].height), (3, 2));
        assert_eq!(imgs[1].data, vec![7, 8, 9, 10, 11, 12]);

        let missing = dir.join("missing.png");
        let err = read_image_file(&missing).unwrap_err();
        assert_eq!(err.path(), Some(missing.as_path()));
        assert!(matches!(err.kind(), ImageError::Io(_)));
        assert!(err.to_string().starts_with(&missing.display().to_string()));

        let text = dir.join("notes.txt");
        std::fs::write(&text, "hello").unwrap();
        let err = read_image_file(&text).unwrap_err();
        assert!(matches!(err.kind(), ImageError::UnknownFormat));
        assert!(
            err.to_string().contains("notes.txt: not an image file"),
            "{err}"
        );

        let labels = dir.join("labels.idx1");
        std::fs::write(&labels, [0, 0, 8, 1, 0, 0, 0, 1, 7]).unwrap();
        let err = read_image_file(&labels).unwrap_err();
        assert!(err.to_string().contains("not an IDX image file"), "{err}");

        let bad_gz = dir.join("bad.gz");
        std::fs::write(&bad_gz, &idx3_gz[..idx3_gz.len() / 2]).unwrap();
        assert!(matches!(
            read_image_file(&bad_gz).unwrap_err().kind(),
            ImageError::Gzip(_)
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
