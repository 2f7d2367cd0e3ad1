//! # pismo-storage
//!
//! What pismo keeps between runs, each behind a small store interface whose folder
//! implementation lives here (the PostgreSQL one is the `pismo-store` crate):
//!
//! - [`registry`]: the flat, versioned model registry with aliases (MLflow's model
//!   registry); model files are opaque bytes here, checked by the core's format.
//! - [`runs`]: run records (params, status, per-epoch metrics, log), like MLflow tracking.
//! - [`studies`]: `pismo tune`'s study journals and the shelf that lists them.
//!
//! Depends on the core (model metadata, hyperparameters) and `pismo-files` (atomic writes,
//! process liveness) only: no engine, no datasets, no trainer, no database client.
pub mod registry;
pub mod runs;
pub mod studies;
