//! The run store interface: where run records live. [`super::Runs`] is the policy over it
//! (id grammar and drawing, newest-first order, the writer that never fails a training);
//! a store only keeps records and makes each change atomic against other writers.
//!
//! Two stores exist: the runs folder ([`super::folder::FolderRuns`], the default) and a
//! PostgreSQL database (crate `pismo-store`, outside the core).
//!
//! What every store guarantees:
//! - [`RunStore::create`] never gives one run id to two runs: it answers `None` when the
//!   id is taken, and the caller draws another.
//! - A record is replaced whole ([`RunSink::write_info`], [`RunStore::set_model`]): readers
//!   see the old one or the new one.
//! - Metrics and log lines read back in the order they were appended.
//! - A run whose writer died without ending it (process killed, host gone) is read as
//!   [`super::Status::Failed`], with an error that says so; what is stored is left as it is.
//! - [`RunStore::import`] stores a whole run (record, metrics, log) or nothing.

use std::fmt;
use std::path::Path;

use super::{Metric, RunInfo, RunRecord, RunsError};

/// Where a registry's run records live. Run ids reach a store already checked
/// ([`super::validate_run_id`]).
pub trait RunStore: fmt::Debug + Send + Sync {
    /// Where the store is, for messages: a folder path or a database URL without password.
    fn location(&self) -> String;

    /// The runs folder, for a folder store.
    fn folder(&self) -> Option<&Path> {
        None
    }

    /// Stores `info` as a new run and returns the sink its writer appends to, or `None`
    /// when a run with `info.run_id` exists already.
    fn create(&self, info: &RunInfo) -> Result<Option<Box<dyn RunSink>>, RunsError>;

    /// Every run, in no particular order, and one error per run that cannot be read.
    /// Fails only when the store itself cannot be read.
    fn list(&self) -> Result<(Vec<RunInfo>, Vec<RunsError>), RunsError>;

    /// The record of run `id` ([`RunsError::NotFound`] when there is none).
    fn info(&self, id: &str) -> Result<RunInfo, RunsError>;

    /// The metrics of run `id`, in the order they were logged.
    fn metrics(&self, id: &str) -> Result<Vec<Metric>, RunsError>;

    /// The training log of run `id`: its lines, each ended by a newline.
    fn log(&self, id: &str) -> Result<String, RunsError>;

    /// Records `model` (`NAME@V`) as the model of run `id`, which has ended.
    fn set_model(&self, id: &str, model: &str) -> Result<(), RunsError>;

    /// Stores a whole run from another store, keeping its id; `false` when a run with that
    /// id is here already (nothing is changed then).
    fn import(&self, run: &RunRecord, log: &str) -> Result<bool, RunsError>;
}

/// Where one run's writer puts what it records while the run trains.
pub trait RunSink: fmt::Debug + Send {
    /// Replaces the run's record.
    fn write_info(&mut self, info: &RunInfo) -> Result<(), RunsError>;

    /// Appends one metric.
    fn append_metric(&mut self, metric: &Metric) -> Result<(), RunsError>;

    /// Appends one line (without its newline) to the log.
    fn append_log(&mut self, line: &str) -> Result<(), RunsError>;
}
