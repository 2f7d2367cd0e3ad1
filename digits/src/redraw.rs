//! MNIST digits redrawn with a canvas pen.
//!
//! An MNIST digit was written with a ballpoint on paper and scanned: its strokes vary in
//! width and darkness and have soft edges. A digit drawn on the web page or in the window is
//! a round pen of one width with hard, anti-aliased edges, often much thicker or thinner
//! relative to the digit. To train for drawings and to measure on them, a digit is turned into
//! strokes and drawn again the way a canvas draws:
//!
//! 1. the 28x28 image is enlarged [`UPSCALE`] times (bilinear) and cut at half intensity;
//! 2. the ink is thinned to a one-pixel skeleton (Zhang–Suen), the path the pen's centre took;
//! 3. the skeleton is mapped onto a canvas (any size, place, slant) and every pair of
//!    neighbouring skeleton pixels is drawn as a segment with a round pen ([`crate::pen`]).
//!
//! The result then goes through [`pismo_core::preprocess`] like any drawing.

use crate::pen::Canvas;
use pismo_core::mlp::INPUT;
use pismo_core::preprocess::SIDE;

/// Enlargement of the digit before thinning.
pub const UPSCALE: usize = 4;
const BIG: usize = SIDE * UPSCALE;

/// The pen's path through an MNIST digit: segments between neighbouring skeleton pixels, in
/// the coordinates of the 28x28 image (pixel centres at `i + 0.5`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Skeleton {
    /// Segments `(from, to)`; a lone pixel is a segment of length 0.
    pub segments: Vec<((f32, f32), (f32, f32))>,
}

impl Skeleton {
    /// The skeleton of `image` (MNIST bytes, ink bright).
    pub fn of(image: &[u8; INPUT]) -> Skeleton {
        let mut ink = enlarge(image);
        thin(&mut ink);
        let at = |x: isize, y: isize| {
            x >= 0
                && y >= 0
                && (x as usize) < BIG
                && (y as usize) < BIG
                && ink[y as usize * BIG + x as usize]
        };
        let unit = 1.0 / UPSCALE as f32;
        let centre = |x: isize, y: isize| ((x as f32 + 0.5) * unit, (y as f32 + 0.5) * unit);
        let mut segments = Vec::new();
        for y in 0..BIG as isize {
            for x in 0..BIG as isize {
                if !at(x, y) {
                    continue;
                }
                // Each neighbour pair once: right, down-left, down, down-right.
                let mut linked = false;
                for (dx, dy) in [(1, 0), (-1, 1), (0, 1), (1, 1)] {
                    if at(x + dx, y + dy) {
                        segments.push((centre(x, y), centre(x + dx, y + dy)));
                        linked = true;
                    }
                }
                let isolated = !linked
                    && [(-1, 0), (-1, -1), (0, -1), (1, -1)]
                        .iter()
                        .all(|&(dx, dy)| !at(x + dx, y + dy));
                if isolated {
                    segments.push((centre(x, y), centre(x, y)));
                }
            }
        }
        Skeleton { segments }
    }

    /// Draws the skeleton on `canvas` with a round pen `pen` pixels wide, after mapping each
    /// point with `map` (28x28 coordinates → canvas pixels).
    pub fn draw(&self, canvas: &mut Canvas, pen: f32, map: impl Fn((f32, f32)) -> (f32, f32)) {
        for &(a, b) in &self.segments {
            canvas.stroke(&[map(a), map(b)], pen);
        }
    }
}

/// A placement of a 28x28 digit on a canvas: scale (canvas pixels per MNIST pixel), slant
/// (horizontal shift per unit of height, about the digit's centre) and offset of the
/// digit's centre from the canvas's centre, in canvas pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Placement {
    /// Canvas pixels per MNIST pixel.
    pub scale: f32,
    /// Horizontal shift per unit of height.
    pub slant: f32,
    /// Offset of the digit's centre from the canvas centre, canvas pixels.
    pub offset: (f32, f32),
}

impl Placement {
    /// The map from 28x28 coordinates to a canvas of side `side`.
    pub fn map(self, side: f32) -> impl Fn((f32, f32)) -> (f32, f32) {
        let c = SIDE as f32 / 2.0;
        move |(x, y)| {
            let (u, v) = (x - c, y - c);
            let u = u - self.slant * v;
            (
                side / 2.0 + self.offset.0 + self.scale * u,
                side / 2.0 + self.offset.1 + self.scale * v,
            )
        }
    }
}

/// `image` redrawn on a `side`x`side` canvas with a round pen `pen` pixels wide.
pub fn redraw(skeleton: &Skeleton, side: usize, place: Placement, pen: f32) -> Canvas {
    let mut canvas = Canvas::new(side, side);
    skeleton.draw(&mut canvas, pen, place.map(side as f32));
    canvas
}

fn enlarge(image: &[u8; INPUT]) -> Vec<bool> {
    let px = |x: isize, y: isize| -> f32 {
        if x < 0 || y < 0 || x >= SIDE as isize || y >= SIDE as isize {
            0.0
        } else {
            f32::from(image[y as usize * SIDE + x as usize])
        }
    };
    let mut out = vec![false; BIG * BIG];
    for (i, o) in out.iter_mut().enumerate() {
        let (bx, by) = (i % BIG, i / BIG);
        // Centre of the big pixel in 28x28 coordinates, relative to pixel centres.
        let u = (bx as f32 + 0.5) / UPSCALE as f32 - 0.5;
        let v = (by as f32 + 0.5) / UPSCALE as f32 - 0.5;
        let (x0, y0) = (u.floor(), v.floor());
        let (fx, fy) = (u - x0, v - y0);
        let (x0, y0) = (x0 as isize, y0 as isize);
        let top = px(x0, y0) * (1.0 - fx) + px(x0 + 1, y0) * fx;
        let bottom = px(x0, y0 + 1) * (1.0 - fx) + px(x0 + 1, y0 + 1) * fx;
        *o = top * (1.0 - fy) + bottom * fy >= 128.0;
    }
    out
}

/// Zhang–Suen thinning, in place: removes boundary pixels in two alternating sub-passes
/// until none can go without breaking the shape's connectivity or shortening its ends.
fn thin(ink: &mut [bool]) {
    let n = BIG as isize;
    let get = |ink: &[bool], x: isize, y: isize| {
        x >= 0 && y >= 0 && x < n && y < n && ink[(y * n + x) as usize]
    };
    let mut remove = Vec::new();
    loop {
        let mut changed = false;
        for pass in 0..2 {
            remove.clear();
            for y in 0..n {
                for x in 0..n {
                    if !get(ink, x, y) {
                        continue;
                    }
                    // Neighbours P2..P9 clockwise from north.
                    let p = [
                        get(ink, x, y - 1),
                        get(ink, x + 1, y - 1),
                        get(ink, x + 1, y),
                        get(ink, x + 1, y + 1),
                        get(ink, x, y + 1),
                        get(ink, x - 1, y + 1),
                        get(ink, x - 1, y),
                        get(ink, x - 1, y - 1),
                    ];
                    let b = p.iter().filter(|&&v| v).count();
                    let a = (0..8).filter(|&i| !p[i] && p[(i + 1) % 8]).count();
                    let (p2, p4, p6, p8) = (p[0], p[2], p[4], p[6]);
                    let cond = if pass == 0 {
                        !(p4 && p6 && (p2 || p8))
                    } else {
                        !(p2 && p8 && (p4 || p6))
                    };
                    if (2..=6).contains(&b) && a == 1 && cond {
                        remove.push((y * n + x) as usize);
                    }
                }
            }
            for &i in &remove {
                ink[i] = false;
            }
            changed |= !remove.is_empty();
        }
        if !changed {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thick_bar_thins_to_its_centre_line_and_redraws_with_the_given_pen() {
        let mut img = [0u8; INPUT];
        for y in 6..22 {
            for x in 12..16 {
                img[y * SIDE + x] = 255;
            }
        }
        let sk = Skeleton::of(&img);
        assert!(!sk.segments.is_empty());
        for &(a, b) in &sk.segments {
            for p in [a, b] {
                assert!(
                    (p.0 - 14.0).abs() < 1.0,
                    "{p:?} is off the bar's centre line"
                );
                assert!(p.1 > 5.0 && p.1 < 23.0);
            }
        }
        let place = Placement {
            scale: 10.0,
            slant: 0.0,
            offset: (0.0, 0.0),
        };
        let canvas = redraw(&sk, 280, place, 12.0);
        // Row 140 (the middle): ink about 12 px wide around x = 140.
        let row = &canvas.data[140 * 280..141 * 280];
        let inked = row.iter().filter(|&&v| v < 128).count();
        assert!((10..=15).contains(&inked), "{inked}");
    }
}
