//! `pismo runs export --mlflow` and `pismo train --mlflow`: the flags checked, the client
//! built with pismo's HTTP settings ([`crate::http_client`]), and what an export did
//! printed. The work is `pismo-mlflow`'s.

use pismo_mlflow::{Client, Exported, Exporter, Stream, Timeouts};
use pismo_storage::registry::Registry;
use pismo_storage::runs::Runs;
use pismo_training::recipe::Recipe;

use crate::CliError;

pub use pismo_mlflow::DEFAULT_EXPERIMENT;

/// Checks `--mlflow URI` and `--experiment NAME`: a usage error if either is bad.
pub fn check_flags(uri: &str, experiment: &str) -> Result<String, CliError> {
    pismo_mlflow::check_flags(uri, experiment).map_err(CliError::usage)
}

/// A client of the server at `uri` (checked), waiting as long as `timeouts` says.
fn client(uri: &str, timeouts: Timeouts) -> Client {
    let agent = crate::http_client::agent_config(timeouts.connect, timeouts.answer)
        .build()
        .new_agent();
    Client::new(uri, agent)
}

/// `pismo train --mlflow URI --experiment NAME`: the stream that sends the run as it trains.
pub fn stream(uri: &str, experiment: String, recipe: Option<Recipe>) -> Stream {
    Stream::new(client(uri, Timeouts::TRAIN), experiment, recipe)
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
    let infos = pismo_mlflow::runs_to_export(runs, ids)?;
    if infos.is_empty() {
        eprintln!("no runs in {}: nothing to export", runs.location());
        return Ok(());
    }
    let exporter =
        Exporter::connect(client(&uri, Timeouts::EXPORT), experiment).map_err(CliError::failed)?;
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
