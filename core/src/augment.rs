//! Training-time augmentation: small random affine distortions of a 28x28 digit.
//!
//! People draw digits slanted, rotated, larger or smaller and off-centre by a pixel or two
//! even after [`crate::preprocess`] normalised them. Training on randomly distorted copies of
//! MNIST makes the model robust to that and also lowers its test error. Each image gets an
//! independent transform: rotation ±12°, scale 0.9–1.1 per axis, shear ±0.2, shift by up to
//! [`Distortion::shift`] px (±2 by default), all about the image centre, sampled by inverse mapping with bilinear interpolation. The
//! randomness comes from a counter-based hash, so the result does not depend on threads.
//!
//! With an `elastic` strength above 0, each image is also warped by a smooth random
//! displacement field, as Simard et al. (2003) did to reach 99.3 % with one hidden layer:
//! the displacements of a 5x5 grid of nodes over the image are uniform in ±`elastic`
//! pixels, and each pixel's is interpolated bilinearly between its four nodes (a cheap
//! stand-in for their Gaussian-smoothed field: one smooth bend per 7 pixels, no convolution).
//! The warp and the affine map are applied in the same sampling pass. With `elastic = 0`
//! the output is exactly the affine one.
//!
//! The shift can be turned off (`shift = 0`, `pismo train --shift 0`): [`crate::preprocess`]
//! puts every input's centre of mass on the centre, so a digit a model meets is never off
//! centre, and learning to read shifted digits spends hidden units on positions that never
//! occur; turning it off raised validation accuracy (measured: docs/ARCHITECTURE.md,
//! "Ablation").

use core::ops::Range;

use crate::deskew::inked_box;
use crate::floor::near_tap;
use crate::mlp::INPUT;
use crate::preprocess::SIDE;
use crate::rng::{hash3, unit_f32};

/// How far the random distortions go (the rotation, scale and shear ranges are fixed).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Distortion {
    /// Elastic warp strength in pixels (0: affine only).
    pub elastic: f32,
    /// Largest shift in pixels along each axis.
    pub shift: f32,
}

impl Distortion {
    /// The affine distortions alone, shifted by up to ±2 px: `pismo train --augment`.
    pub const AFFINE: Distortion = Distortion {
        elastic: 0.0,
        shift: 2.0,
    };
}

/// Writes a randomly distorted copy of `src` (bytes) into `dst` (0..1), drawn from
/// `(seed, step, index)`; `how` says how far it goes.
///
/// `#[inline(always)]` with its helpers, so that a caller compiled once per instruction set
/// (a host's training kernels) compiles it with that set's instructions.
#[inline(always)]
pub fn distort(
    src: &[u8; INPUT],
    dst: &mut [f32; INPUT],
    seed: u64,
    step: u64,
    index: u64,
    how: &Distortion,
) {
    // A blank digit distorts to a blank one: nothing to draw or sample.
    let Some(ink) = inked_box(|i| src[i] != 0) else {
        dst.fill(0.0);
        return;
    };
    let Drawn {
        inv,
        shift: (tx, ty),
        field,
    } = Drawn::new(seed, step, index, how);
    let elastic = how.elastic;
    let centre = (SIDE as f32 - 1.0) / 2.0;
    let cells: [Cell; SIDE] = core::array::from_fn(Cell::new);
    // The warp is bilinear between nodes: first along each row of nodes, at every column
    // (the same for every pixel row), then down between the two rows around the pixel.
    let along: [[(f32, f32); SIDE]; NODES] = core::array::from_fn(|r| {
        core::array::from_fn(|x| {
            let c = cells[x];
            lerp(field[r][c.index], field[r][c.index + 1], c.fraction)
        })
    });
    let padded = Padded::new(src);
    let dxs: [f32; SIDE] = core::array::from_fn(|x| x as f32 - centre - tx);
    // Each row is one pass over its pixels with no branch, so that the compiler can work on
    // several pixels at once; every pixel's arithmetic is the one a pixel at a time had. A
    // pixel whose sample cannot reach the inked box is 0 without being sampled: sampled, its
    // four taps would all read 0, and so would it.
    for (y, row) in dst.chunks_exact_mut(SIDE).enumerate() {
        let dy = y as f32 - centre - ty;
        let (du, dv) = (inv[0][1] * dy, inv[1][1] * dy);
        let cy = cells[y];
        let (top, bottom) = (&along[cy.index], &along[cy.index + 1]);
        // u (v) is `inv[0][0]·x + u0` (`inv[1][0]·x + v0`), moved by at most `elastic`.
        let u0 = inv[0][0] * (-centre - tx) + du + centre;
        let v0 = inv[1][0] * (-centre - tx) + dv + centre;
        let (a, b) = columns_reaching(inv[0][0], u0, &ink.cols, elastic);
        let (c, d) = columns_reaching(inv[1][0], v0, &ink.rows, elastic);
        let (first, end) = (a.max(c), b.min(d).max(a.max(c)));
        row[..first].fill(0.0);
        row[end..].fill(0.0);
        // In passes over the row, each a loop the compiler runs on several pixels at once:
        // the sample coordinates, their taps, then the samples.
        let (mut us, mut vs) = ([0.0f32; SIDE], [0.0f32; SIDE]);
        for x in first..end {
            let dx = dxs[x];
            us[x] = inv[0][0] * dx + du + centre;
            vs[x] = inv[1][0] * dx + dv + centre;
        }
        if elastic > 0.0 {
            for x in first..end {
                let (ex, ey) = lerp(top[x], bottom[x], cy.fraction);
                us[x] += ex;
                vs[x] += ey;
            }
        }
        let mut at = [0u32; SIDE];
        let (mut fxs, mut fys) = ([0.0f32; SIDE], [0.0f32; SIDE]);
        for x in first..end {
            let ((xi, fx), (yi, fy)) = (near_tap(us[x], SIDE), near_tap(vs[x], SIDE));
            at[x] = Padded::index(xi, yi);
            (fxs[x], fys[x]) = (fx, fy);
        }
        for x in first..end {
            row[x] = padded.bilinear_at(at[x] as usize, fxs[x], fys[x]) * (1.0 / 255.0);
        }
    }
}

/// The pixels `x` of a row (as `first..end`) whose sample coordinate `slope·x + at_zero`,
/// moved by up to `warp` pixels, may have a bilinear tap inside `ink`: its left tap is in
/// `ink.start − 1 .. ink.end`, so `slope·x + at_zero` within `ink.start − 1 − warp ..
/// ink.end + warp`. Generous by 0.05 px and a pixel each way, far more than the rounding of
/// the sample's own arithmetic (a test compares with sampling every pixel).
#[inline(always)]
fn columns_reaching(slope: f32, at_zero: f32, ink: &Range<usize>, warp: f32) -> (usize, usize) {
    let lo = ink.start as f32 - 1.0 - warp - 0.05;
    let hi = ink.end as f32 + warp + 0.05;
    let last = (SIDE - 1) as f32;
    if slope.abs() < 1e-3 {
        // Over the row the coordinate moves less than 0.03 px.
        let (a, b) = (at_zero, at_zero + slope * last);
        return if a.max(b) < lo || a.min(b) > hi {
            (0, 0)
        } else {
            (0, SIDE)
        };
    }
    let (p, q) = ((lo - at_zero) / slope, (hi - at_zero) / slope);
    let (from, to) = (
        p.min(q).clamp(0.0, last + 1.0),
        p.max(q).clamp(0.0, last + 1.0),
    );
    // Truncation floors these non-negative values; one more pixel each way for the bounds.
    let first = (from as usize).saturating_sub(1);
    let end = (to as usize + 2).min(SIDE);
    (first, end)
}

/// One digit's random distortion: the inverse of its affine map (about the centre), its
/// shift, and the displacements of the elastic grid's nodes (all 0 without a warp).
struct Drawn {
    inv: [[f32; 2]; 2],
    shift: (f32, f32),
    field: [[(f32, f32); NODES]; NODES],
}

impl Drawn {
    #[inline(always)]
    fn new(seed: u64, step: u64, index: u64, how: &Distortion) -> Drawn {
        let Distortion { elastic, shift } = *how;
        let mut k = 0u64;
        let mut uniform = |lo: f32, hi: f32| {
            k += 1;
            lo + (hi - lo) * unit_f32(hash3(seed ^ 0xA06_0E47, step, index * 16 + k))
        };
        let angle = uniform(-12.0, 12.0).to_radians();
        let (sx, sy) = (uniform(0.9, 1.1), uniform(0.9, 1.1));
        let shear = uniform(-0.2, 0.2);
        let (tx, ty) = (uniform(-shift, shift), uniform(-shift, shift));
        // Forward map: p' = R·Sh·S·(p − c) + c + t. Invert it for sampling.
        let (s, c) = (libm::sinf(angle), libm::cosf(angle));
        // M = R · Sh · S with Sh = [[1, shear], [0, 1]].
        let m = [
            [c * sx, (c * shear - s) * sy],
            [s * sx, (s * shear + c) * sy],
        ];
        let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
        let inv = [
            [m[1][1] / det, -m[0][1] / det],
            [-m[1][0] / det, m[0][0] / det],
        ];
        let mut field = [[(0.0f32, 0.0f32); NODES]; NODES];
        if elastic > 0.0 {
            // A stream of its own, so the affine draws stay those of `elastic = 0`.
            let mut k = 0u64;
            let mut bend = || {
                k += 1;
                elastic * (2.0 * unit_f32(hash3(seed ^ 0x0E1A_571C, step, index * 64 + k)) - 1.0)
            };
            for node in field.as_flattened_mut() {
                *node = (bend(), bend());
            }
        }
        Drawn {
            inv,
            shift: (tx, ty),
            field,
        }
    }
}

/// `a + (b − a)·t` for both coordinates of a displacement.
#[inline(always)]
fn lerp(a: (f32, f32), b: (f32, f32), t: f32) -> (f32, f32) {
    (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t)
}

/// A digit's pixels as `f32` in a frame of zeros two pixels wide, so that the four taps of a
/// bilinear sample are read without a bounds check: [`near_tap`] clamps the left tap to
/// `-2..=SIDE`, and every tap it can give, and the one after it, lies in the frame or the
/// digit. A tap outside the digit reads 0, as it did when each read was checked.
struct Padded {
    /// Row-major, `PADDED` to a row; then one row and a pixel more of zeros, so that an index
    /// masked to `0..TAPS` and the three taps after it are inside the array by its type, not
    /// by a check at every read.
    pixels: [f32; TAPS + PADDED + 1],
}

/// Indices a left-top tap can have, rounded up to a power of two for the mask.
const TAPS: usize = (PADDED * PADDED).next_power_of_two();

/// Side of [`Padded`]: the digit, and two pixels of zeros on each side.
const PADDED: usize = SIDE + 4;

impl Padded {
    #[inline(always)]
    fn new(src: &[u8; INPUT]) -> Self {
        let mut pixels = [0.0f32; TAPS + PADDED + 1];
        for (row, from) in pixels[2 * PADDED..]
            .chunks_exact_mut(PADDED)
            .zip(src.chunks_exact(SIDE))
        {
            for (p, &b) in row[2..].iter_mut().zip(from) {
                *p = f32::from(b);
            }
        }
        Padded { pixels }
    }

    /// Where the left-top tap `(xi, yi)` of a sample is, each in `-2..=SIDE` ([`near_tap`]).
    #[inline(always)]
    fn index(xi: i32, yi: i32) -> u32 {
        // At most (SIDE + 2)·(PADDED + 1); the mask changes nothing and lets the three taps
        // after it be read without a check.
        (((yi + 2) as u32) * PADDED as u32 + (xi + 2) as u32) & (TAPS as u32 - 1)
    }

    /// The digit between the pixel at `at` (from [`Padded::index`]) and its right, lower and
    /// lower-right neighbours, `fx` across and `fy` down.
    #[inline(always)]
    fn bilinear_at(&self, at: usize, fx: f32, fy: f32) -> f32 {
        let at = at & (TAPS - 1);
        let px = &self.pixels;
        let top = px[at] * (1.0 - fx) + px[at + 1] * fx;
        let bottom = px[at + PADDED] * (1.0 - fx) + px[at + PADDED + 1] * fx;
        top * (1.0 - fy) + bottom * fy
    }
}

/// Nodes per side of the elastic displacement grid.
const NODES: usize = 5;

/// Where pixel coordinate `x` (or `y`) falls on the grid of nodes: the cell it is in and
/// how far across. The same for every row (column), so computed once per image.
#[derive(Clone, Copy, Debug)]
struct Cell {
    index: usize,
    fraction: f32,
}

impl Cell {
    #[inline(always)]
    fn new(x: usize) -> Self {
        let cell = (SIDE - 1) as f32 / (NODES - 1) as f32;
        let g = x as f32 / cell;
        let index = (g as usize).min(NODES - 2);
        Cell {
            index,
            fraction: g - index as f32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "too slow under Miri; see .ci/run")]
    fn distortion_keeps_the_ink_and_is_deterministic() {
        let mut img = [0u8; INPUT];
        for y in 8..20 {
            for x in 12..16 {
                img[y * SIDE + x] = 255;
            }
        }
        let ink: f32 = img.iter().map(|&v| v as f32 / 255.0).sum();
        let (mut a, mut b) = ([0.0; INPUT], [0.0; INPUT]);
        for i in 0..50 {
            distort(&img, &mut a, 1, 2, i, &Distortion::AFFINE);
            distort(&img, &mut b, 1, 2, i, &Distortion::AFFINE);
            assert_eq!(a, b);
            let out: f32 = a.iter().sum();
            // Area changes with the scale (0.81–1.21) but ink is neither lost nor invented.
            assert!(out > 0.7 * ink && out < 1.3 * ink, "{out} vs {ink}");
            assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
        }
        distort(&img, &mut b, 1, 3, 0, &Distortion::AFFINE);
        distort(&img, &mut a, 1, 2, 0, &Distortion::AFFINE);
        assert_ne!(a, b);
    }

    /// The distortion sampled a pixel at a time, every pixel, with checked reads, as it was
    /// first written: the reference the row passes of [`distort`] must equal bit for bit.
    fn distorted_pixel_by_pixel(
        src: &[u8; INPUT],
        seed: u64,
        index: u64,
        how: &Distortion,
    ) -> [f32; INPUT] {
        let Drawn {
            inv,
            shift: (tx, ty),
            field,
        } = Drawn::new(seed, 0, index, how);
        let centre = (SIDE as f32 - 1.0) / 2.0;
        let read = |x: i32, y: i32| match (usize::try_from(x), usize::try_from(y)) {
            (Ok(x), Ok(y)) if x < SIDE && y < SIDE => f32::from(src[y * SIDE + x]),
            _ => 0.0,
        };
        core::array::from_fn(|i| {
            let (x, y) = (i % SIDE, i / SIDE);
            let (dx, dy) = (x as f32 - centre - tx, y as f32 - centre - ty);
            let mut u = inv[0][0] * dx + inv[0][1] * dy + centre;
            let mut v = inv[1][0] * dx + inv[1][1] * dy + centre;
            if how.elastic > 0.0 {
                let (cx, cy) = (Cell::new(x), Cell::new(y));
                let (i, j) = (cx.index, cy.index);
                let top = lerp(field[j][i], field[j][i + 1], cx.fraction);
                let bottom = lerp(field[j + 1][i], field[j + 1][i + 1], cx.fraction);
                let (ex, ey) = lerp(top, bottom, cy.fraction);
                u += ex;
                v += ey;
            }
            let ((xi, fx), (yi, fy)) = (crate::floor::tap(u, SIDE), crate::floor::tap(v, SIDE));
            let top = read(xi, yi) * (1.0 - fx) + read(xi + 1, yi) * fx;
            let bottom = read(xi, yi + 1) * (1.0 - fx) + read(xi + 1, yi + 1) * fx;
            (top * (1.0 - fy) + bottom * fy) * (1.0 / 255.0)
        })
    }

    #[test]
    #[cfg_attr(miri, ignore = "too slow under Miri; see .ci/run")]
    fn the_row_passes_sample_what_every_pixel_sampled_bit_for_bit() {
        let mut rng = crate::rng::Rng::new(11);
        for case in 0..3000u64 {
            // Random strokes, some touching the frame, some a single pixel, some blank.
            let mut img = [0u8; INPUT];
            for _ in 0..rng.below(6) {
                let (mut x, mut y) = (rng.below(SIDE), rng.below(SIDE));
                for _ in 0..rng.below(40) {
                    img[y * SIDE + x] = 1 + rng.below(255) as u8;
                    x = (x + rng.below(3)).saturating_sub(1).min(SIDE - 1);
                    y = (y + rng.below(3)).saturating_sub(1).min(SIDE - 1);
                }
            }
            let how = Distortion {
                elastic: [0.0, 1.5, 2.0, 3.0][(case % 4) as usize],
                shift: [0.0, 2.0][(case % 2) as usize],
            };
            let want = distorted_pixel_by_pixel(&img, 5, case, &how);
            let mut got = [1.0f32; INPUT];
            distort(&img, &mut got, 5, 0, case, &how);
            assert_eq!(
                got.map(f32::to_bits),
                want.map(f32::to_bits),
                "case {case} ({how:?}): the row passes differ"
            );
        }
    }
}
