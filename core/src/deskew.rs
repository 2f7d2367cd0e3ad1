//! Slant normalisation ("deskewing") of a 28x28 input, part of a model's input when its file
//! says so ([`crate::format::Meta::deskew`]).
//!
//! People write digits upright, leaning right or leaning left; MNIST's writers mostly lean a
//! little right. A one-hidden-layer network has no built-in invariance, so it spends hidden
//! units on every slant. Deskewing takes the slant out before the network sees the digit: the
//! ink's second moments give the slope of its main axis against the vertical,
//! `α = μ₁₁ / μ₀₂` (covariance of x and y over the variance of y), and each row `y` is shifted
//! horizontally by `α·(y − ȳ)`, so the axis stands upright. The centre of mass stays where
//! [`crate::preprocess`] put it (the shear is about the ink's centre row) and rows are
//! resampled with linear interpolation; `|α|` is capped at [`MAX_SLOPE`] (45°). This is the
//! deskewing of LeCun et al.'s MNIST comparisons, where it cut a 300-unit MLP's error from
//! 4.7 % to 1.6 %.
//!
//! A model trained with `--deskew` learns from deskewed digits (after the random distortions
//! of [`crate::augment`], so it never meets a slant it was not shown upright) and every
//! prediction deskews its input first: the host's `f32` inference does, and
//! [`crate::quant::QView::logits`] for int8 ones, so the firmware does exactly what
//! `pismo eval` does. Models without the flag see their input unchanged.
//!
//! No allocation: the moments are three running sums and the output is written row by row
//! from a copy of the input on the stack.

use core::ops::Range;

use crate::floor::{near_tap, tap};
use crate::mlp::INPUT;
use crate::preprocess::SIDE;

/// Largest slope corrected (a 45° lean); steeper estimates come from odd shapes, not slant.
pub const MAX_SLOPE: f32 = 1.0;

/// The shear that makes an image upright: row `y` is read `slope · (y − centre_row)` pixels
/// to the right of where it is written.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shear {
    /// `μ₁₁ / μ₀₂`, capped to `±MAX_SLOPE`.
    pub slope: f32,
    /// The ink's centre row (`ȳ`).
    pub centre_row: f32,
}

/// The shear that deskews an image given by `ink(i)` for pixel `i` (row-major), or `None` for
/// an image without ink or of a single row, which have no slant.
#[inline(always)]
pub fn measure(ink: impl Fn(usize) -> f32) -> Option<Shear> {
    measure_in(ink, 0..SIDE, 0..SIDE)
}

/// [`measure`] over the rows `rows` and columns `cols` of the image, which must hold all of
/// its ink. The sums run in the same order as over the whole image: a blank pixel adds `±0`
/// to a sum, which leaves it as it was (a sum that starts at `+0` never becomes `-0`), so
/// over the inked box ([`inked_box`]) the moments are the whole image's bit for bit, in about
/// half the reads of a digit. (Training's [`deskew_f32`] takes the box; the device's
/// [`deskew_bytes`] does not: finding it costs the Cortex-M4 more than it saves.)
#[inline(always)]
fn measure_in(ink: impl Fn(usize) -> f32, rows: Range<usize>, cols: Range<usize>) -> Option<Shear> {
    let (mut mass, mut sum_x, mut sum_y) = (0.0f32, 0.0f32, 0.0f32);
    for y in rows.clone() {
        for x in cols.clone() {
            let p = ink(y * SIDE + x);
            mass += p;
            sum_x += p * x as f32;
            sum_y += p * y as f32;
        }
    }
    if mass <= 0.0 {
        return None;
    }
    let (cx, cy) = (sum_x / mass, sum_y / mass);
    let (mut xy, mut yy) = (0.0f32, 0.0f32);
    for y in rows {
        let dy = y as f32 - cy;
        for x in cols.clone() {
            let p = ink(y * SIDE + x);
            xy += p * (x as f32 - cx) * dy;
            yy += p * dy * dy;
        }
    }
    if yy <= 0.0 {
        return None;
    }
    Some(Shear {
        slope: (xy / yy).clamp(-MAX_SLOPE, MAX_SLOPE),
        centre_row: cy,
    })
}

/// The rows and the columns of a 28x28 image that hold ink, where `inked(i)` says whether
/// pixel `i` (row-major) does, or `None` for a blank image.
#[inline(always)]
pub(crate) fn inked_box(inked: impl Fn(usize) -> bool) -> Option<InkedBox> {
    let (mut rows, mut cols) = ([false; SIDE], [false; SIDE]);
    for (y, row) in rows.iter_mut().enumerate() {
        for (x, col) in cols.iter_mut().enumerate() {
            let ink = inked(y * SIDE + x);
            *row |= ink;
            *col |= ink;
        }
    }
    let span = |inked: &[bool; SIDE]| {
        let first = inked.iter().position(|&i| i)?;
        let last = inked.iter().rposition(|&i| i)?;
        Some(first..last + 1)
    };
    Some(InkedBox {
        rows: span(&rows)?,
        cols: span(&cols)?,
    })
}

/// The smallest box of rows and columns that holds all of an image's ink.
#[derive(Clone, Debug)]
pub(crate) struct InkedBox {
    pub rows: Range<usize>,
    pub cols: Range<usize>,
}

impl Shear {
    /// The value at `(x, y)` of the deskewed image: the input's row `y` read at
    /// `x + slope · (y − centre_row)`, linearly interpolated, 0 outside the frame.
    #[inline(always)]
    fn sample(&self, ink: impl Fn(usize) -> f32, x: usize, y: usize) -> f32 {
        let u = x as f32 + self.slope * (y as f32 - self.centre_row);
        let (col, t) = tap(u, SIDE);
        let at = |col: i32| match usize::try_from(col) {
            Ok(col) if col < SIDE => ink(y * SIDE + col),
            _ => 0.0,
        };
        at(col) * (1.0 - t) + at(col + 1) * t
    }
}

/// Deskews a `0..1` input in place. `#[inline(always)]` with its helpers, as
/// [`crate::augment::distort`] is. Each row is resampled from a copy framed by two zeros on
/// each side, with no branch per pixel (as [`crate::augment`] samples), which gives what
/// [`Shear::sample`] gives, bit for bit (a test checks).
#[inline(always)]
pub fn deskew_f32(img: &mut [f32; INPUT]) {
    let Some(InkedBox { rows, cols }) = inked_box(|i| img[i] != 0.0) else {
        return;
    };
    let Some(shear) = measure_in(|i| img[i], rows.clone(), cols) else {
        return;
    };
    for (y, row) in img.chunks_exact_mut(SIDE).enumerate() {
        if !rows.contains(&y) && row.iter().all(|v| v.to_bits() == 0) {
            // A row of `+0` shears to itself (a `-0` in it might not: it is resampled).
            continue;
        }
        // Two zeros, the row, two zeros (to index 31), and one more so that a tap masked to
        // 0..32 and the one after it are inside by the array's type.
        let mut framed = [0.0f32; 33];
        framed[2..SIDE + 2].copy_from_slice(row);
        let offset = shear.slope * (y as f32 - shear.centre_row);
        for (x, out) in row.iter_mut().enumerate() {
            let (col, t) = near_tap(x as f32 + offset, SIDE);
            // `col` is in -2..=SIDE, so `col + 2` is at most 30 and the mask changes nothing.
            let at = (col + 2) as usize & 31;
            *out = framed[at] * (1.0 - t) + framed[at + 1] * t;
        }
    }
}

/// Deskews an image given as bytes (as MNIST stores it and the int8 path takes it), rounding
/// to the nearest byte.
pub fn deskew_bytes(img: &[u8; INPUT]) -> [u8; INPUT] {
    let ink = |i: usize| f32::from(img[i]);
    let Some(shear) = measure(ink) else {
        return *img;
    };
    let mut out = [0u8; INPUT];
    for y in 0..SIDE {
        for x in 0..SIDE {
            out[y * SIDE + x] = libm::roundf(shear.sample(ink, x, y)).clamp(0.0, 255.0) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vertical bar 2 px wide from row 4 to row 23, leaning by `lean` px per row.
    fn bar(lean: f32) -> [f32; INPUT] {
        let mut img = [0.0f32; INPUT];
        for y in 4..24 {
            let x = 14.0 + lean * (y as f32 - 13.5);
            for dx in 0..2 {
                img[y * SIDE + (libm::roundf(x) as usize + dx)] = 1.0;
            }
        }
        img
    }

    fn centre_of_mass(img: &[f32; INPUT]) -> (f32, f32) {
        let (mut m, mut sx, mut sy) = (0.0, 0.0, 0.0);
        for (i, &p) in img.iter().enumerate() {
            m += p;
            sx += p * (i % SIDE) as f32;
            sy += p * (i / SIDE) as f32;
        }
        (sx / m, sy / m)
    }

    #[test]
    fn a_leaning_bar_stands_upright_about_its_centre() {
        for lean in [-0.4f32, -0.2, 0.25, 0.5] {
            let mut img = bar(lean);
            let shear = measure(|i| img[i]).unwrap();
            assert!((shear.slope - lean).abs() < 0.05, "{lean}: {shear:?}");
            let before = centre_of_mass(&img);
            let ink: f32 = img.iter().sum();
            deskew_f32(&mut img);
            let after = measure(|i| img[i]).unwrap();
            assert!(after.slope.abs() < 0.03, "{lean}: still {after:?}");
            let moved = centre_of_mass(&img);
            assert!((moved.0 - before.0).abs() < 0.1 && (moved.1 - before.1).abs() < 1e-3);
            assert!((img.iter().sum::<f32>() - ink).abs() < 0.05 * ink);
        }
    }

    #[test]
    fn upright_and_empty_images_are_left_alone() {
        let mut upright = bar(0.0);
        let copy = upright;
        deskew_f32(&mut upright);
        assert!(upright.iter().zip(copy).all(|(a, b)| (a - b).abs() < 1e-4));
        let mut empty = [0.0f32; INPUT];
        deskew_f32(&mut empty);
        assert_eq!(empty, [0.0; INPUT]);
        assert_eq!(deskew_bytes(&[0u8; INPUT]), [0u8; INPUT]);
        let mut row = [0u8; INPUT];
        row[14 * SIDE..14 * SIDE + 10].fill(255);
        assert_eq!(deskew_bytes(&row), row, "a single row has no slant");
        let mut dot = [0u8; INPUT];
        dot[100] = 9;
        assert_eq!(deskew_bytes(&dot), dot);
    }

    #[test]
    fn bytes_and_floats_agree() {
        let img = bar(0.3);
        let bytes = img.map(|v| (v * 255.0) as u8);
        let mut f = img;
        deskew_f32(&mut f);
        for (a, b) in deskew_bytes(&bytes).iter().zip(f.iter()) {
            assert!((f32::from(*a) - b * 255.0).abs() <= 0.5 + 1e-3);
        }
    }

    #[test]
    fn the_slope_is_capped() {
        // A diagonal line at 60° from the vertical.
        let mut img = [0.0f32; INPUT];
        for y in 4..16 {
            img[y * SIDE + y * 17 / 10] = 1.0;
        }
        assert_eq!(measure(|i| img[i]).unwrap().slope, MAX_SLOPE);
    }

    /// The whole-image moments and the per-pixel sampler, as deskewing was first written:
    /// the reference the faster [`measure`] and [`deskew_f32`] must equal bit for bit.
    fn deskewed_pixel_by_pixel(img: &[f32; INPUT]) -> [f32; INPUT] {
        let (mut mass, mut sum_x, mut sum_y) = (0.0f32, 0.0f32, 0.0f32);
        for (i, &p) in img.iter().enumerate() {
            mass += p;
            sum_x += p * (i % SIDE) as f32;
            sum_y += p * (i / SIDE) as f32;
        }
        if mass <= 0.0 {
            return *img;
        }
        let (cx, cy) = (sum_x / mass, sum_y / mass);
        let (mut xy, mut yy) = (0.0f32, 0.0f32);
        for (i, &p) in img.iter().enumerate() {
            let dy = (i / SIDE) as f32 - cy;
            xy += p * ((i % SIDE) as f32 - cx) * dy;
            yy += p * dy * dy;
        }
        if yy <= 0.0 {
            return *img;
        }
        let shear = Shear {
            slope: (xy / yy).clamp(-MAX_SLOPE, MAX_SLOPE),
            centre_row: cy,
        };
        core::array::from_fn(|i| shear.sample(|j| img[j], i % SIDE, i / SIDE))
    }

    #[test]
    #[cfg_attr(miri, ignore = "too slow under Miri; see .ci/run")]
    fn the_fast_deskew_is_the_pixel_by_pixel_one_bit_for_bit() {
        let mut rng = crate::rng::Rng::new(7);
        for case in 0..2000 {
            // Random strokes of random ink on a blank image, some at the frame's edge.
            let mut img = [0.0f32; INPUT];
            let strokes = 1 + rng.below(6);
            for _ in 0..strokes {
                let (mut x, mut y) = (rng.below(SIDE), rng.below(SIDE));
                for _ in 0..rng.below(30) {
                    img[y * SIDE + x] = rng.next_f32();
                    x = (x + rng.below(3)).saturating_sub(1).min(SIDE - 1);
                    y = (y + rng.below(3)).saturating_sub(1).min(SIDE - 1);
                }
            }
            if case % 7 == 0 {
                // Some blank pixels are -0.0: sums and samples must treat them as before.
                for p in img.iter_mut().filter(|p| **p == 0.0).step_by(3) {
                    *p = -0.0;
                }
            }
            let want = deskewed_pixel_by_pixel(&img);
            let mut got = img;
            deskew_f32(&mut got);
            assert_eq!(
                got.map(f32::to_bits),
                want.map(f32::to_bits),
                "case {case}: the fast deskew differs"
            );
        }
    }
}
