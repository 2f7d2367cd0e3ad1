//! IDX files (MNIST images and labels): parse, then touch every image.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pismo_core::idx;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(images) = idx::parse_images(bytes) {
        let n = images.iter().map(|img| img.len()).sum::<usize>();
        assert_eq!(n, images.iter().len() * images.pixels());
        assert!(images.image(images.iter().len()).is_none());
        let _ = images.as_bytes();
    }
    if let Ok(labels) = idx::parse_labels(bytes) {
        assert!(labels.len() <= bytes.len());
    }
});
