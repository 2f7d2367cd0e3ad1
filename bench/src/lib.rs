//! Helpers shared by the bench binaries: the latency histogram and the small HTTP/1.1 client
//! of `loadgen` and `soak`.

pub mod client;
pub mod histogram;
