//! `pismo tune`: a hyperparameter study. TPE picks each trial's settings, asynchronous
//! successive halving stops weak trials at epoch rungs, and every trial is an ordinary
//! training session with a run record tagged with the study and trial number.
//!
//! - [`display`]: the live table on stderr and the `--json` events: the study's observer.
//!
//! The study itself (worker threads, journal, best trial's model) is
//! `pismo_tuning::driver`, which `pismo serve` runs too.
//!
//! A study's journal is `<runs>/studies/NAME.jsonl` and its best model, until it is
//! registered, `<runs>/studies/NAME.best.pismo`; with a database as the store (`--store
//! postgres://…`), both are in the database ([`pismo_store::study`]) and `pismo tune`
//! processes on any hosts work on the study together. Flags are checked before MNIST is
//! loaded.

mod display;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argh::FromArgs;
use pismo_core::hyper::Hyper;
use pismo_digits::corpora;
use pismo_digits::mnist::TRAIN_DIGEST;
use pismo_storage::registry::{validate_alias, validate_name};
use pismo_storage::runs::Runs;
use pismo_storage::studies::journal::{
    FileJournal, JournalEvent, Registration, Replay, StudyStore,
};
use pismo_store::study::{self as shared, Join, OpenError, PgStudy};
use pismo_training::session;
use pismo_tuning::driver::{self, Best, Driver, Plan, DEFAULT_EPOCHS, ETA, MIN_EPOCHS};
use pismo_tuning::space::Space;
use serde_json::json;

use self::display::Display;
use crate::{text, CliError};

/// Search hyperparameters: TPE with successive halving; every trial is a run record.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "tune",
    example = "pismo tune --budget 10m --parallel 2 --alias best\npismo tune --trials 30 --study lr-search --space space.json\npismo tune --study lr-search --resume --trials 60",
    note = "Give --budget, --trials or both (whichever ends first; both count the whole study, across resumes). Studies live in <runs>/studies: NAME.jsonl (the journal) and NAME.best.pismo (the best trial's model). With --store postgres://… (or $PISMO_STORE) the study is kept in the database and several `pismo tune` processes, on any hosts, work on it together: start one with the study's settings, the others with --study NAME --resume. Each claims one trial at a time; a trial whose worker stops sending news for --lease is run again by another, and the last worker out registers the best model."
)]
pub struct Args {
    /// time budget of the study, e.g. 90s, 10m, 1h
    #[argh(option)]
    budget: Option<String>,
    /// number of trials of the study
    #[argh(option)]
    trials: Option<u32>,
    /// trials run at once, each on its share of the cores (default 1)
    #[argh(option, default = "1")]
    parallel: usize,
    /// JSON space file: {"initial_lr": {"log": [0.001, 0.3]}, "hidden_size": {"choice":
    /// [128, 256]}, …} (default: every setting a space can vary)
    #[argh(option)]
    space: Option<PathBuf>,
    /// study name (default: study-YYYYMMDD-HHMMSS)
    #[argh(option)]
    study: Option<String>,
    /// carry on the study named by --study
    #[argh(switch)]
    resume: bool,
    /// seed of the search and of every trial's training (default 1)
    #[argh(option)]
    seed: Option<u64>,
    /// epochs of a trial that is never stopped: the top rung (default 8)
    #[argh(option)]
    epochs: Option<u32>,
    /// training images held out for validation, the score of every trial (default 10000)
    #[argh(option)]
    val_size: Option<u32>,
    /// name to register the best model under (default: the study's name)
    #[argh(option)]
    name: Option<String>,
    /// register the best model and point this alias at it (repeatable)
    #[argh(option)]
    alias: Vec<String>,
    /// print one JSON event per line on stdout
    #[argh(switch)]
    json: bool,
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
    /// with a study in a database: how long a worker's claim on a trial lasts without news
    /// from it (default 60s); a dead worker's trial is run again once it has run out
    #[argh(option)]
    lease: Option<String>,
}

/// The duration `--{flag}` gives (`90s`, `10m`, `1h30m`), at least a second.
fn parse_duration(flag: &str, text: &str) -> Result<Duration, CliError> {
    let duration = humantime::parse_duration(text).map_err(|e| {
        CliError::usage(format!(
            "invalid --{flag} `{text}`: {e} (expected e.g. 90s, 10m or 1h)"
        ))
    })?;
    if duration < Duration::from_secs(1) {
        return Err(CliError::usage(format!(
            "--{flag} {text} is too short: give at least 1s"
        )));
    }
    Ok(duration)
}

/// The space of a space file, or the default one.
fn read_space(path: Option<&PathBuf>) -> Result<Space, CliError> {
    let Some(path) = path else {
        return Ok(Space::default_space());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("space file {}: {e}", path.display())))?;
    Space::from_json(&text)
        .map_err(|e| CliError::usage(format!("space file {}: {e}", path.display())))
}

/// The study's settings as its journal holds them (a resumed study keeps its own).
struct Settings {
    space: Space,
    seed: u64,
    base: Hyper,
}

impl Args {
    /// Checks the flags that need no file.
    fn check(&self) -> Result<(Option<f64>, usize, usize), CliError> {
        let budget = self
            .budget
            .as_deref()
            .map(|b| parse_duration("budget", b).map(|d| d.as_secs_f64()))
            .transpose()?;
        if budget.is_none() && self.trials.is_none() {
            return Err(CliError::usage(
                "give --budget (e.g. 10m) or --trials N, or both",
            ));
        }
        if self.trials == Some(0) {
            return Err(CliError::usage("--trials must be at least 1"));
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if self.parallel == 0 {
            return Err(CliError::usage("--parallel must be at least 1"));
        }
        if self.parallel > cores {
            return Err(CliError::usage(format!(
                "--parallel {} is more than the {cores} cores here: trials would compete for them",
                self.parallel
            )));
        }
        if self.resume && self.study.is_none() {
            return Err(CliError::usage(
                "--resume needs --study NAME: the study to carry on",
            ));
        }
        if let Some(study) = &self.study {
            validate_name(study).map_err(|e| CliError::usage(format!("--study: {e}")))?;
        }
        if let Some(name) = &self.name {
            validate_name(name)?;
        }
        for alias in &self.alias {
            validate_alias(alias)?;
        }
        Ok((budget, self.parallel, (cores / self.parallel).max(1)))
    }

    /// The store of study `study`: its journal in `studies`, or with a database as the
    /// store, the study in it (shared with other workers).
    fn open_study(
        &self,
        studies: &std::path::Path,
        study: &str,
    ) -> Result<Box<dyn StudyStore>, CliError> {
        if let Some(url) = crate::places::store_database(&self.registry, &self.store) {
            let lease = match &self.lease {
                Some(text) => parse_duration("lease", text)?,
                None => shared::DEFAULT_LEASE,
            };
            let join = if self.resume {
                Join::Resume
            } else {
                Join::Create
            };
            return match PgStudy::open(&url, study, join, lease) {
                Ok(s) => Ok(Box::new(s)),
                Err(e @ OpenError::Exists(_)) => Err(CliError::usage(e.to_string())),
                Err(e) => Err(CliError::failed(e.to_string())),
            };
        }
        if self.lease.is_some() {
            return Err(CliError::usage(
                "--lease applies to a study kept in a database (--store postgres://…), which several workers share",
            ));
        }
        let journal_path = studies.join(format!("{study}.jsonl"));
        if self.resume && !journal_path.exists() {
            return Err(CliError::failed(format!(
                "no study `{study}` to resume: {} does not exist",
                journal_path.display()
            )));
        }
        let journal = FileJournal::open(studies, study).map_err(CliError::failed)?;
        if !self.resume && !journal.is_empty().map_err(CliError::failed)? {
            return Err(CliError::usage(format!(
                "study `{study}` exists ({}): add --resume to carry it on, or choose another --study",
                journal.path().display()
            )));
        }
        Ok(Box::new(journal))
    }

    /// The settings of a new study, checked.
    fn fresh(&self) -> Result<Settings, CliError> {
        let space = read_space(self.space.as_ref())?;
        let d = Hyper::DEFAULT;
        let base = Hyper {
            epochs: self.epochs.unwrap_or(DEFAULT_EPOCHS),
            seed: self.seed.unwrap_or(1),
            val_size: self.val_size.unwrap_or(d.val_size),
            ..d
        };
        base.validate()
            .map_err(|e| CliError::usage(format!("{e} (--epochs, --seed or --val-size)")))?;
        if base.val_size == 0 {
            return Err(CliError::usage(
                "--val-size must be at least 1: trials are scored on the validation split",
            ));
        }
        // A point of the space that cannot train is refused now, not at its trial.
        driver::check_space(&space, &base).map_err(|e| CliError::usage(format!("space: {e}")))?;
        Ok(Settings {
            space,
            seed: base.seed,
            base,
        })
    }

    /// The settings a resumed study's journal holds; flags that would change them are
    /// refused.
    fn resumed(&self, replay: &Replay) -> Result<Settings, CliError> {
        for (given, flag) in [
            (self.space.is_some(), "--space"),
            (self.seed.is_some(), "--seed"),
            (self.epochs.is_some(), "--epochs"),
            (self.val_size.is_some(), "--val-size"),
        ] {
            if given {
                return Err(CliError::usage(format!(
                    "{flag} cannot change a study being resumed: it keeps the settings it began with"
                )));
            }
        }
        let Some(JournalEvent::Study {
            seed,
            space,
            max_epochs,
            base,
            ..
        }) = &replay.study
        else {
            return Err(CliError::failed(
                "the study's journal has no settings (it was never started)",
            ));
        };
        let space = Space::from_json(&space.to_string())
            .map_err(|e| CliError::failed(format!("the study's space: {e}")))?;
        let base = base.unwrap_or(Hyper {
            epochs: *max_epochs,
            seed: *seed,
            ..Hyper::DEFAULT
        });
        Ok(Settings {
            space,
            seed: *seed,
            base,
        })
    }
}

/// Runs `pismo tune`.
pub fn run(args: Args) -> Result<(), CliError> {
    let (budget, parallel, threads) = args.check()?;
    let registry = crate::places::registry(&args.registry, &args.store)?;
    let runs = crate::places::runs(&args.runs, &args.registry, &args.store)?;
    let data_dir = crate::places::data_dir(&args.data);
    let study = args.study.clone().unwrap_or_else(|| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        driver::default_study_name(now)
    });
    // A fresh study's settings are checked before its journal is made.
    let fresh = if args.resume {
        None
    } else {
        Some(args.fresh()?)
    };
    let mut store = args.open_study(&runs.studies_folder(), &study)?;
    let events = store.events().map_err(CliError::failed)?;
    let settings = match fresh {
        Some(s) => s,
        None => args.resumed(&Replay::of(&events))?,
    };
    let model_name = args.name.clone().unwrap_or_else(|| study.clone());
    let plan = Plan {
        study: study.clone(),
        model_name: model_name.clone(),
        space: settings.space,
        base: settings.base,
        seed: settings.seed,
        min_epochs: MIN_EPOCHS,
        eta: ETA,
        trials: args.trials,
        budget,
        parallel,
        threads,
        data_dir: data_dir.clone(),
        dataset: TRAIN_DIGEST.to_owned(),
        corpora_dir: corpora::default_dir(),
    };
    announce(&plan, &store.location());
    eprintln!("loading MNIST from {} …", data_dir.display());
    let (train, test) = session::load_data(&data_dir).map_err(CliError::failed)?;

    // The first Ctrl-C ends the study (running trials stop, the best is kept).
    let interrupted = crate::interrupt::first_stops("stopping the study");
    let display = Display::new(&study, limit(&args), args.json);
    let driver = Driver::new(&plan, store, display, &interrupted)?;
    let (outcome, mut store) = driver.run(&train, test.as_ref(), &registry, &runs)?;

    let Some(best) = &outcome.best else {
        return report_no_model(&study, &outcome, args.json);
    };
    let model = if args.alias.is_empty() {
        None
    } else {
        register_best(&plan, store.as_mut(), &args.alias, &registry, &runs)?
    };
    let command = train_command(&plan, best, &model_name);
    if args.json {
        return crate::out_json(&json!({"event": "done", "study": study,
            "trials": outcome.ended, "elapsed": outcome.elapsed, "cut_short": outcome.cut_short,
            "best": best, "model": model, "train_command": command}));
    }
    crate::out(&summary(
        &study,
        &outcome,
        best,
        model.as_deref(),
        &args.alias,
        &command,
    ))
}

/// The study's limit as the display shows it: trials, budget or both.
fn limit(args: &Args) -> String {
    match (args.trials, &args.budget) {
        (Some(n), Some(b)) => format!("{n} trials or {b}"),
        (Some(n), None) => format!("{n} trials"),
        (None, Some(b)) => format!("budget {b}"),
        (None, None) => String::new(),
    }
}

/// The study's first line on stderr: where it is kept, trials at once, threads, rungs.
fn announce(plan: &Plan, location: &str) {
    let (parallel, threads) = (plan.parallel, plan.threads);
    eprintln!(
        "study {} ({location}): {parallel} trial{} at once, {threads} thread{} each, rungs at epochs {:?} of {}",
        plan.study,
        if parallel == 1 { "" } else { "s" },
        if threads == 1 { "" } else { "s" },
        pismo_tuning::asha::Asha::new(MIN_EPOCHS, ETA, plan.base.epochs).rungs(),
        plan.base.epochs
    );
}

/// A study that ended without any trained model.
fn report_no_model(study: &str, outcome: &driver::Outcome, json: bool) -> Result<(), CliError> {
    if json {
        return crate::out_json(
            &json!({"event": "done", "study": study, "trials": outcome.ended,
            "elapsed": outcome.elapsed, "best": null, "model": null}),
        );
    }
    crate::out_line(&format!(
        "study {study} ended after {} with no trained model ({} trial{} ended)",
        text::duration(outcome.elapsed),
        outcome.ended,
        if outcome.ended == 1 { "" } else { "s" }
    ))
}

/// The lines a finished study prints on a terminal: its best trial, the registered model
/// or how to register it, and how to run trials that were cut short.
fn summary(
    study: &str,
    outcome: &driver::Outcome,
    best: &Best,
    model: Option<&str>,
    aliases: &[String],
    command: &str,
) -> String {
    let mut summary = format!(
        "study {study}: {} trial{} in {}; best trial {} (run {}): validation accuracy {}\n  {}\n",
        outcome.ended,
        if outcome.ended == 1 { "" } else { "s" },
        text::duration(outcome.elapsed),
        best.trial,
        best.run_id,
        text::percent(Some(best.val_accuracy)),
        display::settings(&best.values)
    );
    match model {
        Some(id) => {
            summary.push_str(&format!("registered {id}\n"));
            for alias in aliases {
                summary.push_str(&format!("alias {alias} now points at it\n"));
            }
        }
        None => summary.push_str(&format!(
            "to register this model: pismo tune --study {study} --resume --trials {} --alias A\n\
             to train these settings again: {command}\n",
            outcome.ended
        )),
    }
    if outcome.cut_short {
        summary.push_str(&format!(
            "trials were stopped unfinished: `pismo tune --study {study} --resume --trials N` (N \
             above {}, or a --budget above {}) runs them again\n",
            outcome.ended,
            text::duration(outcome.elapsed)
        ));
    }
    summary
}

/// Registers the study's best model, points the aliases at it and records it in the trial's
/// run; its id. Of a shared study's workers only the last one out registers it (the others
/// say so and return none).
fn register_best(
    plan: &Plan,
    store: &mut dyn StudyStore,
    aliases: &[String],
    registry: &pismo_storage::registry::Registry,
    runs: &Runs,
) -> Result<Option<String>, CliError> {
    let study = &plan.study;
    match store.take_registration().map_err(CliError::failed)? {
        Registration::Register(bytes) => {
            let id = driver::register_best(&bytes, &plan.model_name, aliases, registry, runs)?;
            Ok(Some(id.to_string()))
        }
        Registration::NoModel => Ok(None),
        Registration::OthersRunning => {
            eprintln!(
                "other workers still run trials of study {study}: the last of them to finish registers its best model"
            );
            Ok(None)
        }
        Registration::AlreadyRegistered => {
            eprintln!("study {study}'s best model was registered already, by another worker");
            Ok(None)
        }
    }
}

/// The `pismo train` command line that trains the best trial's settings.
fn train_command(plan: &Plan, best: &Best, name: &str) -> String {
    let mut cmd = format!("pismo train --name {name}");
    let augment = best.values.get("augment").is_some_and(|&v| v != 0.0);
    for (setting, v) in &best.values {
        let flag = setting.replace('_', "-");
        match setting.as_str() {
            "augment" | "deskew" => {
                if *v != 0.0 {
                    cmd.push_str(&format!(" --{flag}"));
                }
            }
            // Distortions only apply to augmented training.
            "elastic" | "shift" if !augment => {}
            // The value the trial trained with (settings are f32 in training).
            _ => cmd.push_str(&format!(" --{flag} {}", *v as f32)),
        }
    }
    let b = &plan.base;
    cmd.push_str(&format!(
        " --epochs {} --seed {} --val-size {}",
        b.epochs, b.seed, b.val_size
    ));
    cmd
}
