//! A round pen on a white canvas: how the web page (`lineCap = 'round'`) and the window
//! (tiny-skia, round caps and joins) draw a stroke, for drawings made by pismo itself
//! (synthetic training digits, the canvas dev set).
//!
//! A stroke is a polyline in canvas pixels. A pixel's ink is the pen's coverage of it,
//! approximated from the distance `d` between the pixel's centre and the polyline:
//! `clamp(r + 0.5 − d, 0, 1)` for a pen of radius `r` (exact for a straight edge crossing the
//! pixel, a one-pixel anti-aliasing ramp as a browser draws it). Overlapping strokes take the
//! larger ink, as an opaque pen does. Points outside the canvas are clipped, never a panic.

/// A grey canvas, white (255) paper with black (0) ink, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Canvas {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height` grey levels.
    pub data: Vec<u8>,
}

impl Canvas {
    /// A blank (white) canvas.
    pub fn new(width: usize, height: usize) -> Canvas {
        Canvas {
            width,
            height,
            data: vec![255; width * height],
        }
    }

    /// The canvas as a [`pismo_core::preprocess::GreyImage`].
    pub fn as_grey(&self) -> pismo_core::preprocess::GreyImage<'_> {
        pismo_core::preprocess::GreyImage {
            width: self.width,
            height: self.height,
            data: &self.data,
        }
    }

    /// Draws the polyline `points` with a round pen `width` pixels wide. One point is a dot.
    pub fn stroke(&mut self, points: &[(f32, f32)], width: f32) {
        let r = (width * 0.5).max(0.25);
        match points {
            [] => {}
            [p] => self.segment(*p, *p, r),
            _ => {
                for pair in points.windows(2) {
                    self.segment(pair[0], pair[1], r);
                }
            }
        }
    }

    fn segment(&mut self, a: (f32, f32), b: (f32, f32), r: f32) {
        if !(a.0.is_finite() && a.1.is_finite() && b.0.is_finite() && b.1.is_finite()) {
            return;
        }
        let reach = r + 1.0;
        let clip = |v: f32, hi: usize| v.clamp(0.0, hi as f32) as usize;
        let x0 = clip(a.0.min(b.0) - reach, self.width);
        let x1 = clip(a.0.max(b.0) + reach + 1.0, self.width);
        let y0 = clip(a.1.min(b.1) - reach, self.height);
        let y1 = clip(a.1.max(b.1) + reach + 1.0, self.height);
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len2 = dx * dx + dy * dy;
        for y in y0..y1 {
            let py = y as f32 + 0.5;
            let row = &mut self.data[y * self.width..(y + 1) * self.width];
            for (x, pixel) in row.iter_mut().enumerate().take(x1).skip(x0) {
                let px = x as f32 + 0.5;
                let t = if len2 > 0.0 {
                    (((px - a.0) * dx + (py - a.1) * dy) / len2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let (ex, ey) = (px - a.0 - t * dx, py - a.1 - t * dy);
                let d = (ex * ex + ey * ey).sqrt();
                let cover = (r + 0.5 - d).clamp(0.0, 1.0);
                let grey = 255 - (cover * 255.0).round() as u8;
                *pixel = (*pixel).min(grey);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_horizontal_stroke_has_the_pen_width_and_round_ends() {
        let mut c = Canvas::new(40, 20);
        c.stroke(&[(10.0, 10.0), (30.0, 10.0)], 6.0);
        // Column 20: ink from y = 7 to 12 (6 px), paper beyond.
        let column: Vec<u8> = (0..20).map(|y| c.data[y * 40 + 20]).collect();
        let inked = column.iter().filter(|&&v| v < 128).count();
        assert_eq!(inked, 6, "{column:?}");
        // Round cap: ink 2 px beyond the end on the axis, none at the corner of the box.
        assert!(c.data[10 * 40 + 31] < 128);
        assert_eq!(c.data[7 * 40 + 33], 255);
        // Off-canvas points are clipped, not a panic.
        c.stroke(&[(-50.0, -5.0), (100.0, 70.0), (f32::NAN, 1.0)], 3.0);
    }
}
