//! The storage side of `pismo tune`: a study's journal and the shelf of studies. The search
//! itself (space, sampler, halving, driver) is the `pismo-tuning` crate.
//!
//! - [`journal`]: the append-only, fsynced record of a study, behind a small store interface.
//! - [`shelf`]: the studies of a store, listed and created by name.
pub mod journal;
pub mod shelf;
