//! Loss and accuracy of a network over a set of images, on many threads, with a result
//! that does not depend on how many.

use crate::aligned::Floats;
use crate::fan_out;
use crate::kernels;
use pismo_core::mlp::{Mlp, INPUT};

/// Loss sum and correct count of `mlp` over `images` (no dropout), on `threads` threads.
/// The images are cut into fixed chunks whose partial sums are added in chunk order, so the
/// result does not depend on the number of threads. Each chunk's hidden layers are computed
/// [`kernels::EVAL_BLOCK`] images at a time over a strip-packed copy of `w1` ([`kernels::evaluate_chunk`]), bit for
/// bit as one image at a time would give them.
pub fn evaluate<const H: usize>(
    mlp: &Mlp<H>,
    images: &[[u8; INPUT]],
    labels: &[u8],
    threads: usize,
) -> (f64, usize) {
    const CHUNK: usize = 512;
    let chunks = images.len().div_ceil(CHUNK);
    let mut packed = Floats::zeroed(INPUT * H);
    pismo_core::mlp::pack_strips(&mlp.w1, &mut packed);
    let packed = &packed[..];
    let partial = fan_out::map_shares(chunks, threads, |share| {
        share
            .map(|chunk| {
                let lo = chunk * CHUNK;
                let hi = (lo + CHUNK).min(images.len());
                kernels::evaluate_chunk(mlp, packed, &images[lo..hi], &labels[lo..hi])
            })
            .collect::<Vec<_>>()
    });
    partial
        .iter()
        .flatten()
        .fold((0.0, 0), |(l, c), &(l2, c2)| (l + l2, c + c2))
}
