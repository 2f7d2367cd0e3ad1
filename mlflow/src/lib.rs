//! pismo's runs and models into an MLflow tracking server and its model registry, through
//! MLflow's REST API: what `pismo runs export --mlflow` and `pismo train --mlflow` do.
//!
//! - [`client`]: the REST calls, MLflow's batch limits, errors with MLflow's `error_code`.
//! - [`export`]: what of a pismo run goes where in MLflow, idempotent exports, the model
//!   registry's version rule.
//! - [`model`]: a pismo model as an MLflow model directory (ONNX flavour), so that MLflow
//!   loads and serves what it registers.
//! - [`stream`]: a training run sent to MLflow as it happens ([`Stream`], an observer of
//!   the training session).
//! - here: the flags' checks ([`check_flags`]) and which runs an export takes, in which
//!   order ([`runs_to_export`]).
//!
//! It owns no policy on outgoing requests: the caller builds the HTTP agent (TLS roots,
//! proxy, user agent) and gives it to [`Client::new`]; [`Timeouts`] says how long each use
//! may wait. It prints nothing: the binary prints what an export did.
//!
//! Depends on storage (runs, registry), training (a run's recipe), the engine (a model
//! decoded for its ONNX file) and the core; never on tuning, `pismo-http`, `pismo-store` or
//! the binary.

pub mod client;
pub mod export;
pub mod model;
pub mod stream;

use pismo_storage::runs::{RunInfo, Runs, RunsError};

pub use client::{check_uri, Client, MlflowError, Timeouts};
pub use export::{Action, ExportError, Exported, Exporter, MlflowRun, Registered};
pub use stream::Stream;

/// The experiment runs go to unless `--experiment` says otherwise.
pub const DEFAULT_EXPERIMENT: &str = "pismo";

/// Checks `--mlflow URI` and `--experiment NAME`: the URI as [`check_uri`] returns it, or
/// why either is bad.
pub fn check_flags(uri: &str, experiment: &str) -> Result<String, String> {
    if experiment.trim().is_empty() {
        return Err("--experiment must not be empty".to_owned());
    }
    check_uri(uri)
}

/// The runs of `runs` that `pismo runs export` exports: `ids` (every run when empty), oldest
/// first so that models register in version order, each once.
pub fn runs_to_export(runs: &Runs, ids: &[String]) -> Result<Vec<RunInfo>, RunsError> {
    let mut infos = if ids.is_empty() {
        runs.list()?
    } else {
        ids.iter()
            .map(|id| runs.info(id))
            .collect::<Result<Vec<_>, _>>()?
    };
    infos.sort_by(|a, b| (a.start_unix_ms, &a.run_id).cmp(&(b.start_unix_ms, &b.run_id)));
    infos.dedup_by(|a, b| a.run_id == b.run_id);
    Ok(infos)
}
