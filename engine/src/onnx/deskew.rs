//! [`pismo_core::deskew`] as ONNX operators: the shear measured from each image's moments and
//! applied by two gathers and a linear interpolation, computing what pismo computes.
//!
//! ```text
//! ink float32[N,784] ─ ReduceSum, MatMul(x), MatMul(y) ─► mass, Σx, Σy ─ Div ─► x̄, ȳ
//!                    ─ Scan over the 784 pixels in row-major order ─► μ₁₁, μ₀₂
//! slope = Clip(μ₁₁ / μ₀₂, −1, 1);  u = x + slope·(y − ȳ);  left = Floor(u), t = u − left
//! out = Pad(ink, 2 columns each side)[y, left] · (1 − t) + [...][y, left + 1] · t
//!       (GatherElements; an image without ink or of one row is passed through: Where)
//! ```
//!
//! **Why a Scan.** The first moments of byte-valued ink (`0..255`) are sums of integers below
//! 2²⁴, exact in `f32` in any order, so `ReduceSum` and `MatMul` give pismo's bits. The
//! second moments are not: a `ReduceSum` adds in its own order, the slope moves in its last
//! bit, and the int8 path, which rounds each deskewed pixel to a byte, then lands a pixel
//! near `x.5` on the other byte. A `Scan` adds `p·(x − x̄)·(y − ȳ)` and `p·(y − ȳ)²` pixel
//! by pixel in pismo's order, with pismo's operations, so the slope is pismo's to the bit.
//! The interpolation is the same `f32` operations in the same order (`a·(1 − t) + b·t`), the
//! `Floor` is `floorf` and the left tap is clamped to `−2..=28` as [`pismo_core::floor::tap`]
//! clamps it, so every pixel is pismo's too.

use super::proto::{Attr, Elem, Graph};
use super::round_half_away;
use pismo_core::mlp::INPUT;
use pismo_core::preprocess::SIDE;

/// Columns of zeros on each side of a row, so that every tap [`pismo_core::floor::tap`] can give
/// (`−2..=SIDE`, and the one after it) reads a real element.
const PAD: usize = 2;

/// Appends the deskewing of `ink` (`float32[N,784]`) to `g`; returns the deskewed image's
/// name. With `bytes`, `ink` holds byte values and each deskewed pixel is rounded to a byte
/// as [`pismo_core::deskew::deskew_bytes`] rounds it; else it is [`pismo_core::deskew::deskew_f32`].
///
/// The steps append their nodes in this order, which the exported file keeps.
pub fn deskew(g: &mut Graph, ink: &str, bytes: bool) -> String {
    let m = first_moments(g, ink);
    let (xy, yy) = second_moments(g, ink, &m);
    let slant = slant(g, &m, &xy, &yy);
    let (left, t) = sample_points(g, &m, &slant);
    let (a, b) = taps(g, ink, &left);
    let mut sample = interpolate(g, &a, &b, &t);
    if bytes {
        sample = to_bytes(g, &sample, &slant.zero);
    }
    g.op("deskewed", "Where", &[&slant.valid, &sample, ink], vec![])
}

/// Graph values of the first moments: pixel coordinates, ink mass and centroid.
struct FirstMoments {
    /// Column `x` and row `y` of each pixel (`[784]`).
    xs: String,
    ys: String,
    /// `[N,1]` each.
    mass: String,
    cx: String,
    cy: String,
}

/// Mass, `Σx` and `Σy` by `ReduceSum` and `MatMul` (exact, see the module documentation),
/// and the centroid `x̄ = Σx / mass`, `ȳ = Σy / mass`.
fn first_moments(g: &mut Graph, ink: &str) -> FirstMoments {
    let col_of = |i: usize| (i % SIDE) as f32;
    let row_of = |i: usize| (i / SIDE) as f32;
    let xs: Vec<f32> = (0..INPUT).map(col_of).collect();
    let ys: Vec<f32> = (0..INPUT).map(row_of).collect();
    let xs = g.init_f32("deskew.x", &[INPUT as i64], &xs);
    let ys = g.init_f32("deskew.y", &[INPUT as i64], &ys);
    let column = [INPUT as i64, 1];
    let column = shape(g, "col", &column);
    let xs_col = g.op("deskew.x_col", "Reshape", &[&xs, &column], vec![]);
    let ys_col = g.op("deskew.y_col", "Reshape", &[&ys, &column], vec![]);
    let axis1 = g.init_i64("deskew.axis1", &[1], &[1]);
    let mass = g.op("deskew.mass", "ReduceSum", &[ink, &axis1], vec![]);
    let sum_x = g.op("deskew.sum_x", "MatMul", &[ink, &xs_col], vec![]);
    let sum_y = g.op("deskew.sum_y", "MatMul", &[ink, &ys_col], vec![]);
    let cx = g.op("deskew.cx", "Div", &[&sum_x, &mass], vec![]);
    let cy = g.op("deskew.cy", "Div", &[&sum_y, &mass], vec![]);
    FirstMoments {
        xs,
        ys,
        mass,
        cx,
        cy,
    }
}

/// `μ₁₁` and `μ₀₂` (`[N,1]` each), pixel by pixel in a `Scan` (see the module documentation).
fn second_moments(g: &mut Graph, ink: &str, m: &FirstMoments) -> (String, String) {
    let flat = shape(g, "flat", &[-1]);
    let cx_n = g.op("deskew.cx_n", "Reshape", &[&m.cx, &flat], vec![]);
    let cy_n = g.op("deskew.cy_n", "Reshape", &[&m.cy, &flat], vec![]);
    let n_shape = g.op("deskew.n", "Shape", &[&cx_n], vec![]);
    let zeros = g.op("deskew.zeros", "ConstantOfShape", &[&n_shape], vec![]);
    let body = moments_body(&cx_n, &cy_n);
    g.op_n(
        "deskew.moments",
        "Scan",
        &[&zeros, &zeros, ink, &m.xs, &m.ys],
        &["deskew.xy_n", "deskew.yy_n"],
        vec![
            Attr::Graph("body", body),
            Attr::Int("num_scan_inputs", 3),
            Attr::Ints("scan_input_axes", &[1, 0, 0]),
        ],
    );
    let col_shape = shape(g, "n1", &[-1, 1]);
    let xy = g.op("deskew.xy", "Reshape", &["deskew.xy_n", &col_shape], vec![]);
    let yy = g.op("deskew.yy", "Reshape", &["deskew.yy_n", &col_shape], vec![]);
    (xy, yy)
}

/// Graph values of each image's slant.
struct Slant {
    /// Whether the image has ink of more than one row (else it is passed through).
    valid: String,
    /// `Clip(μ₁₁ / μ₀₂, −1, 1)`, 0 where not `valid`.
    slope: String,
    /// `ȳ`, 0 where not `valid`.
    cy: String,
    /// The scalar 0.
    zero: String,
}

/// The slope of each image; zeros where the image is passed through, so that no NaN
/// reaches an index.
fn slant(g: &mut Graph, m: &FirstMoments, xy: &str, yy: &str) -> Slant {
    // An image without ink, or whose ink is one row, has no slant: passed through.
    let zero = g.init_f32("deskew.0", &[], &[0.0]);
    let has_ink = g.op("deskew.has_ink", "Greater", &[&m.mass, &zero], vec![]);
    let has_height = g.op("deskew.has_height", "Greater", &[yy, &zero], vec![]);
    let valid = g.op("deskew.valid", "And", &[&has_ink, &has_height], vec![]);
    let ratio = g.op("deskew.ratio", "Div", &[xy, yy], vec![]);
    let max = g.init_f32("deskew.max_slope", &[], &[pismo_core::deskew::MAX_SLOPE]);
    let min = g.init_f32("deskew.min_slope", &[], &[-pismo_core::deskew::MAX_SLOPE]);
    let slope = g.op("deskew.slope_raw", "Clip", &[&ratio, &min, &max], vec![]);
    let slope = g.op("deskew.slope", "Where", &[&valid, &slope, &zero], vec![]);
    let cy = g.op("deskew.cy_safe", "Where", &[&valid, &m.cy, &zero], vec![]);
    Slant {
        valid,
        slope,
        cy,
        zero,
    }
}

/// `u = x + slope·(y − ȳ)` for each pixel: the left tap (clamped as
/// [`pismo_core::floor::tap`] clamps it) and the fraction `t` past it.
fn sample_points(g: &mut Graph, m: &FirstMoments, slant: &Slant) -> (String, String) {
    let dy = g.op("deskew.dy", "Sub", &[&m.ys, &slant.cy], vec![]);
    let shift = g.op("deskew.shift", "Mul", &[&slant.slope, &dy], vec![]);
    let u = g.op("deskew.u", "Add", &[&m.xs, &shift], vec![]);
    let left = g.op("deskew.left", "Floor", &[&u], vec![]);
    let t = g.op("deskew.t", "Sub", &[&u, &left], vec![]);
    let lo = g.init_f32("deskew.tap_min", &[], &[-(PAD as f32)]);
    let hi = g.init_f32("deskew.tap_max", &[], &[SIDE as f32]);
    let left = g.op("deskew.left_clamped", "Clip", &[&left, &lo, &hi], vec![]);
    (left, t)
}

/// The pixels at the left tap and the one after it, read from the image padded with PAD
/// zero columns each side: row y, column left + PAD.
fn taps(g: &mut Graph, ink: &str, left: &str) -> (String, String) {
    let side = SIDE as i64;
    let width = SIDE + 2 * PAD;
    let row_base: Vec<f32> = (0..INPUT)
        .map(|i| ((i / SIDE) * width + PAD) as f32)
        .collect();
    let row_base = g.init_f32("deskew.row_base", &[INPUT as i64], &row_base);
    let at = g.op("deskew.at_f", "Add", &[&row_base, left], vec![]);
    let at = g.op(
        "deskew.at",
        "Cast",
        &[&at],
        vec![Attr::Int("to", Elem::Int64 as i64)],
    );
    let one_i = g.init_i64("deskew.1i", &[], &[1]);
    let next = g.op("deskew.next", "Add", &[&at, &one_i], vec![]);
    let square = shape(g, "square", &[-1, side, side]);
    let square = g.op("deskew.square", "Reshape", &[ink, &square], vec![]);
    let pads = g.init_i64("deskew.pads", &[6], &[0, 0, PAD as i64, 0, 0, PAD as i64]);
    let padded = g.op("deskew.padded", "Pad", &[&square, &pads], vec![]);
    let rows = shape(g, "rows", &[-1, side * width as i64]);
    let padded = g.op("deskew.padded_flat", "Reshape", &[&padded, &rows], vec![]);
    let axis = || vec![Attr::Int("axis", 1)];
    let a = g.op("deskew.a", "GatherElements", &[&padded, &at], axis());
    let b = g.op("deskew.b", "GatherElements", &[&padded, &next], axis());
    (a, b)
}

/// `a·(1 − t) + b·t`.
fn interpolate(g: &mut Graph, a: &str, b: &str, t: &str) -> String {
    let one = g.init_f32("deskew.1", &[], &[1.0]);
    let rest = g.op("deskew.1-t", "Sub", &[&one, t], vec![]);
    let wa = g.op("deskew.a_weighted", "Mul", &[a, &rest], vec![]);
    let wb = g.op("deskew.b_weighted", "Mul", &[b, t], vec![]);
    g.op("deskew.sample", "Add", &[&wa, &wb], vec![])
}

/// `sample` rounded half away from zero and clipped to `zero..=255`, as
/// [`pismo_core::deskew::deskew_bytes`] makes each pixel a byte.
fn to_bytes(g: &mut Graph, sample: &str, zero: &str) -> String {
    let rounded = round_half_away(g, "deskew.round", sample);
    let byte_max = g.init_f32("deskew.255", &[], &[255.0]);
    g.op("deskew.byte", "Clip", &[&rounded, zero, &byte_max], vec![])
}

/// An int64 shape initializer `deskew.shape.NAME`.
fn shape(g: &mut Graph, name: &str, dims: &[i64]) -> String {
    g.init_i64(&format!("deskew.shape.{name}"), &[dims.len() as i64], dims)
}

/// The Scan's body: states `xy`, `yy` (`[N]`), scan inputs the pixel column `p` (`[N]`)
/// and its coordinates `x`, `y` (scalars); `cx`, `cy` (`[N]`) from the outer graph.
/// As pismo: `xy += p·(x − cx)·dy; yy += p·dy·dy` with `dy = y − cy`.
fn moments_body(cx: &str, cy: &str) -> super::proto::Message {
    let mut b = Graph::new();
    let (batch, scalar): (&[Option<i64>], &[Option<i64>]) = (&[None], &[]);
    for (name, shape) in [
        ("scan.xy", batch),
        ("scan.yy", batch),
        ("scan.p", batch),
        ("scan.x", scalar),
        ("scan.y", scalar),
    ] {
        b.input(name, Elem::Float, shape, "");
    }
    let dx = b.op("scan.dx", "Sub", &["scan.x", cx], vec![]);
    let dy = b.op("scan.dy", "Sub", &["scan.y", cy], vec![]);
    let pdx = b.op("scan.pdx", "Mul", &["scan.p", &dx], vec![]);
    let xy_term = b.op("scan.xy_term", "Mul", &[&pdx, &dy], vec![]);
    b.op("scan.xy_out", "Add", &["scan.xy", &xy_term], vec![]);
    let pdy = b.op("scan.pdy", "Mul", &["scan.p", &dy], vec![]);
    let yy_term = b.op("scan.yy_term", "Mul", &[&pdy, &dy], vec![]);
    b.op("scan.yy_out", "Add", &["scan.yy", &yy_term], vec![]);
    b.output("scan.xy_out", Elem::Float, batch, "");
    b.output("scan.yy_out", Elem::Float, batch, "");
    b.finish("deskew_moments", "")
}
