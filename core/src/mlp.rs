//! The multi-layer perceptron of the original design: 784 inputs → `H` ReLU units → 10
//! softmax outputs, with inverted dropout on the hidden layer while training.
//!
//! Weights live in fixed-size arrays whose size is part of the type ([`Mlp<H>`]). Nothing here
//! allocates: training buffers are the caller's, so the same code runs on a microcontroller and
//! under the host's multi-threaded trainer. Each layer is a forward/backward pair of free
//! functions with its shapes in a comment, and each fast kernel has a naive reference beside
//! it ([`naive`]) that the tests compare it with.
//!
//! ## Why the first layer is stored input-major, and sparse inputs
//! `w1` is `(IN, H)`: row `i` holds the weights from pixel `i` to every hidden unit. About
//! 81 % of an MNIST digit's pixels are exactly 0 (a drawing after [`crate::preprocess`]: more),
//! so the hidden layer is computed as `z = b1 + Σ_{i: x_i ≠ 0} x_i · w1[i]` — one contiguous
//! `H`-long `axpy` per inked pixel, which vectorises fully — and the weight gradient of row
//! `i` only gathers the samples whose pixel `i` is inked. This is ≈ 5× less arithmetic than a
//! dense product and it is the same code on the host and on a Cortex-M. Inputs reach the
//! kernels as a [`Sparse`] image: the inked pixels' indices and values, in pixel order, so
//! every sum runs in a fixed order and results are reproducible.
//!
//! ## Loss
//! For a batch of `m` samples (see [`crate::hyper`] for `reg_lambda`):
//! `L = (1/m) Σ −log softmax(z₂)[y] + (λ/2m)(‖W1‖² + ‖W2‖²)`.

use bytemuck::Zeroable;

use crate::rng::{hash3, unit_f32, Rng};

/// Pixels of one 28x28 input.
pub const INPUT: usize = 784;
/// Digits 0–9.
pub const CLASSES: usize = 10;
const _: () = assert!(
    INPUT.is_multiple_of(16),
    "inked_pixels reads the image in runs of 16"
);

/// The network's parameters. Also used, with the same shapes, for gradients and momentum.
///
/// 784×`H` floats are big (3 MB at `H` = 1024): never build one on a stack. On a host use
/// a zeroed box (e.g. `bytemuck::zeroed_box`); on a microcontroller a `static`.
#[derive(Zeroable)]
#[repr(C, align(64))]
pub struct Mlp<const H: usize> {
    /// w1: (IN, H) — row `i` holds the weights from input pixel `i` to every hidden unit.
    pub w1: [[f32; H]; INPUT],
    /// b1: (H)
    pub b1: [f32; H],
    /// w2: (CLASSES, H) — row `k` holds the weights of output `k`.
    pub w2: [[f32; H]; CLASSES],
    /// b2: (CLASSES)
    pub b2: [f32; CLASSES],
}

impl<const H: usize> core::fmt::Debug for Mlp<H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Mlp<{INPUT}-{H}-{CLASSES}>")
    }
}

impl<const H: usize> Mlp<H> {
    /// Number of parameters (weights and biases).
    pub const PARAMS: usize = INPUT * H + H + H * CLASSES + CLASSES;

    /// He initialisation: weights ~ N(0, 2/fan_in), biases zero.
    pub fn init(&mut self, rng: &mut Rng) {
        let s1 = libm::sqrtf(2.0 / INPUT as f32);
        for w in self.w1.as_flattened_mut() {
            *w = rng.normal() * s1;
        }
        let s2 = libm::sqrtf(2.0 / H as f32);
        for w in self.w2.as_flattened_mut() {
            *w = rng.normal() * s2;
        }
        self.b1 = [0.0; H];
        self.b2 = [0.0; CLASSES];
    }

    /// Copies every parameter from `other` without a temporary.
    pub fn copy_from(&mut self, other: &Self) {
        self.w1.copy_from_slice(&other.w1);
        self.b1 = other.b1;
        self.w2.copy_from_slice(&other.w2);
        self.b2 = other.b2;
    }

    /// Moves every parameter a fraction `a` of the way to `other`'s: `self ← self + a·(other −
    /// self)` (`a = 1` copies it). The trainer averages weights over
    /// epochs with it.
    pub fn blend_toward(&mut self, other: &Self, a: f32) {
        let pairs = self
            .w1
            .as_flattened_mut()
            .iter_mut()
            .zip(other.w1.as_flattened())
            .chain(self.b1.iter_mut().zip(&other.b1))
            .chain(
                self.w2
                    .as_flattened_mut()
                    .iter_mut()
                    .zip(other.w2.as_flattened()),
            )
            .chain(self.b2.iter_mut().zip(&other.b2));
        for (mine, theirs) in pairs {
            *mine += a * (*theirs - *mine);
        }
    }

    /// Raw scores of one input (no dropout: inference).
    #[inline(always)]
    pub fn logits(&self, x: &[f32; INPUT]) -> [f32; CLASSES] {
        let mut sparse = Sparse::new();
        sparse.set_f32(x);
        self.logits_sparse(&sparse)
    }

    /// Raw scores of a sparse input (no dropout).
    #[inline(always)]
    pub fn logits_sparse(&self, x: &Sparse) -> [f32; CLASSES] {
        let mut hidden = [0.0; H];
        hidden_pre(&self.w1, &self.b1, x, &mut hidden);
        output_logits(self, &mut hidden)
    }

    /// Raw scores of many sparse inputs (no dropout): `xs: (n) -> z: (n, C)`, each bit for
    /// bit what [`Self::logits_sparse`] gives it, with the loops turned round: strip of 64
    /// hidden units outer ([`strips`]), input inner. One input's inked rows span the whole of
    /// `w1` (784·H floats, 3.2 MB at H = 1024), so input after input they come from the
    /// last-level cache or memory; one strip's rows (200 kB, packed by [`pack_strips`] into
    /// `packed_w1`) stay in the core's L2 cache while every input is summed over them. Each
    /// input's strip goes through ReLU into the output layer's running dot products
    /// ([`DotSum`]) at once, so the scratch is one strip per input, whatever `H`.
    #[inline(always)]
    pub fn logits_many(
        &self,
        packed_w1: &[f32],
        xs: &[Sparse],
        scratch: &mut [ManyScratch],
        z: &mut [[f32; CLASSES]],
    ) {
        // Strips start at multiples of 16, so every strip but the last is a whole number of
        // DotSum's runs of 8, as DotSum::add asks.
        const {
            assert!(
                H.is_multiple_of(8),
                "logits_many needs a multiple of 8 hidden units"
            )
        };
        let n = xs.len().min(scratch.len()).min(z.len());
        let (xs, scratch) = (&xs[..n], &mut scratch[..n]);
        for s in scratch.iter_mut() {
            s.out = [DotSum::new(); CLASSES];
        }
        for (c0, w) in strips(H) {
            let panel = &packed_w1[INPUT * c0..INPUT * (c0 + w)];
            for (x, s) in xs.iter().zip(scratch.iter_mut()) {
                let h = &mut s.hidden[..w];
                h.copy_from_slice(&self.b1[c0..c0 + w]);
                sparse_strip(x, panel, w, 0, h);
                for v in h.iter_mut() {
                    *v = relu(*v);
                }
                for (acc, row) in s.out.iter_mut().zip(&self.w2) {
                    acc.add(&row[c0..c0 + w], h);
                }
            }
        }
        for (s, zb) in scratch.iter().zip(z.iter_mut()) {
            *zb = self.b2;
            for (zk, acc) in zb.iter_mut().zip(&s.out) {
                *zk += acc.total();
            }
        }
    }

    /// The ten class probabilities of one input.
    pub fn predict_proba(&self, x: &[f32; INPUT]) -> [f32; CLASSES] {
        softmax(&self.logits(x))
    }

    /// The most probable digit.
    pub fn predict(&self, x: &[f32; INPUT]) -> usize {
        argmax(&self.logits(x))
    }
}

/// ReLU in place, then the output layer: `z2 = w2·relu(h) + b2`.
#[inline(always)]
fn output_logits<const H: usize>(m: &Mlp<H>, hidden: &mut [f32; H]) -> [f32; CLASSES] {
    for v in hidden.iter_mut() {
        *v = relu(*v);
    }
    let mut z = m.b2;
    for (zk, row) in z.iter_mut().zip(&m.w2) {
        *zk += dot(row, hidden);
    }
    z
}

/// One input image as its inked pixels: indices (ascending) and values in `0..=1`.
/// Capacity is the whole image, so every image fits; no allocation.
#[derive(Clone, Copy, Zeroable)]
#[repr(C)]
pub struct Sparse {
    len: usize,
    idx: [u16; INPUT],
    val: [f32; INPUT],
}

impl core::fmt::Debug for Sparse {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Sparse({} inked pixels)", self.len)
    }
}

impl Sparse {
    /// An empty image.
    pub const fn new() -> Self {
        Sparse {
            len: 0,
            idx: [0; INPUT],
            val: [0.0; INPUT],
        }
    }

    /// Fills from bytes `0..=255` (value = byte / 255): [`inked_pixels`], then their values.
    #[inline(always)]
    pub fn set_bytes(&mut self, image: &[u8; INPUT]) {
        let mut levels = [0u8; INPUT];
        let n = inked_pixels(image, &mut self.idx, &mut levels);
        self.set_levels(&levels[..n]);
    }

    /// Fills from the inked pixels of an image: their indices (ascending, below [`INPUT`])
    /// and their grey levels (`1..=255`), as [`inked_pixels`] gives them; the same as
    /// [`Self::set_bytes`] on the image.
    ///
    /// # Panics
    /// If there are more than [`INPUT`] pixels, or fewer levels than indices.
    #[inline(always)]
    pub fn set_inked(&mut self, idx: &[u16], levels: &[u8]) {
        self.idx[..idx.len()].copy_from_slice(idx);
        self.set_levels(&levels[..idx.len()]);
    }

    /// The values of the first `levels.len()` pixels (whose indices are in place) from
    /// their grey levels; that many pixels are inked.
    #[inline(always)]
    fn set_levels(&mut self, levels: &[u8]) {
        for (v, &b) in self.val.iter_mut().zip(levels) {
            *v = b as f32 * (1.0 / 255.0);
        }
        self.len = levels.len();
    }

    /// Fills from floats (zeros skipped), like [`Self::set_bytes`].
    #[inline(always)]
    pub fn set_f32(&mut self, image: &[f32; INPUT]) {
        let mut n = 0;
        for (c, chunk) in image.chunks_exact(16).enumerate() {
            if chunk.iter().all(|&v| v == 0.0) {
                continue;
            }
            for (j, &v) in chunk.iter().enumerate() {
                self.idx[n] = (c * 16 + j) as u16;
                self.val[n] = v;
                n += (v != 0.0) as usize;
            }
        }
        self.len = n;
    }

    /// Inked pixels.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is inked.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `(pixel index, value)` of the inked pixels, ascending.
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = (usize, f32)> + '_ {
        self.idx[..self.len]
            .iter()
            .zip(&self.val[..self.len])
            .map(|(&i, &v)| (i as usize, v))
    }
}

/// The inked (non-zero) pixels of `image`, ascending: their indices and grey levels are
/// written to the front of `idx` and `levels`; returns how many there are.
///
/// Runs of 16 blank pixels (most of a digit's border) are skipped with one 128-bit compare;
/// inside other runs every pixel is written at the next free slot and the slot only advances
/// past inked ones, without a branch: whether a pixel is inked is unpredictable along a
/// stroke's edge, and a branch there cost 20 % of a training step (`perf` on the project's
/// EPYC VM).
#[inline(always)]
pub fn inked_pixels(
    image: &[u8; INPUT],
    idx: &mut [u16; INPUT],
    levels: &mut [u8; INPUT],
) -> usize {
    let mut n = 0;
    for (c, chunk) in image.chunks_exact(16).enumerate() {
        let word = u128::from_ne_bytes(chunk.try_into().unwrap_or([0; 16]));
        if word == 0 {
            continue;
        }
        for (j, &b) in chunk.iter().enumerate() {
            // n <= pixel index < INPUT: in bounds.
            idx[n] = (c * 16 + j) as u16;
            levels[n] = b;
            n += (b != 0) as usize;
        }
    }
    n
}

impl Default for Sparse {
    fn default() -> Self {
        Self::new()
    }
}

/// ReLU.
#[inline(always)]
pub fn relu(z: f32) -> f32 {
    if z > 0.0 {
        z
    } else {
        0.0
    }
}

/// Index of the largest value (the first one on ties).
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for i in 1..v.len() {
        if v[i] > v[best] {
            best = i;
        }
    }
    best
}

/// Dot product with eight independent accumulators, so the compiler can keep them in one
/// SIMD register; the summation order is fixed, hence the result is too.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = DotSum::new();
    acc.add(a, b);
    acc.total()
}

/// The running sums of [`dot`], so a dot product can be taken piece by piece: adding the
/// pieces of `a` and `b` in order, each a multiple of 8 long except the last, gives the
/// [`total`](Self::total) that one [`dot`] over the whole gives, bit for bit.
#[derive(Clone, Copy, Debug)]
pub struct DotSum {
    acc: [f32; 8],
    tail: f32,
}

impl DotSum {
    /// Nothing summed yet.
    pub const fn new() -> Self {
        DotSum {
            acc: [0.0; 8],
            tail: 0.0,
        }
    }

    /// Adds `a · b`: element `j` of each run of 8 into accumulator `j`, what is left over
    /// into the tail.
    #[inline(always)]
    pub fn add(&mut self, a: &[f32], b: &[f32]) {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut ca = a.chunks_exact(8);
        let mut cb = b.chunks_exact(8);
        for (x, y) in (&mut ca).zip(&mut cb) {
            for l in 0..8 {
                self.acc[l] += x[l] * y[l];
            }
        }
        for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
            self.tail += x * y;
        }
    }

    /// The dot product: the accumulators added pairwise, then the tail.
    #[inline(always)]
    pub fn total(&self) -> f32 {
        let acc = &self.acc;
        ((acc[0] + acc[4]) + (acc[1] + acc[5]))
            + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
            + self.tail
    }
}

impl Default for DotSum {
    fn default() -> Self {
        Self::new()
    }
}

/// `y += alpha · x`, element by element (no reassociation: SIMD and scalar agree bit for bit).
#[inline(always)]
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// Numerically stable softmax: the largest logit is subtracted first, so no input overflows
/// and the result always sums to 1 (infinities and NaN are mapped to a one-hot / uniform).
pub fn softmax(z: &[f32; CLASSES]) -> [f32; CLASSES] {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut p = [0.0f32; CLASSES];
    if !max.is_finite() {
        // All -inf, +inf present, or NaN: fall back to the arg-max (uniform if undecidable).
        let finite_or_inf = |v: f32| if v.is_nan() { f32::NEG_INFINITY } else { v };
        let best = argmax(&z.map(finite_or_inf));
        if max == f32::INFINITY {
            p[best] = 1.0;
        } else {
            p = [1.0 / CLASSES as f32; CLASSES];
        }
        return p;
    }
    let mut sum = 0.0;
    for k in 0..CLASSES {
        p[k] = libm::expf(z[k] - max);
        sum += p[k];
    }
    for pk in &mut p {
        *pk /= sum;
    }
    p
}

/// Cross-entropy `−log softmax(z)[label]` computed as `logsumexp(z) − z[label]`: finite
/// for any finite logits, however extreme.
pub fn cross_entropy(z: &[f32; CLASSES], label: usize) -> f32 {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for &zk in z {
        sum += libm::expf(zk - max);
    }
    max + libm::logf(sum) - z[label]
}

/// Inverted dropout on the hidden layer. Whether unit `h` of sample `b` of a batch of `B` is
/// kept at training step `step` is a pure function of `(seed, step, h·B + b)`, so it does not
/// depend on which thread computes the sample.
#[derive(Clone, Copy, Debug)]
pub struct Dropout {
    /// Probability of dropping a unit.
    pub rate: f32,
    /// Seed of the run.
    pub seed: u64,
    /// Global step (batch counter), so every batch gets fresh masks.
    pub step: u64,
}

impl Dropout {
    /// Multiplier of kept units (`1 / (1 − rate)`), so the expected activation is unchanged
    /// and inference needs no rescaling.
    pub fn scale(&self) -> f32 {
        1.0 / (1.0 - self.rate)
    }

    /// Whether hidden unit `unit` of sample `sample` (of `batch`) is kept.
    #[inline(always)]
    fn keep(&self, unit: usize, sample: usize, batch: usize) -> bool {
        unit_f32(hash3(self.seed, self.step, (unit * batch + sample) as u64)) >= self.rate
    }
}

/// Hidden pre-activation of a sparse input: `w1: (IN, H), b1: (H), x: sparse (IN) -> z: (H)`,
/// `z = b1 + Σ x_i · w1[i]` over the inked pixels in ascending order.
#[inline(always)]
pub fn hidden_pre<const H: usize>(
    w1: &[[f32; H]; INPUT],
    b1: &[f32; H],
    x: &Sparse,
    z: &mut [f32; H],
) {
    *z = *b1;
    sparse_rows(x, w1.as_flattened(), H, z);
}

/// `out += Σ_{(i, v) in x} v · w[i·stride ..][..out.len()]`: the rows of the inked pixels,
/// weighted. Done one strip of 64 outputs at a time (16 at the end, [`strips`]) so the
/// running sums stay in vector registers across all the pixels instead of going through
/// memory after every row (what that gained, measured: docs/ARCHITECTURE.md, "Sparse,
/// input-major first layer"). Every output element is still summed over
/// the pixels in ascending order, so the result is the same as one `axpy` per pixel, bit for
/// bit, whatever the strips.
#[inline(always)]
fn sparse_rows(x: &Sparse, w: &[f32], stride: usize, out: &mut [f32]) {
    for (c0, n) in strips(out.len()) {
        sparse_strip(x, w, stride, c0, &mut out[c0..c0 + n]);
    }
}

/// The column strips `(first, len)` that [`sparse_rows`] cuts `len` outputs into: 64 wide
/// (eight AVX2 or four AVX-512 registers of running sums), then at most 16 at the end.
#[inline(always)]
fn strips(len: usize) -> impl Iterator<Item = (usize, usize)> {
    let full = len / 64 * 64;
    (0..full).step_by(64).map(|c0| (c0, 64)).chain(
        (full..len)
            .step_by(16)
            .map(move |c0| (c0, (len - c0).min(16))),
    )
}

/// One strip of [`sparse_rows`]: `out += Σ_{(i, v) in x} v · w[i·stride + c0 ..][..out.len()]`
/// with `out` 64 long, or at most 16.
#[inline(always)]
fn sparse_strip(x: &Sparse, w: &[f32], stride: usize, c0: usize, out: &mut [f32]) {
    if let Ok(out) = <&mut [f32; 64]>::try_from(&mut *out) {
        let mut acc = *out;
        for (i, v) in x.iter() {
            let row = &w[i * stride + c0..i * stride + c0 + 64];
            for (a, r) in acc.iter_mut().zip(row) {
                *a += v * r;
            }
        }
        *out = acc;
        return;
    }
    let n = out.len().min(16);
    let mut acc = [0.0f32; 16];
    acc[..n].copy_from_slice(&out[..n]);
    for (i, v) in x.iter() {
        let row = &w[i * stride + c0..i * stride + c0 + n];
        for (a, r) in acc.iter_mut().zip(row) {
            *a += v * r;
        }
    }
    out[..n].copy_from_slice(&acc[..n]);
}

/// `w1: (IN, H)` laid out again strip by strip for [`Mlp::logits_many`]: strip `(c0, n)` of
/// [`strips`] becomes the `(IN, n)` matrix at `out[IN·c0 ..]`, its rows contiguous. In `w1`
/// a strip's rows are `4·H` bytes apart, and at `H` ≥ 1024 rows that far apart fall into so
/// few sets of the caches that a strip does not stay cached however small it is (784 rows ×
/// 256 bytes); packed, it is 200 kB in one piece. `out` holds `IN·H` floats.
pub fn pack_strips<const H: usize>(w1: &[[f32; H]; INPUT], out: &mut [f32]) {
    pack_columns(w1, 0, H, out);
}

/// Columns `h0 .. h0 + width` of `w1: (IN, H)` strip-packed as [`pack_strips`] lays out all
/// of them (strips of `width`, counted from `h0`): how a training [`Block`] holds its `w1`.
/// `out` holds `IN·width` floats.
pub fn pack_columns<const H: usize>(
    w1: &[[f32; H]; INPUT],
    h0: usize,
    width: usize,
    out: &mut [f32],
) {
    for (c0, n) in strips(width) {
        let panel = &mut out[INPUT * c0..INPUT * (c0 + n)];
        for (dst, row) in panel.chunks_exact_mut(n).zip(w1) {
            dst.copy_from_slice(&row[h0 + c0..h0 + c0 + n]);
        }
    }
}

/// The inverse of [`pack_columns`]: writes `packed` back into columns `h0 .. h0 + width`.
pub fn unpack_columns<const H: usize>(
    packed: &[f32],
    h0: usize,
    width: usize,
    w1: &mut [[f32; H]; INPUT],
) {
    for (c0, n) in strips(width) {
        let panel = &packed[INPUT * c0..INPUT * (c0 + n)];
        for (src, row) in panel.chunks_exact(n).zip(w1.iter_mut()) {
            row[h0 + c0..h0 + c0 + n].copy_from_slice(src);
        }
    }
}

/// What [`Mlp::logits_many`] keeps per input: the strip of hidden units it is on, and the
/// output layer's running dot products.
#[derive(Clone, Copy, Debug)]
pub struct ManyScratch {
    hidden: [f32; 64],
    out: [DotSum; CLASSES],
}

impl ManyScratch {
    /// Zeroed scratch.
    pub const fn new() -> Self {
        ManyScratch {
            hidden: [0.0; 64],
            out: [DotSum::new(); CLASSES],
        }
    }
}

impl Default for ManyScratch {
    fn default() -> Self {
        Self::new()
    }
}

/// Hidden units are trained in blocks whose widths are multiples of `SUB`; each block's
/// contribution to the logits is summed per `SUB` units and the sums are added in unit order,
/// so the result does not depend on how many blocks (threads) there are.
pub const SUB: usize = 16;

/// A block of hidden units `h0 .. h0 + width` (`width` a multiple of [`SUB`]), with its
/// slices of the parameters: `w1: (IN, width)` strip-packed ([`pack_columns`]), `b1: (width)`,
/// `w2: (C, width)` row-major.
#[derive(Clone, Copy, Debug)]
pub struct Block<'a> {
    /// First hidden unit.
    pub h0: usize,
    /// Hidden units in the block.
    pub width: usize,
    /// Input weights of the block's units, strip-packed ([`pack_columns`]).
    pub w1: &'a [f32],
    /// Biases of the block's units.
    pub b1: &'a [f32],
    /// Output weights from the block's units, row per class.
    pub w2: &'a [f32],
}

/// Hidden layer forward of a block over a batch given as consecutive chunks, and the block's
/// share of its logits. `chunks: (B) sparse inputs -> a: (B, width) activations after ReLU
/// and dropout, partial: (B, width/SUB, C)` logits contributions per `SUB` units.
///
/// Strip by strip of the packed `w1`, every sample of the batch is summed over the strip's
/// panel before the next: a panel (784 × 64 floats, 200 kB) stays in the core's L2 cache
/// while the batch's samples read its inked rows, where one sample at a time read rows
/// `4·width` bytes apart out of the whole block (6.4 MB at 4096 units on two threads), from
/// the last-level cache or memory. Each unit is still `b1` plus its inked pixels in
/// ascending order, so the activations are bit for bit those of one sample at a time.
#[inline(always)]
pub fn block_forward(
    blk: Block<'_>,
    chunks: &[&[Sparse]],
    batch: usize,
    dropout: Option<Dropout>,
    a: &mut [f32],
    partial: &mut [[f32; CLASSES]],
) {
    let w = blk.width;
    let subs = w / SUB;
    let drop = dropout.filter(|d| d.rate > 0.0);
    let samples = || chunks.iter().flat_map(|c| c.iter());
    for ab in a.chunks_exact_mut(w) {
        ab.copy_from_slice(blk.b1);
    }
    for (c0, n) in strips(w) {
        let panel = &blk.w1[INPUT * c0..INPUT * (c0 + n)];
        for (x, ab) in samples().zip(a.chunks_exact_mut(w)) {
            sparse_strip(x, panel, n, 0, &mut ab[c0..c0 + n]);
        }
    }
    for (b, (_, (ab, pb))) in samples()
        .zip(a.chunks_exact_mut(w).zip(partial.chunks_exact_mut(subs)))
        .enumerate()
    {
        match drop {
            Some(d) => {
                let s = d.scale();
                for (j, v) in ab.iter_mut().enumerate() {
                    *v = if *v > 0.0 && d.keep(blk.h0 + j, b, batch) {
                        *v * s
                    } else {
                        0.0
                    };
                }
            }
            None => {
                for v in ab.iter_mut() {
                    *v = relu(*v);
                }
            }
        }
        for (s, p) in pb.iter_mut().enumerate() {
            let lo = s * SUB;
            for k in 0..CLASSES {
                p[k] = dot(&blk.w2[k * w + lo..k * w + lo + SUB], &ab[lo..lo + SUB]);
            }
        }
    }
}

/// Adds one block's logits contributions: `z: (B, C) += Σ_s partial: (B, subs, C)`, in order.
#[inline(always)]
pub fn add_partials(z: &mut [[f32; CLASSES]], partial: &[[f32; CLASSES]]) {
    let subs = partial.len() / z.len().max(1);
    for (zb, pb) in z.iter_mut().zip(partial.chunks_exact(subs.max(1))) {
        for p in pb {
            for k in 0..CLASSES {
                zb[k] += p[k];
            }
        }
    }
}

/// Softmax + cross-entropy forward and its backward:
/// `z: (B, C), labels: (B) -> dz: (B, C) = (softmax(z) − onehot) / B`.
/// Returns the summed (not mean) cross-entropy and the number of correct arg-maxes.
pub fn softmax_cross_entropy(
    z: &[[f32; CLASSES]],
    labels: &[u8],
    dz: &mut [[f32; CLASSES]],
) -> (f64, usize) {
    let inv_b = 1.0 / z.len() as f32;
    let (mut loss, mut correct) = (0.0f64, 0usize);
    for ((zb, &y), db) in z.iter().zip(labels).zip(dz.iter_mut()) {
        let y = y as usize;
        loss += cross_entropy(zb, y) as f64;
        correct += (argmax(zb) == y) as usize;
        let p = softmax(zb);
        for k in 0..CLASSES {
            db[k] = (p[k] - (k == y) as u32 as f32) * inv_b;
        }
    }
    (loss, correct)
}

/// Backward of a block down to the hidden pre-activation. On entry `a: (B, width)` holds the
/// forward activations; on return the gradient at the pre-activation (`dz1`). A unit's
/// activation is positive exactly when it was active and kept, so `a` alone encodes the ReLU
/// derivative and the dropout mask; `scale` is the dropout multiplier (1 without dropout).
/// `w2: (C, width), dz2: (B, C) -> gw2: (C, width) = Σ_b dz2[b] ⊗ a[b], gb1: (width)`.
#[inline(always)]
pub fn block_backward(
    w2: &[f32],
    width: usize,
    dz2: &[[f32; CLASSES]],
    scale: f32,
    a: &mut [f32],
    gw2: &mut [f32],
    gb1: &mut [f32],
) {
    gw2.fill(0.0);
    gb1.fill(0.0);
    let mut buf = [0.0f32; crate::hyper::MAX_HIDDEN];
    let da = &mut buf[..width];
    for (ab, db) in a.chunks_exact_mut(width).zip(dz2) {
        for k in 0..CLASSES {
            axpy(db[k], ab, &mut gw2[k * width..(k + 1) * width]);
        }
        // da = w2ᵀ·dz2 over the block's units, then through dropout and ReLU, in place.
        da.fill(0.0);
        for k in 0..CLASSES {
            axpy(db[k], &w2[k * width..(k + 1) * width], da);
        }
        for ((v, &d), g) in ab.iter_mut().zip(da.iter()).zip(gb1.iter_mut()) {
            *v = if *v > 0.0 { d * scale } else { 0.0 };
            *g += *v;
        }
    }
}

/// The inked pixels of a batch given as consecutive chunks, grouped by pixel (the batch
/// transposed, by a counting sort): pixel `i`'s `(sample, value)` pairs are
/// `entries[start[i] .. start[i + 1]]`, in sample order. `entries` must hold at least the
/// batch's inked-pixel count; returns that count.
#[inline(always)]
pub fn pixel_columns(
    chunks: &[&[Sparse]],
    start: &mut [u32; INPUT + 1],
    entries: &mut [(u32, f32)],
) -> usize {
    let samples = || chunks.iter().flat_map(|c| c.iter());
    start.fill(0);
    for x in samples() {
        for (i, _) in x.iter() {
            start[i + 1] += 1;
        }
    }
    for i in 0..INPUT {
        start[i + 1] += start[i];
    }
    let mut next = [0u32; INPUT];
    next.copy_from_slice(&start[..INPUT]);
    for (b, x) in samples().enumerate() {
        for (i, v) in x.iter() {
            entries[next[i] as usize] = (b as u32, v);
            next[i] += 1;
        }
    }
    start[INPUT] as usize
}

/// The gradient of a block's `w1` and its momentum update, in one pass: `dz1: (B, width)`,
/// the batch's inked pixels by pixel ([`pixel_columns`]) `-> g: (IN, width) = Σ_b x[b] ⊗
/// dz1[b]`, then [`sgd_momentum`] of `w1` and its momentum `v1`, both strip-packed
/// ([`pack_columns`]).
///
/// Strip by strip, each pixel's row of the strip has its gradient summed in registers over
/// the samples that ink the pixel (in sample order, as one `axpy` per sample and pixel would)
/// and is updated at once, so no gradient matrix is ever written or read back: per step
/// the weights and their momentum are read and written once, where scattering into a
/// gradient first (before 2026-12-03) also read and wrote each inked row of the gradient
/// once per sample and then streamed the whole gradient through the update and cleared it.
/// The result is the same bit for bit. Rows no sample inks get the update of a zero
/// gradient (the L2 pull and the momentum).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn w1_update(
    start: &[u32; INPUT + 1],
    entries: &[(u32, f32)],
    dz1: &[f32],
    width: usize,
    w1: &mut [f32],
    v1: &mut [f32],
    lr: f32,
    momentum: f32,
    l2: f32,
) {
    for (c0, n) in strips(width) {
        let wp = &mut w1[INPUT * c0..INPUT * (c0 + n)];
        let vp = &mut v1[INPUT * c0..INPUT * (c0 + n)];
        let rows = wp.chunks_exact_mut(n).zip(vp.chunks_exact_mut(n));
        for (i, (wr, vr)) in rows.enumerate() {
            let column = &entries[start[i] as usize..start[i + 1] as usize];
            let d = |b: u32| &dz1[b as usize * width + c0..][..n];
            if n == 64 {
                let mut g = [0.0f32; 64];
                for &(b, v) in column {
                    axpy(v, d(b), &mut g);
                }
                sgd_momentum(wr, vr, &g, lr, momentum, l2);
            } else {
                let mut g = [0.0f32; 16];
                for &(b, v) in column {
                    axpy(v, d(b), &mut g[..n]);
                }
                sgd_momentum(wr, vr, &g[..n], lr, momentum, l2);
            }
        }
    }
}

/// Momentum SGD with L2 on the weights: `g' = g + l2·w; v ← μ·v − lr·g'; w ← w + v`.
/// Pass `l2 = 0` for biases.
#[inline(always)]
pub fn sgd_momentum(w: &mut [f32], v: &mut [f32], g: &[f32], lr: f32, momentum: f32, l2: f32) {
    for ((wi, vi), gi) in w.iter_mut().zip(v.iter_mut()).zip(g) {
        *vi = momentum * *vi - lr * (gi + l2 * *wi);
        *wi += *vi;
    }
}

/// Straightforward reference versions of the fast kernels, dense and in the textbook order,
/// for the tests to compare against.
#[cfg(any(test, doc))]
pub mod naive {
    use super::{Mlp, CLASSES, INPUT};

    /// `z = w1ᵀ·x + b1` over every pixel, zero or not, accumulated per hidden unit.
    pub fn hidden_pre<const H: usize>(m: &Mlp<H>, x: &[f32; INPUT]) -> [f32; H] {
        let mut z = m.b1;
        for (h, zh) in z.iter_mut().enumerate() {
            for i in 0..INPUT {
                *zh += m.w1[i][h] * x[i];
            }
        }
        z
    }

    /// Logits without dropout.
    pub fn logits<const H: usize>(m: &Mlp<H>, x: &[f32; INPUT]) -> [f32; CLASSES] {
        let a = hidden_pre(m, x).map(super::relu);
        let mut z = m.b2;
        for k in 0..CLASSES {
            for h in 0..H {
                z[k] += m.w2[k][h] * a[h];
            }
        }
        z
    }

    /// `g[i][h] = Σ_b x[b][i] · dz1[b][h]`, dense.
    pub fn w1_grad<const H: usize>(
        x: &[[f32; INPUT]],
        dz1: &[[f32; H]],
        g: &mut [[f32; H]; INPUT],
    ) {
        for i in 0..INPUT {
            for h in 0..H {
                let mut s = 0.0;
                for (xb, db) in x.iter().zip(dz1) {
                    s += xb[i] * db[h];
                }
                g[i][h] = s;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::too_many_lines)] // tests read as scripts of steps
mod tests {
    use super::*;

    #[test]
    fn softmax_is_stable_on_extreme_logits() {
        let mut z = [0.0f32; CLASSES];
        z[3] = 1e30;
        z[4] = -1e30;
        let p = softmax(&z);
        assert_eq!(p[3], 1.0);
        assert!(p.iter().all(|v| v.is_finite()));
        let big = [88.0, 89.0, 1000.0, -1000.0, 0.0, 0.0, 0.0, 0.0, 0.0, 500.0];
        let p = softmax(&big);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(argmax(&p), 2);
        // Cross-entropy stays finite and exact-ish far from the origin.
        let ce = cross_entropy(&big, 9);
        assert!((ce - 500.0).abs() < 1e-3, "{ce}");
        assert_eq!(cross_entropy(&big, 2), 0.0);
        let same = [1e4f32; CLASSES];
        assert!((cross_entropy(&same, 0) - libm::logf(10.0)).abs() < 1e-3);
        assert!(softmax(&same).iter().all(|&v| (v - 0.1).abs() < 1e-6));
        // Non-finite logits never produce NaN probabilities.
        let mut inf = [0.0f32; CLASSES];
        inf[7] = f32::INFINITY;
        assert_eq!(softmax(&inf)[7], 1.0);
        let nan = [f32::NAN; CLASSES];
        assert!(softmax(&nan).iter().all(|v| v.is_finite()));
    }

    #[test]
    fn dot_matches_naive_sum() {
        let mut rng = Rng::new(5);
        for n in [0usize, 1, 7, 8, 9, 784] {
            let a: std::vec::Vec<f32> = (0..n).map(|_| rng.normal()).collect();
            let b: std::vec::Vec<f32> = (0..n).map(|_| rng.normal()).collect();
            let naive: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            assert!((dot(&a, &b) as f64 - naive).abs() < 1e-4, "n={n}");
        }
    }

    fn boxed<const H: usize>(seed: u64) -> std::boxed::Box<Mlp<H>> {
        let mut m: std::boxed::Box<Mlp<H>> = std::boxed::Box::new(Mlp::zeroed());
        let mut rng = Rng::new(seed);
        m.init(&mut rng);
        for b in m.b1.iter_mut().chain(m.b2.iter_mut()) {
            *b = 0.1 * rng.normal();
        }
        m
    }

    /// A digit-like input: about 30 % of pixels inked.
    fn inputs(n: usize, seed: u64) -> std::vec::Vec<[f32; INPUT]> {
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|_| {
                core::array::from_fn(|_| {
                    if rng.next_f32() < 0.3 {
                        rng.next_f32()
                    } else {
                        0.0
                    }
                })
            })
            .collect()
    }

    fn sparse(x: &[f32; INPUT]) -> Sparse {
        let mut s = Sparse::new();
        s.set_f32(x);
        s
    }

    /// A model's parameters cut into blocks of hidden units, as the trainer holds them.
    struct Blocks {
        w1: std::vec::Vec<std::vec::Vec<f32>>,
        b1: std::vec::Vec<std::vec::Vec<f32>>,
        w2: std::vec::Vec<std::vec::Vec<f32>>,
        starts: std::vec::Vec<usize>,
    }

    fn blocks<const H: usize>(m: &Mlp<H>, widths: &[usize]) -> Blocks {
        let mut out = Blocks {
            w1: std::vec![],
            b1: std::vec![],
            w2: std::vec![],
            starts: std::vec![],
        };
        let mut h0 = 0;
        for &w in widths {
            out.starts.push(h0);
            let mut packed = std::vec![0.0; INPUT * w];
            pack_columns(&m.w1, h0, w, &mut packed);
            out.w1.push(packed);
            out.b1.push(m.b1[h0..h0 + w].to_vec());
            out.w2.push(
                m.w2.iter()
                    .flat_map(|r| r[h0..h0 + w].iter().copied())
                    .collect(),
            );
            h0 += w;
        }
        out
    }

    impl Blocks {
        fn block(&self, j: usize) -> Block<'_> {
            Block {
                h0: self.starts[j],
                width: self.b1[j].len(),
                w1: &self.w1[j],
                b1: &self.b1[j],
                w2: &self.w2[j],
            }
        }
    }

    /// The packed `w1` gradient [`w1_update`] computes, read off one step from zero
    /// weights and momentum with `lr` 1, no momentum and no L2: the weights become `−g`.
    fn w1_gradient(chunks: &[&[Sparse]], dz1: &[f32], width: usize) -> std::vec::Vec<f32> {
        let inked: usize = chunks.iter().flat_map(|c| c.iter()).map(|x| x.len()).sum();
        let mut start = [0u32; INPUT + 1];
        let mut entries = std::vec![(0u32, 0.0f32); inked];
        assert_eq!(pixel_columns(chunks, &mut start, &mut entries), inked);
        let (mut w, mut v) = (std::vec![0.0; INPUT * width], std::vec![0.0; INPUT * width]);
        w1_update(&start, &entries, dz1, width, &mut w, &mut v, 1.0, 0.0, 0.0);
        w.iter().map(|x| -x).collect()
    }

    #[test]
    #[cfg_attr(miri, ignore = "too slow under Miri; see .ci/run")]
    fn fast_kernels_match_the_naive_ones() {
        const H: usize = 32;
        let m = boxed::<H>(3);
        let xs = inputs(6, 4);
        for x in &xs {
            let mut z = [0.0; H];
            hidden_pre(&m.w1, &m.b1, &sparse(x), &mut z);
            let reference = naive::hidden_pre(&m, x);
            for (a, b) in z.iter().zip(&reference) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
            }
            let (fast, slow) = (m.logits(x), naive::logits(&m, x));
            for (a, b) in fast.iter().zip(&slow) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()));
            }
        }
        // Training forward in blocks against inference, and one block against two.
        let sx: std::vec::Vec<Sparse> = xs.iter().map(sparse).collect();
        let n = sx.len();
        let mut z_one = std::vec![m.b2; n];
        let mut z_two = std::vec![m.b2; n];
        for (widths, z) in [(&[32usize][..], &mut z_one), (&[16, 16][..], &mut z_two)] {
            let bl = blocks(&m, widths);
            for j in 0..widths.len() {
                let mut a = std::vec![0.0; n * widths[j]];
                let mut partial = std::vec![[0.0; CLASSES]; n * widths[j] / SUB];
                block_forward(bl.block(j), &[&sx], n, None, &mut a, &mut partial);
                add_partials(z, &partial);
            }
        }
        assert_eq!(z_one, z_two, "the logits depend on the block split");
        for (z, x) in z_one.iter().zip(&xs) {
            for (a, b) in z.iter().zip(&naive::logits(&m, x)) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()));
            }
        }
        // The weight gradient by pixel columns against the dense product, inputs in chunks.
        let mut rng = Rng::new(8);
        let dz1: std::vec::Vec<[f32; H]> = (0..n)
            .map(|_| core::array::from_fn(|_| rng.normal()))
            .collect();
        let mut dense: std::boxed::Box<[[f32; H]; INPUT]> = std::boxed::Box::new([[0.0; H]; INPUT]);
        naive::w1_grad(&xs, &dz1, &mut dense);
        let flat: std::vec::Vec<f32> = dz1.iter().flatten().copied().collect();
        let g = w1_gradient(&[&sx[..2], &sx[2..]], &flat, H);
        let mut rows: std::boxed::Box<[[f32; H]; INPUT]> = std::boxed::Box::new([[0.0; H]; INPUT]);
        unpack_columns(&g, 0, H, &mut rows);
        for i in 0..INPUT {
            for (a, b) in rows[i].iter().zip(&dense[i]) {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "row {i}: {a} vs {b}"
                );
            }
        }
    }

    /// A block's columns packed strip by strip come back unpacked exactly where they were,
    /// for a block that starts inside the matrix and ends in 64- and 16-wide strips.
    #[test]
    #[cfg_attr(miri, ignore = "too slow under Miri; see .ci/run")]
    fn packed_columns_unpack_to_the_same_columns() {
        const H: usize = 4 * 64;
        let m = boxed::<H>(5);
        let (h0, width) = (48, 64 + 2 * 16);
        let mut packed = std::vec![0.0f32; INPUT * width];
        pack_columns(&m.w1, h0, width, &mut packed);
        assert_eq!(packed[..64], m.w1[0][h0..h0 + 64]);
        assert_eq!(packed[INPUT * 64 + 16..][..16], m.w1[1][h0 + 64..h0 + 80]);
        let mut back: std::boxed::Box<[[f32; H]; INPUT]> = std::boxed::Box::new([[0.0; H]; INPUT]);
        unpack_columns(&packed, h0, width, &mut back);
        for (row, original) in back.iter().zip(m.w1.iter()) {
            assert_eq!(row[h0..h0 + width], original[h0..h0 + width]);
            assert!(row[..h0]
                .iter()
                .chain(&row[h0 + width..])
                .all(|&v| v == 0.0));
        }
    }

    /// The logits of many inputs at once, strip by strip, are bit for bit those of each
    /// input alone, for a width that ends in 64-wide and 16-wide strips and inputs that
    /// include a blank image; both agree with the dense textbook product.
    #[test]
    #[cfg_attr(miri, ignore = "too slow under Miri; see .ci/run")]
    fn many_inputs_at_once_give_each_inputs_logits_bit_for_bit() {
        const H: usize = 3 * 64 + 2 * 16;
        let m = boxed::<H>(21);
        let mut xs = inputs(9, 22);
        xs[4] = [0.0; INPUT];
        let sx: std::vec::Vec<Sparse> = xs.iter().map(sparse).collect();
        let mut packed = std::vec![0.0f32; INPUT * H];
        pack_strips(&m.w1, &mut packed);
        for (c0, w) in strips(H) {
            for i in [0, 391, INPUT - 1] {
                assert_eq!(packed[INPUT * c0 + i * w..][..w], m.w1[i][c0..c0 + w]);
            }
        }
        let mut scratch = std::vec![ManyScratch::new(); sx.len()];
        let mut z = std::vec![[f32::NAN; CLASSES]; sx.len()];
        m.logits_many(&packed, &sx, &mut scratch, &mut z);
        for ((x, s), zb) in xs.iter().zip(&sx).zip(&z) {
            assert_eq!(zb.map(f32::to_bits), m.logits_sparse(s).map(f32::to_bits));
            for (a, b) in zb.iter().zip(&naive::logits(&m, x)) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
        // Fewer inputs than scratch: only theirs are written.
        let mut two = std::vec![[f32::NAN; CLASSES]; 3];
        m.logits_many(&packed, &sx[..2], &mut scratch, &mut two);
        assert_eq!(two[..2], z[..2]);
        assert!(two[2].iter().all(|v| v.is_nan()));
    }

    /// Loss of a batch as defined in the module docs, in f64, with the given dropout mask.
    fn batch_loss<const H: usize>(
        m: &Mlp<H>,
        x: &[[f32; INPUT]],
        y: &[u8],
        d: Dropout,
        l2: f32,
    ) -> f64 {
        let n = x.len();
        let mut ce = 0.0f64;
        for (b, (xb, &yb)) in x.iter().zip(y).enumerate() {
            let mut a = naive::hidden_pre(m, xb);
            for (h, v) in a.iter_mut().enumerate() {
                *v = if *v > 0.0 && d.keep(h, b, n) {
                    *v * d.scale()
                } else {
                    0.0
                };
            }
            let mut z = m.b2;
            for k in 0..CLASSES {
                for h in 0..H {
                    z[k] += m.w2[k][h] * a[h];
                }
            }
            ce += cross_entropy(&z, yb as usize) as f64;
        }
        let sq: f64 =
            m.w1.as_flattened()
                .iter()
                .chain(m.w2.as_flattened())
                .map(|&w| (w as f64).powi(2))
                .sum();
        ce / n as f64 + 0.5 * l2 as f64 * sq
    }

    #[test]
    #[cfg_attr(miri, ignore = "too slow under Miri; see .ci/run")]
    fn backprop_matches_finite_differences() {
        const H: usize = 16;
        let mut m = boxed::<H>(11);
        let n = 5;
        let x = inputs(n, 12);
        let y: std::vec::Vec<u8> = (0..n).map(|i| (i * 3 % 10) as u8).collect();
        let d = Dropout {
            rate: 0.3,
            seed: 9,
            step: 4,
        };
        let l2 = 0.01 / n as f32;

        // Analytic gradient through the training kernels (H = 16: one block of SUB units).
        let sx: std::vec::Vec<Sparse> = x.iter().map(sparse).collect();
        let bl = blocks(&m, &[H]);
        let mut a = std::vec![0.0; n * H];
        let mut partial = std::vec![[0.0; CLASSES]; n * H / SUB];
        block_forward(
            bl.block(0),
            &[&sx[..2], &sx[2..]],
            n,
            Some(d),
            &mut a,
            &mut partial,
        );
        let mut z = std::vec![m.b2; n];
        add_partials(&mut z, &partial);
        let mut dz2 = std::vec![[0.0; CLASSES]; n];
        softmax_cross_entropy(&z, &y, &mut dz2);
        let mut g: std::boxed::Box<Mlp<H>> = std::boxed::Box::new(Mlp::zeroed());
        for db in &dz2 {
            for k in 0..CLASSES {
                g.b2[k] += db[k];
            }
        }
        let mut gw2 = std::vec![0.0; CLASSES * H];
        block_backward(&bl.w2[0], H, &dz2, d.scale(), &mut a, &mut gw2, &mut g.b1);
        for k in 0..CLASSES {
            g.w2[k].copy_from_slice(&gw2[k * H..(k + 1) * H]);
        }
        unpack_columns(&w1_gradient(&[&sx], &a, H), 0, H, &mut g.w1);

        let eps = 1e-2f32;
        let mut checked = 0;
        let mut worst = 0.0f64;
        // (tensor, flat index) pairs: all of b1, b2, w2 and a spread of w1.
        let mut probes = std::vec::Vec::new();
        probes.extend((0..H).map(|i| (1, i)));
        probes.extend((0..CLASSES).map(|i| (3, i)));
        probes.extend((0..H * CLASSES).map(|i| (2, i)));
        probes.extend((0..H * INPUT).step_by(37).map(|i| (0, i)));
        for (t, i) in probes {
            let read = |m: &Mlp<H>| match t {
                0 => m.w1.as_flattened()[i],
                1 => m.b1[i],
                2 => m.w2.as_flattened()[i],
                _ => m.b2[i],
            };
            let write = |m: &mut Mlp<H>, v: f32| match t {
                0 => m.w1.as_flattened_mut()[i] = v,
                1 => m.b1[i] = v,
                2 => m.w2.as_flattened_mut()[i] = v,
                _ => m.b2[i] = v,
            };
            // Skip probes that move a hidden pre-activation across ReLU's kink, where the
            // finite difference is not the derivative.
            let near_kink = |h: usize, dx: &dyn Fn(usize) -> f32| {
                (0..n).any(|b| naive::hidden_pre(&m, &x[b])[h].abs() <= 2.0 * eps * dx(b).abs())
            };
            let kink = match t {
                0 => near_kink(i % H, &|b| x[b][i / H]),
                1 => near_kink(i, &|_| 1.0),
                _ => false,
            };
            if kink {
                continue;
            }
            let w0 = read(&m);
            write(&mut m, w0 + eps);
            let up = batch_loss(&m, &x, &y, d, l2);
            write(&mut m, w0 - eps);
            let down = batch_loss(&m, &x, &y, d, l2);
            write(&mut m, w0);
            let numeric = (up - down) / (2.0 * eps as f64);
            let reg = if t == 0 || t == 2 { l2 * w0 } else { 0.0 };
            let analytic = (read(&g) + reg) as f64;
            let err = (numeric - analytic).abs() / (1e-3 + numeric.abs().max(analytic.abs()));
            worst = worst.max(err);
            assert!(
                err < 2e-2,
                "tensor {t} index {i}: numeric {numeric} analytic {analytic}"
            );
            checked += 1;
        }
        assert!(checked > 400, "{checked}");
        assert!(worst < 2e-2, "worst relative error {worst}");
    }
}
