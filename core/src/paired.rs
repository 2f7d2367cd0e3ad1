//! The firmware's paired first layer: a 7-bit first layer laid out in flash so that the
//! Cortex-M4 adds two pixels' weights for two units with one `SMLAD`, and the model image
//! that carries it.
//!
//! **Why.** The plain DSP kernel ([`crate::dsp::first_layer`]) pairs inked pixels at run time
//! and keeps the sums in RAM: 2 instructions per MAC at best. Here the pairs are fixed: pixels
//! `2k` and `2k + 1`, side by side in one half-word of the image, kept or dropped together
//! (`pismo models quantize --prune-rare` prunes so). The flash holds each pair's two rows
//! interleaved, so no instruction moves weights between registers, and eight units' sums
//! stay in registers over the whole image ([`crate::dsp::PairList::sums`]: 18 instructions
//! per inked pair and 8 units).
//!
//! **Layout.** `w1` of `R` rows of `H` bytes (`R` even) becomes `R / 2` pairs of `2H` bytes;
//! pair `m`'s word `k` holds, as bytes, `a[2k], a[2k+1], b[2k], b[2k+1]`, each weight plus
//! [`OFFSET`] (`a`, `b`: rows `2m`, `2m + 1`). The model's first layer must be 7-bit
//! ([`FirstLayer::Int7`]), so that every byte is in `1..=127`.
//!
//! **Arithmetic.** With `x = x_a | x_b << 16`, `SMLAD(word, x)` adds
//! `(a₀ + 256·a₁)·x_a + (b₀ + 256·b₁)·x_b = U + 256·V` (`U`, `V`: the two units' shares; no
//! 16-bit lane overflows, as bytes are below 128), and `SMLAD(REV16(word), x)` adds
//! `V + 256·U`. Over an image, wrapping in 32 bits: `S₁ = ΣU + 256·ΣV`, `S₂ = ΣV + 256·ΣU`,
//! so `65535·ΣU = 256·S₂ − S₁`; 65535 is odd, hence invertible modulo 2³², and `ΣU < 2³²`
//! (at most 784·127·255): `ΣU = (256·S₂ − S₁)·65535⁻¹` exactly. The unit's sum is then
//! `ΣU − 64·Σx` over the inked pixels: the plain loop's integer, bit for bit.
//!
//! **Image.** [`write_image`] turns a model file into the bytes the firmware embeds: the same
//! file with its `w1` rewritten in this layout, the magic [`IMAGE_MAGIC`] (so no model loader
//! mistakes it for a model) and a checksum of the new bytes, after zero to three zero bytes
//! that put `w1` on a word boundary when the image is. [`decode_image`] checks it as
//! [`crate::format::decode`] checks a model file (length, magic, version, CRC, shapes), and
//! that `w1` is aligned, 7-bit and kept in pairs.

use crate::dsp::{PairList, PairRanks};
use crate::format::{self, FormatError, Tensors};
use crate::mlp::{CLASSES, INPUT};
use crate::quant::{FirstLayer, QView, Work};

/// First eight bytes of a paired image (after its alignment bytes).
pub const IMAGE_MAGIC: [u8; 8] = *b"PISMOPRD";

/// What the layout adds to each 7-bit weight.
pub const OFFSET: i32 = 64;

/// Units a kernel block sums in registers.
pub const BLOCK: usize = 8;

/// 65535⁻¹ modulo 2³²: `65535 · 0xFFFE_FFFF = −(2³² − 1) ≡ 1`.
const INV_65535: u32 = 0xFFFE_FFFF;

/// Why a model file does not become a paired image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ImageError {
    /// The file does not decode.
    Format(FormatError),
    /// Its weights are f32.
    NotInt8,
    /// Its first layer has weights outside `-63..=63`.
    NotSevenBit,
    /// Its first layer keeps a pixel without its partner (`2k`, `2k + 1`).
    NotInPairs,
    /// Its hidden size is not a multiple of [`BLOCK`].
    Hidden(usize),
    /// `out` is smaller than the image.
    BufferTooSmall { needed: usize },
}

impl core::fmt::Display for ImageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ImageError::Format(e) => write!(f, "{e}"),
            ImageError::NotInt8 => f.write_str("the model has f32 weights, not int8"),
            ImageError::NotSevenBit => f.write_str(
                "the model's first layer is 8-bit; the paired kernel needs 7 \
                 (pismo models quantize --first-layer-bits 7)",
            ),
            ImageError::NotInPairs => f.write_str(
                "the model's first layer keeps a pixel without its neighbour (pruned before \
                 pismo pruned in pairs); quantize and prune it again",
            ),
            ImageError::Hidden(h) => write!(f, "hidden size {h} is not a multiple of {BLOCK}"),
            ImageError::BufferTooSmall { needed } => write!(f, "needs a {needed}-byte buffer"),
        }
    }
}

/// The int8 view of a model file that can be paired, and where its `w1` starts in the file.
fn pairable(model: &[u8]) -> Result<(QView<'_>, usize), ImageError> {
    let q = match format::decode(model).map_err(ImageError::Format)?.tensors {
        Tensors::I8(q) => q,
        Tensors::F32(_) => return Err(ImageError::NotInt8),
    };
    if q.first_layer_kind() != FirstLayer::Int7 {
        return Err(ImageError::NotSevenBit);
    }
    if PairRanks::of(q.kept()).is_none() {
        return Err(ImageError::NotInPairs);
    }
    if !q.hidden_size().is_multiple_of(BLOCK) {
        return Err(ImageError::Hidden(q.hidden_size()));
    }
    let at = q.w1.as_ptr() as usize - model.as_ptr() as usize;
    Ok((q, at))
}

/// Zero bytes before the file that put a `w1` at byte `at` of it on a word boundary.
fn padding(at: usize) -> usize {
    (4 - at % 4) % 4
}

/// Bytes of the paired image of `model` (a model file).
pub fn image_len(model: &[u8]) -> Result<usize, ImageError> {
    let (_, at) = pairable(model)?;
    Ok(padding(at) + model.len())
}

/// Writes the paired image of `model` (a model file with a 7-bit first layer kept in pairs,
/// module doc) into `out`; returns its length.
pub fn write_image(model: &[u8], out: &mut [u8]) -> Result<usize, ImageError> {
    let (q, at) = pairable(model)?;
    let pad = padding(at);
    let needed = pad + model.len();
    let out = out
        .get_mut(..needed)
        .ok_or(ImageError::BufferTooSmall { needed })?;
    out[..pad].fill(0);
    let file = &mut out[pad..];
    file.copy_from_slice(model);
    pair_rows(q.w1, q.hidden_size(), &mut file[at..at + q.w1.len()]);
    format::reseal(file, IMAGE_MAGIC);
    Ok(needed)
}

/// Writes rows `w1` (`hidden` bytes each, 7-bit, an even number) in the paired layout
/// (module doc) into `out`, of the same length.
fn pair_rows(w1: &[u8], hidden: usize, out: &mut [u8]) {
    let shifted = |w: u8| (i32::from(w as i8) + OFFSET) as u8;
    for (pair, rows) in out
        .chunks_exact_mut(2 * hidden)
        .zip(w1.chunks_exact(2 * hidden))
    {
        let (a, b) = rows.split_at(hidden);
        for (k, word) in pair.chunks_exact_mut(4).enumerate() {
            word.copy_from_slice(&[a[2 * k], a[2 * k + 1], b[2 * k], b[2 * k + 1]].map(shifted));
        }
    }
}

/// A paired image, checked, borrowed in place (from flash): what the firmware runs when
/// its model's first layer is 7-bit.
#[derive(Clone, Copy, Debug)]
pub struct Paired<'a> {
    /// The model; its `w1` is in the paired layout, so only this module reads it.
    q: QView<'a>,
    /// Where its kept pairs are.
    ranks: PairRanks,
}

/// Decodes and checks a paired image (module doc), borrowing it. Its `w1` must lie on a
/// word boundary in memory: an image placed at a word-aligned address has it there.
pub fn decode_image(bytes: &[u8]) -> Result<Paired<'_>, FormatError> {
    let pad = bytes.iter().take(3).take_while(|&&b| b == 0).count();
    let q = match format::decode_as(&bytes[pad..], IMAGE_MAGIC)?.tensors {
        Tensors::I8(q) => q,
        Tensors::F32(_) => return Err(FormatError::Malformed("a paired image of f32 weights")),
    };
    if !q.hidden_size().is_multiple_of(BLOCK) {
        return Err(FormatError::Malformed(
            "a paired image whose hidden size is not a multiple of 8",
        ));
    }
    let Some(ranks) = PairRanks::of(q.kept()) else {
        return Err(FormatError::Malformed(
            "a paired image that keeps a pixel without its neighbour",
        ));
    };
    if !(q.w1.as_ptr() as usize).is_multiple_of(4) {
        return Err(FormatError::Malformed(
            "the paired first layer is not on a word boundary in memory",
        ));
    }
    if q.w1.iter().any(|&b| b > 127) {
        return Err(FormatError::Malformed(
            "a paired first-layer byte above 127",
        ));
    }
    Ok(Paired { q, ranks })
}

impl<'a> Paired<'a> {
    /// Hidden units.
    pub fn hidden_size(&self) -> usize {
        self.q.hidden_size()
    }

    /// Whether inputs are deskewed before the network sees them.
    pub fn deskew(&self) -> bool {
        self.q.deskew()
    }

    /// Multiply-accumulates of one dense inference.
    pub fn macs(&self) -> usize {
        self.q.macs()
    }

    /// Bytes of weights and scales read from flash.
    pub fn weight_bytes(&self) -> usize {
        self.q.weight_bytes()
    }

    /// Raw scores of an image given as bytes, deskewed first when the model says so; the
    /// same as [`QView::logits`] of the model the image was made from. `None` if `work`
    /// holds fewer units than the model.
    #[inline(always)]
    pub fn logits<const W: usize>(
        &self,
        x: &[u8; INPUT],
        work: &mut Work<W>,
    ) -> Option<[f32; CLASSES]> {
        if self.deskew() {
            self.first_layer(&crate::deskew::deskew_bytes(x), work)?;
        } else {
            self.first_layer(x, work)?;
        }
        Some(self.q.output(work))
    }

    /// The first layer's integer sums into `work` for the bytes as given (not deskewed),
    /// equal to [`QView::first_layer`]'s; returns the number of inked pixels with a row.
    pub fn first_layer<const W: usize>(
        &self,
        x: &[u8; INPUT],
        work: &mut Work<W>,
    ) -> Option<usize> {
        let h = self.hidden_size();
        if W < h {
            return None;
        }
        let Work { acc, pairs, .. } = work;
        let mut list = PairList::new(pairs, self.q.w1, 2 * h)?;
        if !list.scan(x, &self.ranks) {
            return None;
        }
        let (mut ink, mut sum) = (0, 0u32);
        for v in list.values() {
            let (a, b) = (v & 0xFF, v >> 16);
            ink += usize::from(a != 0) + usize::from(b != 0);
            sum += a + b;
        }
        let acc = &mut acc[..h];
        if !list.sums(acc) {
            return None;
        }
        let shift = OFFSET.wrapping_mul(sum as i32);
        for units in acc.chunks_exact_mut(2) {
            let (s1, s2) = (units[0] as u32, units[1] as u32);
            let u = s2
                .wrapping_mul(256)
                .wrapping_sub(s1)
                .wrapping_mul(INV_65535);
            let v = s1
                .wrapping_mul(256)
                .wrapping_sub(s2)
                .wrapping_mul(INV_65535);
            units[0] = (u as i32).wrapping_sub(shift);
            units[1] = (v as i32).wrapping_sub(shift);
        }
        Some(ink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Meta;
    use crate::hyper::{Hyper, Metrics};
    use crate::quant::KEPT_BYTES;
    use crate::rng::Rng;
    use std::vec::Vec;

    /// A model file of `h` units with random 7-bit (or 8-bit) first-layer weights, keeping
    /// pixels by `kept` (empty: all), and the bytes of its `w1`.
    fn model_file(rng: &mut Rng, h: usize, kept: &[u8], levels: i8) -> Vec<u8> {
        let rows = crate::quant::kept_rows(kept).unwrap();
        let span = 2 * i32::from(levels) + 1;
        let w1: Vec<u8> = (0..rows * h)
            .map(|_| ((rng.next_u64() % span as u64) as i32 - i32::from(levels)) as i8 as u8)
            .collect();
        let w2: Vec<u8> = (0..CLASSES * h).map(|_| rng.next_u64() as u8).collect();
        let f = |n: usize, rng: &mut Rng| -> Vec<u8> {
            (0..n)
                .flat_map(|_| (rng.next_f32() * 0.02 + 0.001).to_le_bytes())
                .collect()
        };
        let (s1, b1, s2, b2) = (f(h, rng), f(h, rng), f(CLASSES, rng), f(CLASSES, rng));
        let view = QView::new(h, [&w1, &s1, &b1, &w2, &s2, &b2], kept, 0.05).unwrap();
        let meta = Meta {
            name: "paired-test",
            version: 1,
            created_unix: 0,
            hyper: Hyper::default(),
            metrics: Metrics::of_committee(&[], 0.0, 0.0, None),
            run_id: "",
            dataset: "",
            parent: "",
            deskew: false,
        };
        let mut buf = std::vec![0u8; format::encoded_len_int8(&meta, &view)];
        let n = format::encode_int8(&meta, &view, &mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    /// `bytes` copied to a word-aligned buffer at byte `shift` of it.
    fn aligned_at(bytes: &[u8], shift: usize) -> (Vec<u32>, usize) {
        let mut words = std::vec![0u32; (bytes.len() + shift).div_ceil(4) + 1];
        let all: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
        all[shift..shift + bytes.len()].copy_from_slice(bytes);
        (words, shift)
    }

    fn random_image(rng: &mut Rng, density: f32) -> [u8; INPUT] {
        core::array::from_fn(|_| {
            if rng.next_f32() < density {
                [1, 255, (rng.next_u64() % 256) as u8][(rng.next_u64() % 3) as usize]
            } else {
                0
            }
        })
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "whole images at 256 units: too slow under Miri; see .ci/run"
    )]
    fn a_paired_image_answers_exactly_as_its_model_file() {
        let mut rng = Rng::new(27);
        for (trial, h) in [16usize, 32, 256].into_iter().cycle().take(12).enumerate() {
            // Dense, or pruned in pairs: some bytes whole, the rest random pairs.
            let mut kept = [0u8; KEPT_BYTES];
            for (i, byte) in kept.iter_mut().enumerate() {
                let pairs = if i % 3 == 0 {
                    0x55
                } else {
                    rng.next_u64() as u8 & 0x55
                };
                *byte = pairs | pairs << 1;
            }
            let kept: &[u8] = if trial % 2 == 0 { &[] } else { &kept };
            let file = model_file(&mut rng, h, kept, 63);
            let model = match format::decode(&file).unwrap().tensors {
                Tensors::I8(q) => q,
                Tensors::F32(_) => unreachable!(),
            };
            let mut image = std::vec![0u8; image_len(&file).unwrap()];
            assert_eq!(write_image(&file, &mut image), Ok(image.len()));
            assert!(
                format::decode(&image[image.len() - file.len()..]).is_err(),
                "a model loader refuses the image"
            );
            let (words, at) = aligned_at(&image, 0);
            let bytes: &[u8] = bytemuck::cast_slice(&words);
            let paired = decode_image(&bytes[at..at + image.len()]).unwrap();
            let mut want = Work::<256>::new();
            let mut got = Work::<256>::new();
            for d in 0..8 {
                let x = random_image(&mut rng, d as f32 / 7.0);
                let ink = model.first_layer(&x, &mut want);
                assert_eq!(paired.first_layer(&x, &mut got), ink);
                assert_eq!(
                    got.acc[..h],
                    want.acc[..h],
                    "h {h}, trial {trial}, density {d}"
                );
                assert_eq!(paired.logits(&x, &mut got), model.logits(&x, &mut want));
            }
            // The largest sums: full ink, the extreme weights.
            let x = [255u8; INPUT];
            assert_eq!(
                paired.first_layer(&x, &mut got),
                model.first_layer(&x, &mut want)
            );
            assert_eq!(got.acc[..h], want.acc[..h]);
            assert!(paired.first_layer(&x, &mut Work::<8>::new()).is_none());
        }
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "decodes the image once per byte flipped: too slow under Miri; see .ci/run"
    )]
    fn only_a_seven_bit_int8_model_becomes_an_image_and_a_bad_image_is_refused() {
        let mut rng = Rng::new(28);
        let eight = model_file(&mut rng, 16, &[], 127);
        let mut out = std::vec![0u8; eight.len() + 4];
        // Random 8-bit weights reach beyond 63 (and the kind says 8).
        assert_eq!(write_image(&eight, &mut out), Err(ImageError::NotSevenBit));
        // A pixel kept without its neighbour: no pairs to read.
        let mut unpaired = [0xFFu8; KEPT_BYTES];
        unpaired[40] = 0b1011_1111;
        let lonely = model_file(&mut rng, 16, &unpaired, 63);
        assert_eq!(write_image(&lonely, &mut out), Err(ImageError::NotInPairs));
        let seven = model_file(&mut rng, 16, &[], 63);
        assert_eq!(
            write_image(&seven, &mut out[..10]),
            Err(ImageError::BufferTooSmall {
                needed: image_len(&seven).unwrap()
            })
        );
        let n = write_image(&seven, &mut out).unwrap();
        let image = &out[..n];
        for shift in 0..4 {
            let (words, at) = aligned_at(image, shift);
            let bytes: &[u8] = bytemuck::cast_slice(&words);
            let ok = decode_image(&bytes[at..at + n]).is_ok();
            assert_eq!(ok, shift == 0, "only a word-aligned image decodes");
        }
        // Every flipped byte is refused.
        for i in 0..n {
            let (mut words, at) = aligned_at(image, 0);
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
            bytes[at + i] ^= 0x10;
            assert!(
                decode_image(&bytes[at..at + n]).is_err(),
                "byte {i} flipped"
            );
        }
        // A model file is not an image.
        assert_eq!(decode_image(&seven).err(), Some(FormatError::NotAModel));
    }
}
