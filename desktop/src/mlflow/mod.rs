//! Runs and models into an MLflow tracking server, through its REST API.
//!
//! - [`client`]: the REST calls, MLflow's batch limits, errors with MLflow's `error_code`.
//! - [`export`]: what of a pismo run goes where in MLflow, idempotent exports, the model
//!   registry's version rule.
//! - [`model`]: a pismo model as an MLflow model directory (ONNX flavour), so that MLflow
//!   loads and serves what it registers.
//! - here: `pismo runs export --mlflow` ([`export_runs`]) and `pismo train --mlflow`
//!   ([`Stream`], an observer of the training session).

pub mod client;
pub mod export;
pub mod model;

use pismo_storage::registry::Registry;
use pismo_storage::runs::Runs;
use pismo_training::recipe::Recipe;

pub use client::{check_uri, Client, Timeouts};
use export::{Exported, Exporter, MlflowRun};

use crate::CliError;

/// The experiment runs go to unless `--experiment` says otherwise.
pub const DEFAULT_EXPERIMENT: &str = "pismo";

/// Checks `--mlflow URI` and `--experiment NAME`: a usage error if either is bad.
pub fn check_flags(uri: &str, experiment: &str) -> Result<String, CliError> {
    if experiment.trim().is_empty() {
        return Err(CliError::usage("--experiment must not be empty"));
    }
    check_uri(uri).map_err(CliError::usage)
}

/// `pismo runs export --mlflow URI`: exports `ids` (every run when empty) of `runs`, oldest
/// first so that models register in version order. A line per run on stdout (with `json`,
/// one JSON object: [`report_json`]); a run that fails gets an error line on stderr and the
/// others go on, unless MLflow cannot be reached at all.
pub fn export_runs(
    uri: &str,
    experiment: &str,
    runs: &Runs,
    registry: &Registry,
    ids: &[String],
    json: bool,
) -> Result<(), CliError> {
    let uri = check_flags(uri, experiment)?;
    let mut infos = if ids.is_empty() {
        runs.list()?
    } else {
        ids.iter()
            .map(|id| runs.info(id))
            .collect::<Result<Vec<_>, _>>()?
    };
    if infos.is_empty() {
        eprintln!("no runs in {}: nothing to export", runs.location());
        return Ok(());
    }
    infos.sort_by(|a, b| (a.start_unix_ms, &a.run_id).cmp(&(b.start_unix_ms, &b.run_id)));
    infos.dedup_by(|a, b| a.run_id == b.run_id);
    let exporter = Exporter::connect(Client::new(&uri, Timeouts::EXPORT), experiment)
        .map_err(CliError::failed)?;
    let mut failed = 0;
    for info in &infos {
        match exporter.export(runs, registry, &info.run_id) {
            Ok(done) => crate::out_result(
                json,
                &report_json(&exporter, &info.run_id, &done),
                &report(&exporter, &info.run_id, &done),
            )?,
            Err(e) if e.is_unreachable() => return Err(CliError::failed(e)),
            Err(e) => {
                eprintln!("error: run {}: {e}", info.run_id);
                failed += 1;
            }
        }
    }
    if failed > 0 {
        eprintln!(
            "error: {failed} of {} run(s) not exported (see above)",
            infos.len()
        );
        return Err(CliError::Reported);
    }
    Ok(())
}

/// One line on what an export did.
fn report(exporter: &Exporter, run_id: &str, done: &Exported) -> String {
    let mut line = format!(
        "run {run_id} -> MLflow run {} {}: {}",
        done.run.id,
        done.action.describe(),
        exporter.run_url(&done.run)
    );
    for m in &done.models {
        line.push_str(&format!(
            "; model {} -> MLflow {} version {}",
            m.id, m.id.name, m.version
        ));
        if !m.aliases.is_empty() {
            line.push_str(&format!(", aliases {}", m.aliases.join(", ")));
        }
    }
    if let Some(gone) = &done.gone {
        line.push_str(&format!("; {gone}: the run is exported without it"));
    }
    line
}

/// What an export did, as one `--json` object: the pismo run, its MLflow run, what
/// happened to it (`created`, `updated` or `skipped`), its address in the MLflow UI, the
/// models registered with MLflow's version numbers, and why its own model is missing.
fn report_json(exporter: &Exporter, run_id: &str, done: &Exported) -> serde_json::Value {
    let models: Vec<serde_json::Value> = done
        .models
        .iter()
        .map(|m| {
            serde_json::json!({
                "model": m.id.to_string(), "mlflow_name": m.id.name,
                "mlflow_version": m.version, "aliases": m.aliases,
            })
        })
        .collect();
    serde_json::json!({
        "run_id": run_id,
        "mlflow_run_id": done.run.id,
        "action": done.action.name(),
        "url": exporter.run_url(&done.run),
        "models": models,
        "model_gone": done.gone,
    })
}

/// `pismo train --mlflow`: sends a training run to MLflow as it happens. The MLflow run is
/// made when the session starts, each epoch's metrics go as the epoch ends, and the end is
/// an ordinary export (which finds the run and sends what it lacks: the log, the model,
/// its registration, the status). The first failure ends the streaming with one warning;
/// training is never stopped by MLflow.
pub struct Stream {
    uri: String,
    experiment: String,
    recipe: Option<Recipe>,
    state: State,
}

enum State {
    /// Not started yet.
    Waiting,
    /// Streaming into this run; so many of the run's metrics sent.
    Streaming {
        exporter: Exporter,
        run: MlflowRun,
        sent: usize,
    },
    /// Failed once: silent from then on.
    Off,
}

impl Stream {
    /// A stream to the server at `uri` (checked), into `experiment`. `recipe` is the run's,
    /// when it is not the default (its params are sent at the start).
    pub fn new(uri: String, experiment: String, recipe: Option<Recipe>) -> Self {
        Self {
            uri,
            experiment,
            recipe,
            state: State::Waiting,
        }
    }

    /// The session made run `run_id`: make its MLflow run. A warning line if that failed.
    pub fn started(&mut self, runs: &Runs, run_id: &str) -> Option<String> {
        let result = (|| {
            let info = runs.info(run_id).map_err(|e| e.to_string())?;
            let exporter =
                Exporter::connect(Client::new(&self.uri, Timeouts::TRAIN), &self.experiment)
                    .map_err(|e| e.to_string())?;
            let run = exporter
                .start(&info, self.recipe.as_ref())
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((exporter, run))
        })();
        match result {
            Ok((exporter, run)) => {
                self.state = State::Streaming {
                    exporter,
                    run,
                    sent: 0,
                };
                None
            }
            Err(e) => self.fail(&e, run_id),
        }
    }

    /// An epoch ended: send the metrics the run recorded since the last call.
    pub fn epoch(&mut self, runs: &Runs, run_id: &str) -> Option<String> {
        let State::Streaming {
            exporter,
            run,
            sent,
        } = &mut self.state
        else {
            return None;
        };
        let result = runs
            .metrics(run_id)
            .map_err(|e| e.to_string())
            .and_then(|metrics| {
                let new = metrics.get(*sent..).unwrap_or_default();
                exporter.send_metrics(run, new).map_err(|e| e.to_string())?;
                Ok(metrics.len())
            });
        match result {
            Ok(total) => {
                *sent = total;
                None
            }
            Err(e) => self.fail(&e, run_id),
        }
    }

    /// The session ended: send the rest of the run. A line saying where it is, or a
    /// warning.
    pub fn finish(&mut self, runs: &Runs, registry: &Registry, run_id: &str) -> Option<String> {
        let State::Streaming { exporter, .. } = &self.state else {
            return None;
        };
        match exporter.export(runs, registry, run_id) {
            Ok(done) => {
                let mut line = format!("MLflow: {}", exporter.run_url(&done.run));
                for m in &done.models {
                    line.push_str(&format!(
                        " (registered model {} version {})",
                        m.id.name, m.version
                    ));
                }
                self.state = State::Off;
                Some(line)
            }
            Err(e) => self.fail(&e.to_string(), run_id),
        }
    }

    /// Stops streaming; the one warning.
    fn fail(&mut self, error: &str, run_id: &str) -> Option<String> {
        self.state = State::Off;
        Some(format!(
            "warning: MLflow: {error}; training goes on without it (the local run records \
             everything: send it later with `pismo runs export --mlflow {} --experiment {} {run_id}`)",
            self.uri, self.experiment
        ))
    }
}
