//! The firmware's frame parser: `device::serve` over arbitrary bytes with the firmware's
//! real model. It must answer every frame and stop at the end of the stream.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pismo_core::device;
use pismo_core::mlp::INPUT;
use pismo_core::quant::{QView, Work};

static MODEL: &[u8] = include_bytes!("../../models/mnist-mcu-int8.v2.pismo");

fuzz_target!(|bytes: &[u8]| {
    // Checked once (the CRC over 200 KB would dominate every run), as the device does at boot.
    static VIEW: OnceLock<QView<'static>> = OnceLock::new();
    let model = VIEW.get_or_init(|| device::start(MODEL).expect("the firmware's model starts"));
    let mut link = bytes;
    let mut image = [0u8; INPUT];
    let mut work = Box::new(Work::<256>::new());
    let mut replies = 0u32;
    let tally = device::serve(model, &mut link, &mut image, &mut work, |i, _, _| {
        assert_eq!(i, replies);
        replies += 1;
    });
    assert!(link.is_empty() || tally.frames > 0);
    assert_eq!(tally.frames, replies);
    // Every frame takes at least its header.
    assert!(tally.frames as usize <= bytes.len().div_ceil(device::HEADER));
});
