//! # pismo-core
//!
//! The part of pismo that would run on a microcontroller: `no_std`, no allocator, every
//! buffer a fixed-size array whose capacity is part of its type. A tour, bottom-up:
//!
//! - [`rng`]: a small seedable PRNG and a counter-based hash, so the same seed and data give
//!   a bit-identical model on any machine and any number of threads.
//! - [`mlp`]: the network of the original design (784 → `H` ReLU → 10 softmax), inference
//!   (`predict_proba` / `predict`) and the training step as forward/backward pairs of free
//!   functions over caller-owned buffers.
//! - [`hyper`]: the hyperparameters and metrics, with the original project's names.
//! - [`augment`]: random small affine distortions of training digits (robust to drawings).
//! - [`deskew`]: slant normalisation of an input, for models trained with it.
//! - [`idx`]: parsing of MNIST's IDX files from byte slices.
//! - [`preprocess`]: any-size grey drawing → MNIST-like 28x28 input, without allocation.
//! - [`quant`]: int8 quantization and integer inference reading the weights in place.
//! - [`dsp`]: the Cortex-M4 DSP instructions (`asm!` with the `dsp` feature on Arm, portable
//!   elsewhere) and the int8 first layer built on them.
//! - [`verdict`]: sure of one digit or "not sure: 3 or 9?", the rule every shell shows.
//! - [`floor`]: `floorf` inlined, and the interpolation tap built on it, for the per-pixel
//!   resampling loops.
//! - [`device`]: what the firmware runs (start-up check, serial frames, serve loop), testable
//!   on the host.
//! - [`format`](mod@format): the model file (magic, format version, postcard metadata, weights, CRC-32),
//!   encoded into a caller's buffer and decoded by borrowing from the input bytes.
//!
//! With the `std` feature, [`host`] adds what only a host has: MNIST files on disk, the
//! multi-threaded trainer, the flat model registry and the run records.
#![cfg_attr(not(any(test, feature = "std")), no_std)]

pub mod augment;
pub mod deskew;
pub mod device;
pub mod dsp;
pub mod floor;
pub mod format;
pub mod hyper;
pub mod idx;
pub mod mlp;
pub mod preprocess;
pub mod quant;
pub mod rng;
pub mod verdict;

#[cfg(feature = "std")]
pub mod host;
