//! `pismo runs`: list, show and print the log of training runs (`pismo_storage::runs`
//! owns the records; this module summarises and prints them), and export them to MLflow
//! (`crate::mlflow`).
//!
//! A run's summary (epochs run, validation accuracy, test accuracy) is computed from its
//! metrics: `epochs run` is the highest epoch with a logged `val_loss`; `val acc` is the
//! `val_accuracy` of the kept epoch (lowest `val_loss`, the weights the model holds, as the
//! web page shows it); `best_val_accuracy` (JSON only) the highest `val_accuracy` of any
//! epoch; `test acc` the last `test_accuracy`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use argh::FromArgs;
use pismo_storage::runs::{kept_epoch, Metric, RunInfo, Runs};
use serde::Serialize;

use crate::{text, CliError};

/// Inspect training runs (parameters, status, per-epoch metrics, logs).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "runs")]
pub struct Args {
    #[argh(subcommand)]
    command: Command,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum Command {
    List(List),
    Show(Show),
    Log(Log),
    Export(Export),
}

/// List runs, newest first.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "list")]
struct List {
    /// run records folder (default: the --store database, else $PISMO_RUNS, else ./runs)
    #[argh(option)]
    runs: Option<PathBuf>,
    /// a store holding the runs, e.g. postgres://USER@HOST/DATABASE (default: $PISMO_STORE)
    #[argh(option)]
    store: Option<String>,
    /// print one JSON object per run on stdout
    #[argh(switch)]
    json: bool,
}

/// Show one run: parameters, status and a table of per-epoch metrics.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "show")]
struct Show {
    /// the run id
    #[argh(positional)]
    run: String,
    /// run records folder (default: the --store database, else $PISMO_RUNS, else ./runs)
    #[argh(option)]
    runs: Option<PathBuf>,
    /// a store holding the runs, e.g. postgres://USER@HOST/DATABASE (default: $PISMO_STORE)
    #[argh(option)]
    store: Option<String>,
    /// print one JSON object on stdout
    #[argh(switch)]
    json: bool,
}

/// Print a run's training log.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "log")]
struct Log {
    /// the run id
    #[argh(positional)]
    run: String,
    /// run records folder (default: the --store database, else $PISMO_RUNS, else ./runs)
    #[argh(option)]
    runs: Option<PathBuf>,
    /// a store holding the runs, e.g. postgres://USER@HOST/DATABASE (default: $PISMO_STORE)
    #[argh(option)]
    store: Option<String>,
}

/// Send runs to an MLflow tracking server: params, metrics, tags, log, model and its
/// registered version with its aliases.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "export",
    note = "Exporting a run again updates or skips its MLflow run (found by its pismo.run_id tag); it never makes a second one. Models register in MLflow under the same name and version: runs are exported oldest first, and a version MLflow would number differently is refused with the reason."
)]
struct Export {
    /// the run ids (default: every run)
    #[argh(positional)]
    run: Vec<String>,
    /// the MLflow tracking server, e.g. http://127.0.0.1:5000
    #[argh(option)]
    mlflow: String,
    /// the MLflow experiment (default "pismo", created if missing)
    #[argh(option, default = "String::from(crate::mlflow::DEFAULT_EXPERIMENT)")]
    experiment: String,
    /// run records folder (default: the --store database, else $PISMO_RUNS, else ./runs)
    #[argh(option)]
    runs: Option<PathBuf>,
    /// model registry folder (default: $PISMO_REGISTRY, else ./models)
    #[argh(option)]
    registry: Option<PathBuf>,
    /// model store in place of the registry folder, e.g. postgres://USER@HOST/DATABASE
    /// (default: $PISMO_STORE)
    #[argh(option)]
    store: Option<String>,
    /// print one JSON object per exported run
    #[argh(switch)]
    json: bool,
}

/// Summary of a run's metrics. Accuracies are `f32` like the trainer's, so JSON shows
/// `0.9451`, not the `f64` widening `0.9451000094413756`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
struct Summary {
    epochs_run: u32,
    /// Epoch with the lowest validation loss (the kept weights).
    kept_epoch: Option<u32>,
    /// Validation accuracy of the kept epoch.
    val_accuracy: Option<f32>,
    best_val_accuracy: Option<f32>,
    test_accuracy: Option<f32>,
}

impl Summary {
    fn of(metrics: &[Metric]) -> Self {
        let mut s = Summary {
            kept_epoch: kept_epoch(metrics),
            ..Summary::default()
        };
        for m in metrics {
            match m.name.as_str() {
                "val_loss" => s.epochs_run = s.epochs_run.max(m.step),
                "val_accuracy" if m.value.is_finite() => {
                    let v = m.value as f32;
                    s.best_val_accuracy = Some(s.best_val_accuracy.map_or(v, |b| b.max(v)))
                }
                "test_accuracy" if m.value.is_finite() => s.test_accuracy = Some(m.value as f32),
                _ => {}
            }
        }
        s.val_accuracy = metrics
            .iter()
            .find(|m| {
                m.name == "val_accuracy" && Some(m.step) == s.kept_epoch && m.value.is_finite()
            })
            .map(|m| m.value as f32);
        s
    }
}

/// One `runs list --json` line: the run record's fields plus the summary.
#[derive(Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    info: &'a RunInfo,
    #[serde(flatten)]
    summary: Summary,
    duration_ms: u64,
}

/// Runs `pismo runs …`.
pub fn run(args: Args) -> Result<(), CliError> {
    match args.command {
        Command::List(a) => list(&crate::places::runs(&a.runs, &None, &a.store)?, a.json),
        Command::Show(a) => show(
            &crate::places::runs(&a.runs, &None, &a.store)?,
            &a.run,
            a.json,
        ),
        Command::Log(a) => {
            let log = crate::places::runs(&a.runs, &None, &a.store)?.log(&a.run)?;
            crate::out(&log)
        }
        Command::Export(a) => crate::mlflow::export_runs(
            &a.mlflow,
            &a.experiment,
            &crate::places::runs(&a.runs, &a.registry, &a.store)?,
            &crate::places::registry(&a.registry, &a.store)?,
            &a.run,
            a.json,
        ),
    }
}

fn list(runs: &Runs, json: bool) -> Result<(), CliError> {
    let (infos, problems) = runs.list_with_problems()?;
    for problem in &problems {
        eprintln!("warning: {problem}");
    }
    if infos.is_empty() && !json {
        eprintln!(
            "no runs in {}: start one with `pismo train`",
            runs.location()
        );
        return Ok(());
    }
    let mut table = text::Table::new(
        &[
            "id", "name", "status", "epochs", "val acc", "test acc", "duration", "model", "tags",
        ],
        &[3, 4, 5, 6],
    );
    for info in &infos {
        let summary = match runs.metrics(&info.run_id) {
            Ok(metrics) => Summary::of(&metrics),
            Err(e) => {
                eprintln!("warning: {e}");
                Summary::default()
            }
        };
        if json {
            crate::out_json(&Listed {
                info,
                summary,
                duration_ms: info.duration_ms(),
            })?;
            continue;
        }
        table.row(vec![
            info.run_id.clone(),
            info.name.clone(),
            info.status.to_string(),
            format!("{}/{}", summary.epochs_run, info.params.epochs),
            text::percent(summary.val_accuracy.map(f64::from)),
            text::percent(summary.test_accuracy.map(f64::from)),
            text::duration(info.duration_ms() as f64 / 1000.0),
            info.model.clone().unwrap_or_else(|| "-".to_owned()),
            tags(info),
        ]);
    }
    if json {
        return Ok(());
    }
    crate::out(&table.render())
}

/// `study=s1 trial=4`: a run's tags (`-` if none).
fn tags(info: &RunInfo) -> String {
    if info.tags.is_empty() {
        return "-".to_owned();
    }
    info.tags
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn show(runs: &Runs, id: &str, json: bool) -> Result<(), CliError> {
    let record = runs.get(id)?;
    if json {
        return crate::out_json(&record);
    }
    let info = &record.info;
    let summary = Summary::of(&record.metrics);
    let mut out = format!(
        "run       {}\nname      {}\nstatus    {}\nstarted   {} UTC\nduration  {}\nmodel     {}\n",
        info.run_id,
        info.name,
        info.status,
        text::utc(info.start_unix_ms / 1000),
        text::duration(info.duration_ms() as f64 / 1000.0),
        info.model.as_deref().unwrap_or("-"),
    );
    if let Some(error) = &info.error {
        out.push_str(&format!("error     {error}\n"));
    }
    if !info.tags.is_empty() {
        out.push_str(&format!("tags      {}\n", tags(info)));
    }
    out.push_str(&format!(
        "test acc  {}\ndataset   {}\nparams\n",
        text::percent(summary.test_accuracy.map(f64::from)),
        if info.dataset.is_empty() {
            "-"
        } else {
            &info.dataset
        },
    ));
    out.push_str(&text::hyper_block(&info.params, "  ", 88));

    // Per-epoch table: one row per step, one column per known metric.
    const COLUMNS: [(&str, &str, bool); 6] = [
        ("lr", "lr", false),
        ("train_loss", "train loss", false),
        ("train_accuracy", "train acc", true),
        ("val_loss", "val loss", false),
        ("val_accuracy", "val acc", true),
        ("epoch_seconds", "time", false),
    ];
    let mut epochs: BTreeMap<u32, BTreeMap<&str, f64>> = BTreeMap::new();
    for m in &record.metrics {
        if COLUMNS.iter().any(|(name, _, _)| *name == m.name) {
            epochs.entry(m.step).or_default().insert(&m.name, m.value);
        }
    }
    if epochs.is_empty() {
        out.push_str("\nno epoch finished yet\n");
        return crate::out(&out);
    }
    let mut header = vec!["epoch"];
    header.extend(COLUMNS.iter().map(|(_, title, _)| *title));
    let mut table = text::Table::new(&header, &(0..=COLUMNS.len()).collect::<Vec<_>>());
    for (step, values) in &epochs {
        let mut row = vec![step.to_string()];
        for (name, _, is_fraction) in COLUMNS {
            let v = values.get(name).copied();
            row.push(match name {
                "epoch_seconds" => v.map_or_else(|| "-".to_owned(), text::duration),
                _ if is_fraction => text::percent(v),
                _ => text::number(v, 4),
            });
        }
        table.row(row);
    }
    out.push('\n');
    out.push_str(&table.render());
    crate::out(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(step: u32, name: &str, value: f64) -> Metric {
        Metric {
            step,
            name: name.to_owned(),
            value,
            timestamp: 0,
        }
    }

    #[test]
    fn summary_takes_the_best_validation_and_the_last_test_accuracy() {
        let s = Summary::of(&[
            metric(1, "val_loss", 0.3),
            metric(1, "val_accuracy", 0.95),
            metric(2, "val_loss", 0.4),
            metric(2, "val_accuracy", 0.94),
            metric(1, "test_accuracy", 0.951),
        ]);
        assert_eq!(s.epochs_run, 2);
        assert_eq!(s.best_val_accuracy, Some(0.95));
        assert_eq!(s.test_accuracy, Some(0.951));
        // Epoch 1 has the lowest validation loss: its accuracy is the kept one.
        assert_eq!((s.kept_epoch, s.val_accuracy), (Some(1), Some(0.95)));
        let s = Summary::of(&[
            metric(1, "val_loss", 0.3),
            metric(1, "val_accuracy", 0.96),
            metric(2, "val_loss", 0.2),
            metric(2, "val_accuracy", 0.95),
        ]);
        assert_eq!((s.kept_epoch, s.val_accuracy), (Some(2), Some(0.95)));
        assert_eq!(s.best_val_accuracy, Some(0.96));
    }

    #[test]
    fn summary_ignores_nan_accuracies() {
        let s = Summary::of(&[
            metric(1, "val_loss", f64::NAN),
            metric(1, "val_accuracy", f64::NAN),
        ]);
        assert_eq!((s.epochs_run, s.best_val_accuracy), (1, None));
    }
}
