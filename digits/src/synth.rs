//! Synthetic digits written with a pen, in the styles MNIST lacks.
//!
//! MNIST's writers were American; people who learnt to write in continental Europe cross
//! their sevens, give their ones a flag and a foot, curl the tail of their nines and close
//! their fours. A model trained on MNIST alone reads those as other digits (a curled 9 as a
//! 3, a crossed 7 as a 2, a flagged 1 as a 7). This module writes digits in those styles and
//! in the common ones, as pen strokes drawn the way a canvas draws them (a round pen,
//! [`crate::pen`]), so training can see them.
//!
//! A style is a list of strokes; a stroke is a chain of pieces, each a smooth curve
//! (Catmull-Rom) through a few control points in a unit box (x right, y down), and the pen
//! turns a sharp corner where one piece meets the next (the top of a 7). Every sample varies
//! the shape and the hand: each control point moves independently (proportions, loop sizes,
//! how far a tail curls), then the whole digit gets a width-to-height ratio, a slant, a
//! rotation, a size and place on the canvas and a pen width (thin to very thick relative to
//! the digit, as when a digit is drawn small with a thick pen). The drawing then goes through
//! [`pismo_core::preprocess`] like any drawing. Everything is a function of `(seed, index)`.

use crate::pen::Canvas;
use pismo_core::mlp::INPUT;
use pismo_core::preprocess::PIXELS;
use pismo_core::rng::{hash3, Rng};
use pismo_engine::{fan_out, kernels};

type Piece = &'static [(f32, f32)];
type Stroke = &'static [Piece];
type Style = &'static [Stroke];

/// A named way of writing a digit.
#[derive(Debug)]
pub struct Glyph {
    /// The digit.
    pub digit: u8,
    /// What the style is, e.g. "crossed 7".
    pub name: &'static str,
    strokes: Style,
}

const NINE_LOOP: Piece = &[
    (0.86, 0.16),
    (0.5, 0.0),
    (0.14, 0.16),
    (0.18, 0.42),
    (0.5, 0.5),
    (0.86, 0.32),
    (0.87, 0.08),
];

/// Every style, digit by digit.
pub const GLYPHS: &[Glyph] = &[
    Glyph {
        digit: 0,
        name: "oval 0",
        strokes: &[&[&[
            (0.55, 0.02),
            (0.2, 0.15),
            (0.05, 0.5),
            (0.2, 0.88),
            (0.5, 1.0),
            (0.82, 0.85),
            (0.95, 0.5),
            (0.82, 0.14),
            (0.5, 0.02),
            (0.35, 0.08),
        ]]],
    },
    Glyph {
        digit: 0,
        name: "quick open 0",
        strokes: &[&[&[
            (0.62, 0.0),
            (0.25, 0.12),
            (0.05, 0.5),
            (0.22, 0.9),
            (0.55, 1.0),
            (0.88, 0.8),
            (0.93, 0.4),
            (0.75, 0.08),
        ]]],
    },
    Glyph {
        digit: 1,
        name: "plain 1",
        strokes: &[&[&[(0.5, 0.0), (0.5, 1.0)]]],
    },
    Glyph {
        digit: 1,
        name: "1 with a flag",
        strokes: &[&[&[(0.12, 0.3), (0.55, 0.0)], &[(0.55, 0.0), (0.5, 1.0)]]],
    },
    Glyph {
        digit: 1,
        name: "1 with a flag and a foot",
        strokes: &[
            &[&[(0.15, 0.28), (0.55, 0.0)], &[(0.55, 0.0), (0.52, 1.0)]],
            &[&[(0.15, 1.0), (0.88, 1.0)]],
        ],
    },
    Glyph {
        digit: 1,
        name: "1 with a long flag",
        strokes: &[&[
            &[(0.0, 0.45), (0.3, 0.2), (0.58, 0.0)],
            &[(0.58, 0.0), (0.58, 1.0)],
        ]],
    },
    Glyph {
        digit: 2,
        name: "plain 2",
        strokes: &[&[
            &[
                (0.1, 0.28),
                (0.3, 0.04),
                (0.62, 0.0),
                (0.85, 0.22),
                (0.75, 0.5),
                (0.4, 0.78),
                (0.05, 1.0),
            ],
            &[(0.05, 1.0), (0.95, 0.98)],
        ]],
    },
    Glyph {
        digit: 2,
        name: "2 with a loop",
        strokes: &[&[&[
            (0.1, 0.28),
            (0.3, 0.04),
            (0.62, 0.0),
            (0.85, 0.22),
            (0.75, 0.5),
            (0.4, 0.75),
            (0.14, 0.93),
            (0.1, 0.8),
            (0.25, 0.77),
            (0.36, 0.92),
            (0.6, 1.0),
            (0.95, 0.95),
        ]]],
    },
    Glyph {
        digit: 2,
        name: "Z-like 2",
        strokes: &[&[
            &[(0.08, 0.12), (0.5, 0.0), (0.88, 0.1), (0.85, 0.3)],
            &[(0.85, 0.3), (0.1, 1.0)],
            &[(0.1, 1.0), (0.92, 1.0)],
        ]],
    },
    Glyph {
        digit: 3,
        name: "round 3",
        strokes: &[&[
            &[
                (0.1, 0.15),
                (0.45, 0.0),
                (0.82, 0.12),
                (0.8, 0.35),
                (0.45, 0.48),
            ],
            &[
                (0.45, 0.48),
                (0.85, 0.62),
                (0.88, 0.85),
                (0.55, 1.0),
                (0.1, 0.88),
            ],
        ]],
    },
    Glyph {
        digit: 3,
        name: "flat-topped 3",
        strokes: &[&[
            &[(0.1, 0.02), (0.88, 0.0)],
            &[(0.88, 0.0), (0.42, 0.42)],
            &[
                (0.42, 0.42),
                (0.8, 0.55),
                (0.9, 0.8),
                (0.6, 1.0),
                (0.12, 0.9),
            ],
        ]],
    },
    Glyph {
        digit: 4,
        name: "open 4",
        strokes: &[
            &[&[(0.15, 0.0), (0.05, 0.6)], &[(0.05, 0.6), (0.95, 0.6)]],
            &[&[(0.72, 0.05), (0.72, 1.0)]],
        ],
    },
    Glyph {
        digit: 4,
        name: "closed 4",
        strokes: &[&[
            &[(0.68, 1.0), (0.68, 0.0)],
            &[(0.68, 0.0), (0.0, 0.68)],
            &[(0.0, 0.68), (0.98, 0.68)],
        ]],
    },
    Glyph {
        digit: 4,
        name: "slanted-arm 4",
        strokes: &[
            &[&[(0.55, 0.0), (0.05, 0.65)], &[(0.05, 0.65), (0.95, 0.65)]],
            &[&[(0.7, 0.22), (0.7, 1.0)]],
        ],
    },
    Glyph {
        digit: 5,
        name: "5 with its bar last",
        strokes: &[
            &[
                &[(0.25, 0.02), (0.2, 0.45)],
                &[
                    (0.2, 0.45),
                    (0.45, 0.38),
                    (0.8, 0.5),
                    (0.88, 0.78),
                    (0.6, 1.0),
                    (0.1, 0.9),
                ],
            ],
            &[&[(0.25, 0.02), (0.9, 0.0)]],
        ],
    },
    Glyph {
        digit: 5,
        name: "5 in one stroke",
        strokes: &[&[
            &[(0.9, 0.0), (0.25, 0.02)],
            &[(0.25, 0.02), (0.18, 0.45)],
            &[
                (0.18, 0.45),
                (0.5, 0.38),
                (0.85, 0.55),
                (0.85, 0.85),
                (0.5, 1.0),
                (0.1, 0.88),
            ],
        ]],
    },
    Glyph {
        digit: 6,
        name: "round 6",
        strokes: &[&[&[
            (0.78, 0.0),
            (0.4, 0.22),
            (0.12, 0.62),
            (0.25, 0.95),
            (0.6, 1.0),
            (0.85, 0.75),
            (0.65, 0.5),
            (0.3, 0.52),
            (0.14, 0.72),
        ]]],
    },
    Glyph {
        digit: 6,
        name: "quick 6",
        strokes: &[&[&[
            (0.65, 0.0),
            (0.3, 0.4),
            (0.12, 0.8),
            (0.4, 1.0),
            (0.8, 0.85),
            (0.7, 0.58),
            (0.35, 0.62),
        ]]],
    },
    Glyph {
        digit: 6,
        name: "6 with a small loop",
        strokes: &[&[&[
            (0.85, 0.05),
            (0.45, 0.15),
            (0.15, 0.5),
            (0.15, 0.9),
            (0.45, 1.0),
            (0.7, 0.85),
            (0.55, 0.65),
            (0.2, 0.72),
        ]]],
    },
    Glyph {
        digit: 7,
        name: "plain 7",
        strokes: &[&[&[(0.05, 0.05), (0.95, 0.02)], &[(0.95, 0.02), (0.35, 1.0)]]],
    },
    Glyph {
        digit: 7,
        name: "crossed 7",
        strokes: &[
            &[&[(0.05, 0.05), (0.95, 0.02)], &[(0.95, 0.02), (0.38, 1.0)]],
            &[&[(0.3, 0.52), (0.88, 0.5)]],
        ],
    },
    Glyph {
        digit: 7,
        name: "crossed 7 with a tick",
        strokes: &[
            &[
                &[(0.05, 0.22), (0.08, 0.0)],
                &[(0.08, 0.0), (0.95, 0.02)],
                &[(0.95, 0.02), (0.4, 1.0)],
            ],
            &[&[(0.35, 0.5), (0.9, 0.48)]],
        ],
    },
    Glyph {
        digit: 7,
        name: "crossed 7 with a curved stem",
        strokes: &[
            &[
                &[(0.05, 0.05), (0.95, 0.0)],
                &[(0.95, 0.0), (0.65, 0.4), (0.45, 1.0)],
            ],
            &[&[(0.38, 0.5), (0.92, 0.45)]],
        ],
    },
    Glyph {
        digit: 8,
        name: "8 in one stroke",
        strokes: &[&[&[
            (0.8, 0.12),
            (0.5, 0.0),
            (0.2, 0.15),
            (0.3, 0.38),
            (0.7, 0.6),
            (0.85, 0.85),
            (0.5, 1.0),
            (0.15, 0.85),
            (0.3, 0.6),
            (0.7, 0.4),
            (0.8, 0.15),
            (0.6, 0.02),
        ]]],
    },
    Glyph {
        digit: 8,
        name: "8 of two loops",
        strokes: &[
            &[&[(0.5, 0.0), (0.2, 0.2), (0.5, 0.42), (0.8, 0.2), (0.5, 0.0)]],
            &[&[
                (0.5, 0.42),
                (0.12, 0.7),
                (0.5, 1.0),
                (0.88, 0.7),
                (0.5, 0.42),
            ]],
        ],
    },
    Glyph {
        digit: 8,
        name: "8 from the middle",
        strokes: &[&[&[
            (0.5, 0.45),
            (0.85, 0.2),
            (0.5, 0.0),
            (0.15, 0.2),
            (0.5, 0.45),
            (0.9, 0.75),
            (0.5, 1.0),
            (0.1, 0.75),
            (0.5, 0.45),
        ]]],
    },
    Glyph {
        digit: 9,
        name: "plain 9",
        strokes: &[&[NINE_LOOP, &[(0.87, 0.08), (0.82, 1.0)]]],
    },
    Glyph {
        digit: 9,
        name: "9 with a curled tail",
        strokes: &[&[
            NINE_LOOP,
            &[
                (0.87, 0.08),
                (0.85, 0.6),
                (0.72, 0.92),
                (0.4, 1.0),
                (0.15, 0.88),
            ],
        ]],
    },
    Glyph {
        digit: 9,
        name: "9 with a hooked tail",
        strokes: &[&[
            NINE_LOOP,
            &[
                (0.87, 0.08),
                (0.85, 0.7),
                (0.6, 1.0),
                (0.25, 0.95),
                (0.1, 0.78),
            ],
        ]],
    },
    Glyph {
        digit: 9,
        name: "9 with a bent stem",
        strokes: &[&[NINE_LOOP, &[(0.87, 0.08), (0.8, 0.6), (0.6, 1.0)]]],
    },
];

/// Idiosyncratic styles of single writers, kept apart from [`GLYPHS`]: training never draws
/// them. The writer simulation of `bench/adapt` gives them to a few simulated writers, each
/// writing them the same way every time, as the hands that a general model misreads do.
pub const WRITER_GLYPHS: &[Glyph] = &[
    Glyph {
        digit: 9,
        name: "9 with a small loop and a tail hooking left",
        strokes: &[&[
            &[
                (0.82, 0.12),
                (0.62, 0.0),
                (0.42, 0.1),
                (0.44, 0.3),
                (0.64, 0.34),
                (0.82, 0.2),
                (0.82, 0.06),
            ],
            &[
                (0.82, 0.06),
                (0.8, 0.5),
                (0.7, 0.86),
                (0.46, 1.0),
                (0.2, 0.9),
            ],
        ]],
    },
    Glyph {
        digit: 7,
        name: "7 in one stroke like a z, with a bar",
        strokes: &[
            &[
                &[(0.08, 0.04), (0.92, 0.0)],
                &[(0.92, 0.0), (0.18, 1.0)],
                &[(0.18, 1.0), (0.9, 0.97)],
            ],
            &[&[(0.3, 0.5), (0.82, 0.5)]],
        ],
    },
    Glyph {
        digit: 4,
        name: "4 with its top closed",
        strokes: &[
            &[&[(0.22, 0.02), (0.12, 0.56)], &[(0.12, 0.56), (0.92, 0.56)]],
            &[&[(0.22, 0.02), (0.74, 0.0)], &[(0.74, 0.0), (0.74, 1.0)]],
        ],
    },
];

/// The styles of one digit.
pub fn glyphs_of(digit: u8) -> impl Iterator<Item = &'static Glyph> {
    GLYPHS.iter().filter(move |g| g.digit == digit)
}

/// How a sample is written: everything random about one synthetic digit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hand {
    /// Standard deviation of each control point's move, in units of the digit's height.
    pub jitter: f32,
    /// Width of the digit's box over its height.
    pub aspect: f32,
    /// Horizontal shift per unit of height (positive leans right).
    pub slant: f32,
    /// Rotation in degrees.
    pub rotation: f32,
    /// Height of the digit over the canvas side.
    pub size: f32,
    /// Pen width over the digit's height.
    pub pen: f32,
    /// Where the digit's centre lies, as fractions of the free room (0..1 each).
    pub place: (f32, f32),
}

impl Hand {
    /// A random hand from `rng`: mostly upright, leaning right more often than left, pens
    /// from thin (2.5 % of the digit's height) to very thick (30 %), log-uniform.
    pub fn sample(rng: &mut Rng, digit: u8) -> Hand {
        let aspect = if digit == 1 {
            0.25 + 0.35 * rng.next_f32()
        } else {
            0.5 + 0.5 * rng.next_f32()
        };
        Hand {
            jitter: 0.015 + 0.035 * rng.next_f32(),
            aspect,
            slant: (0.08 + 0.15 * rng.normal()).clamp(-0.4, 0.5),
            rotation: (6.0 * rng.normal()).clamp(-15.0, 15.0),
            size: 0.3 + 0.6 * rng.next_f32(),
            pen: 0.025 * libm::powf(12.0, rng.next_f32()),
            place: (rng.next_f32(), rng.next_f32()),
        }
    }
}

/// The strokes of `glyph` written by `hand` on a square canvas of side `side`, as polylines
/// in canvas pixels, plus the pen width in pixels. `rng` moves the control points.
pub fn write(glyph: &Glyph, hand: &Hand, side: f32, rng: &mut Rng) -> (Vec<Vec<(f32, f32)>>, f32) {
    let height = hand.size * side;
    let width = hand.aspect * height;
    let (s, c) = (
        libm::sinf(hand.rotation.to_radians()),
        libm::cosf(hand.rotation.to_radians()),
    );
    // Unit box → centred digit coordinates (pixels), slanted and rotated.
    let map = |(x, y): (f32, f32)| {
        let (u, v) = ((x - 0.5) * width, (y - 0.5) * height);
        let u = u - hand.slant * v;
        (c * u - s * v, s * u + c * v)
    };
    let mut strokes: Vec<Vec<(f32, f32)>> = Vec::with_capacity(glyph.strokes.len());
    for stroke in glyph.strokes {
        let mut line: Vec<(f32, f32)> = Vec::new();
        // A corner point shared by two pieces moves once, so the pen does not jump.
        let mut carried: Option<((f32, f32), (f32, f32))> = None;
        for piece in *stroke {
            let moved: Vec<(f32, f32)> = piece
                .iter()
                .enumerate()
                .map(|(i, &p)| match carried {
                    Some((from, to)) if i == 0 && from == p => to,
                    _ => (
                        p.0 + hand.jitter * rng.normal(),
                        p.1 + hand.jitter * rng.normal(),
                    ),
                })
                .collect();
            carried = Some((piece[piece.len() - 1], moved[moved.len() - 1]));
            let curve = catmull_rom(&moved, 8);
            let skip = usize::from(!line.is_empty());
            line.extend(curve.into_iter().skip(skip).map(map));
        }
        strokes.push(line);
    }
    // Place the digit's box inside the canvas (with the pen's margin) at `hand.place`.
    let pen = (hand.pen * height).max(1.0);
    let (mut lo, mut hi) = ((f32::MAX, f32::MAX), (f32::MIN, f32::MIN));
    for p in strokes.iter().flatten() {
        lo = (lo.0.min(p.0), lo.1.min(p.1));
        hi = (hi.0.max(p.0), hi.1.max(p.1));
    }
    let margin = pen * 0.5 + 1.0;
    let room = |lo: f32, hi: f32| (side - 2.0 * margin - (hi - lo)).max(0.0);
    let dx = margin + hand.place.0 * room(lo.0, hi.0) - lo.0;
    let dy = margin + hand.place.1 * room(lo.1, hi.1) - lo.1;
    for p in strokes.iter_mut().flatten() {
        *p = (p.0 + dx, p.1 + dy);
    }
    (strokes, pen)
}

/// Points along a Catmull-Rom spline through `points`, `steps` per span (the ends are
/// repeated, so the curve starts and ends on them). Two points give a straight line.
fn catmull_rom(points: &[(f32, f32)], steps: usize) -> Vec<(f32, f32)> {
    if points.len() < 3 {
        return points.to_vec();
    }
    let at = |i: isize| points[i.clamp(0, points.len() as isize - 1) as usize];
    let mut out = Vec::with_capacity((points.len() - 1) * steps + 1);
    for i in 0..points.len() as isize - 1 {
        let (p0, p1, p2, p3) = (at(i - 1), at(i), at(i + 1), at(i + 2));
        for k in 0..steps {
            let t = k as f32 / steps as f32;
            let (t2, t3) = (t * t, t * t * t);
            let f = |a: f32, b: f32, c: f32, d: f32| {
                0.5 * (2.0 * b
                    + (-a + c) * t
                    + (2.0 * a - 5.0 * b + 4.0 * c - d) * t2
                    + (-a + 3.0 * b - 3.0 * c + d) * t3)
            };
            out.push((f(p0.0, p1.0, p2.0, p3.0), f(p0.1, p1.1, p2.1, p3.1)));
        }
    }
    out.push(points[points.len() - 1]);
    out
}

/// Canvas side the synthetic digits are drawn on (before preprocessing to 28x28).
pub const CANVAS: usize = 112;

/// Synthetic digit number `index` of the stream `seed`: its label and its 28x28 model input
/// as MNIST bytes (0 background, 255 ink). Digits cycle 0..9; the style is uniform among the
/// digit's [`GLYPHS`].
pub fn sample(seed: u64, index: u64) -> (u8, [u8; INPUT]) {
    let mut rng = Rng::new(hash3(seed ^ 0x0517_17E5, index, 0));
    let digit = (index % 10) as u8;
    let styles: Vec<&Glyph> = glyphs_of(digit).collect();
    let glyph = styles[rng.below(styles.len())];
    let hand = Hand::sample(&mut rng, digit);
    (digit, render(glyph, &hand, &mut rng))
}

/// `glyph` written by `hand` on a [`CANVAS`] canvas and preprocessed, as MNIST bytes.
pub fn render(glyph: &Glyph, hand: &Hand, rng: &mut Rng) -> [u8; INPUT] {
    let (strokes, pen) = write(glyph, hand, CANVAS as f32, rng);
    let mut canvas = Canvas::new(CANVAS, CANVAS);
    for s in &strokes {
        canvas.stroke(s, pen);
    }
    to_bytes(&canvas)
}

/// A drawing's model input as MNIST bytes (a blank drawing gives a blank image).
pub fn to_bytes(canvas: &Canvas) -> [u8; INPUT] {
    let mut input = [0.0f32; PIXELS];
    let mut out = [0u8; INPUT];
    if kernels::preprocess(&canvas.as_grey(), &mut input).is_ok() {
        for (o, v) in out.iter_mut().zip(input) {
            *o = (v * 255.0).round() as u8;
        }
    }
    out
}

/// `n` synthetic digits of the stream `seed` (indices `0..n`), made on all cores.
pub fn dataset(seed: u64, n: usize) -> crate::mnist::Dataset {
    made_on_all_cores(n, |k| sample(seed, k as u64))
}

/// The dataset whose sample `k` (of `0..n`) is `make(k)` (label, image), made on all cores
/// ([`fan_out::map_shares`]): the result does not depend on the number of cores.
pub fn made_on_all_cores(
    n: usize,
    make: impl Fn(usize) -> (u8, [u8; INPUT]) + Sync,
) -> crate::mnist::Dataset {
    let threads = pismo_engine::threads_or_all(0);
    let shares = fan_out::map_shares(n, threads, |share| share.map(&make).collect::<Vec<_>>());
    let (labels, images) = shares.into_iter().flatten().unzip();
    crate::mnist::Dataset { images, labels }
}

/// A style of the styles set: the glyphs it draws from (by name; empty: every glyph) and
/// how the digit is placed.
#[derive(Clone, Copy, Debug)]
pub struct StyleCase {
    /// The style, as reported.
    pub name: &'static str,
    /// Names of the [`GLYPHS`] drawn (empty: all of them).
    pub glyphs: &'static [&'static str],
    /// Drawn small (20–30 % of the canvas) in a corner.
    pub small: bool,
    /// Drawn strongly slanted (0.35–0.55 to the right, or 0.3–0.4 to the left).
    pub slanted: bool,
}

/// The styles the styles set covers: the European forms MNIST lacks, quick forms, and
/// digits drawn small in a corner or slanted.
pub const STYLE_CASES: [StyleCase; 10] = [
    StyleCase {
        name: "crossed 7",
        glyphs: &[
            "crossed 7",
            "crossed 7 with a tick",
            "crossed 7 with a curved stem",
        ],
        small: false,
        slanted: false,
    },
    StyleCase {
        name: "1 with a flag and a foot",
        glyphs: &["1 with a flag and a foot"],
        small: false,
        slanted: false,
    },
    StyleCase {
        name: "9 with a curled tail",
        glyphs: &["9 with a curled tail", "9 with a hooked tail"],
        small: false,
        slanted: false,
    },
    StyleCase {
        name: "open 4",
        glyphs: &["open 4"],
        small: false,
        slanted: false,
    },
    StyleCase {
        name: "closed 4",
        glyphs: &["closed 4"],
        small: false,
        slanted: false,
    },
    StyleCase {
        name: "2 with a loop",
        glyphs: &["2 with a loop"],
        small: false,
        slanted: false,
    },
    StyleCase {
        name: "quick 6",
        glyphs: &["quick 6"],
        small: false,
        slanted: false,
    },
    StyleCase {
        name: "quick 0",
        glyphs: &["quick open 0"],
        small: false,
        slanted: false,
    },
    StyleCase {
        name: "small in a corner",
        glyphs: &[],
        small: true,
        slanted: false,
    },
    StyleCase {
        name: "slanted",
        glyphs: &[],
        small: false,
        slanted: true,
    },
];

/// One drawing of the styles set: strokes in the coordinates of a 280x280 canvas, to be
/// drawn with the user interface's own pen.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StyleSample {
    /// The style ([`StyleCase::name`]).
    pub style: &'static str,
    /// The glyph drawn.
    pub glyph: &'static str,
    /// The digit.
    pub digit: u8,
    /// Polylines, canvas pixels.
    pub strokes: Vec<Vec<(f32, f32)>>,
}

/// Seed of the styles set every user interface is measured on.
pub const STYLES_SEED: u64 = 20_261_202;

/// Side of the styles set's canvas (the web page's and the window's logical canvas).
pub const STYLE_CANVAS: f32 = 280.0;

/// `per_style` drawings of every [`STYLE_CASES`] entry, from `seed`. The glyph templates
/// are the ones training draws from, with hands of their own: the set checks the drawing
/// paths end to end, not generalisation to new writers.
pub fn style_set(seed: u64, per_style: usize) -> Vec<StyleSample> {
    let mut out = Vec::with_capacity(STYLE_CASES.len() * per_style);
    for (c, case) in STYLE_CASES.iter().enumerate() {
        let glyphs: Vec<&Glyph> = GLYPHS
            .iter()
            .filter(|g| case.glyphs.is_empty() || case.glyphs.contains(&g.name))
            .collect();
        for i in 0..per_style {
            let mut rng = Rng::new(hash3(seed ^ 0x0057_7135, c as u64, i as u64));
            let glyph = if case.glyphs.is_empty() {
                // Every digit equally often.
                let of_digit: Vec<&&Glyph> = glyphs
                    .iter()
                    .filter(|g| usize::from(g.digit) == i % 10)
                    .collect();
                *of_digit[rng.below(of_digit.len())]
            } else {
                glyphs[rng.below(glyphs.len())]
            };
            let mut hand = Hand::sample(&mut rng, glyph.digit);
            hand.size = 0.55 + 0.3 * rng.next_f32();
            hand.slant = hand.slant.clamp(-0.2, 0.3);
            if case.small {
                hand.size = 0.2 + 0.1 * rng.next_f32();
                let corner = rng.below(4);
                hand.place = (
                    if corner.is_multiple_of(2) { 0.0 } else { 1.0 },
                    if corner / 2 == 0 { 0.0 } else { 1.0 },
                );
            }
            if case.slanted {
                hand.slant = if rng.below(4) == 0 {
                    -0.3 - 0.1 * rng.next_f32()
                } else {
                    0.35 + 0.2 * rng.next_f32()
                };
            }
            // The user interface's pen (about 20 px) keeps the drawing off the edges.
            hand.pen = 20.0 / (hand.size * STYLE_CANVAS);
            let (strokes, _) = write(glyph, &hand, STYLE_CANVAS, &mut rng);
            out.push(StyleSample {
                style: case.name,
                glyph: glyph.name,
                digit: glyph.digit,
                strokes,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_digit_has_styles_and_every_sample_has_ink() {
        for d in 0..10 {
            assert!(glyphs_of(d).count() >= 2, "digit {d}");
        }
        for i in 0..200 {
            let (label, img) = sample(7, i);
            assert_eq!(u64::from(label), i % 10);
            let max = img.iter().max().copied().unwrap_or(0);
            assert!(max >= 250, "sample {i} is blank");
        }
        assert_eq!(sample(7, 3), sample(7, 3));
        assert_ne!(sample(7, 3).1, sample(8, 3).1);
    }

    #[test]
    fn the_styles_set_covers_every_style_inside_the_canvas() {
        let set = style_set(1, 20);
        assert_eq!(set.len(), 20 * STYLE_CASES.len());
        for case in STYLE_CASES {
            let of: Vec<_> = set.iter().filter(|s| s.style == case.name).collect();
            assert_eq!(of.len(), 20, "{}", case.name);
        }
        for s in &set {
            for &(x, y) in s.strokes.iter().flatten() {
                assert!(
                    (0.0..=STYLE_CANVAS).contains(&x) && (0.0..=STYLE_CANVAS).contains(&y),
                    "{s:?}"
                );
            }
        }
        // The small ones are small.
        for s in set.iter().filter(|s| s.style == "small in a corner") {
            let ys: Vec<f32> = s.strokes.iter().flatten().map(|p| p.1).collect();
            let h = ys.iter().cloned().fold(f32::MIN, f32::max)
                - ys.iter().cloned().fold(f32::MAX, f32::min);
            assert!(h < 0.35 * STYLE_CANVAS, "{h}");
        }
    }
}
