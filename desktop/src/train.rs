//! `pismo train`: one training session (`pismo_training::session`) with live progress.
//!
//! Everything is checked before MNIST is loaded (hyperparameters, model name, aliases), so a
//! typo is a usage error at once, not after the data loads. While training, stderr shows the
//! run id, the run's log as it is written (one line per epoch among them) and, when stderr is a terminal, a progress line redrawn in
//! place (epoch, batch bar, ETAs from the measured time per batch: [`etas`]). The result
//! goes to stdout: a short summary (the log's result lines, test accuracy and registered
//! model, are not repeated on stderr), or with `--json` one `{"event":"epoch",…}` object
//! per epoch and a final `{"event":"done",…}`.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use argh::FromArgs;
use pismo_core::hyper::{Hyper, Metrics};
use pismo_digits::mnist::TRAIN_DIGEST;
use pismo_storage::registry::{validate_alias, validate_name};
use pismo_training::recipe::Recipe;
use pismo_training::session::{self, SessionError, SessionEvent, TrainRequest};
use pismo_training::trainer::{EpochReport, Event, TrainError};
use serde::Serialize;

use crate::progress::Counter;
use crate::{mlflow, text, CliError};

/// Train a model on MNIST, record the run and register the model.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "train",
    note = "Hyperparameters not given take the defaults listed below: the original project's, except where docs/ARCHITECTURE.md gives a measured reason."
)]
pub struct Args {
    /// name to register the model under (default "mnist")
    #[argh(option, default = "String::from(\"mnist\")")]
    name: String,
    /// hidden units: 16, 32, 64, 128, 192, 256, 512, 1024, 2048 or 4096 (with --members, the
    /// committee's total)
    #[argh(option)]
    hidden_size: Option<u32>,
    /// probability of dropping a hidden unit while training, 0 <= p < 1
    #[argh(option)]
    dropout_rate: Option<f32>,
    /// L2 strength; the loss adds reg_lambda/(2m)·‖W‖² per batch of m
    #[argh(option)]
    reg_lambda: Option<f32>,
    /// learning rate of the first epoch
    #[argh(option)]
    initial_lr: Option<f32>,
    /// the same as --initial-lr (the original project's name)
    #[argh(option)]
    learning_rate: Option<f32>,
    /// learning-rate decay: lr(e) = initial_lr / (1 + decay·e)
    #[argh(option)]
    decay: Option<f32>,
    /// SGD momentum, 0 <= m < 1
    #[argh(option)]
    momentum: Option<f32>,
    /// mini-batch size
    #[argh(option)]
    batch_size: Option<u32>,
    /// maximum number of epochs
    #[argh(option)]
    epochs: Option<u32>,
    /// stop after this many epochs without a lower validation loss; 0 = never
    #[argh(option)]
    patience: Option<u32>,
    /// seed of every random choice
    #[argh(option)]
    seed: Option<u64>,
    /// training images held out for validation
    #[argh(option)]
    val_size: Option<u32>,
    /// randomly shift, rotate, scale and shear training digits, for drawn input
    #[argh(switch)]
    augment: bool,
    /// with --augment, also warp digits elastically by up to this many pixels (e.g. 2.5)
    #[argh(option, default = "0.0")]
    elastic: f32,
    /// with --augment, shift digits by up to this many pixels (default 2; 0 keeps them
    /// centred, as preprocessing does)
    #[argh(option)]
    shift: Option<f32>,
    /// deskew every input (training digits and, recorded in the model, every prediction's)
    #[argh(switch)]
    deskew: bool,
    /// keep the running average of the weights over about this many epochs instead of one
    /// epoch's weights (default 0: no averaging)
    #[argh(option, default = "0")]
    average: u32,
    /// also train on this many MNIST training digits redrawn with a canvas pen
    #[argh(option, default = "0")]
    redrawn: u32,
    /// also train on this many synthetic pen-written digits in common and European styles
    #[argh(option, default = "0")]
    synthetic: u32,
    /// also train on a shipped corpus: optdigits-train, semeion-train or unipen-train (repeatable)
    #[argh(option)]
    corpus: Vec<String>,
    /// times each corpus digit is seen per epoch (default 1)
    #[argh(option, default = "1")]
    oversample: u32,
    /// folder of the shipped corpora (default: $PISMO_DATASETS, else ./datasets)
    #[argh(option)]
    corpora: Option<PathBuf>,
    /// also train on a folder of corrected drawings, e.g. data/drawn (repeatable)
    #[argh(option)]
    extra: Vec<PathBuf>,
    /// times each corrected drawing is seen per epoch (default 20)
    #[argh(option, default = "20")]
    extra_repeat: u32,
    /// train this many networks, each of hidden-size/members units and its own seed, and
    /// join them into one model whose output is their mean (default 1)
    #[argh(option, default = "1")]
    members: u32,
    /// train only member K of a committee (seed + K, the validation split of seed), to join
    /// later with `pismo models join`
    #[argh(option, default = "0")]
    member: u32,
    /// training threads; 0 = all cores (default 0)
    #[argh(option, default = "0")]
    threads: usize,
    /// alias to point at the new model, e.g. default (repeatable)
    #[argh(option)]
    alias: Vec<String>,
    /// MNIST folder (default: $PISMO_DATA, else ./data/mnist)
    #[argh(option)]
    data: Option<PathBuf>,
    /// model registry folder (default: $PISMO_REGISTRY, else ./models)
    #[argh(option)]
    registry: Option<PathBuf>,
    /// model store in place of the registry folder, e.g. postgres://USER@HOST/DATABASE
    /// (default: $PISMO_STORE)
    #[argh(option)]
    store: Option<String>,
    /// run records folder (default: the --store database, else $PISMO_RUNS, else ./runs)
    #[argh(option)]
    runs: Option<PathBuf>,
    /// also send the run to this MLflow tracking server as it trains, e.g.
    /// http://127.0.0.1:5000 (if MLflow fails, one warning and training goes on)
    #[argh(option)]
    mlflow: Option<String>,
    /// with --mlflow, the MLflow experiment (default "pismo", created if missing)
    #[argh(option)]
    experiment: Option<String>,
    /// print one JSON object per epoch and a final one on stdout
    #[argh(switch)]
    json: bool,
    /// no progress or epoch lines on stderr
    #[argh(switch)]
    quiet: bool,
}

impl Args {
    /// The training-data recipe from the flags, checked.
    fn recipe(&self) -> Result<Recipe, CliError> {
        let recipe = Recipe {
            elastic: self.elastic,
            shift: self.shift.unwrap_or(Recipe::default().shift),
            deskew: self.deskew,
            average: self.average,
            redrawn: self.redrawn,
            synthetic: self.synthetic,
            corpora: self.corpus.clone(),
            oversample: self.oversample,
            extra: self.extra.clone(),
            extra_repeat: self.extra_repeat,
            members: self.members,
            member: self.member,
        };
        recipe
            .validate()
            .map_err(|e| CliError::usage(e.to_string()))?;
        if recipe.elastic > 0.0 && !self.augment {
            return Err(CliError::usage("--elastic needs --augment"));
        }
        if self.shift.is_some() && !self.augment {
            return Err(CliError::usage("--shift needs --augment"));
        }
        if self.members == 0 {
            return Err(CliError::usage("--members must be at least 1"));
        }
        Ok(recipe)
    }

    /// The hyperparameters: `Hyper::DEFAULT` with the flags given, checked.
    fn hyper(&self) -> Result<Hyper, CliError> {
        let initial_lr = match (self.initial_lr, self.learning_rate) {
            (Some(a), Some(b)) if a != b => {
                return Err(CliError::usage(format!(
                    "--initial-lr {a} and --learning-rate {b} disagree: they are the same \
                     setting, give one"
                )))
            }
            (a, b) => a.or(b),
        };
        let d = Hyper::DEFAULT;
        let hyper = Hyper {
            hidden_size: self.hidden_size.unwrap_or(d.hidden_size),
            dropout_rate: self.dropout_rate.unwrap_or(d.dropout_rate),
            reg_lambda: self.reg_lambda.unwrap_or(d.reg_lambda),
            initial_lr: initial_lr.unwrap_or(d.initial_lr),
            decay: self.decay.unwrap_or(d.decay),
            momentum: self.momentum.unwrap_or(d.momentum),
            batch_size: self.batch_size.unwrap_or(d.batch_size),
            epochs: self.epochs.unwrap_or(d.epochs),
            patience: self.patience.unwrap_or(d.patience),
            seed: self.seed.unwrap_or(d.seed),
            val_size: self.val_size.unwrap_or(d.val_size),
            augment: self.augment || d.augment,
        };
        hyper.validate().map_err(|e| {
            // Name the flag and echo the value: "invalid hidden_size: expected one of …
            // (got --hidden-size 100)".
            let value = text::hyper_fields(&hyper)
                .into_iter()
                .find(|(name, _)| *name == e.field)
                .map_or_else(String::new, |(_, value)| value);
            CliError::usage(format!("{e} (got --{} {value})", e.field.replace('_', "-")))
        })?;
        Ok(hyper)
    }
}

/// The last line of `--json` output.
#[derive(Serialize)]
struct Done<'a> {
    event: &'static str,
    model: Option<String>,
    bytes: Option<usize>,
    run_id: &'a str,
    status: &'static str,
    metrics: &'a Metrics,
}

/// What stderr shows while training.
struct Progress {
    /// Show a bar of each epoch's batches (not `--quiet`; only on a terminal).
    live: bool,
    /// Print the run id, log lines and epoch lines (not `--quiet`).
    lines: bool,
    /// Print the lines of the session's result too (test accuracy, registered model,
    /// aliases): with `--json`, whose stdout has them only as JSON.
    summary_lines: bool,
    /// The bar of the epoch in progress, and that epoch.
    bar: Option<(u32, Counter)>,
    /// Epochs of the run.
    epochs: u32,
    /// Wall time of the finished epochs (training and validation), as the trainer
    /// measured them.
    done_seconds: f64,
}

impl Progress {
    fn clear(&mut self) {
        if let Some((_, bar)) = self.bar.take() {
            bar.clear();
        }
    }

    fn line(&mut self, line: &str) {
        if self.lines {
            self.clear();
            eprintln!("{line}");
        }
    }

    /// A line of the session's result: on stdout's summary already, unless `--json`.
    fn summary_line(&mut self, line: &str) {
        if self.summary_lines {
            self.line(line);
        }
    }

    /// A line shown even with `--quiet` (MLflow's warnings and where the run went).
    fn warn(&mut self, line: &str) {
        self.clear();
        eprintln!("{line}");
    }

    /// `done` of `total` batches of `epoch` are done, `seconds` after its first began.
    fn batch(&mut self, epoch: u32, done: usize, total: usize, seconds: f32) {
        if !self.live || total == 0 {
            return;
        }
        if self.bar.as_ref().is_none_or(|(e, _)| *e != epoch) {
            self.clear();
            let bar = Counter::start_own_eta(total as u64);
            self.bar = Some((epoch, bar));
        }
        let Some((_, bar)) = &self.bar else { return };
        let (epoch_eta, run_eta) = etas(
            epoch,
            self.epochs,
            done,
            total,
            f64::from(seconds),
            self.done_seconds,
        );
        bar.set_message(format!(
            "epoch {epoch}/{}, eta {} (run eta {})",
            self.epochs,
            text::duration(epoch_eta),
            text::duration(run_eta)
        ));
        bar.set_position(done as u64);
    }

    fn epoch(&mut self, r: &EpochReport) {
        self.done_seconds += f64::from(r.seconds);
        let mut line = session::epoch_line(r);
        if r.epoch < r.epochs && r.eta_seconds.is_finite() {
            line.push_str(&format!(
                "  eta {}",
                text::duration(f64::from(r.eta_seconds))
            ));
        }
        self.line(&line);
    }
}

/// Seconds left in epoch `epoch` (1-based, of `epochs`) and in the whole run, when `done`
/// of its `total` batches took `seconds` and the epochs before it `done_seconds` in all:
/// measured time per batch times the batches left, this epoch's pace for the rest of it
/// and the run's for the epochs after it. Nothing is timed before the trainer's first
/// batch (loading, the extra data), so the pace is that of training itself; within the
/// first epoch it leaves out the validation pass of each epoch (a few per cent), which the
/// finished epochs' times then include.
fn etas(
    epoch: u32,
    epochs: u32,
    done: usize,
    total: usize,
    seconds: f64,
    done_seconds: f64,
) -> (f64, f64) {
    let done = done.clamp(1, total.max(1)) as f64;
    let total = total.max(1) as f64;
    let epoch_left = seconds / done * (total - done);
    let run_done = f64::from(epoch.saturating_sub(1)) * total + done;
    let later = f64::from(epochs.saturating_sub(epoch)) * total;
    let run_left = epoch_left + (done_seconds + seconds) / run_done * later;
    (epoch_left, run_left)
}

/// The defaults of the hyperparameters, appended to `pismo train --help` (argh's help text
/// is static; this is computed from `Hyper::DEFAULT`, so it cannot go stale).
pub fn help_defaults() -> String {
    format!(
        "Defaults:\n{}",
        text::hyper_block(&Hyper::DEFAULT, "  ", 80)
    )
}

/// Runs `pismo train`.
pub fn run(args: Args) -> Result<(), CliError> {
    let hyper = args.hyper()?;
    let recipe = args.recipe()?;
    check_names_and_size(&args, &hyper, &recipe)?;
    let mlflow = mlflow_stream(&args, &recipe)?;
    let data_dir = crate::places::data_dir(&args.data);
    let registry = crate::places::registry(&args.registry, &args.store)?;
    let runs = crate::places::runs(&args.runs, &args.registry, &args.store)?;
    let progress = Progress {
        live: !args.quiet,
        lines: !args.quiet,
        summary_lines: args.json,
        bar: None,
        epochs: hyper.epochs,
        done_seconds: 0.0,
    };
    let mut follower = Follower {
        progress,
        mlflow,
        run_id: None,
        bytes: None,
        write_error: None,
        json: args.json,
    };
    follower
        .progress
        .line(&format!("loading MNIST from {} …", data_dir.display()));
    let (train, test) = session::load_data(&data_dir).map_err(session_error)?;
    let request = TrainRequest {
        name: args.name.clone(),
        hyper,
        data_dir,
        threads: args.threads,
        aliases: args.alias.clone(),
        recipe,
        corpora_dir: crate::places::corpora_dir(&args.corpora),
        tags: Vec::new(),
        register: true,
    };

    // The first Ctrl-C stops training after the batch at hand; the session keeps the best
    // weights so far, evaluates and registers them, as the web page's Stop does.
    let interrupted =
        crate::interrupt::first_stops("stopping: the best weights so far will be registered");
    let result = session::run_with_data(
        &request,
        &train,
        test.as_ref(),
        TRAIN_DIGEST,
        &registry,
        &runs,
        &mut |event| {
            if interrupted.load(Ordering::SeqCst) {
                return ControlFlow::Break(());
            }
            follower.follow(event, &args.name, &runs)
        },
    );
    follower.progress.clear();
    // Whatever the session's end, MLflow gets the run as recorded (a failed one too).
    if let Some((stream, id)) = follower.mlflow.as_mut().zip(follower.run_id.as_deref()) {
        if let Some(line) = stream.finish(&runs, &registry, id) {
            follower.progress.warn(&line);
        }
    }
    let finished = result.map_err(session_error)?;
    if let Some(e) = follower.write_error {
        return Err(e);
    }
    let bytes = follower.bytes;
    if args.json {
        return crate::out_json(&Done {
            event: "done",
            model: finished.model.as_ref().map(ToString::to_string),
            bytes,
            run_id: &finished.run_id,
            status: finished.status.as_str(),
            metrics: &finished.metrics,
        });
    }
    let tested = test.as_ref().map_or(0, |t| t.len());
    crate::out(&summary(&finished, tested, bytes, &args.alias))
}

/// The model name, the aliases and the committee's split of `--hidden-size`, checked before
/// anything is loaded.
fn check_names_and_size(args: &Args, hyper: &Hyper, recipe: &Recipe) -> Result<(), CliError> {
    if recipe.member_hidden(hyper.hidden_size).is_none() {
        return Err(CliError::usage(format!(
            "--hidden-size {} does not split into {} members of a supported hidden size \
             (e.g. --hidden-size 4096 --members 2 trains two of 2048)",
            hyper.hidden_size, recipe.members
        )));
    }
    validate_name(&args.name)?;
    for alias in &args.alias {
        validate_alias(alias)?;
    }
    Ok(())
}

/// The MLflow stream `--mlflow` (and `--experiment`) ask for, if any.
fn mlflow_stream(args: &Args, recipe: &Recipe) -> Result<Option<pismo_mlflow::Stream>, CliError> {
    match (&args.mlflow, &args.experiment) {
        (Some(uri), experiment) => {
            let experiment = experiment
                .clone()
                .unwrap_or_else(|| mlflow::DEFAULT_EXPERIMENT.to_owned());
            let uri = mlflow::check_flags(uri, &experiment)?;
            let recipe = (!recipe.is_default()).then(|| recipe.clone());
            Ok(Some(mlflow::stream(&uri, experiment, recipe)))
        }
        (None, Some(_)) => Err(CliError::usage("--experiment needs --mlflow")),
        (None, None) => Ok(None),
    }
}

/// What `pismo train` does with each event of the training session: progress on the
/// terminal, the run streamed to MLflow, `--json` lines.
struct Follower {
    progress: Progress,
    mlflow: Option<pismo_mlflow::Stream>,
    run_id: Option<String>,
    /// The registered model's size.
    bytes: Option<usize>,
    /// Stdout went away under `--json`.
    write_error: Option<CliError>,
    json: bool,
}

impl Follower {
    fn follow(
        &mut self,
        event: SessionEvent<'_>,
        name: &str,
        runs: &pismo_storage::runs::Runs,
    ) -> ControlFlow<()> {
        match event {
            SessionEvent::Started { run_id } => {
                self.progress
                    .line(&format!("run {run_id}: training model `{name}`"));
                self.run_id = Some(run_id.to_owned());
                if let Some(warning) = self.mlflow.as_mut().and_then(|m| m.started(runs, run_id)) {
                    self.progress.warn(&warning);
                }
            }
            SessionEvent::Train(Event::Log(line)) => self.progress.line(line),
            SessionEvent::Train(Event::Batch {
                epoch,
                done,
                total,
                seconds,
            }) => self.progress.batch(epoch, done, total, seconds),
            SessionEvent::Train(Event::Epoch(report)) => {
                self.progress.epoch(report);
                let streamed = self.mlflow.as_mut().zip(self.run_id.as_deref());
                if let Some(warning) = streamed.and_then(|(m, id)| m.epoch(runs, id)) {
                    self.progress.warn(&warning);
                }
                if self.json {
                    if let Err(e) = print_epoch(report) {
                        // Stdout is gone: nobody reads the result, stop training.
                        self.write_error = Some(e);
                        return ControlFlow::Break(());
                    }
                }
            }
            SessionEvent::Registered { bytes, .. } => self.bytes = Some(bytes),
            SessionEvent::Line(line) => self.progress.line(line),
            SessionEvent::Summary(line) => self.progress.summary_line(line),
        }
        ControlFlow::Continue(())
    }
}

/// The lines a finished `pismo train` prints on a terminal (`tested`: MNIST test images).
fn summary(
    finished: &session::Finished,
    tested: usize,
    bytes: Option<usize>,
    aliases: &[String],
) -> String {
    let m = &finished.metrics;
    let mut summary = String::new();
    if let Some(acc) = m.test_accuracy {
        summary.push_str(&format!(
            "test accuracy {} ({tested} MNIST test images)\n",
            text::percent(Some(f64::from(acc))),
        ));
    }
    summary.push_str(&format!(
        "validation accuracy {} (weights of epoch {}, {} epochs run)\n",
        text::percent(Some(f64::from(m.val_accuracy))),
        m.best_epoch,
        m.epochs_run
    ));
    match &finished.model {
        Some(model) => summary.push_str(&format!(
            "registered {model} ({}), run {}\n",
            text::bytes(bytes.unwrap_or(0) as u64),
            finished.run_id
        )),
        None => summary.push_str(&format!(
            "no model registered (stopped before the first epoch ended), run {}\n",
            finished.run_id
        )),
    }
    for alias in aliases {
        summary.push_str(&format!("alias {alias} now points at it\n"));
    }
    summary
}

/// One `--json` line per epoch: `{"event":"epoch", …the report's fields}`.
#[derive(Serialize)]
struct EpochLine<'a> {
    event: &'static str,
    #[serde(flatten)]
    report: &'a EpochReport,
}

fn print_epoch(report: &EpochReport) -> Result<(), CliError> {
    crate::out_json(&EpochLine {
        event: "epoch",
        report,
    })
}

fn session_error(e: SessionError) -> CliError {
    match e {
        SessionError::Train(TrainError::Hyper(e)) => CliError::usage(e),
        SessionError::Registry(e) => e.into(),
        e => CliError::failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_defaults_list_every_hyperparameter() {
        let text = help_defaults();
        for (name, value) in text::hyper_fields(&Hyper::DEFAULT) {
            assert!(
                text.contains(&format!("{name} {value}")),
                "{name} missing: {text}"
            );
        }
    }

    fn parse(args: &[&str]) -> Args {
        Args::from_args(&["pismo", "train"], args).expect("parses")
    }

    #[test]
    fn learning_rate_is_an_alias_of_initial_lr() {
        assert_eq!(
            parse(&["--learning-rate", "0.05"])
                .hyper()
                .unwrap()
                .initial_lr,
            0.05
        );
        assert_eq!(parse(&[]).hyper().unwrap(), Hyper::DEFAULT);
        assert!(matches!(
            parse(&["--learning-rate", "0.05", "--initial-lr", "0.2"]).hyper(),
            Err(CliError::Usage(_))
        ));
    }

    #[test]
    fn out_of_range_values_are_usage_errors_naming_the_flag() {
        let Err(CliError::Usage(msg)) = parse(&["--dropout-rate", "1.5"]).hyper() else {
            panic!("accepted --dropout-rate 1.5");
        };
        assert!(
            msg.contains("dropout_rate") && msg.contains("--dropout-rate 1.5"),
            "{msg}"
        );
    }

    /// Issue 28: the first epoch's ETA read about half the time left. The estimate is the
    /// measured time per batch times the batches left, in this epoch and in the run.
    #[test]
    fn issue28_etas_are_the_measured_pace_times_the_work_left() {
        // A quarter of epoch 1 of 4 took 1 s: 3 s left in it, 15 s in the run.
        let (epoch, run) = etas(1, 4, 100, 400, 1.0, 0.0);
        assert!((epoch - 3.0).abs() < 1e-9, "{epoch}");
        assert!((run - 15.0).abs() < 1e-9, "{run}");
        // Epoch 2, half done in 2 s, after a first epoch of 5 s (its validation included):
        // 2 s left in it at its pace, then 400 batches at the run's, 600 batches in 7 s.
        let (epoch, run) = etas(2, 3, 200, 400, 2.0, 5.0);
        assert!((epoch - 2.0).abs() < 1e-9, "{epoch}");
        assert!((run - (2.0 + 7.0 / 600.0 * 400.0)).abs() < 1e-9, "{run}");
        // The last batch: nothing left; no batch yet counts as one, never a division by 0.
        assert_eq!(etas(4, 4, 400, 400, 3.0, 9.0), (0.0, 0.0));
        let (epoch, run) = etas(1, 2, 0, 400, 0.5, 0.0);
        assert!(epoch.is_finite() && run.is_finite());
    }
}
