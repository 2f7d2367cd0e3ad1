//! The JSON bodies of `POST /api/predict`, `POST /invocations` and `POST /api/train`, through
//! the server's own parsers (`pismo_http::fuzzing`). The first byte picks the route.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pismo_http::fuzzing;

fuzz_target!(|bytes: &[u8]| {
    let Some((&route, body)) = bytes.split_first() else {
        return;
    };
    match route % 3 {
        0 => {
            if let Ok(x) = fuzzing::predict_body(body) {
                assert!(x.iter().all(|v| v.is_finite()));
            }
        }
        1 => {
            let _ = fuzzing::invocations_body(body);
        }
        _ => {
            let _ = fuzzing::train_body(body);
        }
    }
});
