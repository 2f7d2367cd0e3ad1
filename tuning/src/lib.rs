//! # pismo-tuning
//!
//! `pismo tune`: hyperparameter search over training runs. Each part is usable on its own;
//! the study driver puts them together.
//!
//! - [`space`]: which settings of `pismo train` vary and over what (a JSON space file).
//! - [`tpe`]: the Tree-structured Parzen Estimator that picks each next point.
//! - [`asha`]: asynchronous successive halving, which stops weak trials at epoch rungs.
//! - [`driver`]: a study: worker threads running trials, the journal, the best trial's
//!   model, told to an observer as it goes (`pismo tune` and `pismo serve` both run it).
//!
//! The study's journal and the shelf of studies (folder or PostgreSQL) are storage, not
//! tuning: this crate writes through their interface and never opens a file of its own.
//!
//! Depends on `pismo-training` (each trial is a training session), `pismo-storage` (the
//! journal, the registry, run records), `pismo-digits`, `pismo-engine` and the core; no
//! shell (`pismo`, `pismo-http`) and no database client.
pub mod asha;
pub mod driver;
pub mod space;
pub mod tpe;
