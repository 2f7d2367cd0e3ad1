//! Hyperparameter studies from the web: `GET /api/tune` (defaults, limits, the default
//! space), `POST /api/tune` (202 + the study; it runs on a thread of its own through
//! `pismo_tuning::driver`, exactly as `pismo tune` runs it), `GET /api/studies`,
//! `GET /api/studies/{name}` (a study's state), `POST /api/studies/{name}/stop` and
//! `POST /api/studies/{name}/use` (registers the best trial's model if it is not yet).
//!
//! A study's state is rebuilt from its journal with the core's `Replay`, so a study that
//! `pismo tune` runs (or ran) shows as one started here does. Its events stream from
//! `GET /api/studies/{name}/events` ([`crate::events`]).
//!
//! Invariants: at most one study runs in this server at a time — it counts from the moment
//! its request is accepted until its `done` event, so two simultaneous requests cannot both
//! start one; a study that started ends with exactly one `done` event, also when the driver
//! fails or panics. A study whose journal another process holds (`pismo tune`) is refused.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use pismo_core::hyper::Hyper;
use pismo_storage::registry::{validate_name, Registry};
use pismo_storage::runs::Runs;
use pismo_storage::studies::journal::{JournalEvent, Replay, StoreError, StudyStore, TrialState};
use pismo_storage::studies::shelf::{CreateError, StudyShelf};
use pismo_tuning::driver::{
    self, Best, Driver, Observer, Plan, TuneError, DEFAULT_EPOCHS, ETA, MIN_EPOCHS,
};
use pismo_tuning::space::Space;
use serde::Serialize;
use serde_json::{json, Value};

use crate::jobs::Job;
use crate::limits::{MAX_STUDY_SECONDS, MAX_STUDY_TRIALS};
use crate::reply::{ApiError, Reply};
use crate::training::Training;

/// The studies side of the server.
pub(crate) struct Tuning {
    /// Where the studies are: `<runs>/studies` (journals and best-model files) or the
    /// database of the store.
    shelf: Arc<dyn StudyShelf>,
    /// The study running in this server, from its request's acceptance to its `done`.
    active: Mutex<Option<String>>,
    /// Studies started by this server (kept after they end, for their events).
    jobs: Mutex<HashMap<String, Arc<Job>>>,
    /// Held while a best model is registered, so two clicks register it once.
    using: Mutex<()>,
}

/// A study's start request, checked.
struct StartRequest {
    study: String,
    trials: Option<u32>,
    budget: Option<f64>,
    parallel: usize,
    base: Hyper,
    space: Space,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn field(name: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad(message).with("field", json!(name))
}

/// A whole number of `key` in `low..=high`.
fn whole(key: &str, value: &Value, low: u64, high: u64) -> Result<u64, ApiError> {
    value
        .as_u64()
        .filter(|n| (low..=high).contains(n))
        .ok_or_else(|| {
            field(
                key,
                format!("invalid {key}: expected a whole number from {low} to {high}, got {value}"),
            )
        })
}

/// `{"study", "trials", "budget", "parallel", "epochs", "val_size", "seed", "space"}`:
/// unknown keys and values out of range are 400s naming the field.
fn parse_start(body: &Value) -> Result<StartRequest, ApiError> {
    let object = body
        .as_object()
        .ok_or_else(|| ApiError::bad("the body must be a JSON object: {\"trials\": 20, …}"))?;
    let d = Hyper::DEFAULT;
    let mut study = None;
    let (mut trials, mut budget, mut parallel) = (None, None, 1);
    let mut base = Hyper {
        epochs: DEFAULT_EPOCHS,
        seed: 1,
        ..d
    };
    let mut space = Space::default_space();
    for (key, value) in object {
        match key.as_str() {
            "study" => study = Some(study_name(value)?),
            "trials" => trials = Some(whole(key, value, 1, MAX_STUDY_TRIALS.into())? as u32),
            "budget" => budget = Some(budget_seconds(value)?),
            "parallel" => parallel = parallel_trials(value)?,
            "epochs" => base.epochs = whole(key, value, 1, u32::MAX.into())? as u32,
            "val_size" => base.val_size = whole(key, value, 1, u32::MAX.into())? as u32,
            "seed" => base.seed = whole(key, value, 0, u64::MAX)?,
            "space" => space = search_space(value)?,
            other => {
                return Err(field(
                    other,
                    format!("unknown field `{other}`: accepted are study, trials, budget, parallel, epochs, val_size, seed, space"),
                ))
            }
        }
    }
    if trials.is_none() && budget.is_none() {
        return Err(ApiError::bad(
            "give `trials` (a number of trials), `budget` (seconds) or both: the study ends at the first reached",
        ));
    }
    base.validate().map_err(|e| field(e.field, e.to_string()))?;
    driver::check_space(&space, &base).map_err(|e| field("space", format!("space: {e}")))?;
    let study = study.unwrap_or_else(|| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        driver::default_study_name(now)
    });
    Ok(StartRequest {
        study,
        trials,
        budget,
        parallel,
        base,
        space,
    })
}

/// `study`: a study name.
fn study_name(value: &Value) -> Result<String, ApiError> {
    let name = value
        .as_str()
        .ok_or_else(|| field("study", "`study` must be a string"))?;
    validate_name(name).map_err(|e| field("study", format!("study: {e}")))?;
    Ok(name.to_owned())
}

/// `budget`: seconds, from 1 to [`MAX_STUDY_SECONDS`].
fn budget_seconds(value: &Value) -> Result<f64, ApiError> {
    value
        .as_f64()
        .filter(|s| (1.0..=MAX_STUDY_SECONDS).contains(s))
        .ok_or_else(|| {
            field(
                "budget",
                format!(
                    "invalid budget: expected seconds from 1 to {MAX_STUDY_SECONDS}, got {value}"
                ),
            )
        })
}

/// `parallel`: trials at once, from 1 to the server's cores.
fn parallel_trials(value: &Value) -> Result<usize, ApiError> {
    let cores = cores();
    let parallel = value.as_u64().filter(|&n| n >= 1).ok_or_else(|| {
        field(
            "parallel",
            format!("invalid parallel: expected a whole number from 1 to {cores}, got {value}"),
        )
    })? as usize;
    if parallel > cores {
        return Err(field(
            "parallel",
            format!("parallel {parallel} is more than the {cores} cores of this server: trials would compete for them"),
        ));
    }
    Ok(parallel)
}

/// `space`: an object of settings, as a space file holds.
fn search_space(value: &Value) -> Result<Space, ApiError> {
    if !value.is_object() {
        return Err(field(
            "space",
            "`space` must be an object of settings, as a space file holds: {\"initial_lr\": {\"log\": [0.003, 0.3]}, …}",
        ));
    }
    Space::from_json(&value.to_string()).map_err(|e| field("space", format!("space: {e}")))
}

/// The server's observer of a study: each event into the study's [`Job`], as the stream
/// sends it (`begin`, `trial_started`, `epoch`, `progress`, `trial_ended`, `trial_stopped`,
/// `best`; `done` follows when the driver returns).
struct JobObserver(Arc<Job>);

impl Observer for JobObserver {
    type Error = TuneError;

    fn begin(&mut self, best: Option<&Best>, elapsed: f64) {
        self.0
            .push("begin", &json!({ "best": best, "elapsed": elapsed }));
    }

    fn started(
        &mut self,
        trial: u32,
        run_id: &str,
        values: &std::collections::BTreeMap<String, f64>,
        elapsed: f64,
    ) -> Result<(), TuneError> {
        self.0.push(
            "trial_started",
            &json!({ "trial": trial, "run_id": run_id, "values": values, "elapsed": elapsed }),
        );
        Ok(())
    }

    fn epoch(
        &mut self,
        trial: u32,
        epoch: u32,
        epochs: u32,
        score: f64,
        elapsed: f64,
    ) -> Result<(), TuneError> {
        self.0.push(
            "epoch",
            &json!({ "trial": trial, "epoch": epoch, "epochs": epochs,
                "val_accuracy": score, "elapsed": elapsed }),
        );
        Ok(())
    }

    fn batch(&mut self, trial: u32, epoch: u32, done: usize, total: usize, _elapsed: f64) {
        self.0.push(
            "progress",
            &json!({ "trial": trial, "epoch": epoch, "done": done, "total": total }),
        );
    }

    fn ended(
        &mut self,
        trial: u32,
        how: TrialState,
        score: Option<f64>,
        epochs: u32,
        error: Option<&str>,
        elapsed: f64,
    ) -> Result<(), TuneError> {
        self.0.push(
            "trial_ended",
            &json!({ "trial": trial, "state": how, "val_accuracy": score, "epochs": epochs,
                "error": error, "elapsed": elapsed }),
        );
        Ok(())
    }

    fn stopped(&mut self, trial: u32, elapsed: f64) {
        self.0.push(
            "trial_stopped",
            &json!({ "trial": trial, "elapsed": elapsed }),
        );
    }

    fn best(&mut self, best: &Best) -> Result<(), TuneError> {
        self.0.push("best", best);
        Ok(())
    }

    fn end(&mut self) {}
}

/// A trial as `GET /api/studies/{name}` shows it.
#[derive(Serialize)]
struct TrialView<'a> {
    trial: u32,
    /// `running`, `complete`, `pruned`, `failed`, or `stopped` (unfinished and the study is
    /// not running: a resume runs it again).
    state: &'a str,
    run_id: &'a str,
    values: &'a std::collections::BTreeMap<String, f64>,
    /// Its best validation accuracy so far.
    val_accuracy: Option<f64>,
    epochs: u32,
    /// `[epoch, validation accuracy]` at the end of each epoch.
    curve: &'a [(u32, f64)],
    /// Study seconds when it ended.
    ended: Option<f64>,
}

impl Tuning {
    pub fn new(shelf: Arc<dyn StudyShelf>) -> Self {
        Self {
            shelf,
            active: Mutex::new(None),
            jobs: Mutex::new(HashMap::new()),
            using: Mutex::new(()),
        }
    }

    /// The events of study `name` if this server started it.
    pub fn job(&self, name: &str) -> Option<Arc<Job>> {
        lock(&self.jobs).get(name).cloned()
    }

    /// Whether study `name` runs now, here or in another process.
    pub fn running(&self, name: &str) -> bool {
        lock(&self.active).as_deref() == Some(name) || self.shelf.in_use(name)
    }

    /// `GET /api/tune`.
    pub fn describe(&self, training: &Training, token_required: bool) -> Result<Reply, ApiError> {
        let (available, error) = training.data_status();
        Reply::json(&json!({
            "defaults": {
                "epochs": DEFAULT_EPOCHS,
                "val_size": Hyper::DEFAULT.val_size,
                "seed": 1,
                "parallel": 1,
            },
            "limits": {
                "max_trials": MAX_STUDY_TRIALS,
                "max_budget": MAX_STUDY_SECONDS,
                "max_parallel": cores(),
            },
            "rungs": { "min_epochs": MIN_EPOCHS, "eta": ETA },
            "space": Space::default_space().to_json(),
            "active": *lock(&self.active),
            "data": { "available": available, "error": error },
            "token_required": token_required,
        }))
    }

    /// `POST /api/tune`: checks the request, takes the study slot and the study's journal,
    /// and starts the study on its own thread (202 + where to follow it).
    pub fn start(
        self: &Arc<Self>,
        body: &Value,
        training: &Training,
        registry: &Registry,
        runs: &Runs,
    ) -> Result<Reply, ApiError> {
        let request = parse_start(body)?;
        let study = request.study.clone();
        {
            let mut active = lock(&self.active);
            if let Some(running) = &*active {
                return Err(ApiError::new(
                    409,
                    format!("study {running} is running; this server runs one study at a time (stop it first)"),
                )
                .with("active", json!(running)));
            }
            *active = Some(study.clone());
        }
        let slot = Slot(self.clone());
        let data = training.data()?;
        let journal = match self.shelf.create(&study) {
            Ok(j) => j,
            Err(e @ CreateError::Busy(_)) => return Err(ApiError::new(409, e.to_string())),
            Err(e @ CreateError::Exists(_)) => {
                return Err(ApiError::new(409, e.to_string()).with("field", json!("study")))
            }
            Err(e @ CreateError::Failed(_)) => return Err(ApiError::new(503, e.to_string())),
        };
        let threads = (cores() / request.parallel).max(1);
        let plan = Plan {
            study: study.clone(),
            model_name: study.clone(),
            space: request.space,
            base: request.base,
            seed: request.base.seed,
            min_epochs: MIN_EPOCHS,
            eta: ETA,
            trials: request.trials,
            budget: request.budget,
            parallel: request.parallel,
            threads,
            data_dir: training.data_dir().to_owned(),
            dataset: data.digest.clone(),
            corpora_dir: pismo_digits::corpora::default_dir(),
        };
        let job = Arc::new(Job::new(&study));
        lock(&self.jobs).insert(study.clone(), job.clone());
        let (registry, runs) = (registry.clone(), runs.clone());
        std::thread::Builder::new()
            .name("pismo-tune".to_owned())
            .spawn(move || {
                let done = run(&plan, journal, &job, &data, &registry, &runs);
                // Free before `done`, so a client that starts the next study on it is not
                // refused.
                drop(slot);
                job.push("done", &done);
            })
            .map_err(|e| ApiError::new(500, format!("cannot start a study thread: {e}")))?;
        Ok(Reply::json(&json!({
            "study": study,
            "state": format!("/api/studies/{study}"),
            "events": format!("/api/studies/{study}/events"),
        }))?
        .with_status(202)
        .with_header("Location", format!("/api/studies/{study}")))
    }

    /// `GET /api/studies`: every study on the shelf, newest first.
    pub fn list(&self) -> Result<Reply, ApiError> {
        let names = self
            .shelf
            .names()
            .map_err(|e| ApiError::new(503, format!("cannot list the studies: {e}")))?;
        let mut studies = Vec::new();
        for (name, modified) in names {
            let replay = match self.shelf.events(&name) {
                Ok(Some(events)) => Replay::of(&events),
                Ok(None) => continue, // removed since it was listed
                Err(e) => {
                    studies.push(json!({ "study": name, "modified_ms": modified,
                        "error": e.to_string() }));
                    continue;
                }
            };
            let best = replay
                .finished
                .iter()
                .filter_map(|t| t.score)
                .fold(None, |b: Option<f64>, s| Some(b.map_or(s, |b| b.max(s))));
            studies.push(json!({
                "study": name,
                "running": self.running(&name),
                "trials": replay.finished.len(),
                "open": replay.open.len(),
                "best_accuracy": best,
                "elapsed": replay.elapsed,
                "modified_ms": modified,
            }));
        }
        studies.sort_by_key(|s| std::cmp::Reverse(s["modified_ms"].as_u64()));
        Reply::json(&studies)
    }

    /// The events of study `name`: 400 for a name no study can have, 404 if there is no
    /// such study.
    pub fn journal(&self, name: &str) -> Result<Vec<JournalEvent>, ApiError> {
        validate_name(name).map_err(|e| ApiError::bad(format!("study: {e}")))?;
        match self.shelf.events(name) {
            Ok(Some(events)) => Ok(events),
            Ok(None) => Err(ApiError::new(404, format!("no study {name}"))),
            Err(e @ StoreError::Shared(_)) => Err(ApiError::new(503, e.to_string())),
            Err(e) => Err(ApiError::new(500, e.to_string())),
        }
    }

    /// The replay of study `name`'s journal (errors as [`Tuning::journal`]).
    fn replay(&self, name: &str) -> Result<Replay, ApiError> {
        Ok(Replay::of(&self.journal(name)?))
    }

    /// The bytes of study `name`'s best model, if a trial kept one.
    fn best_model(&self, name: &str) -> Option<Vec<u8>> {
        self.shelf.best_model(name)
    }

    /// `GET /api/studies/{name}`: the study's settings, its trials, its best trial (and the
    /// model registered from it, if any) and the best accuracy over time.
    pub fn state(&self, name: &str, runs: &Runs) -> Result<Reply, ApiError> {
        let replay = self.replay(name)?;
        let running = self.running(name);
        let mut trials: Vec<TrialView<'_>> = Vec::new();
        for t in &replay.finished {
            trials.push(TrialView {
                trial: t.trial,
                state: t.state.as_str(),
                run_id: &t.run_id,
                values: &t.values,
                val_accuracy: t.score,
                epochs: t.epochs,
                curve: &t.curve,
                ended: Some(t.elapsed),
            });
        }
        for t in &replay.open {
            trials.push(TrialView {
                trial: t.trial,
                state: if running { "running" } else { "stopped" },
                run_id: &t.run_id,
                values: &t.values,
                val_accuracy: t.curve.iter().map(|c| c.1).reduce(f64::max),
                epochs: t.curve.last().map_or(0, |c| c.0),
                curve: &t.curve,
                ended: None,
            });
        }
        trials.sort_by_key(|t| t.trial);
        // Each trial's end that raised the best accuracy: [seconds, accuracy, trial].
        let mut by_end: Vec<_> = replay
            .finished
            .iter()
            .filter_map(|t| t.score.map(|s| (t.elapsed, s, t.trial)))
            .collect();
        by_end.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut best_so_far = Vec::new();
        for (at, score, trial) in by_end {
            if best_so_far
                .last()
                .is_none_or(|&(_, best, _): &(f64, f64, u32)| score > best)
            {
                best_so_far.push((at, score, trial));
            }
        }
        let best = driver::read_best(self.best_model(name).as_deref(), &replay);
        let model = best
            .as_ref()
            .and_then(|b| runs.info(&b.run_id).ok())
            .and_then(|info| info.model);
        let settings = match &replay.study {
            Some(JournalEvent::Study {
                seed,
                space,
                min_epochs,
                eta,
                max_epochs,
                base,
            }) => json!({ "seed": seed, "space": space, "min_epochs": min_epochs, "eta": eta,
                "max_epochs": max_epochs, "base": base }),
            _ => Value::Null,
        };
        Reply::json(&json!({
            "study": name,
            "running": running,
            "here": self.job(name).is_some_and(|j| !j.is_done()),
            "settings": settings,
            "elapsed": replay.elapsed,
            "trials": trials,
            "best": best,
            "model": model,
            "best_so_far": best_so_far,
        }))
    }

    /// `POST /api/studies/{name}/stop`: asks the study this server runs to stop; its running
    /// trials stop after their current batch and stay unfinished.
    pub fn stop(&self, name: &str) -> Result<Reply, ApiError> {
        self.replay(name)?;
        match self.job(name) {
            Some(job) if !job.is_done() => {
                job.cancel();
                Ok(Reply::json(&json!({ "study": name, "stopping": true }))?.with_status(202))
            }
            _ if self.shelf.in_use(name) => Err(ApiError::new(
                409,
                format!("study {name} runs in another process (pismo tune): stop it there"),
            )),
            _ => Err(ApiError::new(409, format!("study {name} is not running"))),
        }
    }

    /// `POST /api/studies/{name}/use`: the model of the study's best trial, registered now
    /// (under the trials' model name) unless its run already has one.
    pub fn use_best(
        &self,
        name: &str,
        registry: &Registry,
        runs: &Runs,
    ) -> Result<Reply, ApiError> {
        let _once = lock(&self.using);
        let replay = self.replay(name)?;
        let best_model = self.best_model(name);
        let Some(best) = driver::read_best(best_model.as_deref(), &replay) else {
            return Err(ApiError::new(
                409,
                format!("study {name} has no trained model yet: wait for a trial to end"),
            ));
        };
        let info = runs.info(&best.run_id)?;
        if let Some(model) = info.model.filter(|m| registry.resolve(Some(m)).is_ok()) {
            return Reply::json(&json!({ "study": name, "model": model, "registered": false,
                "trial": best.trial, "val_accuracy": best.val_accuracy }));
        }
        let bytes = best_model.expect("read_best found a model");
        let id = driver::register_best(&bytes, &info.name, &[], registry, runs).map_err(
            |e| match e {
                TuneError::Registry(e) => ApiError::from(e),
                TuneError::Runs(e) => ApiError::from(e),
                e => ApiError::new(500, e.to_string()),
            },
        )?;
        Ok(Reply::json(
            &json!({ "study": name, "model": id.to_string(), "registered": true,
            "trial": best.trial, "val_accuracy": best.val_accuracy }),
        )?
        .with_status(201))
    }
}

/// The study slot of a study being started or run; freed when dropped, so an early error or
/// a panic gives it back.
struct Slot(Arc<Tuning>);

impl Drop for Slot {
    fn drop(&mut self) {
        *lock(&self.0.active) = None;
    }
}

/// The study thread's work: the driver until the study ends; the study's `done` event.
fn run(
    plan: &Plan,
    store: Box<dyn StudyStore>,
    job: &Arc<Job>,
    data: &crate::training::Data,
    registry: &Registry,
    runs: &Runs,
) -> Value {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let driver = Driver::new(plan, store, JobObserver(job.clone()), job.cancel_flag())?;
        driver
            .run(&data.train, data.test.as_ref(), registry, runs)
            .map(|(outcome, _store)| outcome)
    }));
    let stopped = job.cancel_flag().load(Ordering::SeqCst);
    match result {
        Ok(Ok(outcome)) => json!({
            "status": if stopped { "stopped" } else { "finished" },
            "trials": outcome.ended,
            "best": outcome.best,
            "elapsed": outcome.elapsed,
            "cut_short": outcome.cut_short,
            "error": null,
        }),
        Ok(Err(e)) => json!({ "status": "failed", "error": e.to_string() }),
        Err(_) => json!({ "status": "failed", "error": "internal error: the study panicked" }),
    }
}
