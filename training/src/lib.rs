//! # pismo-training
//!
//! Training on the host: from MNIST and a recipe to a registered model with its run record.
//!
//! - [`kernels`]: the trainer's hot loops, compiled per instruction set.
//! - [`inked`]: training images as their inked pixels, compacted once per run.
//! - [`team`]: the threads of one training run, each owning a block of hidden units.
//! - [`trainer`]: mini-batch training over epochs on all cores, with progress events.
//! - [`recipe`]: what a run learns from besides MNIST (redrawn, synthetic, corpora, elastic).
//! - [`session`]: a whole training run: data → trainer → run record → registered model.
//! - [`adapt`]: fine-tuning a model to one person's corrected drawings, and its recorded run.
//! - [`quantized`]: an f32 model's int8 copy, measured beside its parent (`pismo models
//!   quantize`).
//! - [`committee`]: registered models joined into one, measured beside its members
//!   (`pismo models join`).
//!
//! Depends on `pismo-engine` (models, evaluation, the SIMD dispatch its kernels use),
//! `pismo-digits` (the data), `pismo-storage` (the registry and run records a session
//! writes) and the core. It may not depend on `pismo-tuning` or a shell.
pub mod adapt;
pub mod committee;
pub mod inked;
pub mod kernels;
pub mod quantized;
pub mod recipe;
pub mod session;
pub mod team;
pub mod trainer;
