//! Training images as their inked pixels, compacted once before training.
//!
//! Without distortions, a training image is the same input every epoch, so scanning its 784
//! bytes for ink each time it is drawn into a batch ([`Sparse::set_bytes`]) repeats work, a
//! measurable share of a step at small widths (docs/ARCHITECTURE.md, "Inked pixels
//! compacted once per run"). [`InkedImages`] does it once per run; a batch then
//! copies each image's inked pixels ([`Sparse::set_inked`]), which gives the same bits.
//!
//! A digit inks about a fifth of its pixels, and each inked pixel is kept as its index (2
//! bytes) and its grey level (1 byte): ≈ 0.45 KB per image, ≈ 22 MB for MNIST's 50000
//! training images (the held-out ones stand in as blank images, of no pixels).

use pismo_core::mlp::{self, Sparse, INPUT};
use pismo_engine::fan_out;

/// The inked pixels of a list of images, in parts of consecutive images, one compacted by
/// each thread.
#[derive(Debug)]
pub struct InkedImages {
    /// Images per part (the last may have fewer).
    per: usize,
    parts: Vec<Part>,
}

/// The inked pixels of some consecutive images, image after image.
#[derive(Debug, Default)]
pub struct Part {
    /// Where each image's pixels end in `idx` and `levels` (the image before's is its start).
    pub ends: Vec<usize>,
    /// Pixel indices, ascending within each image.
    pub idx: Vec<u16>,
    /// Their grey levels, `1..=255`.
    pub levels: Vec<u8>,
}

impl InkedImages {
    /// The inked pixels of `images`, in order, compacted on up to `threads` threads.
    pub fn new(images: &[&[u8; INPUT]], threads: usize) -> Self {
        let per = fan_out::share_len(images.len(), threads);
        let parts = fan_out::map_shares(images.len(), threads, |share| {
            let mut part = Part::default();
            compact_inked(&images[share], &mut part);
            part
        });
        InkedImages { per, parts }
    }

    /// How many images there are.
    pub fn len(&self) -> usize {
        self.parts.iter().map(|part| part.ends.len()).sum()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `x` with image `i` as [`Sparse::set_bytes`] would from its bytes.
    ///
    /// # Panics
    /// If `i` is not below [`Self::len`].
    #[inline(always)]
    pub fn fill(&self, i: usize, x: &mut Sparse) {
        let (part, j) = (&self.parts[i / self.per], i % self.per);
        let start = j.checked_sub(1).map_or(0, |before| part.ends[before]);
        let pixels = start..part.ends[j];
        x.set_inked(&part.idx[pixels.clone()], &part.levels[pixels]);
    }
}

pismo_engine::dispatched! {
    /// Appends the inked pixels of `images` to `part`, image after image.
    pub fn compact_inked(images: &[&[u8; INPUT]], part: &mut Part) {
        // Counted first, so that the vectors are allocated once at their size (growing them
        // costs peak memory: docs/ARCHITECTURE.md, "Inked pixels compacted once per run").
        let inked = |image: &[u8; INPUT]| image.iter().map(|&b| u16::from(b != 0)).sum::<u16>();
        let total = images.iter().map(|&image| usize::from(inked(image))).sum();
        part.ends.reserve_exact(images.len());
        part.idx.reserve_exact(total);
        part.levels.reserve_exact(total);
        let (mut idx, mut levels) = ([0u16; INPUT], [0u8; INPUT]);
        for image in images {
            let n = mlp::inked_pixels(image, &mut idx, &mut levels);
            part.idx.extend_from_slice(&idx[..n]);
            part.levels.extend_from_slice(&levels[..n]);
            part.ends.push(part.idx.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Images with no ink, full ink, a lone pixel at either end, and noise.
    fn images() -> Vec<[u8; INPUT]> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut noise = [0u8; INPUT];
        for p in &mut noise {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Half blank, half any level, so runs of both kinds occur.
            *p = if state & 1 == 0 {
                0
            } else {
                (state >> 8) as u8
            };
        }
        let mut first = [0u8; INPUT];
        first[0] = 1;
        let mut last = [0u8; INPUT];
        last[INPUT - 1] = 255;
        vec![[0; INPUT], [255; INPUT], first, last, noise]
    }

    #[test]
    fn each_image_fills_the_same_sparse_input_as_its_bytes() {
        let images = images();
        let refs: Vec<&[u8; INPUT]> = images.iter().collect();
        let inked = InkedImages::new(&refs, 2);
        assert_eq!(inked.len(), images.len());
        let (mut from_bytes, mut from_inked) = (Sparse::new(), Sparse::new());
        for (i, image) in images.iter().enumerate() {
            from_bytes.set_bytes(image);
            // Left over from the image before, so that a stale tail would show.
            inked.fill(i, &mut from_inked);
            assert_eq!(from_inked.len(), from_bytes.len(), "image {i}");
            let pairs = |x: &Sparse| x.iter().map(|(p, v)| (p, v.to_bits())).collect::<Vec<_>>();
            assert_eq!(pairs(&from_inked), pairs(&from_bytes), "image {i}");
        }
    }

    #[test]
    fn no_images_is_empty() {
        let inked = InkedImages::new(&[], 2);
        assert!(inked.is_empty());
    }
}
