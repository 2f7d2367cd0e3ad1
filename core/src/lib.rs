//! # pismo-core
//!
//! The part of pismo that runs on a microcontroller: `no_std`, no allocator, every buffer a
//! fixed-size array whose capacity is part of its type. It builds for
//! `thumbv7em-none-eabihf`, and it has no `std` feature: the host side is in crates of its
//! own above it (`pismo-engine`, `pismo-digits`, `pismo-training`, … docs/ARCHITECTURE.md
//! has the map). It depends on no other pismo crate and on nothing that needs `std` or
//! `alloc` (`libm`, `serde` and `postcard` without defaults, `bytemuck`).
//!
//! A tour, bottom-up: each module uses only those above it in this list.
//!
//! - [`rng`]: a small seedable PRNG and a counter-based hash, so the same seed and data give
//!   a bit-identical model on any machine and any number of threads.
//! - [`floor`]: `floorf` inlined, and the interpolation tap built on it, for the per-pixel
//!   resampling loops.
//! - [`hyper`]: the hyperparameters and metrics, with the original project's names.
//! - [`mlp`]: the network of the original design (784 → `H` ReLU → 10 softmax), inference
//!   (`predict_proba` / `predict`) and the training step as forward/backward pairs of free
//!   functions over caller-owned buffers.
//! - [`preprocess`]: any-size grey drawing → MNIST-like 28x28 input, without allocation
//!   (the portable copy; a host compiles the same body per instruction set).
//! - [`deskew`]: slant normalisation of an input, for models trained with it.
//! - [`augment`]: random small affine distortions of training digits (robust to drawings).
//! - [`dsp`]: the Cortex-M4 DSP instructions (`asm!` with the `dsp` feature on Arm, portable
//!   elsewhere) and the int8 first layer built on them.
//! - [`quant`]: int8 quantization and integer inference reading the weights in place.
//! - [`format`](mod@format): the model file (magic, format version, postcard metadata,
//!   weights, CRC-32), encoded into a caller's buffer and decoded by borrowing from the
//!   input bytes.
//! - [`verdict`]: sure of one digit or "not sure: 3 or 9?", the rule every shell shows.
//! - [`idx`]: parsing of MNIST's IDX files from byte slices.
//! - [`device`]: what the firmware runs (start-up check, serial frames, serve loop), testable
//!   on the host.
//! - [`decimal`]: fractions printed through integers, so the firmware links no float
//!   formatting.
#![cfg_attr(not(test), no_std)]

pub mod augment;
pub mod decimal;
pub mod deskew;
pub mod device;
pub mod dsp;
pub mod floor;
pub mod format;
pub mod hyper;
pub mod idx;
pub mod mlp;
pub mod paired;
pub mod preprocess;
pub mod quant;
pub mod rng;
pub mod verdict;
