//! The multi-layer perceptron of the original design: 784 inputs → `H` ReLU units → 10
//! softmax outputs, with inverted dropout on the hidden layer while training.
//!
//! Weights live in fixed-size arrays whose size is part of the type ([`Mlp<H>`]); a row per
//! output unit, so every inner loop runs over contiguous memory. Nothing here allocates:
//! training buffers (activations, gradients) are slices the caller owns, so the same code runs
//! on a microcontroller and under the host's multi-threaded trainer.
//!
//! Each layer is a forward/backward pair of free functions with shapes in a comment. Hidden
//! activations of a batch are stored unit-major, `a[h·B + b]`: a block of hidden units is a
//! contiguous slice, so a trainer can hand disjoint blocks of units to threads with
//! `split_at_mut` and every unit's result is computed by the same instructions in the same order
//! whatever the split — the model is bit-identical with one thread or many.
//!
//! Loss for a batch of `m` samples (see [`crate::hyper`] for `reg_lambda`):
//! `L = (1/m) Σ −log softmax(z₂)[y] + (λ/2m)(‖W1‖² + ‖W2‖²)`.

use bytemuck::Zeroable;

use crate::rng::{hash3, unit_f32, Rng};

/// Pixels of one 28x28 input.
pub const INPUT: usize = 784;
/// Digits 0–9.
pub const CLASSES: usize = 10;

/// The network's parameters. Also used, with the same shapes, for gradients and momentum.
///
/// 784×`H` floats are big (3 MB at `H` = 1024): never build one on a stack. On a host use
/// [`crate::host::boxed_zeroed`]; on a microcontroller a `static`.
#[derive(Zeroable)]
#[repr(C)]
pub struct Mlp<const H: usize> {
    /// w1: (H, IN) — row `h` holds the input weights of hidden unit `h`.
    pub w1: [[f32; INPUT]; H],
    /// b1: (H)
    pub b1: [f32; H],
    /// w2: (CLASSES, H)
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

    /// Sets every parameter to zero.
    pub fn fill_zero(&mut self) {
        self.w1.as_flattened_mut().fill(0.0);
        self.b1 = [0.0; H];
        self.w2.as_flattened_mut().fill(0.0);
        self.b2 = [0.0; CLASSES];
    }

    /// Raw scores of one input (no dropout: inference).
    pub fn logits(&self, x: &[f32; INPUT]) -> [f32; CLASSES] {
        let mut hidden = [0.0f32; H];
        for (h, out) in hidden.iter_mut().enumerate() {
            *out = relu(dot(&self.w1[h], x) + self.b1[h]);
        }
        let mut z = self.b2;
        for (k, zk) in z.iter_mut().enumerate() {
            *zk += dot(&self.w2[k], &hidden);
        }
        z
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

/// ReLU.
#[inline]
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
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = 0.0;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        tail += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// `y += alpha · x`.
#[inline]
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

/// Inverted dropout on the hidden layer. Whether unit `h` of sample `b` is kept at training
/// step `step` is a pure function of `(seed, step, h·B + b)`.
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

    #[inline]
    fn keep(&self, unit: usize, sample: usize, batch: usize) -> bool {
        unit_f32(hash3(self.seed, self.step, (unit * batch + sample) as u64)) >= self.rate
    }
}

/// Hidden layer forward for the block of units starting at `h0`:
/// `w1: (R, IN), b1: (R), x: (B, IN) -> a: (R, B)`, `a = dropout(relu(w1·x + b1))`.
pub fn hidden_forward(
    w1: &[[f32; INPUT]],
    b1: &[f32],
    h0: usize,
    x: &[[f32; INPUT]],
    a: &mut [f32],
    dropout: Option<Dropout>,
) {
    let batch = x.len();
    debug_assert_eq!(a.len(), w1.len() * batch);
    for (r, (row, out)) in w1.iter().zip(a.chunks_exact_mut(batch)).enumerate() {
        for (b, (xb, ab)) in x.iter().zip(out.iter_mut()).enumerate() {
            let v = relu(dot(row, xb) + b1[r]);
            *ab = match dropout {
                Some(d) if d.rate > 0.0 => {
                    if d.keep(h0 + r, b, batch) {
                        v * d.scale()
                    } else {
                        0.0
                    }
                }
                _ => v,
            };
        }
    }
}

/// Output layer forward: `w2: (C, H), b2: (C), a: (H, B) -> z: (B, C)`.
pub fn output_forward<const H: usize>(
    w2: &[[f32; H]; CLASSES],
    b2: &[f32; CLASSES],
    a: &[f32],
    z: &mut [[f32; CLASSES]],
) {
    let batch = z.len();
    debug_assert_eq!(a.len(), H * batch);
    for zb in z.iter_mut() {
        *zb = *b2;
    }
    // Unit-major activations: for each (k, h) add w2[k][h] · a[h, ·] over the batch.
    for k in 0..CLASSES {
        for (h, ah) in a.chunks_exact(batch).enumerate() {
            let w = w2[k][h];
            for (zb, &v) in z.iter_mut().zip(ah) {
                zb[k] += w * v;
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
) -> (f32, usize) {
    let inv_b = 1.0 / z.len() as f32;
    let mut loss = 0.0;
    let mut correct = 0;
    for ((zb, &y), db) in z.iter().zip(labels).zip(dz.iter_mut()) {
        let y = y as usize;
        loss += cross_entropy(zb, y);
        correct += (argmax(zb) == y) as usize;
        let p = softmax(zb);
        for k in 0..CLASSES {
            db[k] = (p[k] - (k == y) as u32 as f32) * inv_b;
        }
    }
    (loss, correct)
}

/// Output layer backward (data gradient only; L2 is added by [`sgd_momentum`]):
/// `a: (H, B), dz: (B, C) -> gw2: (C, H) = dzᵀ·aᵀ, gb2: (C) = Σ_b dz`.
pub fn output_backward<const H: usize>(
    a: &[f32],
    dz: &[[f32; CLASSES]],
    gw2: &mut [[f32; H]; CLASSES],
    gb2: &mut [f32; CLASSES],
) {
    let batch = dz.len();
    for k in 0..CLASSES {
        gb2[k] = dz.iter().map(|d| d[k]).sum();
        for (h, ah) in a.chunks_exact(batch).enumerate() {
            let mut s = 0.0;
            for (d, &v) in dz.iter().zip(ah) {
                s += d[k] * v;
            }
            gw2[k][h] = s;
        }
    }
}

/// Hidden layer backward for the block of units starting at `h0`. On entry `a: (R, B)` holds
/// the block's forward activations; on return it holds `dz1` (the gradient at the
/// pre-activation). `w2: (C, H), dz2: (B, C), x: (B, IN) -> gw1: (R, IN), gb1: (R)`.
/// A unit's activation is positive exactly when it was active and kept, so `a` alone encodes
/// both the ReLU derivative and the dropout mask; `scale` is the dropout multiplier.
#[allow(clippy::too_many_arguments)]
pub fn hidden_backward<const H: usize>(
    w2: &[[f32; H]; CLASSES],
    h0: usize,
    a: &mut [f32],
    dz2: &[[f32; CLASSES]],
    x: &[[f32; INPUT]],
    scale: f32,
    gw1: &mut [[f32; INPUT]],
    gb1: &mut [f32],
) {
    let batch = x.len();
    for (r, (ar, (g, gb))) in a
        .chunks_exact_mut(batch)
        .zip(gw1.iter_mut().zip(gb1.iter_mut()))
        .enumerate()
    {
        let h = h0 + r;
        let mut bias = 0.0;
        g.fill(0.0);
        for (b, av) in ar.iter_mut().enumerate() {
            let d = if *av > 0.0 {
                let mut da = 0.0;
                for k in 0..CLASSES {
                    da += w2[k][h] * dz2[b][k];
                }
                da * scale
            } else {
                0.0
            };
            *av = d;
            if d != 0.0 {
                bias += d;
                axpy(d, &x[b], g);
            }
        }
        *gb = bias;
    }
}

/// Momentum SGD with L2 on the weights: `g' = g + l2·w; v ← μ·v − lr·g'; w ← w + v`.
/// Pass `l2 = 0` for biases.
#[inline]
pub fn sgd_momentum(w: &mut [f32], v: &mut [f32], g: &[f32], lr: f32, momentum: f32, l2: f32) {
    for ((wi, vi), gi) in w.iter_mut().zip(v.iter_mut()).zip(g) {
        *vi = momentum * *vi - lr * (gi + l2 * *wi);
        *wi += *vi;
    }
}

#[cfg(test)]
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

    /// Loss of a batch as defined in the module docs, with the given dropout mask.
    fn batch_loss<const H: usize>(
        m: &Mlp<H>,
        x: &[[f32; INPUT]],
        y: &[u8],
        d: Dropout,
        l2: f32,
    ) -> f64 {
        let n = x.len();
        let mut a = std::vec![0.0; H * n];
        let mut z = std::vec![[0.0; CLASSES]; n];
        let mut dz = std::vec![[0.0; CLASSES]; n];
        hidden_forward(&m.w1, &m.b1, 0, x, &mut a, Some(d));
        output_forward(&m.w2, &m.b2, &a, &mut z);
        let (ce, _) = softmax_cross_entropy(&z, y, &mut dz);
        let sq: f64 =
            m.w1.as_flattened()
                .iter()
                .chain(m.w2.as_flattened())
                .map(|&w| (w as f64).powi(2))
                .sum();
        ce as f64 / n as f64 + 0.5 * l2 as f64 * sq
    }

    #[test]
    fn backprop_matches_finite_differences() {
        const H: usize = 16;
        let mut rng = Rng::new(11);
        let mut m: std::boxed::Box<Mlp<H>> = std::boxed::Box::new(Mlp::zeroed());
        m.init(&mut rng);
        for b in m.b1.iter_mut().chain(m.b2.iter_mut()) {
            *b = 0.1 * rng.normal();
        }
        let n = 5;
        let x: std::vec::Vec<[f32; INPUT]> = (0..n)
            .map(|_| {
                core::array::from_fn(|_| {
                    if rng.next_f32() < 0.3 {
                        rng.next_f32()
                    } else {
                        0.0
                    }
                })
            })
            .collect();
        let y: std::vec::Vec<u8> = (0..n).map(|i| (i * 3 % 10) as u8).collect();
        let d = Dropout {
            rate: 0.3,
            seed: 9,
            step: 4,
        };
        let l2 = 0.01 / n as f32;

        // Analytic gradient.
        let mut a = std::vec![0.0; H * n];
        let mut z = std::vec![[0.0; CLASSES]; n];
        let mut dz = std::vec![[0.0; CLASSES]; n];
        let mut g: std::boxed::Box<Mlp<H>> = std::boxed::Box::new(Mlp::zeroed());
        hidden_forward(&m.w1, &m.b1, 0, &x, &mut a, Some(d));
        output_forward(&m.w2, &m.b2, &a, &mut z);
        softmax_cross_entropy(&z, &y, &mut dz);
        output_backward(&a, &dz, &mut g.w2, &mut g.b2);
        hidden_backward(&m.w2, 0, &mut a, &dz, &x, d.scale(), &mut g.w1, &mut g.b1);

        let eps = 1e-2f32;
        let mut checked = 0;
        let mut worst = 0.0f64;
        // (tensor, flat index) pairs: all of b1, b2, w2 and a spread of w1 (nonzero inputs).
        let mut probes = std::vec::Vec::new();
        for i in 0..H {
            probes.push((1, i));
        }
        for i in 0..CLASSES {
            probes.push((3, i));
        }
        for i in 0..H * CLASSES {
            probes.push((2, i));
        }
        for i in (0..H * INPUT).step_by(37) {
            probes.push((0, i));
        }
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
                (0..n).any(|b| {
                    let pre = dot(&m.w1[h], &x[b]) + m.b1[h];
                    pre.abs() <= 2.0 * eps * dx(b).abs()
                })
            };
            let kink = match t {
                0 => near_kink(i / INPUT, &|b| x[b][i % INPUT]),
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
