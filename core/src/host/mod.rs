//! Host-only side of the core (feature `std`): files, threads, the registry, run records.
//!
//! - [`model`]: a model of any supported hidden size chosen at run time ([`model::AnyMlp`]),
//!   loaded from or encoded to the model file.
//! - [`onnx`]: an f32 model as a standard ONNX file (Gemm, Relu, Softmax).
//! - [`kernels`]: run-time choice of AVX2 for the hot loops (the one `unsafe` in pismo).
//! - [`eval`]: loss and accuracy over a set of images, on many threads.
//! - [`aligned`]: float buffers that begin on a cache line, for the trainer's weights.
//! - [`atomic`]: whole-file writes by temp file, fsync and rename or link;
//!   temp files of dead writers are found and removed.
//! - [`process`]: whether a process, named by pid and start time, is alive.
//! - [`stamp`]: `YYYYMMDD-HHMMSS` UTC timestamps for names.
pub mod aligned;
pub mod atomic;
pub mod eval;
pub mod kernels;
pub mod model;
pub mod onnx;
pub mod process;
pub mod stamp;

/// A zeroed value on the heap, never on the stack: `Mlp<1024>` is 3 MB, more than a thread's
/// stack. (`bytemuck` does the one allocation with the right layout, without `unsafe` here.)
/// Threads to use when `threads` were asked for: 0 means one per core.
pub fn threads_or_all(threads: usize) -> usize {
    match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

pub fn boxed_zeroed<T: bytemuck::Zeroable>() -> Box<T> {
    bytemuck::zeroed_box()
}
