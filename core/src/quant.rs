//! Post-training int8 quantization, and integer inference that reads the weights in place.
//!
//! **Weights**: symmetric, one scale per output unit ("per output row"): hidden unit `h`'s
//! input weights `w1[·][h]` get `s1[h] = max_i |w1[i][h]| / 127` and become
//! `q1[i][h] = round(w1[i][h] / s1[h])` in `-127..=127`; output `k`'s weights likewise with
//! `s2[k]`. Biases stay `f32` (a Cortex-M4F has an FPU; they are 1 % of the parameters).
//! A first layer may be quantized to 7 bits instead ([`FirstLayer::Int7`]: `/ 63`, in
//! `-63..=63`), which the firmware's paired kernel needs ([`crate::paired`]); the file
//! format is the same, and [`QView::first_layer_kind`] tells the two apart by the weights.
//!
//! **Inference** (`QView::logits`), per image (deskewed first if the model says so,
//! [`crate::deskew`]):
//! 1. the input is the image's bytes `x_q = round(255·x)` (scale 1/255), blank pixels skipped;
//! 2. `acc1[h] = Σ_i x_q[i] · q1[i][h]` in `i32` (at most 784·255·127 < 2³¹: no overflow);
//! 3. requantization: `a[h] = relu(acc1[h] · s1[h] / 255 + b1[h])`, then
//!    `a_q[h] = min(round(a[h] / act_scale), 255)` as `u8` — `act_scale` is calibrated on
//!    training images so that the 99.99th percentile of hidden activations maps to 255;
//! 4. `acc2[k] = Σ_h a_q[h] · q2[k][h]` in `i32`, and `z[k] = acc2[k] · s2[k] · act_scale +
//!    b2[k]`.
//!
//! Working memory is the caller's [`Work`]: `5·H` bytes (`i32` and `u8` per hidden unit),
//! 640 bytes at 128 units, and the paired kernel's list of pixel pairs
//! ([`crate::dsp::PairSlots`], 3,144 bytes); the weights are read in place from the model file's bytes (for a
//! microcontroller: flash), never copied.
//!
//! **Pruned first layers.** A view may hold the rows of `q1` of some pixels only: those set
//! in its `kept` bitmap ([`KEPT_BYTES`] bytes, bit `i % 8` of byte `i / 8` for pixel `i`; an
//! empty bitmap keeps all). A dropped pixel's row counts as zeros: the answers are those of
//! the dense model with those rows zeroed. `pismo models quantize --prune-rare` drops the
//! pixels that almost no training digit inks, to fit a smaller flash.

use bytemuck::Zeroable;

use crate::dsp::InkedRows;
use crate::mlp::{Mlp, CLASSES, INPUT};

/// Quantized parameters of a model with `H` hidden units, as produced by [`quantize`].
#[derive(Zeroable)]
#[repr(C, align(64))]
pub struct QMlp<const H: usize> {
    /// q1: (IN, H), input-major like [`Mlp::w1`].
    pub w1: [[i8; H]; INPUT],
    /// Scale of each hidden unit's weights.
    pub s1: [f32; H],
    /// b1: (H)
    pub b1: [f32; H],
    /// q2: (C, H)
    pub w2: [[i8; H]; CLASSES],
    /// Scale of each output's weights.
    pub s2: [f32; CLASSES],
    /// b2: (C)
    pub b2: [f32; CLASSES],
    /// Scale of the `u8` hidden activations.
    pub act_scale: f32,
}

impl<const H: usize> core::fmt::Debug for QMlp<H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "QMlp<{INPUT}-{H}-{CLASSES}, int8>")
    }
}

impl<const H: usize> QMlp<H> {
    /// The borrowed form that inference and the file format use.
    pub fn view(&self) -> QView<'_> {
        QView {
            hidden: H,
            w1: bytemuck::cast_slice(self.w1.as_flattened()),
            s1: bytemuck::cast_slice(&self.s1),
            b1: bytemuck::cast_slice(&self.b1),
            w2: bytemuck::cast_slice(self.w2.as_flattened()),
            s2: bytemuck::cast_slice(&self.s2),
            b2: bytemuck::cast_slice(&self.b2),
            act_scale: self.act_scale,
            deskew: false,
            kept: &[],
        }
    }
}

/// Bytes of a `kept` bitmap that does not keep every pixel: one bit per input pixel.
pub const KEPT_BYTES: usize = INPUT / 8;

/// Whether bitmap `kept` (empty: every pixel) keeps pixel `i`.
#[inline(always)]
pub fn keeps(kept: &[u8], i: usize) -> bool {
    kept.is_empty() || kept[i / 8] >> (i % 8) & 1 == 1
}

/// Rows of `q1` a view with bitmap `kept` holds, or `None` for a bitmap of the wrong size.
pub fn kept_rows(kept: &[u8]) -> Option<usize> {
    match kept.len() {
        0 => Some(INPUT),
        KEPT_BYTES => Some(kept.iter().map(|b| b.count_ones() as usize).sum()),
        _ => None,
    }
}

/// The inked pixels of an input that have a row in `q1`, each with its row of `H` weight
/// bytes, in pixel order: what the first layer adds up ([`crate::dsp::InkedRows`]). The
/// input is scanned four pixels (one word) at a time, so a blank stretch of the image costs
/// one test per four pixels.
#[derive(Clone, Copy, Debug)]
pub struct Inked<'v, 'x> {
    w1: &'v [u8],
    hidden: usize,
    kept: &'v [u8],
    x: &'x [u8; INPUT],
}

#[inline(always)]
fn word(x4: &[u8]) -> u32 {
    u32::from_le_bytes([x4[0], x4[1], x4[2], x4[3]])
}

impl<'v> InkedRows<'v> for Inked<'v, '_> {
    #[inline(always)]
    fn for_each(self, mut f: impl FnMut(u8, &'v [u8])) {
        let h = self.hidden;
        if self.kept.is_empty() {
            for (rows, x4) in self.w1.chunks_exact(4 * h).zip(self.x.chunks_exact(4)) {
                if word(x4) != 0 {
                    for (row, &p) in rows.chunks_exact(h).zip(x4) {
                        if p != 0 {
                            f(p, row);
                        }
                    }
                }
            }
            return;
        }
        // Kept pixels among four, by their bits: a table, as Armv7-M has no popcount.
        const KEPT_OF_4: [usize; 16] = [0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4];
        let mut row = 0;
        for (g, x4) in self.x.chunks_exact(4).enumerate() {
            let kept = usize::from(self.kept[g / 2] >> (4 * (g % 2))) & 0xF;
            if word(x4) == 0 {
                row += KEPT_OF_4[kept];
                continue;
            }
            for (j, &p) in x4.iter().enumerate() {
                if kept >> j & 1 == 1 {
                    if p != 0 {
                        f(p, &self.w1[row * h..(row + 1) * h]);
                    }
                    row += 1;
                }
            }
        }
    }
}

/// The integer range of a first layer's weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstLayer {
    /// `-127..=127`: every int8 model pismo made before 7-bit layers existed.
    Int8,
    /// `-63..=63`: the paired DSP kernel adds `64` and reads bytes as 7-bit unsigned
    /// ([`crate::paired`]).
    Int7,
}

impl FirstLayer {
    /// The largest weight magnitude.
    pub const fn max(self) -> i8 {
        match self {
            FirstLayer::Int8 => 127,
            FirstLayer::Int7 => 63,
        }
    }

    /// Bits per weight, sign included.
    pub const fn bits(self) -> u8 {
        match self {
            FirstLayer::Int8 => 8,
            FirstLayer::Int7 => 7,
        }
    }

    /// The kind of a first layer whose largest weight magnitude is `max_abs`: a layer
    /// quantized to 8 bits has a weight of magnitude 127 in every unit that is not all zero,
    /// so one within `-63..=63` was quantized to 7 (or is all zeros, which both kinds hold).
    pub fn of_max_abs(max_abs: u8) -> Self {
        if max_abs <= FirstLayer::Int7.max() as u8 {
            FirstLayer::Int7
        } else {
            FirstLayer::Int8
        }
    }
}

fn scale_of(max_abs: f32, levels: i8) -> f32 {
    if max_abs > 0.0 {
        max_abs / f32::from(levels)
    } else {
        1.0
    }
}

fn q(v: f32, scale: f32, levels: i8) -> i8 {
    let levels = f32::from(levels);
    libm::roundf(v / scale).clamp(-levels, levels) as i8
}

/// Quantizes `m` into `out`, its first layer to the range of `first`; `act_scale` is the
/// calibrated hidden activation scale.
pub fn quantize<const H: usize>(m: &Mlp<H>, act_scale: f32, first: FirstLayer, out: &mut QMlp<H>) {
    let levels = first.max();
    for h in 0..H {
        let max =
            m.w1.iter()
                .fold(0.0f32, |acc, row| acc.max(libm::fabsf(row[h])));
        out.s1[h] = scale_of(max, levels);
    }
    for (qrow, row) in out.w1.iter_mut().zip(&m.w1) {
        for h in 0..H {
            qrow[h] = q(row[h], out.s1[h], levels);
        }
    }
    let levels = FirstLayer::Int8.max();
    for k in 0..CLASSES {
        let max = m.w2[k]
            .iter()
            .fold(0.0f32, |acc, &w| acc.max(libm::fabsf(w)));
        out.s2[k] = scale_of(max, levels);
        for h in 0..H {
            out.w2[k][h] = q(m.w2[k][h], out.s2[k], levels);
        }
    }
    out.b1 = m.b1;
    out.b2 = m.b2;
    out.act_scale = if act_scale > 0.0 && act_scale.is_finite() {
        act_scale
    } else {
        1.0
    };
}

/// An int8 model borrowed from bytes (a model file, or flash): shapes checked by the decoder.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QView<'a> {
    pub(crate) hidden: usize,
    pub(crate) w1: &'a [u8],
    pub(crate) s1: &'a [u8],
    pub(crate) b1: &'a [u8],
    pub(crate) w2: &'a [u8],
    pub(crate) s2: &'a [u8],
    pub(crate) b2: &'a [u8],
    pub(crate) act_scale: f32,
    pub(crate) deskew: bool,
    /// The pixels `w1` has rows for (module doc): empty for all of them.
    pub(crate) kept: &'a [u8],
}

/// Working memory of one inference: an `i32` accumulator and a `u8` activation per hidden
/// unit, for up to `H` units, and the list of inked pixel pairs of the firmware's paired
/// first layer ([`crate::paired`]).
#[derive(Debug)]
pub struct Work<const H: usize> {
    pub(crate) acc: [i32; H],
    pub(crate) hid: [u8; H],
    pub(crate) pairs: crate::dsp::PairSlots,
}

impl<const H: usize> Work<H> {
    /// Zeroed working memory.
    pub const fn new() -> Self {
        Work {
            acc: [0; H],
            hid: [0; H],
            pairs: crate::dsp::PairSlots::new(),
        }
    }

    /// Bytes of working memory.
    pub const BYTES: usize = 5 * H + crate::dsp::PairSlots::BYTES;
}

impl<const H: usize> Default for Work<H> {
    fn default() -> Self {
        Self::new()
    }
}

#[inline(always)]
fn f32_at(bytes: &[u8], i: usize) -> f32 {
    let b = &bytes[4 * i..4 * i + 4];
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

impl<'a> QView<'a> {
    /// The tensors' bytes: w1, s1, b1, w2, s2, b2.
    pub fn parts(&self) -> [&'a [u8]; 6] {
        [self.w1, self.s1, self.b1, self.w2, self.s2, self.b2]
    }

    /// Scale of the hidden activations.
    pub fn act_scale(&self) -> f32 {
        self.act_scale
    }

    /// Whether inputs are deskewed before the network sees them ([`crate::deskew`]).
    pub fn deskew(&self) -> bool {
        self.deskew
    }

    /// The same weights, with inputs deskewed or not.
    pub fn with_deskew(self, deskew: bool) -> Self {
        QView { deskew, ..self }
    }

    /// The bitmap of the pixels `w1` has rows for: empty for all of them (module doc).
    pub fn kept(&self) -> &'a [u8] {
        self.kept
    }

    /// Input pixels with a row in `w1`: all 784, or fewer for a pruned model.
    pub fn input_pixels(&self) -> usize {
        self.w1.len() / self.hidden
    }

    /// Every input pixel's row of `w1` in pixel order, `None` for a dropped pixel.
    pub fn pixel_rows(&self) -> impl Iterator<Item = Option<&'a [u8]>> + 'a {
        let kept = self.kept;
        let mut rows = self.w1.chunks_exact(self.hidden);
        (0..INPUT).map(move |i| if keeps(kept, i) { rows.next() } else { None })
    }

    /// A view of `parts` (as [`Self::parts`] lists them) holding the rows of the pixels in
    /// bitmap `kept` (module doc), or `None` unless `hidden` is one of
    /// [`crate::hyper::HIDDEN_SIZES`] and every part has its size for it (the checks the
    /// model file's decoder makes on shapes; it checks finiteness too). For a host that
    /// keeps the bytes of a view it copied.
    pub fn new(
        hidden: usize,
        parts: [&'a [u8]; 6],
        kept: &'a [u8],
        act_scale: f32,
    ) -> Option<Self> {
        let h = hidden;
        let sizes = [
            kept_rows(kept)? * h,
            4 * h,
            4 * h,
            CLASSES * h,
            4 * CLASSES,
            4 * CLASSES,
        ];
        let known = crate::hyper::HIDDEN_SIZES.iter().any(|&s| s as usize == h);
        let fits = parts.iter().zip(sizes).all(|(p, n)| p.len() == n);
        (known && fits).then(|| QView::from_parts(h, parts, kept, act_scale, false))
    }

    /// Reassembles a view from [`Self::parts`] (sizes as the decoder checked them).
    pub(crate) fn from_parts(
        hidden: usize,
        parts: [&'a [u8]; 6],
        kept: &'a [u8],
        act_scale: f32,
        deskew: bool,
    ) -> Self {
        let [w1, s1, b1, w2, s2, b2] = parts;
        QView {
            hidden,
            w1,
            s1,
            b1,
            w2,
            s2,
            b2,
            act_scale,
            deskew,
            kept,
        }
    }

    /// Hidden units.
    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// The range its first layer was quantized to ([`FirstLayer::of_max_abs`]).
    pub fn first_layer_kind(&self) -> FirstLayer {
        let max = self.w1.iter().map(|&b| (b as i8).unsigned_abs()).max();
        FirstLayer::of_max_abs(max.unwrap_or(0))
    }

    /// Multiply-accumulates of one dense inference (one per weight: 784·H + H·10 unpruned).
    pub fn macs(&self) -> usize {
        self.w1.len() + self.w2.len()
    }

    /// Bytes of weights and scales read from the model (what a device keeps in flash).
    pub fn weight_bytes(&self) -> usize {
        self.w1.len()
            + self.s1.len()
            + self.b1.len()
            + self.w2.len()
            + self.s2.len()
            + self.b2.len()
            + self.kept.len()
            + 4
    }

    /// The f32 weights these int8 weights stand for (`w = q · scale` per row, biases as
    /// they are) written into `out`; `false` (nothing written) if `H` is not its size.
    pub fn dequantize<const H: usize>(&self, out: &mut Mlp<H>) -> bool {
        if self.hidden != H {
            return false;
        }
        for (row, q) in out.w1.iter_mut().zip(self.pixel_rows()) {
            for (h, w) in row.iter_mut().enumerate() {
                *w = q.map_or(0.0, |q| f32::from(q[h] as i8) * f32_at(self.s1, h));
            }
        }
        for (k, (row, q)) in out.w2.iter_mut().zip(self.w2.chunks_exact(H)).enumerate() {
            let s = f32_at(self.s2, k);
            for (w, &b) in row.iter_mut().zip(q) {
                *w = f32::from(b as i8) * s;
            }
        }
        for (h, b) in out.b1.iter_mut().enumerate() {
            *b = f32_at(self.b1, h);
        }
        for (k, b) in out.b2.iter_mut().enumerate() {
            *b = f32_at(self.b2, k);
        }
        true
    }

    /// Raw scores of an image given as bytes (0 = blank), deskewed first when the model
    /// says so. `work` must hold at least [`Self::hidden_size`] units; `None` if it does not.
    /// `#[inline(always)]`, so a caller compiled per instruction set compiles it whole.
    #[inline(always)]
    pub fn logits<const W: usize>(
        &self,
        x: &[u8; INPUT],
        work: &mut Work<W>,
    ) -> Option<[f32; CLASSES]> {
        if self.deskew {
            self.network(&crate::deskew::deskew_bytes(x), work)
        } else {
            self.network(x, work)
        }
    }

    /// The inked pixels of `x` with a row, and their rows ([`Inked`]).
    #[inline(always)]
    pub fn inked_rows<'x>(&self, x: &'x [u8; INPUT]) -> Inked<'a, 'x> {
        Inked {
            w1: self.w1,
            hidden: self.hidden,
            kept: self.kept,
            x,
        }
    }

    /// The first layer's integer sums `acc1` of step 2 (module doc) into `work`, for the
    /// bytes as given (not deskewed); returns the number of inked pixels whose rows it added.
    /// `None` if `work` holds fewer than [`Self::hidden_size`] units.
    ///
    /// With the `dsp` feature on Arm, [`crate::dsp::first_layer`] (two pixels per `SMLAD`;
    /// every hidden size pismo supports is a multiple of 4, as it needs); elsewhere the plain
    /// loop [`add_rows`], which is also the reference the DSP kernel is tested against.
    #[inline(always)]
    pub fn first_layer<const W: usize>(
        &self,
        x: &[u8; INPUT],
        work: &mut Work<W>,
    ) -> Option<usize> {
        let h = self.hidden;
        if W < h {
            return None;
        }
        let acc = &mut work.acc[..h];
        #[cfg(all(target_arch = "arm", feature = "dsp"))]
        return crate::dsp::first_layer(self.inked_rows(x), acc);
        #[cfg(not(all(target_arch = "arm", feature = "dsp")))]
        Some(add_rows(self.inked_rows(x), acc))
    }

    /// The integer forward pass on the bytes as given.
    #[inline(always)]
    fn network<const W: usize>(
        &self,
        x: &[u8; INPUT],
        work: &mut Work<W>,
    ) -> Option<[f32; CLASSES]> {
        self.first_layer(x, work)?;
        Some(self.output(work))
    }

    /// Steps 3 and 4 of the module doc: the raw scores from the first layer's sums in
    /// `work`, which holds at least [`Self::hidden_size`] units.
    #[inline(always)]
    pub(crate) fn output<const W: usize>(&self, work: &mut Work<W>) -> [f32; CLASSES] {
        let h = self.hidden;
        let acc = &work.acc[..h];
        let hid = &mut work.hid[..h];
        for (j, (out, &a)) in hid.iter_mut().zip(acc.iter()).enumerate() {
            let z = a as f32 * (f32_at(self.s1, j) * (1.0 / 255.0)) + f32_at(self.b1, j);
            let v = libm::roundf(z.max(0.0) / self.act_scale);
            *out = v.min(255.0) as u8;
        }
        let mut z = [0.0f32; CLASSES];
        for (k, zk) in z.iter_mut().enumerate() {
            let row = &self.w2[k * h..(k + 1) * h];
            let mut acc2 = 0i32;
            for (&a, &w) in hid.iter().zip(row) {
                acc2 += a as i32 * (w as i8) as i32;
            }
            *zk = acc2 as f32 * f32_at(self.s2, k) * self.act_scale + f32_at(self.b2, k);
        }
        z
    }
}

/// The plain first layer: `acc` set to the sum of every row of `rows` times its pixel value;
/// returns how many rows. Inlined into its callers, so that a host compiles it per
/// instruction set.
#[cfg_attr(all(target_arch = "arm", feature = "dsp"), allow(dead_code))]
#[inline(always)]
fn add_rows<'w>(rows: impl InkedRows<'w>, acc: &mut [i32]) -> usize {
    acc.fill(0);
    let mut ink = 0;
    rows.for_each(|p, row| {
        ink += 1;
        let xi = p as i32;
        for (a, &w) in acc.iter_mut().zip(row) {
            *a += xi * (w as i8) as i32;
        }
    });
    ink
}

/// Image bytes of a `0..1` input, as the int8 model takes it.
pub fn input_bytes(x: &[f32; INPUT]) -> [u8; INPUT] {
    x.map(|v| libm::roundf(v.clamp(0.0, 1.0) * 255.0) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    #[cfg_attr(miri, ignore = "too slow under Miri; see .ci/run")]
    fn int8_logits_track_float_logits() {
        const H: usize = 32;
        let mut m: std::boxed::Box<Mlp<H>> = std::boxed::Box::new(Mlp::zeroed());
        m.init(&mut Rng::new(4));
        let mut qm: std::boxed::Box<QMlp<H>> = std::boxed::Box::new(QMlp::zeroed());
        let mut rng = Rng::new(5);
        let xs: std::vec::Vec<[u8; INPUT]> = (0..50)
            .map(|_| {
                core::array::from_fn(|_| {
                    if rng.next_f32() < 0.2 {
                        (rng.next_u64() % 256) as u8
                    } else {
                        0
                    }
                })
            })
            .collect();
        // Calibrate on the inputs themselves: the largest hidden activation.
        let mut max_act = 0.0f32;
        for x in &xs {
            let z = crate::mlp::naive::hidden_pre(&m, &x.map(|b| b as f32 / 255.0));
            max_act = z.iter().fold(max_act, |a, &v| a.max(v));
        }
        quantize(&m, max_act / 255.0, FirstLayer::Int8, &mut qm);
        let mut work = Work::<H>::new();
        let mut agree = 0;
        for x in &xs {
            let zf = m.logits(&x.map(|b| b as f32 / 255.0));
            let zq = qm.view().logits(x, &mut work).unwrap();
            let spread = zf.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
            for (a, b) in zf.iter().zip(&zq) {
                assert!((a - b).abs() < 0.05 * spread.max(1.0), "{zf:?} vs {zq:?}");
            }
            agree += (crate::mlp::argmax(&zf) == crate::mlp::argmax(&zq)) as usize;
        }
        assert!(agree >= 48, "{agree} of 50 agree");
        // Dequantized weights quantize back to the same integers.
        let mut back: std::boxed::Box<Mlp<H>> = std::boxed::Box::new(Mlp::zeroed());
        assert!(qm.view().dequantize(&mut *back));
        assert!(!qm
            .view()
            .dequantize(&mut *std::boxed::Box::new(Mlp::<16>::zeroed())));
        let mut again: std::boxed::Box<QMlp<H>> = std::boxed::Box::new(QMlp::zeroed());
        quantize(&back, qm.act_scale, FirstLayer::Int8, &mut again);
        assert_eq!(again.w1, qm.w1);
        assert_eq!(again.w2, qm.w2);
        // Too little working memory is refused, not a panic.
        assert!(qm.view().logits(&xs[0], &mut Work::<16>::new()).is_none());
    }

    #[test]
    #[cfg_attr(miri, ignore = "50 whole images: too slow under Miri; see .ci/run")]
    fn inked_rows_are_the_kept_inked_pixels_with_their_rows_in_order() {
        const H: usize = 4;
        let mut rng = Rng::new(11);
        let zero: std::boxed::Box<QMlp<H>> = std::boxed::Box::new(QMlp::zeroed());
        for trial in 0..50 {
            // Row r of w1 holds r in every byte, so a row names itself.
            let mut kept = [0u8; KEPT_BYTES];
            let keep: std::vec::Vec<bool> = (0..INPUT)
                .map(|_| trial % 5 == 0 || rng.next_f32() < 0.7)
                .collect();
            for (i, _) in keep.iter().enumerate().filter(|k| *k.1) {
                kept[i / 8] |= 1 << (i % 8);
            }
            let kept: &[u8] = if trial % 5 == 0 { &[] } else { &kept };
            let rows = kept_rows(kept).unwrap();
            let w1: std::vec::Vec<u8> = (0..rows * H).map(|b| (b / H) as u8).collect();
            let x: [u8; INPUT] = core::array::from_fn(|_| {
                if rng.next_f32() < 0.3 {
                    1 + (rng.next_u64() % 255) as u8
                } else {
                    0
                }
            });
            let view = QView {
                w1: &w1,
                hidden: H,
                kept,
                ..zero.view()
            };
            let mut want = std::vec::Vec::new();
            let mut row = 0;
            for (i, &p) in x.iter().enumerate() {
                if keeps(kept, i) {
                    if p != 0 {
                        want.push((p, (row % 256) as u8));
                    }
                    row += 1;
                }
            }
            let mut got = std::vec::Vec::new();
            view.inked_rows(&x).for_each(|p, r| got.push((p, r[0])));
            assert_eq!(got, want, "trial {trial}");
        }
    }

    #[test]
    fn a_view_is_rebuilt_from_its_parts_only_with_their_sizes() {
        let qm: std::boxed::Box<QMlp<16>> = std::boxed::Box::new(QMlp::zeroed());
        let view = qm.view();
        let again = QView::new(16, view.parts(), &[], view.act_scale()).unwrap();
        assert_eq!(again.parts(), view.parts());
        assert!(!again.deskew());
        // Another hidden size, a size pismo never trains, or a part one byte short: refused.
        assert!(QView::new(32, view.parts(), &[], 1.0).is_none());
        assert!(QView::new(17, view.parts(), &[], 1.0).is_none());
        let mut parts = view.parts();
        parts[4] = &parts[4][1..];
        assert!(QView::new(16, parts, &[], 1.0).is_none());
        // A bitmap of the wrong size, or one keeping more rows than w1 holds: refused.
        assert!(QView::new(16, view.parts(), &[0xFF; 3], 1.0).is_none());
        let mut half = [0u8; KEPT_BYTES];
        half[..KEPT_BYTES / 2].fill(0xFF);
        assert!(QView::new(16, view.parts(), &half, 1.0).is_none());
    }
}
