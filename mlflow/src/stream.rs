//! `pismo train --mlflow`: a training run sent to MLflow as it happens.

use pismo_storage::registry::Registry;
use pismo_storage::runs::Runs;
use pismo_training::recipe::Recipe;

use crate::client::Client;
use crate::export::{Exporter, MlflowRun};

/// Sends a training run to MLflow as it happens. The MLflow run is made when the session
/// starts, each epoch's metrics go as the epoch ends, and the end is an ordinary export
/// (which finds the run and sends what it lacks: the log, the model, its registration, the
/// status). The first failure ends the streaming with one warning; training is never
/// stopped by MLflow.
#[derive(Debug)]
pub struct Stream {
    client: Client,
    experiment: String,
    recipe: Option<Recipe>,
    state: State,
}

#[derive(Debug)]
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
    /// A stream through `client` (its URI checked), into `experiment`. `recipe` is the
    /// run's, when it is not the default (its params are sent at the start).
    pub fn new(client: Client, experiment: String, recipe: Option<Recipe>) -> Self {
        Self {
            client,
            experiment,
            recipe,
            state: State::Waiting,
        }
    }
    /// The session made run `run_id`: make its MLflow run. A warning line if that failed.
    pub fn started(&mut self, runs: &Runs, run_id: &str) -> Option<String> {
        let result = (|| {
            let info = runs.info(run_id).map_err(|e| e.to_string())?;
            let exporter = Exporter::connect(self.client.clone(), &self.experiment)
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
            self.client.uri(),
            self.experiment
        ))
    }
}
