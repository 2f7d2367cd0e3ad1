//! The model file: what a trained model looks like on disk and in flash.
//!
//! ```text
//! offset  size  field
//! 0       8     magic  b"PISMOMDL"
//! 8       2     format version, u16 little-endian (this build writes FORMAT_VERSION)
//! 10      4     body length N, u32 little-endian
//! 14      N     body: postcard of Body { meta, tensors }, then (version 2 on) of `deskew`,
//!               then (version 3) of `kept`
//! 14+N    4     CRC-32 (IEEE) of bytes 0..14+N, u32 little-endian
//! ```
//! Version 2 added one postcard `bool` after the body, [`Meta::deskew`]: whether the model's
//! input is deskewed ([`crate::deskew`]). Version 1 files have none and mean `false`.
//! Version 3 adds one postcard byte string after it: an int8 model's `kept` bitmap, the
//! pixels whose first-layer rows `w1` holds ([`crate::quant`], "Pruned first layers"). Only a
//! pruned int8 model is written as version 3; every other file is still written as version
//! 2, byte for byte as before.
//! Tensors are postcard byte strings holding little-endian `f32`s in the row-major shapes of
//! [`crate::mlp::Mlp`] (`w1` is `(IN, H)`), or, for an int8 model, `i8` weights with `f32`
//! per-row scales ([`crate::quant`]), so a decoder can borrow them straight from the file (or
//! from flash) without copying; int8 inference runs on the borrowed bytes. Decoding checks, in order: length, magic, version, CRC, postcard, tensor
//! shapes; each failure is its own [`FormatError`] that says what to do. No input makes
//! [`decode`] panic. Every format version this crate ever wrote stays readable (a frozen
//! fixture in the tests keeps that true).

use serde::{Deserialize, Serialize};

use crate::hyper::{Hyper, Metrics};
use crate::mlp::{Mlp, CLASSES, INPUT};
use crate::quant::QView;

#[cfg(target_endian = "big")]
compile_error!(
    "pismo's model format borrows little-endian tensors; big-endian targets are not supported"
);

/// First eight bytes of every model file.
pub const MAGIC: [u8; 8] = *b"PISMOMDL";
/// The newest format version this build writes (for pruned int8 models; others are written
/// as version 2) and reads.
pub const FORMAT_VERSION: u16 = 3;
/// The version of every file that needs nothing of version 3.
const PLAIN_VERSION: u16 = 2;
const HEADER: usize = 14;
const TRAILER: usize = 4;

/// Everything about a model except its weights.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Meta<'a> {
    /// Registered model name.
    pub name: &'a str,
    /// Version within the name, from 1.
    pub version: u32,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix: u64,
    /// The hyperparameters it was trained with.
    pub hyper: Hyper,
    /// Its final metrics.
    pub metrics: Metrics,
    /// The run that produced it (empty if none).
    pub run_id: &'a str,
    /// What it was trained on, e.g. the SHA-256 of the training images.
    pub dataset: &'a str,
    /// `NAME@V` of the model it was derived from (empty if none), e.g. for quantized copies.
    pub parent: &'a str,
    /// Whether every input is deskewed before the network sees it ([`crate::deskew`]), as it
    /// was in training. Stored after the body (format version 2), so version 1 files stay
    /// readable: they have none and mean `false`.
    #[serde(skip)]
    pub deskew: bool,
}

/// A byte string that serialises as postcard bytes (length + raw), borrowed on decode.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Bytes<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'a [u8]>::deserialize(d).map(Bytes)
    }
}

/// The weights, borrowed from the file.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
enum RawTensors<'a> {
    /// 32-bit floats, little-endian.
    F32 {
        hidden: u32,
        #[serde(borrow)]
        w1: Bytes<'a>,
        #[serde(borrow)]
        b1: Bytes<'a>,
        #[serde(borrow)]
        w2: Bytes<'a>,
        #[serde(borrow)]
        b2: Bytes<'a>,
    },
    /// Int8 weights with per-output-row `f32` scales (see [`crate::quant`]).
    I8 {
        hidden: u32,
        #[serde(borrow)]
        w1: Bytes<'a>,
        #[serde(borrow)]
        s1: Bytes<'a>,
        #[serde(borrow)]
        b1: Bytes<'a>,
        #[serde(borrow)]
        w2: Bytes<'a>,
        #[serde(borrow)]
        s2: Bytes<'a>,
        #[serde(borrow)]
        b2: Bytes<'a>,
        act_scale: f32,
    },
}

#[derive(Serialize, Deserialize)]
struct Body<'a> {
    #[serde(borrow)]
    meta: Meta<'a>,
    #[serde(borrow)]
    tensors: RawTensors<'a>,
}

/// Weights of a decoded model, borrowed from the file's bytes (shapes already checked).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tensors<'a> {
    /// `f32` weights.
    F32(F32Tensors<'a>),
    /// Int8 weights, ready for [`QView::logits`] in place.
    I8(QView<'a>),
}

/// `f32` weights borrowed from a file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct F32Tensors<'a> {
    hidden: u32,
    w1: &'a [u8],
    b1: &'a [u8],
    w2: &'a [u8],
    b2: &'a [u8],
}

impl<'a> Tensors<'a> {
    /// Hidden units.
    pub fn hidden_size(&self) -> u32 {
        match self {
            Tensors::F32(t) => t.hidden,
            Tensors::I8(q) => q.hidden_size() as u32,
        }
    }

    /// Input pixels with first-layer weights: all 784, or fewer for a pruned int8 model
    /// ([`crate::quant`], "Pruned first layers").
    pub fn input_pixels(&self) -> usize {
        match self {
            Tensors::F32(_) => INPUT,
            Tensors::I8(q) => q.input_pixels(),
        }
    }

    /// Bits of a first-layer weight: 32 for f32, 8 or 7 for int8
    /// ([`QView::first_layer_kind`]).
    pub fn first_layer_bits(&self) -> u8 {
        match self {
            Tensors::F32(_) => 32,
            Tensors::I8(q) => q.first_layer_kind().bits(),
        }
    }

    /// Weights and biases stored.
    pub fn params(&self) -> usize {
        let h = self.hidden_size() as usize;
        self.input_pixels() * h + h + h * CLASSES + CLASSES
    }

    /// Weight type: `"f32"` or `"int8"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Tensors::F32(_) => "f32",
            Tensors::I8(_) => "int8",
        }
    }

    /// Copies `f32` weights into `mlp`, whose `H` must equal [`Self::hidden_size`]. Refuses
    /// non-finite weights, which no training run registers, and int8 models.
    pub fn load_into<const H: usize>(&self, mlp: &mut Mlp<H>) -> Result<(), FormatError> {
        match self {
            Tensors::F32(t) => t.load_into(mlp),
            Tensors::I8(_) => Err(FormatError::Malformed("an int8 model has no f32 weights")),
        }
    }
}

impl F32Tensors<'_> {
    fn load_into<const H: usize>(&self, mlp: &mut Mlp<H>) -> Result<(), FormatError> {
        if H != self.hidden as usize {
            return Err(FormatError::HiddenMismatch {
                file: self.hidden,
                expected: H as u32,
            });
        }
        copy_f32(self.w1, mlp.w1.as_flattened_mut())?;
        copy_f32(self.b1, &mut mlp.b1)?;
        copy_f32(self.w2, mlp.w2.as_flattened_mut())?;
        copy_f32(self.b2, &mut mlp.b2)
    }
}

fn copy_f32(src: &[u8], dst: &mut [f32]) -> Result<(), FormatError> {
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(4)) {
        let v = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
        if !v.is_finite() {
            return Err(FormatError::NonFinite);
        }
        *d = v;
    }
    Ok(())
}

/// A decoded model file, borrowing from its bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Model<'a> {
    /// Metadata.
    pub meta: Meta<'a>,
    /// Weights.
    pub tensors: Tensors<'a>,
}

/// Why bytes are not a usable model file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// Fewer bytes than the header or the body length needs.
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        have: usize,
    },
    /// The magic bytes are wrong.
    NotAModel,
    /// Written by a newer pismo.
    UnsupportedVersion {
        /// Version in the file.
        found: u16,
        /// Newest version this build reads.
        supported: u16,
    },
    /// The CRC does not match: the bytes were changed after writing.
    Checksum {
        /// CRC stored in the file.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// The body does not decode, or tensor shapes are inconsistent.
    Malformed(&'static str),
    /// A weight is NaN or infinite.
    NonFinite,
    /// The model's hidden size differs from the instance it is loaded into.
    HiddenMismatch {
        /// Hidden size in the file.
        file: u32,
        /// Hidden size of the destination.
        expected: u32,
    },
    /// The output buffer is too small; `needed` bytes are required.
    BufferTooSmall {
        /// Bytes required.
        needed: usize,
    },
}

impl core::fmt::Display for FormatError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            FormatError::Truncated { needed, have } => {
                write!(f, "model file is truncated: {have} bytes, needs {needed}")
            }
            FormatError::NotAModel => f.write_str("not a pismo model file (bad magic bytes)"),
            FormatError::UnsupportedVersion { found, supported } => write!(
                f,
                "model file format version {found} is newer than this pismo reads (up to {supported}): upgrade pismo"
            ),
            FormatError::Checksum { stored, computed } => write!(
                f,
                "model file is corrupted: checksum {computed:08x} does not match stored {stored:08x}"
            ),
            FormatError::Malformed(what) => write!(f, "model file is malformed: {what}"),
            FormatError::NonFinite => f.write_str("model file holds a NaN or infinite weight"),
            FormatError::HiddenMismatch { file, expected } => {
                write!(f, "model has {file} hidden units, expected {expected}")
            }
            FormatError::BufferTooSmall { needed } => {
                write!(f, "buffer too small for the model file: {needed} bytes needed")
            }
        }
    }
}

fn f32_bytes(v: &[f32]) -> &[u8] {
    bytemuck::cast_slice(v)
}

fn body<'a, const H: usize>(meta: &Meta<'a>, mlp: &'a Mlp<H>) -> Body<'a> {
    Body {
        meta: *meta,
        tensors: RawTensors::F32 {
            hidden: H as u32,
            w1: Bytes(f32_bytes(mlp.w1.as_flattened())),
            b1: Bytes(f32_bytes(&mlp.b1)),
            w2: Bytes(f32_bytes(mlp.w2.as_flattened())),
            b2: Bytes(f32_bytes(&mlp.b2)),
        },
    }
}

fn body_int8<'a>(meta: &Meta<'a>, q: &QView<'a>) -> Body<'a> {
    Body {
        meta: *meta,
        tensors: RawTensors::I8 {
            hidden: q.hidden as u32,
            w1: Bytes(q.w1),
            s1: Bytes(q.s1),
            b1: Bytes(q.b1),
            w2: Bytes(q.w2),
            s2: Bytes(q.s2),
            b2: Bytes(q.b2),
            act_scale: q.act_scale,
        },
    }
}

/// What follows a file's header: the body, the deskew flag (version 2 on) and, for a pruned
/// int8 model only, its `kept` bitmap (version 3).
struct Payload<'a> {
    body: Body<'a>,
    kept: &'a [u8],
}

impl Serialize for Payload<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let deskew = self.body.meta.deskew;
        if self.kept.is_empty() {
            (&self.body, deskew).serialize(s)
        } else {
            (&self.body, deskew, Bytes(self.kept)).serialize(s)
        }
    }
}

impl Payload<'_> {
    /// The version a file of this payload is written as: only a bitmap needs version 3.
    fn version(&self) -> u16 {
        if self.kept.is_empty() {
            PLAIN_VERSION
        } else {
            FORMAT_VERSION
        }
    }

    /// Exact size of the file.
    fn file_len(&self) -> usize {
        let size = postcard::serialize_with_flavor(self, postcard::ser_flavors::Size::default());
        HEADER + size.unwrap_or(0) + TRAILER
    }

    /// Writes the file (header, payload, CRC) into `buf` and returns its length.
    fn write(&self, buf: &mut [u8]) -> Result<usize, FormatError> {
        let needed = self.file_len();
        if buf.len() < needed {
            return Err(FormatError::BufferTooSmall { needed });
        }
        let n = postcard::to_slice(self, &mut buf[HEADER..needed - TRAILER])
            .map_err(|_| FormatError::BufferTooSmall { needed })?
            .len();
        buf[..8].copy_from_slice(&MAGIC);
        buf[8..10].copy_from_slice(&self.version().to_le_bytes());
        buf[10..14].copy_from_slice(&(n as u32).to_le_bytes());
        let crc = crc32(&buf[..HEADER + n]);
        buf[HEADER + n..HEADER + n + TRAILER].copy_from_slice(&crc.to_le_bytes());
        Ok(HEADER + n + TRAILER)
    }
}

fn payload_int8<'a>(meta: &Meta<'a>, q: &QView<'a>) -> Payload<'a> {
    Payload {
        body: body_int8(meta, q),
        kept: q.kept,
    }
}

fn payload<'a, const H: usize>(meta: &Meta<'a>, mlp: &'a Mlp<H>) -> Payload<'a> {
    Payload {
        body: body(meta, mlp),
        kept: &[],
    }
}

/// Exact size of the file [`encode_int8`] writes.
pub fn encoded_len_int8(meta: &Meta<'_>, q: &QView<'_>) -> usize {
    payload_int8(meta, q).file_len()
}

/// Writes an int8 model file into `buf` and returns its length.
pub fn encode_int8(meta: &Meta<'_>, q: &QView<'_>, buf: &mut [u8]) -> Result<usize, FormatError> {
    payload_int8(meta, q).write(buf)
}

/// Exact size of the file [`encode`] writes.
pub fn encoded_len<const H: usize>(meta: &Meta<'_>, mlp: &Mlp<H>) -> usize {
    payload(meta, mlp).file_len()
}

/// Writes the model file into `buf` and returns its length.
pub fn encode<const H: usize>(
    meta: &Meta<'_>,
    mlp: &Mlp<H>,
    buf: &mut [u8],
) -> Result<usize, FormatError> {
    payload(meta, mlp).write(buf)
}

/// Reads only the format version, e.g. to say which pismo wrote a file.
pub fn peek_version(bytes: &[u8]) -> Result<u16, FormatError> {
    peek_version_as(bytes, MAGIC)
}

/// The format version of a file that starts with `magic`.
fn peek_version_as(bytes: &[u8], magic: [u8; 8]) -> Result<u16, FormatError> {
    if bytes.len() < HEADER {
        return Err(FormatError::Truncated {
            needed: HEADER,
            have: bytes.len(),
        });
    }
    if bytes[..8] != magic {
        return Err(FormatError::NotAModel);
    }
    Ok(u16::from_le_bytes([bytes[8], bytes[9]]))
}

/// Decodes and checks a model file, borrowing metadata strings and tensors from `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Model<'_>, FormatError> {
    decode_as(bytes, MAGIC)
}

/// Gives the file in `buf` (a whole model file, its tensors rewritten in place) the magic
/// `magic` and a checksum of its new bytes: how [`crate::paired`] makes a firmware image
/// that [`decode`] refuses and [`decode_as`] with that magic checks like a model file.
pub(crate) fn reseal(buf: &mut [u8], magic: [u8; 8]) {
    let end = buf.len() - TRAILER;
    buf[..8].copy_from_slice(&magic);
    let crc = crc32(&buf[..end]);
    buf[end..].copy_from_slice(&crc.to_le_bytes());
}

/// [`decode`] of a file that starts with `magic` in place of [`MAGIC`].
pub(crate) fn decode_as(bytes: &[u8], magic: [u8; 8]) -> Result<Model<'_>, FormatError> {
    let version = peek_version_as(bytes, magic)?;
    if version == 0 || version > FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let (body, kept) = decode_body(checked_body_bytes(bytes)?, version)?;
    Ok(Model {
        meta: body.meta,
        tensors: checked_tensors(body.tensors, body.meta.deskew, kept)?,
    })
}

/// The body's bytes of a file whose header has been read: the file must be exactly header,
/// body and trailer long, and its checksum must match.
fn checked_body_bytes(bytes: &[u8]) -> Result<&[u8], FormatError> {
    let n = u32::from_le_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]) as usize;
    let needed = HEADER.saturating_add(n).saturating_add(TRAILER);
    if bytes.len() < needed {
        return Err(FormatError::Truncated {
            needed,
            have: bytes.len(),
        });
    }
    if bytes.len() > needed {
        return Err(FormatError::Malformed("trailing bytes after the checksum"));
    }
    let stored = u32::from_le_bytes([
        bytes[needed - 4],
        bytes[needed - 3],
        bytes[needed - 2],
        bytes[needed - 1],
    ]);
    let computed = crc32(&bytes[..HEADER + n]);
    if stored != computed {
        return Err(FormatError::Checksum { stored, computed });
    }
    Ok(&bytes[HEADER..HEADER + n])
}

/// The body of a file of format `version` (from 2 on, the deskew flag follows it; from 3
/// on, the `kept` bitmap), which must use every byte, and the bitmap (empty before 3).
fn decode_body(bytes: &[u8], version: u16) -> Result<(Body<'_>, &[u8]), FormatError> {
    let (mut body, mut rest): (Body<'_>, _) = postcard::take_from_bytes(bytes)
        .map_err(|_| FormatError::Malformed("body does not decode"))?;
    if version >= 2 {
        (body.meta.deskew, rest) = postcard::take_from_bytes(rest)
            .map_err(|_| FormatError::Malformed("the deskew flag does not decode"))?;
    }
    let mut kept = Bytes(&[]);
    if version >= 3 {
        (kept, rest) = postcard::take_from_bytes(rest)
            .map_err(|_| FormatError::Malformed("the kept-pixel bitmap does not decode"))?;
    }
    if !rest.is_empty() {
        return Err(FormatError::Malformed("unused bytes in the body"));
    }
    Ok((body, kept.0))
}

/// The stored tensors, their sizes checked against the hidden size (and, for int8, every
/// scale and bias finite).
fn checked_tensors<'a>(
    raw: RawTensors<'a>,
    deskew: bool,
    kept: &'a [u8],
) -> Result<Tensors<'a>, FormatError> {
    match raw {
        RawTensors::F32 {
            hidden,
            w1,
            b1,
            w2,
            b2,
        } if kept.is_empty() => f32_tensors(hidden, [w1.0, b1.0, w2.0, b2.0]),
        RawTensors::F32 { .. } => Err(FormatError::Malformed(
            "an f32 model with a kept-pixel bitmap",
        )),
        RawTensors::I8 {
            hidden,
            w1,
            s1,
            b1,
            w2,
            s2,
            b2,
            act_scale,
        } => i8_tensors(
            hidden,
            [w1.0, s1.0, b1.0, w2.0, s2.0, b2.0],
            kept,
            act_scale,
            deskew,
        ),
    }
}

fn f32_tensors(hidden: u32, [w1, b1, w2, b2]: [&[u8]; 4]) -> Result<Tensors<'_>, FormatError> {
    let h = checked_hidden(hidden)?;
    if w1.len() != 4 * INPUT * h
        || b1.len() != 4 * h
        || w2.len() != 4 * CLASSES * h
        || b2.len() != 4 * CLASSES
    {
        return Err(FormatError::Malformed(
            "tensor sizes do not match the hidden size",
        ));
    }
    Ok(Tensors::F32(F32Tensors {
        hidden,
        w1,
        b1,
        w2,
        b2,
    }))
}

fn i8_tensors<'a>(
    hidden: u32,
    parts: [&'a [u8]; 6],
    kept: &'a [u8],
    act_scale: f32,
    deskew: bool,
) -> Result<Tensors<'a>, FormatError> {
    let h = checked_hidden(hidden)?;
    let [w1, s1, b1, w2, s2, b2] = parts;
    let rows = crate::quant::kept_rows(kept).ok_or(FormatError::Malformed(
        "the kept-pixel bitmap is not one bit per pixel",
    ))?;
    if w1.len() != rows * h
        || s1.len() != 4 * h
        || b1.len() != 4 * h
        || w2.len() != CLASSES * h
        || s2.len() != 4 * CLASSES
        || b2.len() != 4 * CLASSES
    {
        return Err(FormatError::Malformed(
            "tensor sizes do not match the hidden size",
        ));
    }
    let finite = |b: &[u8]| {
        b.chunks_exact(4)
            .all(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite())
    };
    let scales_ok = act_scale.is_finite() && act_scale > 0.0;
    if !(scales_ok && [s1, b1, s2, b2].iter().all(|b| finite(b))) {
        return Err(FormatError::NonFinite);
    }
    Ok(Tensors::I8(QView::from_parts(
        h, parts, kept, act_scale, deskew,
    )))
}

fn checked_hidden(hidden: u32) -> Result<usize, FormatError> {
    if crate::hyper::HIDDEN_SIZES.contains(&hidden) {
        Ok(hidden as usize)
    } else {
        Err(FormatError::Malformed("unsupported hidden size"))
    }
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), as in zip and PNG.
pub fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut crc = !0u32;
    for &b in bytes {
        crc = TABLE[((crc ^ b as u32) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_known_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
