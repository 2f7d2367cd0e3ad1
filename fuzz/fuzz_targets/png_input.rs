//! PNG bytes to the model's input, as `POST /api/predict` and `pismo predict` do it: the
//! header's size checks, the decode to grey, then `preprocess::to_input`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pismo_core::mlp::INPUT;
use pismo_core::preprocess;
use pismo_digits::image;

fuzz_target!(|bytes: &[u8]| {
    let size = image::png_size(bytes);
    let decoded = image::decode_png(bytes);
    // The header check and the decoder agree on what they refuse for its size.
    if let Ok(img) = &decoded {
        assert_eq!(size.ok(), Some((img.width as u32, img.height as u32)));
        assert!(
            (img.data.len() as u64) <= image::png_decode_cost(img.width as u32, img.height as u32)
        );
        let mut x = [0.0f32; INPUT];
        if preprocess::to_input(&img.as_grey(), &mut x).is_ok() {
            assert!(x.iter().all(|v| v.is_finite()));
        }
    }
});
