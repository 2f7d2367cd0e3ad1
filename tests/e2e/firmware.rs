//! The firmware's code path on the host (`pismo_core::device`, the same functions
//! `firmware-sim/` runs under QEMU): the shipped int8 model over the MNIST test stream, and
//! the start-up check that refuses a corrupted or float model.

use pismo_core::device::{self, FrameError, StartError, HEADER};
use pismo_core::format::FormatError;
use pismo_core::mlp::INPUT;
use pismo_core::quant::Work;
use pismo_engine::model::AnyMlp;
use pismo_tests::{shipped_model, t10k};

#[test]
fn the_device_loop_counts_exactly_what_eval_counts_on_the_test_stream() {
    let bytes = shipped_model("mnist-mcu-int8");
    let view = device::start(&bytes).expect("the shipped int8 model starts");
    let (model, _) = AnyMlp::decode(&bytes).unwrap();
    let data = t10k();
    let mut stream = vec![0u8; data.images.len() * (HEADER + INPUT)];
    let mut at = 0;
    for (im, &y) in data.images.iter().zip(&data.labels) {
        at += device::write_frame(Some(y), &im[..], &mut stream[at..]).unwrap();
    }
    let eval_correct = model.evaluate(&data.images, &data.labels, 0).1 as u32;
    let mut answers = 0;
    let t = device::serve(
        &view,
        &mut stream.as_slice(),
        &mut [0u8; INPUT],
        &mut Work::<256>::new(),
        |_, _, r| answers += usize::from(r.is_ok()),
    );
    assert_eq!(answers, data.images.len());
    assert_eq!((t.frames as usize, t.errors), (data.images.len(), 0));
    assert_eq!(t.labelled as usize, data.images.len());
    assert_eq!(t.correct, eval_correct, "device loop vs eval");
    // The firmware embeds the model's paired image (7-bit first layer): the same count, and
    // the same reply (digit and confidence) to every frame.
    let mut image = vec![0u8; pismo_core::paired::image_len(&bytes).expect("pairable")];
    pismo_core::paired::write_image(&bytes, &mut image).unwrap();
    let paired = device::start_paired(&image).expect("the paired image starts");
    let mut replies = Vec::new();
    let mut paired_replies = Vec::new();
    for (model_replies, use_image) in [(&mut replies, false), (&mut paired_replies, true)] {
        let (mut link, mut work) = (stream.as_slice(), Work::<256>::new());
        let reply = |_, _, r| model_replies.push(r);
        let t = if use_image {
            device::serve(&paired, &mut link, &mut [0u8; INPUT], &mut work, reply)
        } else {
            device::serve(&view, &mut link, &mut [0u8; INPUT], &mut work, reply)
        };
        assert_eq!(t.correct, eval_correct, "image {use_image} vs eval");
    }
    assert!(replies == paired_replies, "the image answers as the model");
    // A flipped bit anywhere in the image: refused at start-up.
    for at in [0, 12, 40, image.len() / 2, image.len() - 1] {
        let mut bad = image.clone();
        bad[at] ^= 0x10;
        assert!(device::start_paired(&bad).is_err(), "byte {at} flipped");
    }
    assert!(
        device::start_paired(&bytes).is_err(),
        "a model file is not an image"
    );
}

#[test]
fn a_corrupted_or_float_model_is_refused_at_start_up() {
    let bytes = shipped_model("mnist-mcu-int8");
    // A flipped bit anywhere: header, metadata, weights, checksum.
    for at in [
        0,
        9,
        12,
        40,
        bytes.len() / 2,
        bytes.len() - 30,
        bytes.len() - 1,
    ] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x10;
        let err = device::start(&bad).expect_err("corrupted model accepted");
        assert!(matches!(err, StartError::Format(_)), "byte {at}: {err}");
    }
    // Truncated (a partial flash image).
    let err = device::start(&bytes[..bytes.len() / 3]).unwrap_err();
    assert!(matches!(
        err,
        StartError::Format(FormatError::Truncated { .. })
    ));
    // Erased flash.
    assert_eq!(
        device::start(&[0xFF; 64]),
        Err(StartError::Format(FormatError::NotAModel))
    );
    // A valid f32 model is not what the device runs.
    let err = device::start(&shipped_model("mnist")).unwrap_err();
    assert_eq!(err, StartError::NotInt8);
    assert!(err.to_string().contains("quantize"));
}

#[test]
fn wrong_length_frames_from_the_host_get_error_replies() {
    let bytes = shipped_model("mnist-mcu-int8");
    let view = device::start(&bytes).unwrap();
    let im = &t10k().images[0];
    let mut stream = vec![0u8; 3 * (HEADER + INPUT)];
    let mut at = device::write_frame(Some(7), &im[..], &mut stream).unwrap();
    at += device::write_frame(None, &im[..783], &mut stream[at..]).unwrap();
    at += device::write_frame(Some(7), &im[..], &mut stream[at..]).unwrap();
    let mut replies = Vec::new();
    let t = device::serve(
        &view,
        &mut &stream[..at],
        &mut [0u8; INPUT],
        &mut Work::<256>::new(),
        |_, _, r| replies.push(r),
    );
    assert_eq!(replies[1], Err(FrameError::WrongLength { len: 783 }));
    assert_eq!(replies[0], replies[2]);
    assert_eq!((t.frames, t.errors, t.correct), (3, 1, 2));
}
