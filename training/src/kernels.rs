//! The trainer's hot loops, each compiled per instruction set by
//! [`pismo_engine::dispatched!`] (the one home of run-time SIMD dispatch) and chosen at run
//! time: inputs of a batch, forward of a block of hidden units, the output layer's loss, and
//! backward with the momentum update. The math is `pismo_core::mlp`'s, all
//! `#[inline(always)]`, so it compiles into every copy; every copy gives the same bits.

use pismo_core::mlp::{self, Block, Dropout, Sparse, CLASSES, INPUT};

use crate::inked::InkedImages;

/// Where the images of a batch come from and how they are distorted. Index `i` is MNIST's
/// image `i` below `base_images.len()`, else image `i - base_images.len()` of the extra data;
/// `inked` is numbered the same way.
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    /// MNIST's training images, as bytes.
    pub base_images: &'a [[u8; INPUT]],
    /// Their labels.
    pub base_labels: &'a [u8],
    /// Training-only images after MNIST's (drawings, corpora, synthetic digits).
    pub extra_images: &'a [[u8; INPUT]],
    /// Their labels.
    pub extra_labels: &'a [u8],
    /// The images' inked pixels when they are the same every epoch; `None` when each is
    /// distorted afresh every time it is drawn ([`pismo_core::augment`], `--augment`).
    pub inked: Option<&'a InkedImages>,
    /// How far, when augmenting.
    pub distortion: pismo_core::augment::Distortion,
    /// Whether to deskew distorted images ([`pismo_core::deskew`]) after their distortion (images
    /// that are not distorted come already in the model's input form).
    pub deskew: bool,
    /// Seed of the run.
    pub seed: u64,
}

impl<'a> Source<'a> {
    /// Image `i`.
    pub fn image(&self, i: u32) -> &'a [u8; INPUT] {
        let i = i as usize;
        match i.checked_sub(self.base_images.len()) {
            None => &self.base_images[i],
            Some(j) => &self.extra_images[j],
        }
    }

    /// Label of image `i`.
    pub fn label(&self, i: u32) -> u8 {
        let i = i as usize;
        match i.checked_sub(self.base_labels.len()) {
            None => self.base_labels[i],
            Some(j) => self.extra_labels[j],
        }
    }
}

pismo_engine::dispatched! {
    /// The sparse inputs of the samples `idx` (batch positions `first ..`): copies of their
    /// inked pixels, or distorted afresh when augmenting (then deskewed when the model is).
    pub fn prepare_inputs(src: Source<'_>, idx: &[u32], first: usize, step: u64, xs: &mut [Sparse]) {
        let mut distorted = [0.0f32; INPUT];
        for (j, (&i, x)) in idx.iter().zip(xs.iter_mut()).enumerate() {
            match src.inked {
                Some(inked) => inked.fill(i as usize, x),
                None => {
                    let index = (first + j) as u64;
                    pismo_core::augment::distort(src.image(i), &mut distorted, src.seed, step, index, &src.distortion);
                    if src.deskew {
                        pismo_core::deskew::deskew_f32(&mut distorted);
                    }
                    x.set_f32(&distorted);
                }
            }
        }
    }
}

pismo_engine::dispatched! {
    /// Forward of one block of hidden units over the batch, given as consecutive chunks.
    pub fn forward_block(
        blk: Block<'_>,
        chunks: &[&[Sparse]],
        batch: usize,
        dropout: Dropout,
        a: &mut [f32],
        partial: &mut [[f32; CLASSES]],
    ) {
        let drop = (dropout.rate > 0.0).then_some(dropout);
        mlp::block_forward(blk, chunks, batch, drop, a, partial);
    }
}

pismo_engine::dispatched! {
    /// Logits from every block's contributions (in unit order), loss, and its gradient.
    pub fn output_loss(
        b2: &[f32; CLASSES],
        partials: &[&[[f32; CLASSES]]],
        labels: &[u8],
        z: &mut [[f32; CLASSES]],
        dz2: &mut [[f32; CLASSES]],
    ) -> (f64, usize) {
        z.fill(*b2);
        for p in partials {
            mlp::add_partials(z, p);
        }
        mlp::softmax_cross_entropy(z, labels, dz2)
    }
}

/// One block's parameters, momentum and scratch, as the thread that owns it holds them.
#[derive(Debug)]
pub struct BlockState<'a> {
    /// w1: (IN, width), strip-packed ([`mlp::pack_columns`]).
    pub w1: &'a mut [f32],
    /// Momentum of w1, laid out as w1.
    pub v1: &'a mut [f32],
    /// The batch's inked pixels by pixel ([`mlp::pixel_columns`]): where each pixel's start.
    pub start: &'a mut [u32; INPUT + 1],
    /// ... and their `(sample, value)` pairs; resized to the batch's inked-pixel count.
    pub entries: &'a mut Vec<(u32, f32)>,
    /// b1: (width)
    pub b1: &'a mut [f32],
    /// Momentum of b1.
    pub vb1: &'a mut [f32],
    /// w2: (C, width)
    pub w2: &'a mut [f32],
    /// Momentum of w2.
    pub v2: &'a mut [f32],
    /// Gradient of w2: (C, width).
    pub gw2: &'a mut [f32],
    /// Gradient of b1.
    pub gb1: &'a mut [f32],
    /// Activations of the batch: (B, width); becomes dz1.
    pub a: &'a mut [f32],
}

pismo_engine::dispatched! {
    /// Backward of one block and the momentum update of its parameters.
    pub fn backward_block(
        st: BlockState<'_>,
        width: usize,
        chunks: &[&[Sparse]],
        dz2: &[[f32; CLASSES]],
        scale: f32,
        lr: f32,
        mu: f32,
        l2: f32,
    ) {
        let a = &mut st.a[..dz2.len() * width];
        mlp::block_backward(st.w2, width, dz2, scale, a, st.gw2, st.gb1);
        let inked = chunks.iter().flat_map(|c| c.iter()).map(|x| x.len()).sum();
        st.entries.resize(inked, (0, 0.0));
        mlp::pixel_columns(chunks, st.start, st.entries);
        mlp::w1_update(st.start, st.entries, a, width, st.w1, st.v1, lr, mu, l2);
        mlp::sgd_momentum(st.w2, st.v2, st.gw2, lr, mu, l2);
        mlp::sgd_momentum(st.b1, st.vb1, st.gb1, lr, mu, 0.0);
    }
}
