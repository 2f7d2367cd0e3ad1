//! Fractions printed through integers.
//!
//! `core::fmt`'s float formatting (`{:.4}` of an `f32`) links its exact shortest-digits
//! machinery, Grisu with a Dragon4 fallback and their tables: about 21 KB of the firmware's
//! flash with what it pulls in (measured: 261,244 → 240,140 B). The replies and the report need a fixed number of places
//! only, so [`Decimal`] scales the value to an integer, rounds it and prints two integers.

use core::fmt;

/// `value` with `places` digits after the point (at most 6), as `{:.places}` prints it,
/// rounded half away from zero (`{:.N}` rounds an exact tie to even: the two can differ in
/// the last place of a value that is a tie to within `f32` precision). Magnitudes saturate
/// at 2³² − 1.
#[derive(Clone, Copy, Debug)]
pub struct Decimal {
    /// The number.
    pub value: f32,
    /// Digits after the point.
    pub places: u8,
}

/// `value` with `places` digits after the point.
pub fn fixed(value: f32, places: u8) -> Decimal {
    Decimal { value, places }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let places = u32::from(self.places.min(6));
        let scale = 10u32.pow(places);
        let magnitude = if self.value.is_sign_negative() {
            -self.value
        } else {
            self.value
        };
        // The whole part and the fraction apart: `magnitude - whole` is exact in f32, so the
        // fraction keeps all its bits however large the whole part is. `as` saturates: a NaN
        // prints as 0.
        let mut whole = magnitude as u32;
        let mut part = ((magnitude - whole as f32) * scale as f32 + 0.5) as u32;
        if part >= scale {
            whole = whole.saturating_add(1);
            part -= scale;
        }
        if self.value.is_sign_negative() && (whole, part) != (0, 0) {
            f.write_str("-")?;
        }
        write!(f, "{whole}")?;
        if places > 0 {
            write!(f, ".{part:0width$}", width = places as usize)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::fixed;
    use std::format;

    #[test]
    #[cfg_attr(
        miri,
        ignore = "100,000 float formattings: too slow under Miri; see .ci/run"
    )]
    fn prints_as_the_float_formatting_does_away_from_ties() {
        // Values whose scaled form is not within f32 noise of a half: the two agree exactly.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let value = (state >> 40) as f32 / 1000.0 - 3000.0;
            for places in 0..=4u8 {
                let scaled = f64::from(value) * 10f64.powi(i32::from(places));
                if (scaled.abs().fract() - 0.5).abs() < 1e-3 {
                    continue;
                }
                let want = format!("{value:.*}", usize::from(places));
                assert_eq!(
                    format!("{}", fixed(value, places)),
                    want,
                    "{value} {places}"
                );
            }
        }
    }

    #[test]
    fn confidences_percentages_and_counts_print_as_the_firmware_needs() {
        assert_eq!(format!("{}", fixed(0.987_65, 4)), "0.9877");
        assert_eq!(format!("{}", fixed(1.0, 4)), "1.0000");
        assert_eq!(format!("{}", fixed(0.000_04, 4)), "0.0000");
        assert_eq!(format!("{}", fixed(99.21, 2)), "99.21");
        assert_eq!(format!("{}", fixed(40.0, 3)), "40.000");
        assert_eq!(format!("{}", fixed(223_645.3, 0)), "223645");
        assert_eq!(format!("{}", fixed(-0.25, 1)), "-0.3");
        assert_eq!(format!("{}", fixed(-0.04, 1)), "0.0");
        assert_eq!(format!("{}", fixed(f32::NAN, 2)), "0.00");
    }
}
