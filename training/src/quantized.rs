//! An f32 model's int8 copy as `pismo models quantize` makes it: quantized with the
//! activation scale calibrated on the first MNIST training images
//! ([`calibration_images`], as adapting an int8 model does too), measured beside its parent
//! on MNIST test, and described for its model file; pruned to the pixels MNIST's training
//! digits ink if asked. The shell loads the parent and the
//! data, registers the copy ([`crate::session::register`]) and prints.

use pismo_core::format::Meta;
use pismo_core::hyper::Metrics;
use pismo_core::quant::FirstLayer;
use pismo_digits::mnist::Dataset;
use pismo_engine::model::{calibration_images, AnyMlp};
use pismo_engine::prune;
use pismo_engine::tally::Tally;

use crate::session::ModelMeta;

/// `parent`'s int8 copy ([`AnyMlp::quantize`]), its first layer in the range of `first`,
/// calibrated on the [`calibration_images`] of the MNIST training file `training`; `None`
/// for a parent that is already int8. With `prune_rare: Some(n)`, its first layer keeps only
/// the rows of the pixels inked in more than `n` of `training`'s images as the parent sees
/// them ([`prune`]).
pub fn int8_copy(
    parent: &AnyMlp,
    training: &Dataset,
    first: FirstLayer,
    prune_rare: Option<usize>,
) -> Option<AnyMlp> {
    let int8 = parent.quantize(calibration_images(&training.images), first)?;
    match prune_rare {
        None => Some(int8),
        Some(n) => prune::pruned(
            &int8,
            &prune::inked_pixels(&training.images, parent.deskew(), n),
        ),
    }
}

/// The accuracy on `test` of the int8 copy and of its parent, in that order, counted as
/// `pismo eval` counts ([`Tally`]) on all cores. `progress` is called with the images done,
/// twice `test`'s in all.
pub fn test_accuracies(
    int8: &AnyMlp,
    parent: &AnyMlp,
    test: &Dataset,
    progress: &(dyn Fn(u64) + Sync),
) -> (f32, f32) {
    let accuracy =
        |m: &AnyMlp| Tally::of(m, &test.images, &test.labels, 0, progress).accuracy() as f32;
    (accuracy(int8), accuracy(parent))
}

/// What the copy's model file records under `name`: its parent's (`parent_meta`, of model
/// `parent`) hyperparameters, run and data, and its metrics with the copy's own
/// `test_accuracy` in place of the parent's.
pub fn model_meta<'a>(
    name: &'a str,
    parent: &'a str,
    parent_meta: &Meta<'a>,
    test_accuracy: Option<f32>,
) -> ModelMeta<'a> {
    ModelMeta {
        name,
        hyper: parent_meta.hyper,
        metrics: Metrics {
            test_accuracy,
            ..parent_meta.metrics
        },
        run_id: parent_meta.run_id,
        dataset: parent_meta.dataset,
        parent,
    }
}
