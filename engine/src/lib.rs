//! # pismo-engine
//!
//! The network on a host: a model of any supported size chosen at run time, evaluated on
//! every core with the widest vector instructions the CPU has. The lowest host layer beside
//! `pismo-files`: it depends on `pismo-core` alone, and on none of pismo's other crates.
//!
//! - [`kernels`]: run-time SIMD dispatch, the one home of it and of pismo's one `unsafe`
//!   ([`dispatched!`](crate::dispatched) compiles a hot loop per instruction set; crates above use it for
//!   theirs), and the inference kernels built with it, the fast preprocessing among them.
//! - [`aligned`]: float buffers that begin on a cache line, for weights the kernels stream.
//! - [`model`]: a model of any supported hidden size chosen at run time
//!   ([`model::AnyMlp`]), loaded from or encoded to the model file, quantized to int8;
//!   [`with_hidden!`] turns a run-time size into a const generic.
//! - [`prune`]: an int8 model keeping the first-layer rows of the pixels digits ink only.
//! - [`eval`]: loss and accuracy over a set of images, on many threads, with a result that
//!   does not depend on how many.
//! - [`tally`]: what a model makes of labelled images answer by answer (confusion matrix,
//!   loss, probabilities), as `pismo eval` reports it, on all cores.
//! - [`calibration`]: the rule that fits the "not sure" thresholds on one half of the
//!   answers and measures them on the other (`pismo eval --calibrate`).
//! - [`fan_out`]: work over `0..n` spread on threads in contiguous shares, results in order;
//!   every "on all cores" loop above the engine uses it too.
//! - [`onnx`]: an f32 model as a standard ONNX file (Gemm, Relu, Softmax).
//!
//! Not here: datasets and files of images (`pismo-digits`), training (`pismo-training`),
//! the registry (`pismo-storage`). This crate reads and writes model files as bytes only.
pub mod aligned;
pub mod calibration;
pub mod eval;
pub mod fan_out;
pub mod kernels;
pub mod model;
pub mod onnx;
pub mod prune;
pub mod tally;

/// Threads to use when `threads` were asked for: 0 means one per core.
pub fn threads_or_all(threads: usize) -> usize {
    match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// A zeroed value on the heap, never on the stack: `Mlp<1024>` is 3 MB, more than a thread's
/// stack. (`bytemuck` does the one allocation with the right layout, without `unsafe` here.)
pub fn boxed_zeroed<T: bytemuck::Zeroable>() -> Box<T> {
    bytemuck::zeroed_box()
}
