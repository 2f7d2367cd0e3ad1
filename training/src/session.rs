//! A whole training run, as `pismo train`, the web page and tests start it: load MNIST,
//! open a run record, train with progress events, register the model with its run, set
//! aliases, and close the run with its final status — whatever happens on the way.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::recipe::{Recipe, RecipeError};
use crate::trainer::{self, EpochReport, Event, Outcome, Part, TrainError, TrainSet};
use pismo_core::format::Meta;
use pismo_core::hyper::{Hyper, Metrics};
use pismo_digits::mnist::{self, Dataset, MnistError, Split};
use pismo_engine::model::AnyMlp;
use pismo_storage::registry::{ModelId, Registry, RegistryError};
use pismo_storage::runs::{RunWriter, Runs, RunsError, Status};

/// What to train and where to put it.
#[derive(Clone, Debug)]
pub struct TrainRequest {
    /// Registered model name.
    pub name: String,
    /// Hyperparameters.
    pub hyper: Hyper,
    /// Folder holding MNIST.
    pub data_dir: PathBuf,
    /// Threads for training (0 = all cores).
    pub threads: usize,
    /// Aliases to point at the new model once it is registered.
    pub aliases: Vec<String>,
    /// What to learn from besides MNIST ([`Recipe::default`]: MNIST only).
    pub recipe: Recipe,
    /// Folder of the shipped corpora the recipe may name.
    pub corpora_dir: PathBuf,
    /// Tags of the run record, e.g. `("study", "s1")` and `("trial", "4")`.
    pub tags: Vec<(String, String)>,
    /// Register the kept model (and point `aliases` at it). If false, nothing is registered:
    /// the model is handed back in [`Finished::kept`] (a trial of `pismo tune`, of which
    /// only the best is registered).
    pub register: bool,
}

/// Progress of a session: the trainer's events plus the run and the registered model.
#[derive(Debug)]
pub enum SessionEvent<'a> {
    /// The run record exists.
    Started {
        /// Its id.
        run_id: &'a str,
    },
    /// An event of the trainer. Its log lines, and one line per epoch ([`epoch_line`]), are
    /// in the run's log.
    Train(Event<'a>),
    /// A line the session itself wrote to the run's log (the recipe, members, errors,
    /// a stop): with the `Train` events and [`SessionEvent::Summary`], the whole log as it
    /// is written.
    Line(&'a str),
    /// A line of the run's log that states the session's result: the test accuracy, the
    /// registered model, an alias set. A front end that prints the result itself
    /// (`pismo train`'s summary on stdout) need not show these again.
    Summary(&'a str),
    /// The model is in the registry.
    Registered {
        /// Its name and version.
        id: &'a ModelId,
        /// Its file size in bytes.
        bytes: usize,
    },
}

/// The end of a session that ran.
#[derive(Debug)]
pub struct Finished {
    /// The run record.
    pub run_id: String,
    /// The registered model (none if cancelled before the first epoch ended, or if the
    /// request did not register it).
    pub model: Option<ModelId>,
    /// The kept model when the request did not register it (none if cancelled before the
    /// first epoch ended).
    pub kept: Option<AnyMlp>,
    /// Final metrics.
    pub metrics: Metrics,
    /// Per-epoch reports.
    pub history: Vec<EpochReport>,
    /// How the run ended.
    pub status: Status,
}

/// Why a session failed.
#[derive(Debug)]
pub enum SessionError {
    /// MNIST could not be loaded.
    Data(MnistError),
    /// The trainer refused the request.
    Train(TrainError),
    /// The run record could not be written.
    Runs(RunsError),
    /// The model could not be registered.
    Registry(RegistryError),
    /// The training-data recipe could not be made.
    Recipe(RecipeError),
}

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionError::Data(e) => e.fmt(f),
            SessionError::Train(e) => e.fmt(f),
            SessionError::Runs(e) => e.fmt(f),
            SessionError::Registry(e) => e.fmt(f),
            SessionError::Recipe(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SessionError {}

/// Loads the training split (and the test split if present: it only adds the test accuracy).
pub fn load_data(dir: &std::path::Path) -> Result<(Dataset, Option<Dataset>), SessionError> {
    let train = mnist::load_split(dir, Split::Train).map_err(SessionError::Data)?;
    let test = mnist::load_split(dir, Split::Test).ok();
    Ok((train, test))
}

/// Runs a whole training session on data already loaded.
///
/// In steps: check the request ([`check_request`]), open the run and log what is unusual
/// about it ([`open_notes`]), train every network ([`train_members`]) and join a
/// committee ([`join`]), log how it ended and its test accuracy ([`note_end`]), then hand
/// back or register the kept model ([`register_kept`]) and close the run. Every failure
/// after the run is opened closes it as failed ([`fail`]).
pub fn run_with_data(
    req: &TrainRequest,
    train: &Dataset,
    test: Option<&Dataset>,
    dataset: &str,
    registry: &Registry,
    runs: &Runs,
    on_event: &mut dyn FnMut(SessionEvent<'_>) -> ControlFlow<()>,
) -> Result<Finished, SessionError> {
    let member_hidden = check_request(req)?;
    let members = req.recipe.committee_size();
    let mut run = runs
        .create(&req.name, &req.hyper, dataset)
        .map_err(SessionError::Runs)?;
    let run_id = run.id().to_owned();
    for (key, value) in &req.tags {
        run.set_tag(key, value);
    }
    let mut stop = on_event(SessionEvent::Started { run_id: &run_id }).is_break();
    open_notes(&mut run, req, test, on_event);
    let hyper = Hyper {
        hidden_size: member_hidden,
        ..req.hyper
    };
    let members_run = MembersRun {
        req,
        hyper: &hyper,
        members,
        train,
        test,
    };
    let mut trained = match members_run.train_all(&mut run, &mut stop, on_event) {
        Ok(trained) => trained,
        Err(e) => return Err(fail(run, on_event, e)),
    };
    let outcome = if members > 1 {
        join(req, &mut trained, train, test, members, &mut run, on_event)
    } else {
        trained.pop().expect("one network was trained")
    };
    let status = note_end(&mut run, &outcome, test, on_event);
    let mut model = None;
    let mut kept = None;
    if outcome.metrics.best_epoch > 0 && !req.register {
        note(
            &mut run,
            on_event,
            "model not registered: handed to the caller (a study registers only its best trial's)",
        );
        kept = Some(outcome.model);
    } else if outcome.metrics.best_epoch > 0 {
        let meta = ModelMeta {
            name: &req.name,
            hyper: req.hyper,
            metrics: outcome.metrics,
            run_id: &run_id,
            dataset,
            parent: "",
        };
        match register_kept(&mut run, registry, req, &outcome.model, &meta, on_event) {
            Ok(id) => model = Some(id),
            Err(e) => return Err(fail(run, on_event, SessionError::Registry(e))),
        }
    } else {
        note(
            &mut run,
            on_event,
            "stopped before the first epoch ended: no model registered",
        );
    }
    run.finish(status, None);
    Ok(Finished {
        run_id,
        model,
        kept,
        metrics: outcome.metrics,
        history: outcome.history,
        status,
    })
}

/// Checks the hyperparameters, the recipe, the name and the aliases before anything is
/// written: the hidden size of each network (of each member for a committee).
fn check_request(req: &TrainRequest) -> Result<u32, SessionError> {
    req.hyper
        .validate()
        .map_err(|e| SessionError::Train(TrainError::Hyper(e)))?;
    req.recipe.validate().map_err(SessionError::Recipe)?;
    pismo_storage::registry::validate_name(&req.name).map_err(SessionError::Registry)?;
    for alias in &req.aliases {
        pismo_storage::registry::validate_alias(alias).map_err(SessionError::Registry)?;
    }
    req.recipe
        .member_hidden(req.hyper.hidden_size)
        .ok_or(SessionError::Recipe(RecipeError::Range(
            "invalid members: the hidden size must split into members of a supported size \
             (e.g. hidden_size 4096 with 2 members of 2048)",
        )))
}

/// Logs, at the start of a run, that the test split is missing and the recipe when it is
/// not the default.
fn open_notes(
    run: &mut RunWriter,
    req: &TrainRequest,
    test: Option<&Dataset>,
    on_event: &mut dyn FnMut(SessionEvent<'_>) -> ControlFlow<()>,
) {
    if test.is_none() {
        note(
            run,
            on_event,
            "MNIST test split not found: the model's test accuracy is not measured",
        );
    }
    if !req.recipe.is_default() {
        let recipe = serde_json::to_string(&req.recipe).unwrap_or_default();
        note(run, on_event, &format!("{RECIPE_LINE}{recipe}"));
    }
}

/// The networks of a session: one, or a committee's members one after another.
struct MembersRun<'a> {
    req: &'a TrainRequest,
    /// Every network's hyperparameters (a member's hidden size).
    hyper: &'a Hyper,
    /// Networks to train (1: no committee).
    members: u32,
    train: &'a Dataset,
    test: Option<&'a Dataset>,
}

impl MembersRun<'_> {
    /// Trains the networks in order, each member announced with its seed; stops after one
    /// that was cancelled. The outcomes so far, or the first error.
    fn train_all(
        &self,
        run: &mut RunWriter,
        stop: &mut bool,
        on_event: &mut dyn FnMut(SessionEvent<'_>) -> ControlFlow<()>,
    ) -> Result<Vec<Outcome>, SessionError> {
        let (req, hyper, members) = (self.req, self.hyper, self.members);
        let mut trained = Vec::new();
        for k in 0..members {
            let member = if members > 1 { k } else { req.recipe.member };
            if members > 1 {
                let line = format!(
                    "member {}/{members}: 784-{}-10, seed {} (validation split of seed {})",
                    k + 1,
                    hyper.hidden_size,
                    trainer::member_seed(hyper.seed, member),
                    hyper.seed
                );
                note(run, on_event, &line);
            }
            let one = Member {
                hyper,
                member,
                step_offset: k * hyper.epochs,
            };
            let outcome = one.train(req, self.train, self.test, run, stop, on_event)?;
            let cancelled = outcome.cancelled;
            trained.push(outcome);
            if cancelled {
                break;
            }
        }
        Ok(trained)
    }
}

/// Logs a stop on request and the test accuracy (also a metric of the kept epoch): the
/// run's status.
fn note_end(
    run: &mut RunWriter,
    outcome: &Outcome,
    test: Option<&Dataset>,
    on_event: &mut dyn FnMut(SessionEvent<'_>) -> ControlFlow<()>,
) -> Status {
    let status = if outcome.cancelled {
        let epochs = outcome.metrics.epochs_run;
        let plural = if epochs == 1 { "" } else { "s" };
        let line = format!("stopped on request after {epochs} full epoch{plural}");
        note(run, on_event, &line);
        Status::Stopped
    } else {
        Status::Finished
    };
    if let Some(acc) = outcome.metrics.test_accuracy {
        run.log_metric(outcome.metrics.best_epoch, "test_accuracy", acc as f64);
        let line = format!(
            "test accuracy {:.2} % ({} MNIST test images)",
            acc * 100.0,
            test.map_or(0, Dataset::len)
        );
        note_result(run, on_event, &line);
    }
    status
}

/// Registers the kept `model` with `meta`, records it in the run, points `req.aliases` at
/// it (each logged) and reports [`SessionEvent::Registered`]: its id.
fn register_kept(
    run: &mut RunWriter,
    registry: &Registry,
    req: &TrainRequest,
    model: &AnyMlp,
    meta: &ModelMeta<'_>,
    on_event: &mut dyn FnMut(SessionEvent<'_>) -> ControlFlow<()>,
) -> Result<ModelId, RegistryError> {
    let (id, size) = register(registry, model, meta)?;
    run.set_model(&id);
    note_result(run, on_event, &format!("registered {id} ({size} bytes)"));
    for alias in &req.aliases {
        registry.set_alias(alias, &id)?;
        note_result(run, on_event, &format!("alias {alias} -> {id}"));
    }
    let _ = on_event(SessionEvent::Registered {
        id: &id,
        bytes: size,
    });
    Ok(id)
}

/// Logs `err` and closes the run as failed with its text; returns `err`.
fn fail(
    mut run: RunWriter,
    on_event: &mut dyn FnMut(SessionEvent<'_>) -> ControlFlow<()>,
    err: SessionError,
) -> SessionError {
    let msg = err.to_string();
    note(&mut run, on_event, &format!("error: {msg}"));
    run.finish(Status::Failed, Some(&msg));
    err
}

/// The start of the log line recording a run's recipe (as JSON) when it is not the default.
pub const RECIPE_LINE: &str = "recipe ";

/// The recipe a run's log records ([`RECIPE_LINE`]); `None` for the default recipe (no such
/// line) or a line that does not parse.
pub fn recorded_recipe(log: &str) -> Option<Recipe> {
    log.lines()
        .find_map(|line| line.strip_prefix(RECIPE_LINE))
        .and_then(|json| serde_json::from_str(json).ok())
}

/// What a model file records about where a model came from.
#[derive(Clone, Copy, Debug)]
pub struct ModelMeta<'a> {
    /// Registered name.
    pub name: &'a str,
    /// Hyperparameters it was trained with.
    pub hyper: Hyper,
    /// Its final metrics.
    pub metrics: Metrics,
    /// The run that trained it.
    pub run_id: &'a str,
    /// What it was trained on.
    pub dataset: &'a str,
    /// `NAME@V` of the model it was derived from (empty for a model trained from scratch).
    pub parent: &'a str,
}

/// Registers `model` as the next version of `meta.name`: its id and file size.
pub fn register(
    registry: &Registry,
    model: &AnyMlp,
    meta: &ModelMeta<'_>,
) -> Result<(ModelId, usize), RegistryError> {
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut size = 0;
    let id = registry.register(meta.name, &mut |version| {
        let file_meta = Meta {
            name: meta.name,
            version,
            created_unix: created,
            hyper: meta.hyper,
            metrics: meta.metrics,
            run_id: meta.run_id,
            dataset: meta.dataset,
            parent: meta.parent,
            deskew: model.deskew(),
        };
        let bytes = model.encode(&file_meta);
        size = bytes.len();
        bytes
    })?;
    Ok((id, size))
}

/// Writes `line` to the run's log and reports it.
fn note(
    run: &mut RunWriter,
    on_event: &mut dyn FnMut(SessionEvent<'_>) -> ControlFlow<()>,
    line: &str,
) {
    run.log_line(line);
    let _ = on_event(SessionEvent::Line(line));
}

/// Writes a line of the session's result to the run's log and passes it on as
/// [`SessionEvent::Summary`].
fn note_result(
    run: &mut RunWriter,
    on_event: &mut dyn FnMut(SessionEvent<'_>) -> ControlFlow<()>,
    line: &str,
) {
    run.log_line(line);
    let _ = on_event(SessionEvent::Summary(line));
}

/// One line of the training log for an epoch.
pub fn epoch_line(r: &EpochReport) -> String {
    let parts: String = r
        .parts
        .iter()
        .map(|(name, acc)| format!("  {name} {:.2}%", acc * 100.0))
        .collect();
    format!(
        "epoch {}/{}  lr {:.4}  train loss {:.4} acc {:.2}%  val loss {:.4} acc {:.2}%{parts}  {:.1}s{}",
        r.epoch,
        r.epochs,
        r.lr,
        r.train_loss,
        r.train_accuracy * 100.0,
        r.val_loss,
        r.val_accuracy * 100.0,
        r.seconds,
        if r.improved { "  *" } else { "" }
    )
}

/// One network of a session (the only one, or a committee member).
struct Member<'a> {
    /// The network's hyperparameters (its own hidden size).
    hyper: &'a Hyper,
    /// Its member index ([`TrainSet::member`]).
    member: u32,
    /// Added to its epochs in the run's metrics, so members' steps follow one another.
    step_offset: u32,
}

impl Member<'_> {
    /// Makes this member's extra data ([`Member::extra_data`]) and trains it, logging to
    /// the run ([`Member::log_event`]). Once `stop` is set (by the callback), the trainer is
    /// asked to stop at its next event and no further event is passed on.
    fn train(
        &self,
        req: &TrainRequest,
        train: &Dataset,
        test: Option<&Dataset>,
        run: &mut RunWriter,
        stop: &mut bool,
        on_event: &mut dyn FnMut(SessionEvent<'_>) -> ControlFlow<()>,
    ) -> Result<Outcome, SessionError> {
        let (extra, parts) = self.extra_data(req, train, run, on_event)?;
        let set = TrainSet {
            mnist: train,
            extra: &extra,
            parts: &parts,
            distortion: req.recipe.distortion(),
            deskew: req.recipe.deskew,
            average: req.recipe.average,
            member: self.member,
        };
        trainer::train_set(self.hyper, &set, test, req.threads, &mut |ev| {
            self.log_event(run, &ev);
            if *stop {
                return ControlFlow::Break(());
            }
            *stop = on_event(SessionEvent::Train(ev)).is_break();
            if *stop {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .map_err(SessionError::Train)
    }

    /// The extra images this member's recipe adds (drawn from the member's seed, never from
    /// the validation split) and their parts, logged with the time they took; none for the
    /// default recipe.
    fn extra_data(
        &self,
        req: &TrainRequest,
        train: &Dataset,
        run: &mut RunWriter,
        on_event: &mut dyn FnMut(SessionEvent<'_>) -> ControlFlow<()>,
    ) -> Result<(Dataset, Vec<Part>), SessionError> {
        let hyper = self.hyper;
        let seed = trainer::member_seed(hyper.seed, self.member);
        if req.recipe.is_default() {
            let none = Dataset {
                images: Vec::new(),
                labels: Vec::new(),
            };
            return Ok((none, Vec::new()));
        }
        let started = std::time::Instant::now();
        let (_, train_idx) =
            trainer::validation_split(train.len(), hyper.val_size as usize, hyper.seed);
        let (extra, parts) = req
            .recipe
            .build(train, &train_idx, seed, &req.corpora_dir)
            .map_err(SessionError::Recipe)?;
        // A recipe of distortions only (`--shift`, `--deskew`, …) adds no images: no line.
        if !parts.is_empty() {
            let line = format!(
                "extra training data: {} in {:.1}s",
                parts
                    .iter()
                    .map(|p| format!("{} {}x{}", p.name, p.len, p.repeat))
                    .collect::<Vec<_>>()
                    .join(", "),
                started.elapsed().as_secs_f32()
            );
            note(run, on_event, &line);
        }
        Ok((extra, parts))
    }

    /// Writes a trainer event to the run: log lines as they are, an epoch as its line
    /// ([`epoch_line`]) and its metrics at step `step_offset + epoch`.
    fn log_event(&self, run: &mut RunWriter, ev: &Event<'_>) {
        match ev {
            Event::Log(line) => run.log_line(line),
            Event::Epoch(r) => {
                run.log_line(&epoch_line(r));
                let step = self.step_offset + r.epoch;
                for (name, value) in [
                    ("train_loss", r.train_loss),
                    ("train_accuracy", r.train_accuracy),
                    ("val_loss", r.val_loss),
                    ("val_accuracy", r.val_accuracy),
                    ("lr", r.lr),
                    ("epoch_seconds", r.seconds),
                ] {
                    run.log_metric(step, name, value as f64);
                }
                for (part, value) in &r.parts {
                    run.log_metric(step, &format!("accuracy_{part}"), *value as f64);
                }
            }
            Event::Batch { .. } => {}
        }
    }
}

/// Joins a committee's trained members into one model and measures it on the validation
/// split and the test set ([`Metrics::of_committee`]). A committee stopped before its last
/// member finished keeps no model.
fn join(
    req: &TrainRequest,
    trained: &mut Vec<Outcome>,
    train: &Dataset,
    test: Option<&Dataset>,
    members: u32,
    run: &mut RunWriter,
    on_event: &mut dyn FnMut(SessionEvent<'_>) -> ControlFlow<()>,
) -> Outcome {
    let cancelled = trained.last().is_some_and(|o| o.cancelled);
    let epochs_run = trained.iter().map(|o| o.metrics.epochs_run).sum();
    let history: Vec<EpochReport> = trained
        .iter_mut()
        .flat_map(|o| o.history.drain(..))
        .collect();
    let complete =
        trained.len() == members as usize && trained.iter().all(|o| o.metrics.best_epoch > 0);
    let models: Vec<&AnyMlp> = trained.iter().map(|o| &o.model).collect();
    let joined = if complete {
        AnyMlp::committee(&models).ok()
    } else {
        None
    };
    let Some(model) = joined else {
        note(
            run,
            on_event,
            &format!(
                "the committee has {} of its {members} members: no model is kept",
                trained.iter().filter(|o| o.metrics.best_epoch > 0).count()
            ),
        );
        let mut outcome = trained.pop().expect("a member was started");
        outcome.metrics.best_epoch = 0;
        outcome.metrics.epochs_run = epochs_run;
        outcome.history = history;
        outcome.cancelled = cancelled;
        return outcome;
    };
    let validation = trainer::validation_set(train, req.hyper.val_size as usize, req.hyper.seed);
    let (val_loss, val_accuracy) = if validation.is_empty() {
        (f32::NAN, f32::NAN)
    } else {
        let (loss, correct) = model.evaluate(&validation.images, &validation.labels, req.threads);
        let n = validation.len() as f64;
        ((loss / n) as f32, (correct as f64 / n) as f32)
    };
    let test_accuracy = test.map(|t| {
        let (_, correct) = model.evaluate(&t.images, &t.labels, req.threads);
        correct as f32 / t.len().max(1) as f32
    });
    let each: Vec<Metrics> = trained.iter().map(|o| o.metrics).collect();
    let metrics = Metrics::of_committee(&each, val_loss, val_accuracy, test_accuracy);
    let line = format!(
        "committee of {members} joined: 784-{}-10, val loss {val_loss:.4} acc {:.2}%",
        model.hidden_size(),
        val_accuracy * 100.0
    );
    note(run, on_event, &line);
    Outcome {
        model,
        metrics,
        history,
        cancelled,
        stopped_early: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recipe_line_reads_back_as_the_recipe() {
        let recipe = Recipe {
            deskew: true,
            synthetic: 500,
            corpora: vec!["semeion-train".to_owned()],
            ..Recipe::default()
        };
        let json = serde_json::to_string(&recipe).unwrap();
        let log = format!("loading\n{RECIPE_LINE}{json}\nepoch 1/1 …\n");
        assert_eq!(recorded_recipe(&log), Some(recipe));
        assert_eq!(recorded_recipe("epoch 1/1\n"), None);
        assert_eq!(recorded_recipe("recipe {not json\n"), None);
    }
}
