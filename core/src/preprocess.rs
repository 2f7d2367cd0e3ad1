//! Drawing preprocessing: any grey image of a digit → the 28x28 input the model was trained on.
//!
//! MNIST's digits were made by cropping each scanned digit to its ink, scaling it with
//! anti-aliasing so that its longer side is 20 px, and placing it in a 28x28 frame so that its
//! intensity centre of mass falls on the centre. A drawing must go through the same steps, or
//! the model sees a digit of a size and position it never met in training (the weakness of the
//! original project's canvas). [`to_input`] is what every shell calls; it is [`preprocess`]
//! for any size but 28x28, which is taken as already MNIST-like.
//!
//! The pipeline of [`preprocess`], three passes over (parts of) the input, no allocation, no
//! buffer larger than the 28x28 output (every shell can run it on a microcontroller too):
//!
//! 1. **Polarity.** The background level is the median of the image's outermost ring of
//!    pixels (the paper shows at the border even when a thick digit covers most of the
//!    image). If the image's extremes lie further below the background than above it, the
//!    ink is dark on light paper ([`Polarity::DarkInk`]), else light on dark
//!    ([`Polarity::LightInk`], as MNIST). The *contrast* is the distance from the background
//!    to the furthest ink level; below [`MIN_CONTRAST`] grey levels the image is blank
//!    ([`PreprocessError::NoInk`]).
//! 2. **Ink.** A pixel's ink is its distance from the background in the ink direction. Ink
//!    up to [`INK_THRESHOLD_PERCENT`] % of the contrast counts as background (paper
//!    texture, scanner noise, JPEG ringing) and weighs 0; above it a pixel keeps its full
//!    ink. This threshold reproduces MNIST's box: on the t10k digits, the ink above 10 % has
//!    a longer side of exactly 20 px in 9996 of 10000. (Subtracting the threshold from every
//!    pixel instead, a soft ramp, measured no better; see "Measurements".)
//! 3. **Crop.** The bounding box of the pixels with ink, and the ink's centre of mass, computed
//!    exactly with integer sums.
//! 4. **Scale and centre, in one resampling pass.** The scale makes the box's longer side
//!    [`BOX`] = 20 px, aspect preserved. The output frame is placed on the input so that the
//!    centre of mass lands on pixel (14, 14) of the 28x28 grid (MNIST's mean, measured on its
//!    test set: (14.01, 13.99)), with a sub-pixel shift rather than MNIST's rounding; if that
//!    would push part of the box out of the frame, the frame shifts just enough to keep it in.
//!    Each output pixel is then computed from the input directly: when shrinking, the exact
//!    area average of the input under it (a box filter with fractional coverage at its
//!    edges); when enlarging (a box shorter than 20 px), bilinear interpolation within the
//!    box, times the fraction of the output pixel that the box covers.
//! 5. **Level.** The output is divided by its maximum, so the strongest ink is 1.0 and the
//!    background 0.0, as in MNIST (a thin pen on a big canvas would otherwise come out grey).
//!
//! Measurements (t10k digits pasted on a 280x280 canvas enlarged x8 or x3, off-centre, dark
//! on white; a scratch 784-128-10 MLP trained 4 epochs, 97.30 % on the original t10k): the
//! preprocessed pastes are classified at 97.4-97.5 %, and 98.3 % get the same prediction
//! as their original. Rounding the placement to whole pixels like MNIST gives a higher median
//! similarity to the originals (cosine 0.975 vs 0.959) but a worse tail (5th percentile 0.86
//! vs 0.90: a digit lands a whole pixel off when the rounding goes the other way) and
//! 97.2 % accuracy, so the shift is sub-pixel. `tests/e2e/preprocess.rs` pins the similarity.
//!
//! Performance. Each pass is a loop over contiguous bytes that the compiler vectorizes,
//! without intrinsics or `unsafe`. On the host the whole pipeline is compiled three times
//! on x86-64, for baseline SSE2, AVX2 and AVX-512, and the widest copy the CPU has runs
//! (chosen at run time, as the trainer's kernels are); the firmware and
//! aarch64 run the one portable copy. An ink weight is branch-free: dark ink becomes light
//! ink by an xor with 0xff, then one saturating subtraction and a compare-and-mask. Step 1
//! takes the ring's level directly when the ring is one level all round (plain paper), and
//! folds rows into their minimum and maximum in 32 byte lanes (a row's tail is folded as its
//! last 32 bytes again, which min and max do not mind): row by row from the top and from
//! the bottom until each meets a row that can hold ink, then every row between in one call.
//! Step 3 sums only those rows, in strips of 256 columns: each row adds its weights to
//! `u16` column sums and to its own sum, and the box and the moments come from the column
//! and row sums. Step 4 is separable, vertical first: for each output row, the box rows
//! under it are added column by column, those it covers entirely as `u16` integers and its
//! two edge rows weighted in `f32`; each output column then sums its span of those sums,
//! with an overlap weight on its two edge pixels only. The scalar work is thus per output
//! row rather than per input pixel. The per-output-pixel version this replaced stays in the
//! tests as the reference, matched to 1e-5 per pixel. Every copy gives the same bits
//! (integer sums, and the same float operations in the same order; a test compares them).
//! How long a drawing takes, per CPU copy and canvas size, measured: docs/ARCHITECTURE.md,
//! "Drawing preprocessing".
//!
//! Invariants: on `Ok`, every output value is in `0.0..=1.0`, the maximum is 1.0 (for
//! [`preprocess`]), and all ink lies inside the frame. Nothing here panics, whatever the
//! dimensions and bytes (fields of [`GreyImage`] are public, so every entry point checks them
//! again). Work is linear in the input's pixel count; inputs are limited to
//! [`MAX_SIDE`] x [`MAX_SIDE`].

use core::fmt;

/// Side of the model's input image.
pub const SIDE: usize = 28;
/// Pixels of the model's input image.
pub const PIXELS: usize = SIDE * SIDE;
const _: () = assert!(
    PIXELS == crate::mlp::INPUT,
    "a preprocessed image is the model's input"
);
/// Longer side of the ink's bounding box after scaling (MNIST: 20 px in a 28 px frame).
pub const BOX: usize = 20;
/// Largest accepted width or height.
pub const MAX_SIDE: usize = 8192;
/// Fewest grey levels between background and ink for an image to count as having ink.
pub const MIN_CONTRAST: u8 = 32;
/// Ink up to this percentage of the contrast is background.
pub const INK_THRESHOLD_PERCENT: u32 = 10;
/// Where the centre of mass goes, in pixel-index coordinates of the 28x28 output.
const TARGET_COM: f32 = 14.0;

/// Which way round ink and paper are in the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polarity {
    /// Light ink on a dark background, like MNIST; kept as it is.
    LightInk,
    /// Dark ink on light paper (a pen, a scan, a canvas); inverted.
    DarkInk,
}

/// Why an image cannot become a model input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreprocessError {
    /// Width or height is 0.
    Empty {
        /// Width given.
        width: usize,
        /// Height given.
        height: usize,
    },
    /// Width or height above [`MAX_SIDE`].
    TooLarge {
        /// Width given.
        width: usize,
        /// Height given.
        height: usize,
    },
    /// The pixel data is not `width * height` bytes.
    SizeMismatch {
        /// Width given.
        width: usize,
        /// Height given.
        height: usize,
        /// Bytes given.
        len: usize,
    },
    /// The image is (nearly) uniform: nothing is drawn.
    NoInk,
}

impl fmt::Display for PreprocessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PreprocessError::Empty { width, height } => {
                write!(f, "the image is empty ({width}x{height} pixels)")
            }
            PreprocessError::TooLarge { width, height } => write!(
                f,
                "the image is too large ({width}x{height} pixels, at most {MAX_SIDE}x{MAX_SIDE})"
            ),
            PreprocessError::SizeMismatch { width, height, len } => write!(
                f,
                "a {width}x{height} grey image needs {} bytes, got {len}",
                width.saturating_mul(height)
            ),
            PreprocessError::NoInk => f.write_str("the image has no ink: draw a digit"),
        }
    }
}

impl core::error::Error for PreprocessError {}

/// A borrowed 8-bit grey image, row-major, 0 = black, 255 = white.
#[derive(Clone, Copy, Debug)]
pub struct GreyImage<'a> {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height` bytes, row after row.
    pub data: &'a [u8],
}

impl<'a> GreyImage<'a> {
    /// Checks that the dimensions are non-zero, at most [`MAX_SIDE`], and match the data.
    pub fn new(width: usize, height: usize, data: &'a [u8]) -> Result<Self, PreprocessError> {
        let img = GreyImage {
            width,
            height,
            data,
        };
        img.check()?;
        Ok(img)
    }

    fn check(&self) -> Result<(), PreprocessError> {
        let (width, height) = (self.width, self.height);
        if width == 0 || height == 0 {
            return Err(PreprocessError::Empty { width, height });
        }
        if width > MAX_SIDE || height > MAX_SIDE {
            return Err(PreprocessError::TooLarge { width, height });
        }
        // Both at most 8192: the product cannot overflow even a 32-bit usize.
        if self.data.len() != width * height {
            return Err(PreprocessError::SizeMismatch {
                width,
                height,
                len: self.data.len(),
            });
        }
        Ok(())
    }
}

/// What preprocessing found and did, for display and debugging.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Info {
    /// Detected polarity of the input.
    pub polarity: Polarity,
    /// Background grey level of the input (median of its border).
    pub background: u8,
    /// Grey levels between the background and the furthest ink.
    pub contrast: u8,
    /// Bounding box of the ink in the input, `(x0, y0, x1, y1)`, half-open.
    pub bbox: (usize, usize, usize, usize),
    /// Output pixels per input pixel (1.0 when the input was used as it is).
    pub scale: f32,
    /// Intensity centre of mass of the output, `(x, y)` in pixel-index coordinates
    /// (pixel `(col, row)` sits at `(col as f32, row as f32)`).
    pub com: (f32, f32),
    /// Whether the input was cropped and resampled (`false` for 28x28 inputs in [`to_input`]).
    pub resampled: bool,
}

/// The model input of any grey image: a 28x28 input gets only its polarity normalized
/// (light ink on black) and is divided by 255, as it is assumed MNIST-like already; any
/// other size goes through [`preprocess`]. Every shell calls this.
/// This is the one portable copy; a host may compile [`to_input_inline`] per instruction
/// set, and every copy gives the same bits.
pub fn to_input(img: &GreyImage, out: &mut [f32; PIXELS]) -> Result<Info, PreprocessError> {
    to_input_inline(img, out)
}

/// Crops any grey image to its ink, scales it to a 20 px box with anti-aliasing and centres
/// its mass in 28x28, as MNIST was made (see the module doc). Values are in `0.0..=1.0`,
/// ink bright.
///
/// The portable copy, as [`to_input`]; [`preprocess_inline`] is its body.
pub fn preprocess(img: &GreyImage, out: &mut [f32; PIXELS]) -> Result<Info, PreprocessError> {
    preprocess_inline(img, out)
}

/// [`to_input`]'s body. It and every step below are `#[inline(always)]`, so that a caller
/// that compiles it per instruction set gets the whole pipeline in each copy. Call
/// [`to_input`] unless you are writing such a copy.
#[inline(always)]
pub fn to_input_inline(img: &GreyImage, out: &mut [f32; PIXELS]) -> Result<Info, PreprocessError> {
    if img.width != SIDE || img.height != SIDE {
        return preprocess_inline(img, out);
    }
    img.check()?;
    let ink = analyse(img)?;
    for (o, &p) in out.iter_mut().zip(img.data) {
        let v = match ink.polarity {
            Polarity::LightInk => p,
            Polarity::DarkInk => 255 - p,
        };
        *o = f32::from(v) / 255.0;
    }
    let mass = mass_of(img, &ink);
    Ok(Info {
        polarity: ink.polarity,
        background: ink.background,
        contrast: ink.contrast,
        bbox: mass.bbox,
        scale: 1.0,
        com: centre_of_mass(out),
        resampled: false,
    })
}

/// [`preprocess`]'s body, `#[inline(always)]` as [`to_input_inline`].
#[inline(always)]
pub fn preprocess_inline(
    img: &GreyImage,
    out: &mut [f32; PIXELS],
) -> Result<Info, PreprocessError> {
    img.check()?;
    let ink = analyse(img)?;
    let mass = mass_of(img, &ink);
    if mass.total == 0 {
        return Err(PreprocessError::NoInk);
    }
    let (x0, y0, x1, y1) = mass.bbox;
    let longer = (x1 - x0).max(y1 - y0);
    let scale = BOX as f32 / longer as f32;
    // Centre of mass in continuous coordinates (pixel i covers [i, i + 1)).
    let cx = (mass.sum_x as f64 / mass.total as f64) as f32 + 0.5;
    let cy = (mass.sum_y as f64 / mass.total as f64) as f32 + 0.5;
    let ax = Axis::new(cx, x0, x1, scale);
    let ay = Axis::new(cy, y0, y1, scale);

    out.fill(0.0);
    if scale <= 1.0 {
        area_average(img, &ink, &ax, &ay, out);
    } else {
        for (yo, row) in out.chunks_exact_mut(SIDE).enumerate() {
            for (xo, o) in row.iter_mut().enumerate() {
                *o = bilinear(img, &ink, &ax, &ay, xo, yo);
            }
        }
    }
    let max = out.iter().copied().fold(0.0f32, f32::max);
    if max <= 0.0 {
        return Err(PreprocessError::NoInk);
    }
    for o in out.iter_mut() {
        *o = (*o / max).clamp(0.0, 1.0);
    }
    Ok(Info {
        polarity: ink.polarity,
        background: ink.background,
        contrast: ink.contrast,
        bbox: mass.bbox,
        scale,
        com: centre_of_mass(out),
        resampled: true,
    })
}

/// Intensity centre of mass of a 28x28 image, `(x, y)` in pixel-index coordinates; the
/// centre (13.5, 13.5) for an all-zero image.
#[inline(always)]
fn centre_of_mass(img: &[f32; PIXELS]) -> (f32, f32) {
    // From column and row sums: a vector add per row for the columns, and short chains
    // of float additions instead of three chains of 784.
    let mut cols = [0.0f32; SIDE];
    let mut rows = [0.0f32; SIDE];
    for (row, r) in img.chunks_exact(SIDE).zip(&mut rows) {
        for (c, &v) in cols.iter_mut().zip(row) {
            *c += v;
        }
        *r = row.iter().sum();
    }
    let moment = |sums: &[f32; SIDE]| {
        let mass: f32 = sums.iter().sum();
        let first: f32 = sums.iter().enumerate().map(|(i, &s)| s * i as f32).sum();
        (mass, first)
    };
    let ((m, sx), (_, sy)) = (moment(&cols), moment(&rows));
    if m > 0.0 {
        (sx / m, sy / m)
    } else {
        let c = (SIDE as f32 - 1.0) / 2.0;
        (c, c)
    }
}

/// Polarity, background and ink threshold of an image (step 1 of the pipeline).
#[derive(Clone, Copy, Debug)]
struct Ink {
    polarity: Polarity,
    background: u8,
    contrast: u8,
    threshold: u8,
    /// 0x00 for light ink, 0xff for dark ink: `p ^ flip` is `255 - p` for dark ink, which
    /// turns both polarities into light ink on a background of `background ^ flip`.
    flip: u8,
    /// The rows that can hold ink, half-open: outside them, no pixel is further than
    /// [`MIN_THRESHOLD`] from the background.
    rows: (usize, usize),
}

/// The lowest ink threshold there can be (that of the lowest contrast).
const MIN_THRESHOLD: u8 = (MIN_CONTRAST as u32 * INK_THRESHOLD_PERCENT / 100) as u8;
/// Pixels of a row that [`extremes`] folds at once, one byte lane each.
const LANES: usize = 32;
/// Widest run of a row summed at once, in [`mass_of`] and [`area_average`]; bounds their
/// buffers (at most 1 KB each) and a run's sum of weights (`256 * 255 < 2^16`).
const STRIP: usize = 256;
/// Rows of ink weights (each at most 255) that a `u16` sum can take: 257 * 255 = 65535.
const U16_ROWS: usize = 257;

impl Ink {
    fn new(polarity: Polarity, background: u8, contrast: u8, rows: (usize, usize)) -> Self {
        Ink {
            polarity,
            background,
            contrast,
            threshold: (u32::from(contrast) * INK_THRESHOLD_PERCENT / 100) as u8,
            flip: match polarity {
                Polarity::LightInk => 0x00,
                Polarity::DarkInk => 0xff,
            },
            rows,
        }
    }

    /// Ink weight of a grey level: 0 for background and noise, else its distance from the
    /// background (at most `contrast`). Branch-free, so loops over it vectorize: an xor, a
    /// saturating subtraction and a compare-and-mask per byte.
    #[inline(always)]
    fn weight(&self, p: u8) -> u8 {
        let strength = (p ^ self.flip).saturating_sub(self.background ^ self.flip);
        if strength > self.threshold {
            strength
        } else {
            0
        }
    }

    /// `acc[i] += weight(px[i])`; returns the sum of the weights added, which fits as
    /// `px` is at most [`STRIP`] pixels.
    #[inline(always)]
    fn add_weights(&self, px: &[u8], acc: &mut [u16]) -> u16 {
        let mut sum = 0u16;
        for (a, &p) in acc.iter_mut().zip(px) {
            let w = u16::from(self.weight(p));
            *a += w;
            sum += w;
        }
        sum
    }

    /// `acc[i] += f * weight(px[i])`.
    #[inline(always)]
    fn add_scaled_weights(&self, px: &[u8], f: f32, acc: &mut [f32]) {
        for (a, &p) in acc.iter_mut().zip(px) {
            *a += f * f32::from(self.weight(p));
        }
    }
}

/// `sums[i] += ints[i]; ints[i] = 0`.
#[inline(always)]
fn flush<T: From<u16> + core::ops::AddAssign>(ints: &mut [u16], sums: &mut [T]) {
    for (i, s) in ints.iter_mut().zip(sums) {
        *s += T::from(*i);
        *i = 0;
    }
}

/// The darkest and lightest grey level of `px`, or (255, 0) if it is empty. The pixels are
/// folded in [`LANES`] byte lanes (vector min and max); the tail is folded as the last
/// [`LANES`] pixels, overlapping the chunk before, which min and max do not mind.
#[inline(always)]
fn extremes(px: &[u8]) -> (u8, u8) {
    let (mut lo, mut hi) = ([255u8; LANES], [0u8; LANES]);
    let mut fold = |chunk: &[u8; LANES]| {
        for ((lo, hi), &p) in lo.iter_mut().zip(&mut hi).zip(chunk) {
            *lo = (*lo).min(p);
            *hi = (*hi).max(p);
        }
    };
    let mut chunks = px.chunks_exact(LANES);
    for chunk in chunks.by_ref().filter_map(|c| c.first_chunk()) {
        fold(chunk);
    }
    let pair = |(lo, hi): (u8, u8), (&l, &h): (&u8, &u8)| (lo.min(l), hi.max(h));
    let tail = px
        .len()
        .checked_sub(LANES)
        .and_then(|at| px.get(at..)?.first_chunk());
    let Some(tail) = tail else {
        let rest = chunks.remainder();
        return rest.iter().zip(rest).fold((255, 0), pair);
    };
    fold(tail);
    lo.iter().zip(&hi).fold((255, 0), pair)
}

#[inline(always)]
fn analyse(img: &GreyImage) -> Result<Ink, PreprocessError> {
    let background = ring_median(img);
    // The rows that can hold ink: the first and the last row with a pixel further than
    // MIN_THRESHOLD from the background, found from each end. The extremes of the image
    // fold those rows and, in one call over contiguous bytes, every row between them.
    let (w, h) = (img.width, img.height);
    let row = |y: usize| img.data.get(y * w..(y + 1) * w).unwrap_or(&[]);
    let far = |(l, h): (u8, u8)| {
        background
            .saturating_sub(l)
            .max(h.saturating_sub(background))
            > MIN_THRESHOLD
    };
    let (mut lo, mut hi) = (255u8, 0u8);
    let mut fold = |(l, h): (u8, u8)| {
        (lo, hi) = (lo.min(l), hi.max(h));
        far((l, h))
    };
    let rows = match (0..h).find(|&y| fold(extremes(row(y)))) {
        None => (usize::MAX, 0),
        Some(first) => {
            let last = (first + 1..h)
                .rev()
                .find(|&y| fold(extremes(row(y))))
                .unwrap_or(first);
            let between = img.data.get((first + 1) * w..last * w).unwrap_or(&[]);
            fold(extremes(between));
            (first, last + 1)
        }
    };
    let below = background.saturating_sub(lo);
    let above = hi.saturating_sub(background);
    let (polarity, contrast) = if below > above {
        (Polarity::DarkInk, below)
    } else {
        (Polarity::LightInk, above)
    };
    if contrast < MIN_CONTRAST {
        return Err(PreprocessError::NoInk);
    }
    Ok(Ink::new(polarity, background, contrast, rows))
}

/// The median grey level of the image's outermost ring of pixels (each pixel once). Plain
/// paper, one level all along the ring as on most drawings, is its own median, found with
/// vector minimum and maximum; any other ring goes through a histogram.
#[inline(always)]
fn ring_median(img: &GreyImage) -> u8 {
    let (w, h) = (img.width, img.height);
    let px = |x: usize, y: usize| img.data.get(y * w + x).copied().unwrap_or(0);
    let top = img.data.get(..w).unwrap_or(&[]);
    let bottom = match h {
        1 => &[],
        _ => img.data.get((h - 1) * w..).unwrap_or(&[]),
    };
    let sides = || {
        (1..h.saturating_sub(1)).flat_map(move |y| {
            let right = (w > 1).then(|| px(w - 1, y));
            core::iter::once(px(0, y)).chain(right)
        })
    };
    let (t, b) = (extremes(top), extremes(bottom));
    let (mut lo, mut hi) = (t.0.min(b.0), t.1.max(b.1));
    // A plain loop over the rows between: folding `sides()` took twice as long (≈ 2000 →
    // 1000 cycles on a 280x280 drawing). A one-pixel-wide image gives its pixel twice here,
    // which a minimum and a maximum do not mind.
    for row in img.data.chunks_exact(w).skip(1).take(h.saturating_sub(2)) {
        if let (Some(&left), Some(&right)) = (row.first(), row.last()) {
            (lo, hi) = (lo.min(left).min(right), hi.max(left).max(right));
        }
    }
    if lo == hi {
        return lo;
    }
    // Kept as four tables filled in turn, so that a long run of one level is not one long
    // chain of increments of one counter. The ring has fewer than 4 * MAX_SIDE pixels:
    // `u16` counts cannot overflow.
    let mut hist = [[0u16; 256]; 4];
    let mut n = 0usize;
    for p in top.iter().chain(bottom).copied().chain(sides()) {
        hist[n % 4][usize::from(p)] += 1;
        n += 1;
    }
    let mut seen = 0usize;
    for level in 0..=255u8 {
        seen += hist
            .iter()
            .map(|t| usize::from(t[usize::from(level)]))
            .sum::<usize>();
        if seen * 2 >= n {
            return level;
        }
    }
    0
}

/// Bounding box and moments of the ink (step 3).
#[derive(Clone, Copy, Debug)]
struct Mass {
    bbox: (usize, usize, usize, usize),
    total: u64,
    sum_x: u64,
    sum_y: u64,
}

/// From column and row sums of the ink weights: the box spans the columns and rows whose
/// sum is not zero, `Σ x·w` is the sum of `x` times column `x`'s sum and `Σ y·w` likewise.
/// The rows that can hold ink are summed in strips of at most [`STRIP`] columns, so each
/// row of a strip is one vectorized loop adding its weights to `u16` column sums (flushed
/// to `u32` every [`U16_ROWS`] rows) and to its own sum, with no branch per pixel.
#[inline(always)]
fn mass_of(img: &GreyImage, ink: &Ink) -> Mass {
    let mut m = Mass {
        bbox: (usize::MAX, usize::MAX, 0, 0),
        total: 0,
        sum_x: 0,
        sum_y: 0,
    };
    let (y_first, y_end) = ink.rows;
    let rows = img.data.chunks_exact(img.width).enumerate();
    let rows = rows.skip(y_first).take(y_end.saturating_sub(y_first));
    let (mut ints, mut sums) = ([0u16; STRIP], [0u32; STRIP]);
    let mut x0 = 0;
    // A column sums at most 8192 * 255 < 2^32; the moments at most
    // 8192 * 8192 * 255 * 8192 < 2^64: no sum can overflow.
    while x0 < img.width {
        let len = STRIP.min(img.width - x0);
        let (ints, sums) = (&mut ints[..len], &mut sums[..len]);
        sums.fill(0);
        let mut pending = 0;
        for (y, row) in rows.clone() {
            let px = row.get(x0..x0 + len).unwrap_or(&[]);
            let row_total = u64::from(ink.add_weights(px, ints));
            if row_total > 0 {
                let b = &mut m.bbox;
                (b.1, b.3) = (b.1.min(y), b.3.max(y + 1));
                m.total += row_total;
                m.sum_y += row_total * y as u64;
            }
            pending += 1;
            if pending == U16_ROWS {
                flush(ints, sums);
                pending = 0;
            }
        }
        flush(ints, sums);
        if let (Some(first), Some(last)) = (
            sums.iter().position(|&s| s > 0),
            sums.iter().rposition(|&s| s > 0),
        ) {
            let b = &mut m.bbox;
            (b.0, b.2) = (b.0.min(x0 + first), b.2.max(x0 + last + 1));
        }
        for (x, &s) in (x0 as u64..).zip(sums.iter()) {
            m.sum_x += x * u64::from(s);
        }
        x0 += len;
    }
    if m.total == 0 {
        m.bbox = (0, 0, 0, 0);
    }
    m
}

/// Where each output column (or row) falls on the input along one axis.
#[derive(Clone, Copy, Debug)]
struct Axis {
    /// Input interval `[start[o], start[o] + step)` under output pixel `o`, continuous coords.
    start: [f32; SIDE],
    step: f32,
    /// The ink box along this axis, `[lo, hi)`.
    lo: usize,
    hi: usize,
    /// `span(o)` for every `o`, computed once.
    spans: [(usize, usize); SIDE],
    /// Overlaps of the first and the last pixel of `span(o)` with `o`, for every `o`.
    edges: [(f32, f32); SIDE],
}

impl Axis {
    /// `com` is the ink's centre of mass in continuous input coordinates.
    #[inline(always)]
    fn new(com: f32, lo: usize, hi: usize, scale: f32) -> Self {
        // Output coordinate of input coordinate u: (u - com) * scale + target.
        let mut target = TARGET_COM + 0.5;
        let left = (lo as f32 - com) * scale + target;
        let right = (hi as f32 - com) * scale + target;
        // The box spans at most BOX < SIDE output pixels, so one shift suffices.
        if left < 0.0 {
            target -= left;
        } else if right > SIDE as f32 {
            target -= right - SIDE as f32;
        }
        let step = 1.0 / scale;
        let mut start = [0.0; SIDE];
        for (o, s) in start.iter_mut().enumerate() {
            *s = com + (o as f32 - target) * step;
        }
        let mut axis = Axis {
            start,
            step,
            lo,
            hi,
            spans: [(0, 0); SIDE],
            edges: [(0.0, 0.0); SIDE],
        };
        for o in 0..SIDE {
            let (first, end) = axis.compute_span(o);
            let last = end.saturating_sub(1);
            axis.spans[o] = (first, end);
            axis.edges[o] = (axis.overlap(o, first), axis.overlap(o, last));
        }
        axis
    }

    /// Input pixels overlapping output pixel `o`, clipped to the box, as a half-open range.
    #[inline(always)]
    fn span(&self, o: usize) -> (usize, usize) {
        self.spans[o]
    }

    #[inline(always)]
    fn compute_span(&self, o: usize) -> (usize, usize) {
        let a = self.start[o];
        let b = a + self.step;
        // `as` saturates (negative and NaN become 0), so no cast can wrap.
        let first = (libm::floorf(a).max(0.0) as usize).max(self.lo);
        let end = (libm::ceilf(b).max(0.0) as usize).min(self.hi);
        (first, end.max(first))
    }

    /// Length of input pixel `i`'s overlap with output pixel `o`.
    #[inline(always)]
    fn overlap(&self, o: usize, i: usize) -> f32 {
        let a = self.start[o];
        let b = a + self.step;
        let i = i as f32;
        (b.min(i + 1.0) - a.max(i)).max(0.0)
    }

    /// `Σ overlap(o, x) * v[x - x0]` over the pixels `x` of `o`'s span that lie in
    /// `x0..x0 + v.len()`. The pixels strictly inside the span overlap `o` by exactly 1.0
    /// (`(i + 1) - i`, both exact in f32), so only the first and the last are weighted.
    #[inline(always)]
    fn sum_under(&self, o: usize, x0: usize, v: &[f32]) -> f32 {
        let (first, end) = self.span(o);
        if first >= end {
            return 0.0;
        }
        let last = end - 1;
        let (w_first, w_last) = self.edges[o];
        let at = |x: usize| x.checked_sub(x0).and_then(|i| v.get(i)).copied();
        let mut sum = at(first).map_or(0.0, |p| w_first * p);
        let (a, b) = ((first + 1).saturating_sub(x0), last.saturating_sub(x0));
        sum += v.get(a..b.min(v.len())).unwrap_or(&[]).iter().sum::<f32>();
        if last > first {
            sum += at(last).map_or(0.0, |p| w_last * p);
        }
        sum
    }

    /// Fraction of output pixel `o` that lies inside the box.
    #[inline(always)]
    fn coverage(&self, o: usize) -> f32 {
        let a = self.start[o];
        let b = a + self.step;
        ((b.min(self.hi as f32) - a.max(self.lo as f32)) / self.step).max(0.0)
    }

    /// Bilinear taps for output pixel `o`: two input indices inside the box and the
    /// weight of the second.
    #[inline(always)]
    fn taps(&self, o: usize) -> (usize, usize, f32) {
        let centre = self.start[o] + self.step / 2.0 - 0.5;
        let last = self.hi.saturating_sub(1);
        let u = centre.clamp(self.lo as f32, last as f32);
        let i0 = (libm::floorf(u) as usize).clamp(self.lo, last);
        let i1 = (i0 + 1).min(last);
        (i0, i1, (u - i0 as f32).clamp(0.0, 1.0))
    }
}

/// The ink under every output pixel when shrinking: the input's area average (box filter
/// with fractional coverage at the edges), up to the constant factor `scale²`; added to
/// `out`, which must be zero.
///
/// Separable and vertical first. For output row `yo`, the box rows under it are summed
/// column by column into `sums` (a strip of at most [`STRIP`] columns of the box at a time):
/// rows that `yo` covers entirely as `u16` integers in `ints`, which is a byte-wise vector
/// loop, and its two edge rows with their fractional overlap in `f32`. Each output column
/// then sums its span of `sums`: whole pixels plainly, its two edge pixels weighted by their
/// overlap. The scalar work is thus per output row, not per input row.
#[inline(always)]
fn area_average(img: &GreyImage, ink: &Ink, ax: &Axis, ay: &Axis, out: &mut [f32; PIXELS]) {
    let mut ints = [0u16; STRIP];
    let mut sums = [0.0f32; STRIP];
    let mut x0 = ax.lo;
    while x0 < ax.hi {
        let len = STRIP.min(ax.hi - x0);
        let (ints, sums) = (&mut ints[..len], &mut sums[..len]);
        for (yo, out_row) in out.chunks_exact_mut(SIDE).enumerate() {
            let (y_first, y_end) = ay.span(yo);
            if y_first >= y_end {
                continue;
            }
            sums.fill(0.0);
            let mut pending = 0;
            for y in y_first..y_end {
                let start = y * img.width + x0;
                let row = img.data.get(start..start + len).unwrap_or(&[]);
                let f = ay.overlap(yo, y);
                if f == 1.0 {
                    ink.add_weights(row, ints);
                    pending += 1;
                    if pending == U16_ROWS {
                        flush(ints, sums);
                        pending = 0;
                    }
                } else {
                    ink.add_scaled_weights(row, f, sums);
                }
            }
            flush(ints, sums);
            for (xo, o) in out_row.iter_mut().enumerate() {
                *o += ax.sum_under(xo, x0, sums);
            }
        }
        x0 += len;
    }
}

/// Ink under output pixel `(xo, yo)` when enlarging: bilinear interpolation inside the box,
/// times the part of the output pixel the box covers (anti-aliased box edges).
#[inline(always)]
fn bilinear(img: &GreyImage, ink: &Ink, ax: &Axis, ay: &Axis, xo: usize, yo: usize) -> f32 {
    let cover = ax.coverage(xo) * ay.coverage(yo);
    if cover <= 0.0 {
        return 0.0;
    }
    let (x0, x1, fx) = ax.taps(xo);
    let (y0, y1, fy) = ay.taps(yo);
    let at = |x: usize, y: usize| {
        let p = img.data.get(y * img.width + x).copied().unwrap_or(0);
        f32::from(ink.weight(p))
    };
    let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
    let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
    cover.min(1.0) * (top * (1.0 - fy) + bottom * fy)
}

#[cfg(test)]
#[allow(clippy::too_many_lines)] // tests read as scripts of steps
mod tests {
    use super::*;

    fn rng(seed: u64) -> impl FnMut() -> u64 {
        let mut state = seed | 1;
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    fn check_output(out: &[f32; PIXELS]) {
        assert!(out.iter().all(|v| (0.0..=1.0).contains(v)), "{out:?}");
    }

    /// The implementation before the vectorized one (2026-11), kept as the reference the
    /// fast path is tested against: per output pixel, the ink under it summed pixel by
    /// pixel with a float overlap each. Only the placement ([`Axis`]) is shared. (The 28x28
    /// pass-through of [`to_input`] has no older version: `mnist_sized_input_is_passed_through`
    /// tests it.)
    fn reference(img: &GreyImage, out: &mut [f32; PIXELS]) -> Result<Info, PreprocessError> {
        struct Ink {
            polarity: Polarity,
            background: u8,
            contrast: u8,
            threshold: u8,
        }
        impl Ink {
            fn weight(&self, p: u8) -> u8 {
                let strength = match self.polarity {
                    Polarity::LightInk => p.saturating_sub(self.background),
                    Polarity::DarkInk => self.background.saturating_sub(p),
                };
                if strength > self.threshold {
                    strength
                } else {
                    0
                }
            }
        }
        struct Mass {
            bbox: (usize, usize, usize, usize),
            total: u64,
            sum_x: u64,
            sum_y: u64,
        }
        fn analyse(img: &GreyImage) -> Result<Ink, PreprocessError> {
            let (w, h) = (img.width, img.height);
            let px = |x: usize, y: usize| img.data.get(y * w + x).copied().unwrap_or(0);
            let mut hist = [0u32; 256];
            let mut n = 0u32;
            let mut count = |p: u8| {
                hist[usize::from(p)] += 1;
                n += 1;
            };
            for x in 0..w {
                count(px(x, 0));
                if h > 1 {
                    count(px(x, h - 1));
                }
            }
            for y in 1..h.saturating_sub(1) {
                count(px(0, y));
                if w > 1 {
                    count(px(w - 1, y));
                }
            }
            let mut background = 0u8;
            let mut seen = 0u32;
            for (level, &c) in hist.iter().enumerate() {
                seen += c;
                if seen * 2 >= n {
                    background = level as u8;
                    break;
                }
            }
            let (lo, hi) = img
                .data
                .iter()
                .fold((255u8, 0u8), |(lo, hi), &p| (lo.min(p), hi.max(p)));
            let below = background.saturating_sub(lo);
            let above = hi.saturating_sub(background);
            let (polarity, contrast) = if below > above {
                (Polarity::DarkInk, below)
            } else {
                (Polarity::LightInk, above)
            };
            if contrast < MIN_CONTRAST {
                return Err(PreprocessError::NoInk);
            }
            let threshold = (u32::from(contrast) * INK_THRESHOLD_PERCENT / 100) as u8;
            Ok(Ink {
                polarity,
                background,
                contrast,
                threshold,
            })
        }
        fn mass_of(img: &GreyImage, ink: &Ink) -> Mass {
            let mut m = Mass {
                bbox: (usize::MAX, usize::MAX, 0, 0),
                total: 0,
                sum_x: 0,
                sum_y: 0,
            };
            for (y, row) in img.data.chunks_exact(img.width).enumerate() {
                let mut row_total = 0u64;
                for (x, &p) in row.iter().enumerate() {
                    let wgt = u64::from(ink.weight(p));
                    if wgt > 0 {
                        let b = &mut m.bbox;
                        *b = (b.0.min(x), b.1.min(y), b.2.max(x + 1), b.3.max(y + 1));
                        row_total += wgt;
                        m.sum_x += wgt * x as u64;
                    }
                }
                m.total += row_total;
                m.sum_y += row_total * y as u64;
            }
            if m.total == 0 {
                m.bbox = (0, 0, 0, 0);
            }
            m
        }
        fn area_average(
            img: &GreyImage,
            ink: &Ink,
            ax: &Axis,
            ay: &Axis,
            xo: usize,
            yo: usize,
        ) -> f32 {
            let (x_first, x_end) = ax.span(xo);
            let (y_first, y_end) = ay.span(yo);
            let mut sum = 0.0f32;
            for y in y_first..y_end {
                let row = img
                    .data
                    .get(y * img.width..(y + 1) * img.width)
                    .unwrap_or(&[]);
                let mut row_sum = 0.0f32;
                for x in x_first..x_end {
                    let p = row.get(x).copied().unwrap_or(0);
                    let wgt = ink.weight(p);
                    if wgt > 0 {
                        row_sum += ax.overlap(xo, x) * f32::from(wgt);
                    }
                }
                sum += ay.overlap(yo, y) * row_sum;
            }
            sum
        }
        fn bilinear(img: &GreyImage, ink: &Ink, ax: &Axis, ay: &Axis, xo: usize, yo: usize) -> f32 {
            let cover = ax.coverage(xo) * ay.coverage(yo);
            if cover <= 0.0 {
                return 0.0;
            }
            let (x0, x1, fx) = ax.taps(xo);
            let (y0, y1, fy) = ay.taps(yo);
            let at = |x: usize, y: usize| {
                let p = img.data.get(y * img.width + x).copied().unwrap_or(0);
                f32::from(ink.weight(p))
            };
            let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
            let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
            cover.min(1.0) * (top * (1.0 - fy) + bottom * fy)
        }

        img.check()?;
        let ink = analyse(img)?;
        let mass = mass_of(img, &ink);
        if mass.total == 0 {
            return Err(PreprocessError::NoInk);
        }
        let (x0, y0, x1, y1) = mass.bbox;
        let longer = (x1 - x0).max(y1 - y0);
        let scale = BOX as f32 / longer as f32;
        let cx = (mass.sum_x as f64 / mass.total as f64) as f32 + 0.5;
        let cy = (mass.sum_y as f64 / mass.total as f64) as f32 + 0.5;
        let ax = Axis::new(cx, x0, x1, scale);
        let ay = Axis::new(cy, y0, y1, scale);
        for (yo, row) in out.chunks_exact_mut(SIDE).enumerate() {
            for (xo, o) in row.iter_mut().enumerate() {
                *o = if scale <= 1.0 {
                    area_average(img, &ink, &ax, &ay, xo, yo)
                } else {
                    bilinear(img, &ink, &ax, &ay, xo, yo)
                };
            }
        }
        let max = out.iter().copied().fold(0.0f32, f32::max);
        if max <= 0.0 {
            return Err(PreprocessError::NoInk);
        }
        for o in out.iter_mut() {
            *o = (*o / max).clamp(0.0, 1.0);
        }
        Ok(Info {
            polarity: ink.polarity,
            background: ink.background,
            contrast: ink.contrast,
            bbox: mass.bbox,
            scale,
            com: centre_of_mass(out),
            resampled: true,
        })
    }

    /// A digit-like `side`x`side` grey image, light ink on black: one to four strokes of
    /// random thickness with anti-aliased edges.
    fn strokes(next: &mut impl FnMut() -> u64, side: usize) -> Vec<u8> {
        let mut g = vec![0u8; side * side];
        let range = side as u64 * 16;
        for _ in 0..1 + next() % 4 {
            let [ax, ay, bx, by] = [(); 4].map(|_| (next() % range) as f32 / 16.0);
            let radius = 0.3 + (next() % 30) as f32 / 12.0;
            let (dx, dy) = (bx - ax, by - ay);
            let len2 = (dx * dx + dy * dy).max(1e-6);
            for y in 0..side {
                for x in 0..side {
                    let (px, py) = (x as f32 + 0.5 - ax, y as f32 + 0.5 - ay);
                    let t = ((px * dx + py * dy) / len2).clamp(0.0, 1.0);
                    let (ex, ey) = (px - t * dx, py - t * dy);
                    let d = (ex * ex + ey * ey).sqrt();
                    let v = ((radius + 0.5 - d).clamp(0.0, 1.0) * 255.0) as u8;
                    let g = &mut g[y * side + x];
                    *g = (*g).max(v);
                }
            }
        }
        g
    }

    /// Compares the fast path with [`reference`] on one image: same result or error, the
    /// same `Info` up to float noise in the centre of mass, outputs within 1e-5.
    fn check_against_reference(w: usize, h: usize, data: &[u8], what: &str) {
        let img = GreyImage::new(w, h, data).unwrap();
        let (mut fast, mut slow) = ([0.0; PIXELS], [0.0; PIXELS]);
        let got = preprocess(&img, &mut fast);
        let want = reference(&img, &mut slow);
        let ctx = format!("{what} ({w}x{h})");
        match (got, want) {
            (Ok(a), Ok(b)) => {
                let no_com = |i: Info| Info {
                    com: (0.0, 0.0),
                    ..i
                };
                assert_eq!(no_com(a), no_com(b), "{ctx}");
                let (dx, dy) = (a.com.0 - b.com.0, a.com.1 - b.com.1);
                assert!(dx.abs() <= 1e-4 && dy.abs() <= 1e-4, "{ctx}: {a:?} {b:?}");
                let diff = fast
                    .iter()
                    .zip(&slow)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                assert!(diff <= 1e-5, "{ctx}: max difference {diff}");
                check_output(&fast);
            }
            (got, want) => assert_eq!(got, want, "{ctx}"),
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "too slow under Miri; see .ci/run")]
    fn fast_path_matches_reference() {
        let mut next = rng(0x5eed_2026_1127);
        // Random bytes of many sizes, including tiny and thin ones.
        for round in 0..400 {
            let w = 1 + (next() % if round % 3 == 0 { 5 } else { 300 }) as usize;
            let h = 1 + (next() % if round % 4 == 0 { 5 } else { 300 }) as usize;
            let mode = next() % 4;
            let data: Vec<u8> = (0..w * h)
                .map(|_| match mode {
                    0 => next() as u8,
                    1 => [0, 255][(next() % 2) as usize],
                    2 => 255 - next().is_multiple_of(64) as u8 * 255,
                    _ => (next() % 3) as u8 * 100,
                })
                .collect();
            check_against_reference(w, h, &data, "random bytes");
        }
        // Digit-like strokes, enlarged and pasted off-centre on paper of either polarity, with
        // or without noise; canvases up to 900 px, so boxes span several strips.
        for round in 0..160 {
            let side = [12, 20, 28][(next() % 3) as usize];
            let digit = strokes(&mut next, side);
            let k = 1 + (next() % 30) as usize;
            let (w, h) = (
                side * k + (next() % 200) as usize,
                side * k + (next() % 200) as usize,
            );
            let (w, h) = (w.min(900), h.min(900));
            let (x0, y0) = (
                (next() % (w - (side * k).min(w) + 1) as u64) as usize,
                (next() % (h - (side * k).min(h) + 1) as u64) as usize,
            );
            let (paper, ink) = match round % 3 {
                0 => (255i32, 0i32),
                1 => (0, 255),
                _ => (100 + (next() % 156) as i32, (next() % 60) as i32),
            };
            let noise = (round % 4 == 0) as i32 * 6;
            let mut data = vec![0u8; w * h];
            for (i, d) in data.iter_mut().enumerate() {
                let (x, y) = (i % w, i / w);
                let v = match (x.checked_sub(x0), y.checked_sub(y0)) {
                    (Some(dx), Some(dy)) if dx < side * k && dy < side * k => {
                        i32::from(digit[(dy / k) * side + dx / k])
                    }
                    _ => 0,
                };
                let n = (next() % 13) as i32 - 6;
                let p = paper + (ink - paper) * v / 255 + n * noise / 6;
                *d = p.clamp(0, 255) as u8;
            }
            check_against_reference(w, h, &data, "pasted strokes");
        }
        // Low contrast: ink barely above the threshold, and rows whose only ink is a few
        // levels above the lowest threshold there can be.
        for _ in 0..60 {
            let (w, h) = (20 + (next() % 200) as usize, 20 + (next() % 200) as usize);
            let paper = 60 + (next() % 100) as u8;
            let strength = MIN_CONTRAST + (next() % 12) as u8;
            let dark = next().is_multiple_of(2);
            let mut data = vec![paper; w * h];
            for d in data.iter_mut() {
                let level = match next() % 50 {
                    0 => strength,
                    1..=4 => (next() % 8) as u8,
                    _ => 0,
                };
                *d = if dark { paper - level } else { paper + level };
            }
            check_against_reference(w, h, &data, "low contrast");
        }
        // A solid vertical stroke over thousands of rows: column sums of more than
        // U16_ROWS rows, and boxes longer than 257 * 20 px put more than U16_ROWS whole
        // rows under one output row.
        for (w, h) in [(3, 7000), (40, 6000), (300, 2000)] {
            let data = rect(w, h, 255, 0, (w / 3, 0, w / 3 + 1 + w / 10, h));
            check_against_reference(w, h, &data, "solid stroke");
        }
        // Thin and tall or wide images.
        for (w, h) in [
            (1, 7000),
            (7000, 1),
            (2, 6000),
            (3, 5300),
            (6000, 3),
            (600, 2),
        ] {
            for mode in 0..3 {
                let data: Vec<u8> = (0..w * h)
                    .map(|i| match mode {
                        0 => 255 - next().is_multiple_of(40) as u8 * 255,
                        1 => next() as u8,
                        _ => ((i / 97) % 2) as u8 * 200,
                    })
                    .collect();
                check_against_reference(w, h, &data, "thin");
            }
        }
    }

    /// A `w`x`h` image of `paper` with a filled rectangle of `ink`.
    fn rect(w: usize, h: usize, paper: u8, ink: u8, r: (usize, usize, usize, usize)) -> Vec<u8> {
        let mut v = vec![paper; w * h];
        for y in r.1..r.3 {
            for x in r.0..r.2 {
                v[y * w + x] = ink;
            }
        }
        v
    }

    #[test]
    fn constructor_checks() {
        assert_eq!(
            GreyImage::new(0, 3, &[]).unwrap_err(),
            PreprocessError::Empty {
                width: 0,
                height: 3
            }
        );
        assert_eq!(
            GreyImage::new(2, 2, &[0; 3]).unwrap_err(),
            PreprocessError::SizeMismatch {
                width: 2,
                height: 2,
                len: 3
            }
        );
        assert!(matches!(
            GreyImage::new(9000, 1, &[0; 9000]),
            Err(PreprocessError::TooLarge { .. })
        ));
        assert!(GreyImage::new(3, 1, &[0; 3]).is_ok());
        // Hand-built images with bad fields are refused by the pipeline too.
        let bad = GreyImage {
            width: usize::MAX,
            height: usize::MAX,
            data: &[1],
        };
        let mut out = [0.0; PIXELS];
        assert!(to_input(&bad, &mut out).is_err());
        assert!(preprocess(&bad, &mut out).is_err());
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            PreprocessError::NoInk.to_string(),
            "the image has no ink: draw a digit"
        );
        assert_eq!(
            PreprocessError::SizeMismatch {
                width: 2,
                height: 3,
                len: 5
            }
            .to_string(),
            "a 2x3 grey image needs 6 bytes, got 5"
        );
    }

    #[test]
    #[cfg_attr(miri, ignore = "too slow under Miri; see .ci/run")]
    fn blank_images_have_no_ink() {
        let mut out = [0.0; PIXELS];
        for (w, h) in [(1, 1), (28, 28), (280, 280), (1, 50), (50, 1)] {
            for level in [0u8, 128, 255] {
                let data = vec![level; w * h];
                let img = GreyImage::new(w, h, &data).unwrap();
                assert_eq!(to_input(&img, &mut out), Err(PreprocessError::NoInk));
            }
        }
        // Faint noise below MIN_CONTRAST is not ink either.
        let mut next = rng(7);
        let data: Vec<u8> = (0..100 * 100).map(|_| 240 + (next() % 16) as u8).collect();
        let img = GreyImage::new(100, 100, &data).unwrap();
        assert_eq!(preprocess(&img, &mut out), Err(PreprocessError::NoInk));
    }

    #[test]
    #[cfg_attr(miri, ignore = "too slow under Miri; see .ci/run")]
    fn polarity_is_detected() {
        let mut out = [0.0; PIXELS];
        let dark = rect(100, 80, 250, 10, (30, 20, 50, 60));
        let info = preprocess(&GreyImage::new(100, 80, &dark).unwrap(), &mut out).unwrap();
        assert_eq!(info.polarity, Polarity::DarkInk);
        assert_eq!((info.background, info.contrast), (250, 240));
        assert_eq!(info.bbox, (30, 20, 50, 60));
        let light = rect(100, 80, 5, 200, (30, 20, 50, 60));
        let mut out2 = [0.0; PIXELS];
        let info = preprocess(&GreyImage::new(100, 80, &light).unwrap(), &mut out2).unwrap();
        assert_eq!(info.polarity, Polarity::LightInk);
        assert_eq!(out, out2);
        // A thick digit that covers most of the image: the border still shows the paper.
        let thick = rect(40, 40, 255, 0, (2, 2, 38, 38));
        let info = preprocess(&GreyImage::new(40, 40, &thick).unwrap(), &mut out).unwrap();
        assert_eq!(info.polarity, Polarity::DarkInk);
    }

    #[test]
    #[cfg_attr(miri, ignore = "too slow under Miri; see .ci/run")]
    fn box_is_scaled_to_20_and_mass_centred() {
        let mut out = [0.0; PIXELS];
        // A 40x100 bar, far off-centre in a 300x200 image.
        let data = rect(300, 200, 0, 255, (250, 10, 290, 110));
        let info = preprocess(&GreyImage::new(300, 200, &data).unwrap(), &mut out).unwrap();
        assert_eq!(info.scale, 0.2);
        assert!((info.com.0 - 14.0).abs() < 0.02 && (info.com.1 - 14.0).abs() < 0.02);
        // 8 x 20 px of ink with its centre on pixel (14, 14): columns 10.5..18.5 and rows
        // 4.5..24.5, so the edge pixels are half covered.
        let cover = |i: usize, lo: usize, hi: usize| match i {
            i if i == lo || i == hi => 0.5,
            i if i > lo && i < hi => 1.0,
            _ => 0.0,
        };
        for y in 0..SIDE {
            for x in 0..SIDE {
                let want = cover(x, 10, 18) * cover(y, 4, 24);
                let v = out[y * SIDE + x];
                assert!((v - want).abs() < 1e-4, "{x},{y}: {v}");
            }
        }
        check_output(&out);
    }

    #[test]
    #[cfg_attr(miri, ignore = "too slow under Miri; see .ci/run")]
    fn shrinking_is_anti_aliased() {
        // One-pixel-wide vertical line in a 200x200 image, shrunk 10x: a line of value 1
        // (leveled) whose neighbours are not jagged.
        let mut out = [0.0; PIXELS];
        let data = rect(200, 200, 255, 0, (100, 0, 101, 200));
        let info = preprocess(&GreyImage::new(200, 200, &data).unwrap(), &mut out).unwrap();
        assert_eq!(info.scale, 0.1);
        check_output(&out);
        // A 1-px checkerboard shrunk 10x is a uniform grey (leveled to 1), not a moire.
        let mut data = vec![0u8; 220 * 220];
        for y in 10..210 {
            for x in 10..210 {
                data[y * 220 + x] = if (x + y) % 2 == 0 { 255 } else { 0 };
            }
        }
        let info = preprocess(&GreyImage::new(220, 220, &data).unwrap(), &mut out).unwrap();
        assert_eq!(info.scale, 0.1);
        for y in 5..24 {
            for x in 5..24 {
                assert!((out[y * SIDE + x] - 1.0).abs() < 1e-3, "{x},{y}");
            }
        }
        // Box edges fall mid-pixel: half coverage there, nothing beyond.
        assert!(
            (out[14 * SIDE + 4] - 0.5).abs() < 0.03,
            "{}",
            out[14 * SIDE + 4]
        );
        assert_eq!(out[14 * SIDE + 3], 0.0);
    }

    #[test]
    #[cfg_attr(miri, ignore = "too slow under Miri; see .ci/run")]
    fn single_dot_and_tiny_inputs() {
        let mut out = [0.0; PIXELS];
        let mut data = vec![255u8; 280 * 280];
        data[280 * 13 + 200] = 0;
        let info = preprocess(&GreyImage::new(280, 280, &data).unwrap(), &mut out).unwrap();
        assert_eq!(info.bbox, (200, 13, 201, 14));
        assert_eq!(info.scale, 20.0);
        check_output(&out);
        let ink: f32 = out.iter().sum();
        assert!(
            (ink - 400.0).abs() < 0.1,
            "a dot becomes the 20x20 box: {ink}"
        );
        // 1x1, 1xN and Nx1 never panic; with two levels they have ink.
        for (w, h, d) in [
            (1, 1, vec![7u8]),
            (1, 3, vec![0, 255, 0]),
            (4, 1, vec![0, 0, 200, 0]),
        ] {
            let img = GreyImage::new(w, h, &d).unwrap();
            let r = to_input(&img, &mut out);
            if let Ok(info) = r {
                check_output(&out);
                assert!(info.resampled);
            }
        }
        let img = GreyImage::new(1, 3, &[0, 255, 0]).unwrap();
        assert!(to_input(&img, &mut out).is_ok());
    }

    #[test]
    fn mnist_sized_input_is_passed_through() {
        let mut out = [0.0; PIXELS];
        let mut data = [0u8; PIXELS];
        for (i, d) in data.iter_mut().enumerate() {
            if (i % SIDE) > 10 && (i % SIDE) < 14 && (i / SIDE) > 4 && (i / SIDE) < 24 {
                *d = 200;
            }
        }
        let info = to_input(&GreyImage::new(28, 28, &data).unwrap(), &mut out).unwrap();
        assert!(!info.resampled);
        assert_eq!(info.polarity, Polarity::LightInk);
        assert_eq!(info.bbox, (11, 5, 14, 24));
        assert!(out
            .iter()
            .zip(&data)
            .all(|(o, &d)| *o == f32::from(d) / 255.0));
        let inverted: Vec<u8> = data.iter().map(|d| 255 - d).collect();
        let mut out2 = [0.0; PIXELS];
        let info = to_input(&GreyImage::new(28, 28, &inverted).unwrap(), &mut out2).unwrap();
        assert_eq!(info.polarity, Polarity::DarkInk);
        assert_eq!(out, out2);
    }

    #[test]
    #[cfg_attr(miri, ignore = "too slow under Miri; see .ci/run")]
    fn ink_stays_in_frame() {
        // A blob in one corner of its box with two thin arms to the far sides: centring the
        // mass alone would push the arms' ends out of the frame.
        let mut data = rect(120, 120, 0, 255, (10, 10, 40, 40));
        for i in 40..110 {
            for t in 10..12 {
                data[t * 120 + i] = 255;
                data[i * 120 + t] = 255;
            }
        }
        let mut out = [0.0; PIXELS];
        let info = preprocess(&GreyImage::new(120, 120, &data).unwrap(), &mut out).unwrap();
        assert_eq!(info.scale, 0.2);
        // All ink (900 + 2 * 140 px, times 0.2²) is still in the frame.
        let total: f32 = out.iter().sum();
        assert!((total - 47.2).abs() < 0.05, "{total}");
        assert!(
            out[27 * SIDE..].iter().any(|&v| v > 0.0),
            "arm reaches the edge"
        );
        assert!(info.com.0 < 13.0 && info.com.1 < 13.0, "{:?}", info.com);
    }

    #[test]
    #[cfg_attr(miri, ignore = "too slow under Miri; see .ci/run")]
    fn random_images_never_panic() {
        let mut next = rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..3000 {
            let w = 1 + (next() % if round % 3 == 0 { 4 } else { 90 }) as usize;
            let h = 1 + (next() % if round % 5 == 0 { 4 } else { 90 }) as usize;
            // Every 7th image is 28x28, the size `to_input` passes through.
            let (w, h) = if round % 7 == 0 { (SIDE, SIDE) } else { (w, h) };
            let mode = next() % 4;
            let data: Vec<u8> = (0..w * h)
                .map(|_| match mode {
                    0 => next() as u8,
                    1 => [0, 255][(next() % 2) as usize],
                    2 => 255 - next().is_multiple_of(64) as u8 * 255,
                    _ => (next() % 3) as u8 * 100,
                })
                .collect();
            let img = GreyImage::new(w, h, &data).unwrap();
            let (mut a, mut b) = ([0.0; PIXELS], [0.0; PIXELS]);
            let results = [to_input(&img, &mut a), preprocess(&img, &mut b)];
            for (r, out) in results.into_iter().zip([&a, &b]) {
                match r {
                    Ok(info) => {
                        check_output(out);
                        let (x0, y0, x1, y1) = info.bbox;
                        assert!(x0 < x1 && x1 <= w && y0 < y1 && y1 <= h);
                        assert!(info.com.0.is_finite() && info.com.1.is_finite());
                    }
                    Err(e) => assert_eq!(e, PreprocessError::NoInk),
                }
            }
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "too slow under Miri; see .ci/run")]
    fn largest_and_thinnest_inputs() {
        let mut out = [0.0; PIXELS];
        let mut data = vec![255u8; MAX_SIDE];
        data[MAX_SIDE - 1] = 0;
        for (w, h) in [(MAX_SIDE, 1), (1, MAX_SIDE)] {
            let info = preprocess(&GreyImage::new(w, h, &data).unwrap(), &mut out).unwrap();
            assert_eq!(info.scale, 20.0);
            check_output(&out);
        }
        let data = rect(2000, 3000, 255, 0, (0, 0, 2000, 3000));
        // All ink and no paper: the border says the background is ink-coloured, so nothing
        // stands out from it.
        let img = GreyImage::new(2000, 3000, &data).unwrap();
        assert_eq!(preprocess(&img, &mut out), Err(PreprocessError::NoInk));
    }
}
