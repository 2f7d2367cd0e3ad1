//! The firmware's paired first layer: a 7-bit first layer laid out in flash so that the
//! Cortex-M4 adds two pixels' weights for two units with one `SMLAD`, and the model image
//! that carries it.
//!
//! **Why.** The plain DSP kernel ([`crate::dsp::first_layer`]) pairs inked pixels at run time
//! and keeps the sums in RAM: 2 instructions per MAC at best. Here the pairing is fixed
//! (consecutive rows of `w1`: pixels `2m` and `2m + 1` of the kept ones, mostly side by
//! side in the image) and the flash holds each pair's rows interleaved, so no instruction
//! moves weights between registers, and eight units' sums stay in registers over the whole
//! image ([`crate::dsp::PairList::sums`]: 18 instructions per pair and 8 units).
//!
//! **Layout.** `w1` of `R` rows of `H` bytes becomes `R / 2` pairs of `2H` bytes; pair `m`'s
//! word `k` holds, as bytes, `a[2k], a[2k+1], b[2k], b[2k+1]`, each weight plus
//! [`OFFSET`] (`a`, `b`: rows `2m`, `2m + 1`). A last row of an odd `R` stays as it was, after
//! the pairs. The model's first layer must be 7-bit ([`FirstLayer::Int7`]), so that every
//! byte is in `1..=127`.
//!
//! **Arithmetic.** With `x = x_a | x_b << 16`, `SMLAD(word, x)` adds
//! `(a₀ + 256·a₁)·x_a + (b₀ + 256·b₁)·x_b = U + 256·V` (`U`, `V`: the two units' shares; no
//! 16-bit lane overflows, as bytes are below 128), and `SMLAD(REV16(word), x)` adds
//! `V + 256·U`. Over an image, wrapping in 32 bits: `S₁ = ΣU + 256·ΣV`, `S₂ = ΣV + 256·ΣU`,
//! so `65535·ΣU = 256·S₂ − S₁`; 65535 is odd, hence invertible modulo 2³², and `ΣU < 2³²`
//! (at most 784·127·255): `ΣU = (256·S₂ − S₁)·65535⁻¹` exactly. The unit's sum is then
//! `ΣU − 64·Σx` over the paired pixels: the plain loop's integer, bit for bit.
//!
//! **Image.** [`write_image`] turns a model file into the bytes the firmware embeds: the same
//! file with its `w1` rewritten in this layout, the magic [`IMAGE_MAGIC`] (so no model loader
//! mistakes it for a model) and a checksum of the new bytes, after zero to three zero bytes
//! that put `w1` on a word boundary when the image is; then the pair table: for each pair,
//! its two pixels' indices (`u16` LE each), so that reading an image's pairs costs a load
//! per pair rather than a walk over the kept-pixel bitmap. [`decode_image`] checks the file
//! as [`crate::format::decode`] checks a model file (length, magic, version, CRC, shapes),
//! that `w1` is aligned and 7-bit, and that the table is the one the bitmap gives.

use crate::dsp::PairList;
use crate::format::{self, FormatError, Tensors};
use crate::mlp::{CLASSES, INPUT};
use crate::quant::{keeps, FirstLayer, QView, Work};

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

/// Bytes of the pair table of a model with `kept` (empty: all pixels) and `rows` rows.
fn table_len(rows: usize) -> usize {
    4 * (rows / 2)
}

/// The kept pixels (bitmap `kept`, empty: all) two by two: the pair table's entries.
fn pixel_pairs(kept: &[u8]) -> impl Iterator<Item = [u16; 2]> + '_ {
    let mut pixels = (0..INPUT as u16).filter(move |&i| keeps(kept, usize::from(i)));
    core::iter::from_fn(move || Some([pixels.next()?, pixels.next()?]))
}

/// Bytes of the paired image of `model` (a model file).
pub fn image_len(model: &[u8]) -> Result<usize, ImageError> {
    let (q, at) = pairable(model)?;
    Ok(padding(at) + model.len() + table_len(q.input_pixels()))
}

/// Writes the paired image of `model` (a model file with a 7-bit first layer, module doc)
/// into `out`; returns its length.
pub fn write_image(model: &[u8], out: &mut [u8]) -> Result<usize, ImageError> {
    let (q, at) = pairable(model)?;
    let pad = padding(at);
    let needed = pad + model.len() + table_len(q.input_pixels());
    let out = out
        .get_mut(..needed)
        .ok_or(ImageError::BufferTooSmall { needed })?;
    out[..pad].fill(0);
    let (file, table) = out[pad..].split_at_mut(model.len());
    file.copy_from_slice(model);
    pair_rows(q.w1, q.hidden_size(), &mut file[at..at + q.w1.len()]);
    format::reseal(file, IMAGE_MAGIC);
    for (entry, [a, b]) in table.chunks_exact_mut(4).zip(pixel_pairs(q.kept())) {
        entry[..2].copy_from_slice(&a.to_le_bytes());
        entry[2..].copy_from_slice(&b.to_le_bytes());
    }
    Ok(needed)
}

/// Writes rows `w1` (`hidden` bytes each, 7-bit) in the paired layout (module doc) into
/// `out`, of the same length.
fn pair_rows(w1: &[u8], hidden: usize, out: &mut [u8]) {
    let stride = 2 * hidden;
    let paired = w1.len() / stride * stride;
    let shifted = |w: u8| (i32::from(w as i8) + OFFSET) as u8;
    for (pair, rows) in out[..paired]
        .chunks_exact_mut(stride)
        .zip(w1.chunks_exact(stride))
    {
        let (a, b) = rows.split_at(hidden);
        for (k, word) in pair.chunks_exact_mut(4).enumerate() {
            word.copy_from_slice(&[a[2 * k], a[2 * k + 1], b[2 * k], b[2 * k + 1]].map(shifted));
        }
    }
    out[paired..].copy_from_slice(&w1[paired..]);
}

/// A paired image, checked, borrowed in place (from flash): what the firmware runs when
/// its model's first layer is 7-bit.
#[derive(Clone, Copy, Debug)]
pub struct Paired<'a> {
    /// The model; its `w1` is in the paired layout, so only this module reads it.
    q: QView<'a>,
    /// The pair table (module doc).
    table: &'a [u8],
    /// The pixel of the unpaired last row, if the rows are odd.
    lone: Option<usize>,
}

/// Decodes and checks a paired image (module doc), borrowing it. Its `w1` must lie on a
/// word boundary in memory: an image placed at a word-aligned address has it there.
pub fn decode_image(bytes: &[u8]) -> Result<Paired<'_>, FormatError> {
    let pad = bytes.iter().take(3).take_while(|&&b| b == 0).count();
    let bytes = &bytes[pad..];
    let file_len = format::stated_len(bytes).unwrap_or(bytes.len());
    let (file, table) = bytes.split_at(file_len.min(bytes.len()));
    let q = match format::decode_as(file, IMAGE_MAGIC)?.tensors {
        Tensors::I8(q) => q,
        Tensors::F32(_) => return Err(FormatError::Malformed("a paired image of f32 weights")),
    };
    let h = q.hidden_size();
    if !h.is_multiple_of(BLOCK) {
        return Err(FormatError::Malformed(
            "a paired image whose hidden size is not a multiple of 8",
        ));
    }
    if !(q.w1.as_ptr() as usize).is_multiple_of(4) {
        return Err(FormatError::Malformed(
            "the paired first layer is not on a word boundary in memory",
        ));
    }
    let paired = q.w1.len() / (2 * h) * (2 * h);
    if q.w1[..paired].iter().any(|&b| b > 127) {
        return Err(FormatError::Malformed(
            "a paired first-layer byte above 127",
        ));
    }
    let rows = q.input_pixels();
    let entries = table
        .chunks_exact(4)
        .map(|e| [0, 2].map(|i| u16::from_le_bytes([e[i], e[i + 1]])));
    if table.len() != table_len(rows) || !entries.eq(pixel_pairs(q.kept())) {
        return Err(FormatError::Malformed(
            "the pair table is not the one the kept-pixel bitmap gives",
        ));
    }
    let lone = (rows % 2 == 1).then(|| (0..INPUT).rev().find(|&i| keeps(q.kept(), i)));
    Ok(Paired {
        q,
        table,
        lone: lone.flatten(),
    })
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
        let stride = 2 * h;
        let rows = self.q.w1.len() / h;
        let (paired, lone_row) = self.q.w1.split_at(rows / 2 * stride);
        let Work { acc, pairs, .. } = work;
        let mut list = PairList::new(pairs, paired, stride)?;
        let scan = scan(self.table, x, &mut list);
        let shift = OFFSET.wrapping_mul(scan.paired_sum as i32);
        let acc = &mut acc[..h];
        if !list.sums(acc) {
            return None;
        }
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
        let mut ink = scan.ink;
        if let Some(&p) = self.lone.and_then(|i| x.get(i)) {
            if p != 0 {
                ink += 1;
                let xl = i32::from(p);
                for (a, &w) in acc.iter_mut().zip(lone_row) {
                    *a += xl * i32::from(w as i8);
                }
            }
        }
        Some(ink)
    }
}

/// What [`scan`] found besides the list.
struct Scan {
    /// Inked pixels of the pairs.
    ink: usize,
    /// Σx over the pixels of the pairs.
    paired_sum: u32,
}

/// Lists the pairs of the pair table `table` (module doc) with ink in `x`, in order.
#[inline(always)]
fn scan(table: &[u8], x: &[u8; INPUT], list: &mut PairList<'_>) -> Scan {
    let mut found = Scan {
        ink: 0,
        paired_sum: 0,
    };
    for (m, e) in table.chunks_exact(4).enumerate() {
        // One word per pair: pixel `a` in the low half, `b` in the high one.
        let e = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
        let (a, b) = ((e & 0xFFFF) as usize, (e >> 16) as usize);
        let (Some(&xa), Some(&xb)) = (x.get(a), x.get(b)) else {
            continue;
        };
        let xp = u32::from(xa) | u32::from(xb) << 16;
        if xp != 0 {
            found.ink += usize::from(xa != 0) + usize::from(xb != 0);
            found.paired_sum += u32::from(xa) + u32::from(xb);
            list.push(m, xp);
        }
    }
    found
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
            // Dense, pruned to an even and to an odd number of rows.
            let mut kept = [0u8; KEPT_BYTES];
            for (i, byte) in kept.iter_mut().enumerate() {
                *byte = if i % 3 == 0 {
                    0xFF
                } else {
                    rng.next_u64() as u8
                };
            }
            let odd = {
                let mut k = kept;
                let rows = crate::quant::kept_rows(&k).unwrap();
                if rows.is_multiple_of(2) {
                    k[0] ^= 1;
                }
                k
            };
            let kept: &[u8] = match trial % 3 {
                0 => &[],
                1 => &kept,
                _ => &odd,
            };
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
    fn only_a_seven_bit_int8_model_becomes_an_image_and_a_bad_image_is_refused() {
        let mut rng = Rng::new(28);
        let eight = model_file(&mut rng, 16, &[], 127);
        let mut out = std::vec![0u8; eight.len() + 4 + 4 * INPUT / 2];
        // Random 8-bit weights reach beyond 63 (and the kind says 8).
        assert_eq!(write_image(&eight, &mut out), Err(ImageError::NotSevenBit));
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
