//! Model file bytes: the decoder, then what the host and the device do with a decoded file
//! (the host's `AnyMlp::decode` and a prediction, the int8 view's forward pass, the device's
//! start-up check).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pismo_core::device;
use pismo_core::format::{self, Tensors};
use pismo_core::mlp::INPUT;
use pismo_core::quant::Work;
use pismo_engine::model::AnyMlp;

fuzz_target!(|bytes: &[u8]| {
    let _ = format::peek_version(bytes);
    if let Ok(model) = format::decode(bytes) {
        if let Tensors::I8(q) = model.tensors {
            let _ = (q.hidden_size(), q.macs(), q.weight_bytes(), q.act_scale());
            // Too small a working memory is refused, never overrun.
            let _ = q.logits(&[128u8; INPUT], &mut Work::<16>::new());
        }
    }
    if let Ok((mlp, _)) = AnyMlp::decode(bytes) {
        let _ = mlp.predict_proba(&[0.5f32; INPUT]);
    }
    if let Ok(q) = device::start(bytes) {
        let _ = q.logits(&[0u8; INPUT], &mut Box::new(Work::<1024>::new()));
    }
});
