//! The shipped int8 model (`pismo models quantize mnist`) against its f32 parent, on the
//! real MNIST test images, and inference straight from the file's bytes.

use pismo_core::format::{self, Tensors};
use pismo_core::mlp::{argmax, INPUT};
use pismo_core::quant::Work;
use pismo_engine::model::AnyMlp;
use pismo_tests::{shipped_model, t10k};

#[test]
fn int8_and_f32_models_agree_on_the_mnist_test_images() {
    for (parent, int8) in [
        ("mnist@1", "mnist-int8@1"),
        ("mnist@2", "mnist-int8@2"),
        ("mnist@3", "mnist-int8@3"),
    ] {
        int8_agrees_with_its_parent(parent, int8);
    }
}

fn int8_agrees_with_its_parent(parent: &str, int8: &str) {
    let (f32_model, _) = AnyMlp::decode(&shipped_model(parent)).unwrap();
    let int8_bytes = shipped_model(int8);
    let (int8_model, file) = AnyMlp::decode(&int8_bytes).unwrap();
    assert_eq!(int8_model.kind(), "int8");
    assert_eq!(file.meta.parent, parent);
    let data = t10k();
    let (mut agree, mut right_f32, mut right_int8) = (0, 0, 0);
    for (im, &y) in data.images.iter().zip(&data.labels) {
        let x: [f32; INPUT] = std::array::from_fn(|i| f32::from(im[i]) / 255.0);
        let a = argmax(&f32_model.logits(&x));
        let b = argmax(&int8_model.logits(&x));
        agree += usize::from(a == b);
        right_f32 += usize::from(a == usize::from(y));
        right_int8 += usize::from(b == usize::from(y));
    }
    println!("{int8}: agree {agree}/10000, f32 {right_f32}, int8 {right_int8}");
    assert!(
        agree >= 9_900,
        "{int8} and {parent} agree on {agree} of 10000"
    );
    // At most 0.3 percentage points lost against the f32 parent.
    assert!(
        right_int8 + 30 >= right_f32,
        "{int8} {right_int8} vs {parent} {right_f32} correct"
    );
    // The file records the int8 model's own measured accuracy.
    assert_eq!(
        file.meta.metrics.test_accuracy,
        Some(right_int8 as f32 / 10_000.0)
    );
}

/// The firmware's model `mnist-mcu-int8@4` is `mnist-mcu-int8@3` with the first-layer rows
/// of 234 pixels that MNIST's training digits almost never ink dropped: 60 KB smaller, and
/// the same answers on MNIST test.
#[test]
fn the_pruned_firmware_model_answers_as_its_dense_copy() {
    let dense_bytes = shipped_model("mnist-mcu-int8@3");
    let pruned_bytes = shipped_model("mnist-mcu-int8@4");
    assert_eq!(format::peek_version(&pruned_bytes), Ok(3));
    assert!(pruned_bytes.len() + 59_000 < dense_bytes.len());
    let (dense, _) = AnyMlp::decode(&dense_bytes).unwrap();
    let (pruned, file) = AnyMlp::decode(&pruned_bytes).unwrap();
    assert_eq!(file.meta.parent, "mnist-mcu@3");
    let kept = pruned.int8_view().unwrap().kept();
    assert_eq!(pismo_core::quant::kept_rows(kept), Some(550));
    let data = t10k();
    let (mut same, mut right) = (0, [0; 2]);
    for (im, &y) in data.images.iter().zip(&data.labels) {
        let x: [f32; INPUT] = std::array::from_fn(|i| f32::from(im[i]) / 255.0);
        let (a, b) = (argmax(&dense.logits(&x)), argmax(&pruned.logits(&x)));
        same += usize::from(a == b);
        right[0] += usize::from(a == usize::from(y));
        right[1] += usize::from(b == usize::from(y));
    }
    println!("mnist-mcu-int8@4 vs @3: {same} of 10000 the same, right {right:?}");
    assert_eq!(right, [9921, 9921]);
    assert!(same >= 9_995, "{same}");
}

/// The firmware's model `mnist-mcu-int8@5` is `mnist-mcu@3` quantized with a 7-bit first
/// layer and pruned in pixel pairs; its paired flash image (`pismo_core::paired`, the
/// portable kernel on this host) gives every MNIST test image the very logits its int8 path
/// gives, and it reads MNIST test within 0.3 points of its f32 parent.
#[test]
fn the_firmware_model_and_its_paired_image_give_the_same_logits() {
    let bytes = shipped_model("mnist-mcu-int8@5");
    let model = format::decode(&bytes).unwrap();
    assert_eq!(model.meta.parent, "mnist-mcu@3");
    let Tensors::I8(view) = model.tensors else {
        panic!("not an int8 model")
    };
    assert_eq!(view.first_layer_kind(), pismo_core::quant::FirstLayer::Int7);
    assert_eq!(pismo_core::quant::kept_rows(view.kept()), Some(578));
    let n = pismo_core::paired::image_len(&bytes).unwrap();
    // The allocator's blocks are word-aligned, as the image must be (decode_image checks).
    let mut image = vec![0u8; n];
    assert_eq!(pismo_core::paired::write_image(&bytes, &mut image), Ok(n));
    let paired = pismo_core::paired::decode_image(&image[..n]).unwrap();
    let data = t10k();
    let (mut work, mut paired_work) = (Work::<256>::new(), Work::<256>::new());
    let mut right = 0;
    for (im, &y) in data.images.iter().zip(&data.labels) {
        let z = view.logits(im, &mut work).unwrap();
        assert_eq!(paired.logits(im, &mut paired_work), Some(z));
        right += usize::from(argmax(&z) == usize::from(y));
    }
    assert_eq!(right, 9919, "as `pismo eval` and the firmware count");
    let parent = AnyMlp::decode(&shipped_model("mnist-mcu@3")).unwrap().0;
    let parent_right = data
        .images
        .iter()
        .zip(&data.labels)
        .filter(|(im, &y)| {
            let x: [f32; INPUT] = std::array::from_fn(|i| f32::from(im[i]) / 255.0);
            argmax(&parent.logits(&x)) == usize::from(y)
        })
        .count();
    assert!(right + 30 >= parent_right, "{right} vs {parent_right}");
}

#[test]
fn int8_inference_reads_the_weights_in_place() {
    let bytes = shipped_model("mnist-int8@1");
    let model = format::decode(&bytes).unwrap();
    let Tensors::I8(view) = model.tensors else {
        panic!("not an int8 model")
    };
    // Every tensor is a slice of the file's own bytes: nothing was copied.
    let file = bytes.as_ptr_range();
    for part in view.parts() {
        assert!(file.contains(&part.as_ptr()));
    }
    // i8 weights, f32 scales and biases per hidden unit and per output, the activation scale.
    assert_eq!(
        view.weight_bytes(),
        784 * 128 + 128 * 10 + 4 * (2 * 128 + 2 * 10) + 4
    );
    let data = t10k();
    let mut work = Work::<128>::new();
    // 5 bytes per unit, and the pair list of the firmware's paired kernel.
    assert_eq!(Work::<128>::BYTES, 640 + pismo_core::dsp::PairSlots::BYTES);
    let right = data
        .images
        .iter()
        .zip(&data.labels)
        .take(1000)
        .filter(|(im, &y)| argmax(&view.logits(im, &mut work).unwrap()) == usize::from(y))
        .count();
    assert!(right >= 980, "{right} of the first 1000 test digits");
}
