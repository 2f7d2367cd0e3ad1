//! `pismo tune`'s parts: a search space, the TPE sampler, successive halving and the study's
//! journal. Each is usable on its own; the study driver puts them together.
//!
//! - [`space`]: which settings of `pismo train` vary and over what (a JSON space file).
//! - [`tpe`]: the Tree-structured Parzen Estimator that picks each next point.
//! - [`asha`]: asynchronous successive halving, which stops weak trials at epoch rungs.
//! - [`journal`]: the append-only, fsynced record of a study, behind a small store interface.
//! - [`driver`]: a study: worker threads running trials, the journal, the best trial's
//!   model, told to an observer as it goes (`pismo tune` and `pismo serve` both run it).
pub mod asha;
pub mod driver;
pub mod journal;
pub mod shelf;
pub mod space;
pub mod tpe;
