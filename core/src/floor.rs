//! `floor` of an `f32` without a library call, and the interpolation tap built on it, for the
//! per-pixel loops that resample images.
//!
//! `libm::floorf` is a function call of bit manipulation and branches on the exponent; the
//! resampling loops of [`crate::augment`] and [`crate::deskew`] took one per pixel, the
//! largest part of a distorted digit's cost. Their coordinates are small, and there a floor is
//! a truncation to an integer and a compare.

/// `libm::floorf(v)`, bit for bit (a test checks), inlined: for `|v| < 2^31` a truncation
/// and two compares, and `v` itself beyond, where every `f32` is already an integer (or NaN,
/// or infinite).
#[inline(always)]
pub fn floor(v: f32) -> f32 {
    const TWO_POW_31: f32 = 2_147_483_648.0;
    // Also NaN, which compares false.
    if v.is_nan() || v.abs() >= TWO_POW_31 {
        return v;
    }
    let t = v as i32 as f32;
    if t == v {
        // Integral already; returning `v` keeps the sign of -0.0.
        v
    } else if t > v {
        t - 1.0
    } else {
        t
    }
}

/// The left tap of a linear interpolation at coordinate `u` along `side` pixels: the pixel
/// at or before `u`, as an integer, and how far past it `u` lies. The pixel is clamped to
/// `-2..=side` before it is converted, which leaves it and the pixel after it outside
/// `0..side` exactly when they were, and converts once instead of at every read.
#[inline(always)]
pub fn tap(u: f32, side: usize) -> (i32, f32) {
    let left = floor(u);
    (left.clamp(-2.0, side as f32) as i32, u - left)
}

/// [`tap`] with no branch and no conversion instruction, for a coordinate `u` within ±2²¹ of
/// the image (every sample of the resampling loops: their maps move a pixel by a few pixels
/// at most), so that the compiler can sample several pixels at once:
/// - adding and taking away 1.5·2²³ rounds `u` to the nearest integer (an `f32` that large
///   has no fraction bits), and the floor is that, less one where it rounded up;
/// - the clamped tap, an integer-valued `f32`, is read off the bits of itself plus 1.5·2²³.
///
/// Where `u` is an integer the fraction may be `+0.0` where [`tap`]'s is `-0.0` or the
/// reverse, which changes no sample: a fraction only ever multiplies a pixel value (never
/// negative), and the product is added to another (`a + ±0 = a`, `+0 + −0 = +0`).
#[inline(always)]
pub fn near_tap(u: f32, side: usize) -> (i32, f32) {
    const ROUNDER: f32 = 12_582_912.0;
    let nearest = (u + ROUNDER) - ROUNDER;
    let left = if nearest > u { nearest - 1.0 } else { nearest };
    let clamped = left.clamp(-2.0, side as f32);
    let tap = (clamped + ROUNDER).to_bits() as i32 - ROUNDER.to_bits() as i32;
    (tap, u - left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_is_libm_floorf_bit_for_bit() {
        let mut special = vec![
            0.0f32,
            -0.0,
            0.5,
            -0.5,
            1.0,
            -1.0,
            0.999_999_94,
            -0.999_999_94,
            1e-45,
            -1e-45,
            8_388_607.5,
            -8_388_607.5,
            8_388_608.0,
            2_147_483_520.0,
            -2_147_483_520.0,
            2_147_483_648.0,
            -2_147_483_648.0,
            3e9,
            -3e9,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ];
        // And a sweep over the range the resampling loops use, in steps that are not powers
        // of two, plus random bit patterns over the whole of f32 (fewer under Miri, which
        // runs this test too, ≈ 1000 times slower).
        let n = if cfg!(miri) { 2_000 } else { 200_000 };
        let step = 102.7 / n as f32;
        special.extend((0..n).map(|i| -50.0 + i as f32 * step));
        let mut state = 0x2545_f491_4f6c_dd1du64;
        special.extend((0..n).map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            f32::from_bits(state as u32)
        }));
        for v in special {
            let (ours, theirs) = (floor(v), libm::floorf(v));
            assert!(
                ours.to_bits() == theirs.to_bits() || (ours.is_nan() && theirs.is_nan()),
                "floor({v:e}) = {ours:e}, libm says {theirs:e}"
            );
        }
    }

    #[test]
    fn near_tap_is_tap_where_the_resampling_loops_sample() {
        let n = if cfg!(miri) { 2_000 } else { 400_000 };
        let step = 80.3 / n as f32;
        let integers = (-40..=40)
            .chain([-2_097_151, -65_537, 65_537, 2_097_151])
            .map(|i| i as f32);
        let sweep = (0..n).map(|i| -40.0 + i as f32 * step);
        let far = [-2_097_150.5, -1e5 - 0.25, 1e5 + 0.75, 2_097_150.5];
        for u in integers
            .chain(sweep)
            .chain(far)
            .chain([-0.0, 0.0, -1e-30, 1e-30])
        {
            let ((a, fa), (b, fb)) = (tap(u, 28), near_tap(u, 28));
            // Equal as numbers: at an integer one fraction may be -0.0 and the other +0.0.
            assert!(
                a == b && fa == fb,
                "u = {u:e}: tap ({a}, {fa:e}), near_tap ({b}, {fb:e})"
            );
        }
    }
}
