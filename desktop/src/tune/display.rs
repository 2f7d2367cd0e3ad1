//! What `pismo tune` shows while a study runs.
//!
//! On a terminal, stderr holds a table of the trials redrawn in place (an indicatif bar whose
//! message is the table): trial, state, epochs, validation accuracy, settings, with the
//! best so far and the elapsed time above it. Off a terminal, stderr gets plain lines: each
//! trial's start, epochs and end, and each new best. With `--json`, stdout gets one event per
//! line (`trial_started`, `epoch`, `trial_ended`, `best`; the command adds `done`).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pismo_storage::studies::journal::TrialState;
use pismo_tuning::driver::{Best, Observer};
use serde::Serialize;
use serde_json::json;

use crate::{text, CliError};

/// Rows of the live table: the latest trials.
const TABLE_ROWS: usize = 16;
/// The table is redrawn for training progress at most this often.
const REDRAW: Duration = Duration::from_millis(500);

/// A trial as the table shows it.
#[derive(Debug)]
struct Row {
    state: &'static str,
    epoch: u32,
    epochs: u32,
    score: Option<f64>,
    values: BTreeMap<String, f64>,
    /// Batches of the epoch in progress.
    batch: Option<(usize, usize)>,
}

/// The study's live output.
#[derive(Debug)]
pub struct Display {
    study: String,
    /// What ends the study, e.g. "20 trials" or "budget 10m".
    limit: String,
    json: bool,
    table: Option<ProgressBar>,
    rows: BTreeMap<u32, Row>,
    best: Option<(u32, f64)>,
    last_draw: Instant,
}

/// `0.00312`, `0.210`, `512`: a setting's value with three significant digits.
pub fn value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e9 {
        return format!("{v:.0}");
    }
    let digits = (2 - v.abs().log10().floor() as i32).clamp(0, 9) as usize;
    format!("{v:.digits$}")
}

/// `hidden_size 512, initial_lr 0.0312`: settings by name.
pub fn settings(values: &BTreeMap<String, f64>) -> String {
    values
        .iter()
        .map(|(k, v)| format!("{k} {}", value(*v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The short name of a setting in the table.
fn short(name: &str) -> &str {
    match name {
        "hidden_size" => "h",
        "dropout_rate" => "drop",
        "reg_lambda" => "l2",
        "initial_lr" => "lr",
        "decay" => "decay",
        "momentum" => "mom",
        "batch_size" => "batch",
        "augment" => "aug",
        "average" => "avg",
        other => other,
    }
}

impl Display {
    /// Output for study `study`; the table only when stderr is a terminal.
    pub fn new(study: &str, limit: String, json: bool) -> Display {
        let table = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{msg}") {
                bar.set_style(style);
            }
            bar
        });
        Display {
            study: study.to_owned(),
            limit,
            json,
            table,
            rows: BTreeMap::new(),
            best: None,
            last_draw: Instant::now(),
        }
    }

    fn line(&self, line: &str) {
        match &self.table {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn json(&self, value: &impl Serialize) -> Result<(), CliError> {
        if self.json {
            crate::out_json(value)?;
        }
        Ok(())
    }

    fn draw(&mut self, elapsed: f64) {
        let Some(bar) = &self.table else { return };
        self.last_draw = Instant::now();
        let mut table = text::Table::new(
            &["trial", "state", "epochs", "val acc", "settings"],
            &[0, 2, 3],
        );
        let skip = self.rows.len().saturating_sub(TABLE_ROWS);
        for (trial, row) in self.rows.iter().skip(skip) {
            let epochs = match row.batch {
                Some((done, total)) if row.state == "running" && total > 0 => {
                    format!("{}/{} {:>3}%", row.epoch, row.epochs, done * 100 / total)
                }
                _ => format!("{}/{}", row.epoch, row.epochs),
            };
            let settings = row
                .values
                .iter()
                .map(|(k, v)| format!("{} {}", short(k), value(*v)))
                .collect::<Vec<_>>()
                .join("  ");
            table.row(vec![
                trial.to_string(),
                row.state.to_owned(),
                epochs,
                text::percent(row.score),
                settings,
            ]);
        }
        let best = match self.best {
            Some((trial, acc)) => format!("best {} (trial {trial})", text::percent(Some(acc))),
            None => "best -".to_owned(),
        };
        bar.set_message(format!(
            "study {}: {}, {} ended, {best}, {}\n{}",
            self.study,
            self.limit,
            self.rows.values().filter(|r| r.state != "running").count(),
            text::duration(elapsed),
            table.render().trim_end()
        ));
    }
}

impl Observer for Display {
    type Error = CliError;

    /// The study (re)starts, with the best of earlier sessions.
    fn begin(&mut self, best: Option<&Best>, elapsed: f64) {
        self.best = best.map(|b| (b.trial, b.val_accuracy));
        if let Some(b) = best {
            self.line(&format!(
                "study {}: resumed at {}, best so far {} (trial {})",
                self.study,
                text::duration(elapsed),
                text::percent(Some(b.val_accuracy)),
                b.trial
            ));
        }
        self.draw(elapsed);
    }

    /// A trial started.
    fn started(
        &mut self,
        trial: u32,
        run_id: &str,
        values: &BTreeMap<String, f64>,
        elapsed: f64,
    ) -> Result<(), CliError> {
        self.rows.insert(
            trial,
            Row {
                state: "running",
                epoch: 0,
                epochs: 0,
                score: None,
                values: values.clone(),
                batch: None,
            },
        );
        if self.table.is_none() {
            self.line(&format!(
                "trial {trial} started (run {run_id}): {}",
                settings(values)
            ));
        }
        self.draw(elapsed);
        self.json(
            &json!({"event": "trial_started", "trial": trial, "run_id": run_id,
            "values": values, "elapsed": elapsed}),
        )
    }

    /// A trial ended an epoch.
    fn epoch(
        &mut self,
        trial: u32,
        epoch: u32,
        epochs: u32,
        score: f64,
        elapsed: f64,
    ) -> Result<(), CliError> {
        if let Some(row) = self.rows.get_mut(&trial) {
            row.epoch = epoch;
            row.epochs = epochs;
            row.score = Some(row.score.map_or(score, |s| s.max(score)));
            row.batch = None;
        }
        if self.table.is_none() {
            self.line(&format!(
                "trial {trial} epoch {epoch}/{epochs}: val acc {}",
                text::percent(Some(score))
            ));
        }
        self.draw(elapsed);
        self.json(&json!({"event": "epoch", "trial": trial, "epoch": epoch,
            "val_accuracy": score, "elapsed": elapsed}))
    }

    /// A trial is part-way through an epoch (only redraws the table, now and then).
    fn batch(&mut self, trial: u32, epoch: u32, done: usize, total: usize, elapsed: f64) {
        if let Some(row) = self.rows.get_mut(&trial) {
            row.batch = Some((done, total));
            row.epoch = row.epoch.max(epoch.saturating_sub(1));
        }
        if self.last_draw.elapsed() >= REDRAW {
            self.draw(elapsed);
        }
    }

    /// A trial ended.
    fn ended(
        &mut self,
        trial: u32,
        how: TrialState,
        score: Option<f64>,
        epochs: u32,
        error: Option<&str>,
        elapsed: f64,
    ) -> Result<(), CliError> {
        let state = how.as_str();
        if let Some(row) = self.rows.get_mut(&trial) {
            row.state = state;
            row.epoch = epochs;
            row.score = score;
            row.batch = None;
        }
        let why = error.map_or_else(String::new, |e| format!(": {e}"));
        if self.table.is_none() || error.is_some() {
            self.line(&format!(
                "trial {trial} {state} after {epochs} epoch{}: val acc {}{why}",
                if epochs == 1 { "" } else { "s" },
                text::percent(score)
            ));
        }
        self.draw(elapsed);
        self.json(
            &json!({"event": "trial_ended", "trial": trial, "state": state,
            "val_accuracy": score, "epochs": epochs, "error": error, "elapsed": elapsed}),
        )
    }

    /// A trial was stopped because the study is ending (it stays unfinished).
    fn stopped(&mut self, trial: u32, elapsed: f64) {
        if let Some(row) = self.rows.get_mut(&trial) {
            row.state = "stopped";
            row.batch = None;
        }
        self.line(&format!(
            "trial {trial} stopped unfinished (the study is ending; --resume runs it again)"
        ));
        self.draw(elapsed);
    }

    /// A new best trial.
    fn best(&mut self, best: &Best) -> Result<(), CliError> {
        self.best = Some((best.trial, best.val_accuracy));
        if self.table.is_none() {
            self.line(&format!(
                "best so far: trial {} with val acc {} at {}",
                best.trial,
                text::percent(Some(best.val_accuracy)),
                text::duration(best.elapsed)
            ));
        }
        self.draw(best.elapsed);
        self.json(
            &json!({"event": "best", "trial": best.trial, "run_id": best.run_id,
            "val_accuracy": best.val_accuracy, "val_loss": best.val_loss,
            "values": best.values, "elapsed": best.elapsed}),
        )
    }

    /// The study ended: the table stays on the terminal as last drawn.
    fn end(&mut self) {
        if let Some(bar) = self.table.take() {
            bar.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_three_significant_digits() {
        assert_eq!(value(512.0), "512");
        assert_eq!(value(0.003_123), "0.00312");
        assert_eq!(value(0.21), "0.210");
        assert_eq!(value(2.5), "2.50");
    }
}
