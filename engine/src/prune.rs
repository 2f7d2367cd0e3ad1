//! Pruned first layers: an int8 model that keeps the weight rows of the pixels digits ink,
//! and drops the rows of the pixels almost none inks (`pismo models quantize --prune-rare`),
//! so that it fits a smaller flash. A dropped row counts as zeros from then on
//! ([`pismo_core::quant`], "Pruned first layers"): only an input inked where training
//! digits almost never are can be answered differently.

use std::borrow::Cow;

use pismo_core::mlp::INPUT;
use pismo_core::quant::{keeps, QView, KEPT_BYTES};

use crate::model::{model_inputs, AnyMlp};

/// The bitmap ([`pismo_core::quant`]) of the pixels inked in more than `at_most` of
/// `images`, as a model sees them (deskewed first when it deskews), kept two by two: pixels
/// `2k` and `2k + 1` both, when either is inked that often, so that the firmware's paired
/// kernel finds every pair in one half-word of the image ([`pismo_core::paired`]).
pub fn inked_pixels(images: &[[u8; INPUT]], deskew: bool, at_most: usize) -> [u8; KEPT_BYTES] {
    let mut counts = [0usize; INPUT];
    for image in model_inputs(images, deskew).iter() {
        for (count, &p) in counts.iter_mut().zip(image) {
            *count += usize::from(p != 0);
        }
    }
    let mut kept = [0u8; KEPT_BYTES];
    for (k, pair) in counts.chunks_exact(2).enumerate() {
        if pair.iter().any(|&c| c > at_most) {
            let i = 2 * k;
            kept[i / 8] |= 0b11 << (i % 8);
        }
    }
    kept
}

/// The int8 `model` keeping only the first-layer rows of the pixels set in `kept` (among
/// those it has rows for); `None` for an f32 model.
pub fn pruned(model: &AnyMlp, kept: &[u8; KEPT_BYTES]) -> Option<AnyMlp> {
    let view = model.int8_view()?;
    let h = view.hidden_size();
    let [w1, s1, b1, w2, s2, b2] = view.parts();
    let mut kept_w1 = Vec::with_capacity(w1.len());
    let mut both = [0u8; KEPT_BYTES];
    for (i, row) in view.pixel_rows().enumerate() {
        if let Some(row) = row.filter(|_| keeps(kept, i)) {
            kept_w1.extend_from_slice(row);
            both[i / 8] |= 1 << (i % 8);
        }
    }
    let parts = [&kept_w1[..], s1, b1, w2, s2, b2];
    let q = QView::new(h, parts, &both, view.act_scale())?;
    Some(AnyMlp::from_int8_view(&q, model.deskew()))
}

/// `view`'s first-layer weights with a row for every pixel, a dropped pixel's row zeros:
/// for a consumer that takes `w1` as `(INPUT, H)` (the ONNX graph).
pub fn dense_w1<'a>(view: &QView<'a>) -> Cow<'a, [u8]> {
    let w1 = view.parts()[0];
    if view.kept().is_empty() {
        return Cow::Borrowed(w1);
    }
    let h = view.hidden_size();
    let mut dense = vec![0u8; INPUT * h];
    for (out, row) in dense.chunks_exact_mut(h).zip(view.pixel_rows()) {
        if let Some(row) = row {
            out.copy_from_slice(row);
        }
    }
    Cow::Owned(dense)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pismo_core::mlp::Mlp;
    use pismo_core::quant::{kept_rows, FirstLayer};
    use pismo_core::rng::Rng;

    use crate::model::IntoAny;

    #[test]
    fn a_pruned_model_answers_as_its_dense_copy_where_only_kept_pixels_are_inked() {
        let mut m: Box<Mlp<32>> = crate::boxed_zeroed();
        m.init(&mut Rng::new(7));
        let images: Vec<[u8; INPUT]> = (0..40)
            .map(|k| std::array::from_fn(|i| if (i + k) % 7 == 0 && i > 100 { 200 } else { 0 }))
            .collect();
        let dense = m.into_any().quantize(&images, FirstLayer::Int8).unwrap();
        // Pixels 0..=100 are never inked: dropped, but for 100, the partner of inked 101.
        let kept = inked_pixels(&images, false, 0);
        assert_eq!(kept_rows(&kept), Some(INPUT - 100));
        let small = pruned(&dense, &kept).unwrap();
        let view = small.int8_view().unwrap();
        assert_eq!(view.parts()[0].len(), (INPUT - 100) * 32);
        for x in &images {
            let x = x.map(|p| f32::from(p) / 255.0);
            assert_eq!(small.logits(&x), dense.logits(&x));
        }
        // Rows back in place, zeros where dropped.
        let dense_view = dense.int8_view().unwrap();
        let back = dense_w1(&view);
        for (i, (got, want)) in back
            .chunks(32)
            .zip(dense_view.parts()[0].chunks(32))
            .enumerate()
        {
            assert!(
                got == want || (i < 100 && got.iter().all(|&w| w == 0)),
                "row {i}"
            );
        }
        assert!(matches!(dense_w1(&dense_view), Cow::Borrowed(_)));
        // Pruning again keeps what both keep; an f32 model has no rows to drop.
        let mut fewer = kept;
        fewer[50] = 0;
        let smaller = pruned(&small, &fewer).unwrap();
        assert_eq!(
            kept_rows(smaller.int8_view().unwrap().kept()),
            Some(INPUT - 100 - 8)
        );
        assert!(pruned(&dense.to_f32(), &kept).is_none());
    }
}
