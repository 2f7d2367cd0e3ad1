//! Host-only side of the core (feature `std`): files, threads, the registry, run records.
//!
//! - [`model`]: a model of any supported hidden size chosen at run time ([`model::AnyMlp`]),
//!   loaded from or encoded to the model file.
//! - [`team`]: the threads of one training run, each owning a block of hidden units.
//! - [`trainer`]: mini-batch training over epochs on all cores, with progress events.
//! - [`mnist`]: MNIST files on disk (raw or gzip, SHA-256 checked) and fetching them.
//! - [`kernels`]: run-time choice of AVX2 for the hot loops (the one `unsafe` in pismo).
//! - [`image`]: PNG and IDX image files → grey images for [`crate::preprocess`].
//! - [`registry`]: the flat, versioned model registry with aliases.
//! - `atomic` (crate-internal): whole-file writes by temp file, fsync and rename or link;
//!   temp files of dead writers are found and removed.
//! - `process` (crate-internal): whether a process, named by pid and start time, is alive.
//! - [`runs`]: run records (params, status, per-epoch metrics, log), like MLflow tracking.
//! - [`session`]: a whole training run: data → trainer → run record → registered model.
pub(crate) mod atomic;
pub mod image;
pub mod kernels;
pub mod mnist;
pub mod model;
mod process;
pub mod registry;
pub mod runs;
pub mod session;
pub mod team;
pub mod trainer;

/// A zeroed value on the heap, never on the stack: `Mlp<1024>` is 3 MB, more than a thread's
/// stack. (`bytemuck` does the one allocation with the right layout, without `unsafe` here.)
pub fn boxed_zeroed<T: bytemuck::Zeroable>() -> Box<T> {
    bytemuck::zeroed_box()
}
