//! The study driver: `parallel` worker threads, each running one trial at a time as an
//! ordinary training session on MNIST loaded once. Other processes may work on the same
//! study through a shared [`StudyStore`] (PostgreSQL): everything the driver decides is
//! read from the store's events, so it counts their trials as its own.
//!
//! A free worker claims the next trial from the store under the driver's lock: first a trial
//! left unfinished (by an earlier session, or by a worker whose lease ran out: it runs again
//! from the start), else a new number, whose point TPE suggests from every trial of the
//! study that has ended so far. Trial 0 is the study's own settings (the plan's base:
//! `pismo train`'s defaults with the study's epochs, validation size and seed) when the
//! space holds them ([`Space::start`]), so a study starts from a known run. Each epoch's
//! validation accuracy is appended to the store and judged by ASHA against every trial's
//! scores at that rung; when it says stop, the session is told to stop at once and the slot
//! is free. Every event is appended to the store (durably) before the trial goes on. The
//! best trial's model is kept in the store before its end is appended, so a resumed study
//! still has it.
//!
//! The study halts when the trial limit is reached, the time budget is spent, when its stop
//! flag is set (Ctrl-C in `pismo tune`, Stop on the web page), or when the journal, the
//! best-model file or the [`Observer`] fails: running trials are stopped and stay unfinished
//! in the journal (a resume runs them again).
//!
//! What the study does is told to an [`Observer`] as it happens, under the study's lock:
//! `pismo tune`'s terminal table and `--json` lines are one, the server's event stream
//! another.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pismo_core::format::Meta;
use pismo_core::hyper::{Hyper, Metrics};
use pismo_core::rng::{hash3, Rng};
use pismo_digits::mnist::Dataset;
use pismo_engine::model::AnyMlp;
use pismo_storage::registry::Registry;
use pismo_storage::runs::Runs;
use pismo_training::recipe::Recipe;
use pismo_training::session::{self, ModelMeta, SessionEvent, TrainRequest};
use pismo_training::trainer::{EpochReport, Event};
use serde::Serialize;

use crate::asha::{Asha, Decision};
use crate::space::{Space, SpaceError};
use crate::tpe::{Observation, Tpe};
use pismo_storage::registry::{ModelId, RegistryError};
use pismo_storage::runs::RunsError;
use pismo_storage::studies::journal::{
    Claim, JournalEvent, Replay, StoreError, StudyStore, TrialState,
};

/// Successive halving's first rung, in epochs.
pub const MIN_EPOCHS: u32 = 1;
/// Successive halving's reduction factor: about one trial in three passes each rung.
pub const ETA: u32 = 3;
/// The random stream of trial settings (a trial's suggestion draws from
/// `hash3(seed, TRIAL_STREAM, trial)`).
const TRIAL_STREAM: u64 = 0x7472_6961_6c73;
/// Epochs of a trial that is never stopped (the top rung), unless a study says otherwise.
pub const DEFAULT_EPOCHS: u32 = 8;
/// How long a worker waits before asking again for a trial when every trial left is
/// claimed by other workers.
const CLAIM_RETRY: Duration = Duration::from_millis(500);

/// The name of a study started at `unix_secs` that was given none: `study-YYYYMMDD-HHMMSS`.
pub fn default_study_name(unix_secs: u64) -> String {
    format!("study-{}", pismo_files::stamp::utc_stamp(unix_secs))
}

/// What a study runs, fixed when it starts.
#[derive(Debug)]
pub struct Plan {
    /// The study's name (its journal's and, by default, its model's).
    pub study: String,
    /// Name of the trials' run records and of the registered best model.
    pub model_name: String,
    /// The search space.
    pub space: Space,
    /// Settings of every trial that the space does not vary; `epochs` is the top rung.
    pub base: Hyper,
    /// Seed of the sampler.
    pub seed: u64,
    /// Successive halving's first rung, in epochs.
    pub min_epochs: u32,
    /// Successive halving's reduction factor.
    pub eta: u32,
    /// Trials the study ends with (across all its sessions).
    pub trials: Option<u32>,
    /// Seconds the study may run (across all its sessions).
    pub budget: Option<f64>,
    /// Trials run at once.
    pub parallel: usize,
    /// Training threads of each trial.
    pub threads: usize,
    /// MNIST folder.
    pub data_dir: PathBuf,
    /// What the trials train on, as run records and model files name it:
    /// [`pismo_digits::mnist::TRAIN_DIGEST`] for the whole MNIST training split, else the images' digest.
    pub dataset: String,
    /// Shipped corpora folder.
    pub corpora_dir: PathBuf,
}

/// The best trial so far: highest validation accuracy, ties broken by the lower loss.
#[derive(Clone, Debug, Serialize)]
pub struct Best {
    /// Trial number.
    pub trial: u32,
    /// Its run record.
    pub run_id: String,
    /// Validation accuracy of its kept weights.
    pub val_accuracy: f64,
    /// Their validation loss.
    pub val_loss: f64,
    /// Its settings.
    pub values: BTreeMap<String, f64>,
    /// Study seconds when it ended.
    pub elapsed: f64,
}

impl Best {
    fn beats(&self, other: Option<&Best>) -> bool {
        other.is_none_or(|o| {
            self.val_accuracy > o.val_accuracy
                || (self.val_accuracy == o.val_accuracy && self.val_loss < o.val_loss)
        })
    }
}

/// How a study session ended.
#[derive(Debug)]
pub struct Outcome {
    /// Trials ended over the whole study.
    pub ended: u32,
    /// The best trial, if any ended with a model.
    pub best: Option<Best>,
    /// Study seconds.
    pub elapsed: f64,
    /// Whether Ctrl-C or the budget stopped trials that were running.
    pub cut_short: bool,
}

/// Why a study failed.
#[derive(Debug)]
pub enum TuneError {
    /// The journal could not be read or written.
    Store(StoreError),
    /// The best model could not be read.
    BestModel(String),
    /// The best model could not be registered (or an alias set).
    Registry(RegistryError),
    /// The best trial's run record could not be updated.
    Runs(RunsError),
}

impl std::fmt::Display for TuneError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TuneError::Store(e) => e.fmt(f),
            TuneError::BestModel(e) => f.write_str(e),
            TuneError::Registry(e) => e.fmt(f),
            TuneError::Runs(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for TuneError {}

/// What is told of a study as it runs (the driver calls it under the study's lock, so calls
/// never overlap). An error from a method that returns one halts the study, and `run`
/// returns it.
pub trait Observer: Send {
    /// The observer's failures (a closed stdout) and the driver's, as the caller reports them.
    type Error: From<TuneError> + Send;
    /// The study (re)starts, with the best of earlier sessions and the study's seconds so far.
    fn begin(&mut self, best: Option<&Best>, elapsed: f64);
    /// A trial started, as run `run_id`.
    fn started(
        &mut self,
        trial: u32,
        run_id: &str,
        values: &BTreeMap<String, f64>,
        elapsed: f64,
    ) -> Result<(), Self::Error>;
    /// A trial ended epoch `epoch` of `epochs` with validation accuracy `score`.
    fn epoch(
        &mut self,
        trial: u32,
        epoch: u32,
        epochs: u32,
        score: f64,
        elapsed: f64,
    ) -> Result<(), Self::Error>;
    /// A trial is `done` batches of `total` into epoch `epoch`.
    fn batch(&mut self, trial: u32, epoch: u32, done: usize, total: usize, elapsed: f64);
    /// A trial ended (`score`: its best validation accuracy; `error`: why it failed).
    fn ended(
        &mut self,
        trial: u32,
        how: TrialState,
        score: Option<f64>,
        epochs: u32,
        error: Option<&str>,
        elapsed: f64,
    ) -> Result<(), Self::Error>;
    /// A trial was stopped because the study is ending (it stays unfinished).
    fn stopped(&mut self, trial: u32, elapsed: f64);
    /// A new best trial (its model is kept in the study's store).
    fn best(&mut self, best: &Best) -> Result<(), Self::Error>;
    /// The study session is over.
    fn end(&mut self);
}

/// What one trial's training session has come to, as its events arrive.
#[derive(Default)]
struct TrialProgress {
    /// Its run record (empty until the session started one).
    run_id: String,
    /// Epochs ended.
    epochs: u32,
    /// The pruner stopped it.
    pruned: bool,
    /// It was broken off: pruned, its lease lost, or the study halting.
    halted: bool,
    /// Another worker took its lease over.
    lost: bool,
}

/// A trial to run.
struct Ticket {
    trial: u32,
    values: BTreeMap<String, f64>,
}

/// The study's mutable state, behind one lock.
struct State<O: Observer> {
    store: Box<dyn StudyStore>,
    /// Trials this process runs now.
    running: usize,
    /// The best trial this process knows of (the store's, when it last looked, or better).
    best: Option<Best>,
    observer: O,
    /// The first failure of the store or the observer: it halts the study.
    error: Option<O::Error>,
    cut_short: bool,
}

/// A study in progress.
pub struct Driver<'a, O: Observer> {
    plan: &'a Plan,
    state: Mutex<State<O>>,
    interrupted: &'a AtomicBool,
    began: Instant,
    before: f64,
}

impl<O: Observer> std::fmt::Debug for Driver<'_, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("study", &self.plan.study)
            .field("elapsed", &self.elapsed())
            .finish_non_exhaustive()
    }
}

impl<'a, O: Observer> Driver<'a, O> {
    /// Picks a study up from its journal (empty for a new one: the settings are written).
    pub fn new(
        plan: &'a Plan,
        mut store: Box<dyn StudyStore>,
        observer: O,
        interrupted: &'a AtomicBool,
    ) -> Result<Driver<'a, O>, O::Error> {
        let events = store.events().map_err(TuneError::Store)?;
        let replay = Replay::of(&events);
        if replay.study.is_none() {
            store
                .append(&JournalEvent::Study {
                    seed: plan.seed,
                    space: plan.space.to_json(),
                    min_epochs: plan.min_epochs,
                    eta: plan.eta,
                    max_epochs: plan.base.epochs,
                    base: Some(plan.base),
                })
                .map_err(TuneError::Store)?;
        }
        let best = read_best(
            store.best_model().map_err(TuneError::Store)?.as_deref(),
            &replay,
        );
        let state = State {
            store,
            running: 0,
            best,
            observer,
            error: None,
            cut_short: false,
        };
        Ok(Driver {
            plan,
            state: Mutex::new(state),
            interrupted,
            began: Instant::now(),
            before: replay.elapsed,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<O>> {
        // A worker that panicked left the state as it was between two whole updates.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Study seconds: earlier sessions' and this one's.
    fn elapsed(&self) -> f64 {
        self.before + self.began.elapsed().as_secs_f64()
    }

    fn budget_spent(&self) -> bool {
        self.plan.budget.is_some_and(|b| self.elapsed() >= b)
    }

    /// Whether running trials must stop now.
    fn halting(&self, state: &State<O>) -> bool {
        state.error.is_some() || self.interrupted.load(Ordering::Relaxed) || self.budget_spent()
    }

    /// Runs the study until it ends; the best trial and the counts, and the study's store
    /// back (to register its best model).
    pub fn run(
        self,
        train: &Dataset,
        test: Option<&Dataset>,
        registry: &Registry,
        runs: &Runs,
    ) -> Result<(Outcome, Box<dyn StudyStore>), O::Error> {
        {
            let mut state = self.lock();
            let elapsed = self.elapsed();
            let best = state.best.clone();
            state.observer.begin(best.as_ref(), elapsed);
        }
        std::thread::scope(|scope| {
            for _ in 0..self.plan.parallel {
                scope.spawn(|| {
                    while let Some(ticket) = self.take() {
                        self.run_trial(ticket, train, test, registry, runs);
                    }
                });
            }
        });
        let mut state = self.state.into_inner().unwrap_or_else(|e| e.into_inner());
        // The study as the store has it now: other workers' trials included.
        let events = state.store.events().map_err(TuneError::Store);
        let best_model = state.store.best_model().map_err(TuneError::Store);
        let mut observer = state.observer;
        observer.end();
        if let Some(e) = state.error {
            return Err(e);
        }
        let replay = Replay::of(&events?);
        let best = read_best(best_model?.as_deref(), &replay).or(state.best);
        let outcome = Outcome {
            ended: replay.finished.len() as u32,
            best,
            elapsed: self.before + self.began.elapsed().as_secs_f64(),
            cut_short: state.cut_short,
        };
        Ok((outcome, state.store))
    }

    /// The next trial to run, if the study goes on: claimed in the store, waiting while
    /// other workers hold every trial that is left.
    fn take(&self) -> Option<Ticket> {
        loop {
            let mut state = self.lock();
            if self.halting(&state) {
                return None;
            }
            let claim = match state.store.claim(self.plan.trials) {
                Ok(claim) => claim,
                Err(e) => {
                    state.error.get_or_insert(TuneError::Store(e).into());
                    return None;
                }
            };
            let ticket = match claim {
                Claim::Done => return None,
                Claim::Wait => {
                    drop(state);
                    std::thread::sleep(CLAIM_RETRY);
                    continue;
                }
                Claim::Rerun { trial, values } => Ticket { trial, values },
                Claim::New { trial } => match self.suggest(&mut state, trial) {
                    Ok(values) => Ticket { trial, values },
                    Err(e) => {
                        state.error.get_or_insert(TuneError::Store(e).into());
                        return None;
                    }
                },
            };
            state.running += 1;
            return Some(ticket);
        }
    }

    /// The settings of new trial `trial`: for trial 0, the study's own settings when the
    /// space holds them ([`Space::start`]); else TPE's point from every trial of the study
    /// that has ended, drawn with the trial's own random stream (so workers never share one).
    fn suggest(
        &self,
        state: &mut State<O>,
        trial: u32,
    ) -> Result<BTreeMap<String, f64>, StoreError> {
        if trial == 0 {
            if let Some(start) = self.plan.space.start(&self.plan.base, &Recipe::default()) {
                return Ok(start);
            }
        }
        let replay = Replay::of(&state.store.events()?);
        let history: Vec<Observation> = replay
            .finished
            .iter()
            .filter_map(|t| {
                t.score.map(|score| Observation {
                    point: point_of(&self.plan.space, &t.values),
                    score,
                })
            })
            .collect();
        let mut rng = Rng::new(hash3(self.plan.seed, TRIAL_STREAM, u64::from(trial)));
        let point = Tpe::default().suggest(&self.plan.space, &history, &mut rng);
        Ok(self.plan.space.values(&point))
    }

    /// ASHA's decision on `trial`'s `score` at `epoch` (already in the store), against
    /// every score the study's trials have reached that epoch with: ended trials' and the
    /// running ones', on every worker.
    fn judge(
        &self,
        state: &mut State<O>,
        trial: u32,
        epoch: u32,
        score: f64,
    ) -> Result<Decision, StoreError> {
        let replay = Replay::of(&state.store.events()?);
        let mut asha = Asha::new(self.plan.min_epochs, self.plan.eta, self.plan.base.epochs);
        let finished = replay.finished.iter().map(|t| (t.trial, &t.curve));
        let open = replay.open.iter().map(|t| (t.trial, &t.curve));
        for (other, curve) in finished.chain(open) {
            for &(e, s) in curve {
                if (other, e) != (trial, epoch) {
                    asha.report(e, s);
                }
            }
        }
        Ok(asha.report(epoch, score))
    }

    /// Appends `event` to the store; false if this worker lost the trial's claim (another
    /// worker runs it now). Any other failure halts the study.
    fn journal(&self, state: &mut State<O>, event: &JournalEvent) -> bool {
        if state.error.is_some() {
            return true;
        }
        let appended = state.store.append(event);
        Self::still_held(state, appended)
    }

    /// Tells the store this worker still runs `trial`; false if it lost the claim.
    fn renew(&self, state: &mut State<O>, trial: u32) -> bool {
        let renewed = state.store.renew(trial);
        Self::still_held(state, renewed)
    }

    /// Whether a store operation on a trial left this worker holding it: false when the
    /// claim was lost; any other failure halts the study (and counts as held, so the trial
    /// stops as a halted one).
    fn still_held(state: &mut State<O>, result: Result<(), StoreError>) -> bool {
        match result {
            Ok(()) => true,
            Err(StoreError::Lost(_)) => false,
            Err(e) => {
                state.error.get_or_insert(TuneError::Store(e).into());
                true
            }
        }
    }

    /// Reports an event to the observer; its failure (a closed stdout) halts the study.
    fn show(state: &mut State<O>, result: Result<(), O::Error>) {
        if let Err(e) = result {
            state.error.get_or_insert(e);
        }
    }

    fn run_trial(
        &self,
        ticket: Ticket,
        train: &Dataset,
        test: Option<&Dataset>,
        registry: &Registry,
        runs: &Runs,
    ) {
        let Ticket { trial, values } = ticket;
        let (hyper, recipe) =
            match self
                .plan
                .space
                .apply(&values, &self.plan.base, &Recipe::default())
            {
                Ok(settings) => settings,
                Err(e) => {
                    let mut state = self.lock();
                    self.fail_unstarted(&mut state, trial, &values, 0, &e.to_string());
                    return;
                }
            };
        let request = self.trial_request(trial, hyper, recipe);
        let mut progress = TrialProgress::default();
        let result = session::run_with_data(
            &request,
            train,
            test,
            &self.plan.dataset,
            registry,
            runs,
            &mut |event| self.follow(&mut progress, trial, &values, event),
        );
        let mut state = self.lock();
        match result {
            _ if progress.lost => {
                // Another worker runs it now (this one's lease ran out): nothing to end.
                state.running -= 1;
                let elapsed = self.elapsed();
                state.observer.stopped(trial, elapsed);
            }
            Err(e) if progress.run_id.is_empty() => {
                let epochs = progress.epochs;
                self.fail_unstarted(&mut state, trial, &values, epochs, &e.to_string());
            }
            Err(e) => {
                let error = e.to_string();
                let epochs = progress.epochs;
                self.end(
                    &mut state,
                    trial,
                    TrialState::Failed,
                    None,
                    epochs,
                    Some(&error),
                );
            }
            Ok(_) if progress.halted && !progress.pruned => self.give_up(&mut state, trial),
            Ok(finished) => {
                self.offer_best(&mut state, trial, &values, &request.hyper, &finished);
                let m = finished.metrics;
                let score = (m.best_epoch > 0).then_some(f64::from(m.val_accuracy));
                let how = if progress.pruned {
                    TrialState::Pruned
                } else {
                    TrialState::Complete
                };
                self.end(&mut state, trial, how, score, m.epochs_run, None);
            }
        }
    }

    /// The training request of trial `trial`: the study's model name and data, tagged with
    /// the study and the trial, not registered.
    fn trial_request(&self, trial: u32, hyper: Hyper, recipe: Recipe) -> TrainRequest {
        TrainRequest {
            name: self.plan.model_name.clone(),
            hyper,
            data_dir: self.plan.data_dir.clone(),
            threads: self.plan.threads,
            aliases: Vec::new(),
            recipe,
            corpora_dir: self.plan.corpora_dir.clone(),
            tags: vec![
                ("study".to_owned(), self.plan.study.clone()),
                ("trial".to_owned(), trial.to_string()),
            ],
            register: false,
        }
    }

    /// One event of a trial's training session: journaled and shown; after each epoch the
    /// pruner judges the trial. Breaks when the trial is pruned, its lease lost, or the
    /// study halts.
    fn follow(
        &self,
        progress: &mut TrialProgress,
        trial: u32,
        values: &BTreeMap<String, f64>,
        event: SessionEvent<'_>,
    ) -> ControlFlow<()> {
        let mut state = self.lock();
        match event {
            SessionEvent::Started { run_id } => {
                progress.run_id = run_id.to_owned();
                progress.lost |= !self.journal(
                    &mut state,
                    &JournalEvent::Started {
                        trial,
                        values: values.clone(),
                        run_id: run_id.to_owned(),
                    },
                );
                let shown = state
                    .observer
                    .started(trial, run_id, values, self.elapsed());
                Self::show(&mut state, shown);
            }
            SessionEvent::Train(Event::Epoch(r)) => {
                progress.epochs = r.epoch;
                if self.after_epoch(&mut state, progress, trial, r) == Decision::Stop {
                    progress.pruned = true;
                    return ControlFlow::Break(());
                }
            }
            SessionEvent::Train(Event::Batch {
                epoch, done, total, ..
            }) => {
                let elapsed = self.elapsed();
                state.observer.batch(trial, epoch, done, total, elapsed);
                progress.lost |= !self.renew(&mut state, trial);
            }
            SessionEvent::Train(Event::Log(_))
            | SessionEvent::Line(_)
            | SessionEvent::Summary(_)
            | SessionEvent::Registered { .. } => {}
        }
        if progress.lost || self.halting(&state) {
            progress.halted = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    /// Journals and shows epoch report `r`, then asks the pruner (not after the last epoch,
    /// nor once the lease is lost).
    fn after_epoch(
        &self,
        state: &mut State<O>,
        progress: &mut TrialProgress,
        trial: u32,
        r: &EpochReport,
    ) -> Decision {
        let score = f64::from(r.val_accuracy);
        let elapsed = self.elapsed();
        progress.lost |= !self.journal(
            state,
            &JournalEvent::Epoch {
                trial,
                epoch: r.epoch,
                score,
                elapsed,
            },
        );
        let shown = state
            .observer
            .epoch(trial, r.epoch, r.epochs, score, elapsed);
        Self::show(state, shown);
        if progress.lost || r.epoch >= r.epochs {
            return Decision::Continue;
        }
        match self.judge(state, trial, r.epoch, score) {
            Ok(decision) => decision,
            Err(e) => {
                state.error.get_or_insert(TuneError::Store(e).into());
                Decision::Continue
            }
        }
    }

    /// A trial stopped by Ctrl-C, the budget or a failure: unfinished, given up so that
    /// another worker or a resume runs it again.
    fn give_up(&self, state: &mut State<O>, trial: u32) {
        if let Err(e) = state.store.release(trial) {
            state.error.get_or_insert(TuneError::Store(e).into());
        }
        state.running -= 1;
        state.cut_short = true;
        let elapsed = self.elapsed();
        state.observer.stopped(trial, elapsed);
    }

    /// Keeps the finished trial's model as the study's best if it beats the best so far
    /// (the store decides among workers).
    fn offer_best(
        &self,
        state: &mut State<O>,
        trial: u32,
        values: &BTreeMap<String, f64>,
        hyper: &Hyper,
        finished: &session::Finished,
    ) {
        let Some(model) = &finished.kept else {
            return;
        };
        let m = finished.metrics;
        let candidate = Best {
            trial,
            run_id: finished.run_id.clone(),
            val_accuracy: f64::from(m.val_accuracy),
            val_loss: f64::from(m.val_loss),
            values: values.clone(),
            elapsed: self.elapsed(),
        };
        if !candidate.beats(state.best.as_ref()) {
            return;
        }
        let bytes = self.encode_best(model, hyper, m, &finished.run_id);
        match state
            .store
            .keep_best(&bytes, candidate.val_accuracy, candidate.val_loss)
        {
            Ok(true) => {
                let shown = state.observer.best(&candidate);
                Self::show(state, shown);
                state.best = Some(candidate);
            }
            // Another worker's trial did better.
            Ok(false) => {}
            Err(e) => {
                state.error.get_or_insert(TuneError::Store(e).into());
            }
        }
    }

    /// Journals a trial that failed before its run record existed: its start (with no run)
    /// and its end.
    fn fail_unstarted(
        &self,
        state: &mut State<O>,
        trial: u32,
        values: &BTreeMap<String, f64>,
        epochs: u32,
        error: &str,
    ) {
        let started = JournalEvent::Started {
            trial,
            values: values.clone(),
            run_id: String::new(),
        };
        let _ = self.journal(state, &started);
        self.end(state, trial, TrialState::Failed, None, epochs, Some(error));
    }

    /// Journals and shows the end of a trial.
    fn end(
        &self,
        state: &mut State<O>,
        trial: u32,
        how: TrialState,
        score: Option<f64>,
        epochs: u32,
        error: Option<&str>,
    ) {
        let elapsed = self.elapsed();
        let _ = self.journal(
            state,
            &JournalEvent::Ended {
                trial,
                state: how,
                score,
                epochs,
                elapsed,
            },
        );
        state.running -= 1;
        let shown = state
            .observer
            .ended(trial, how, score, epochs, error, elapsed);
        Self::show(state, shown);
    }

    /// The model file of a trial that may be the study's best (not registered yet: its
    /// version is given when it is).
    fn encode_best(
        &self,
        model: &AnyMlp,
        hyper: &Hyper,
        metrics: Metrics,
        run_id: &str,
    ) -> Vec<u8> {
        let meta = Meta {
            name: &self.plan.model_name,
            version: 0,
            created_unix: 0,
            hyper: *hyper,
            metrics,
            run_id,
            dataset: &self.plan.dataset,
            parent: "",
            deskew: model.deskew(),
        };
        model.encode(&meta)
    }
}

/// A point's search coordinates from its values (as TPE sees it).
fn point_of(space: &Space, values: &BTreeMap<String, f64>) -> Vec<f64> {
    space
        .dims
        .iter()
        .map(|d| {
            d.domain
                .coordinate(values.get(&d.name).copied().unwrap_or(f64::NAN))
        })
        .collect()
}

/// The best trial so far, from the study's best model and its journal: the model's run
/// must be a trial that ended (a crash between the two writes leaves a model whose trial
/// runs again).
pub fn read_best(best_model: Option<&[u8]>, replay: &Replay) -> Option<Best> {
    let (_, model) = AnyMlp::decode(best_model?).ok()?;
    let meta = model.meta;
    let t = replay.finished.iter().find(|t| t.run_id == meta.run_id)?;
    Some(Best {
        trial: t.trial,
        run_id: t.run_id.clone(),
        val_accuracy: f64::from(meta.metrics.val_accuracy),
        val_loss: f64::from(meta.metrics.val_loss),
        values: t.values.clone(),
        elapsed: t.elapsed,
    })
}

/// Registers a study's best model (`bytes`, from its store) as the next version of `name`,
/// points `aliases` at it and records it in the trial's run record if this host has it
/// (a shared study's trial may have run on another); its id.
pub fn register_best(
    bytes: &[u8],
    name: &str,
    aliases: &[String],
    registry: &Registry,
    runs: &Runs,
) -> Result<ModelId, TuneError> {
    let (model, file) = AnyMlp::decode(bytes)
        .map_err(|e| TuneError::BestModel(format!("the study's best model: {e}")))?;
    let run_id = file.meta.run_id.to_owned();
    let (id, _) = session::register(
        registry,
        &model,
        &ModelMeta {
            name,
            hyper: file.meta.hyper,
            metrics: file.meta.metrics,
            run_id: &run_id,
            dataset: file.meta.dataset,
            parent: file.meta.parent,
        },
    )
    .map_err(TuneError::Registry)?;
    for alias in aliases {
        registry
            .set_alias(alias, &id)
            .map_err(TuneError::Registry)?;
    }
    match runs.set_model(&run_id, &id) {
        Ok(()) | Err(RunsError::NotFound { .. }) => Ok(id),
        Err(e) => Err(TuneError::Runs(e)),
    }
}

/// Refuses a space with a point that cannot train with `base` (tried on 32 random points, so
/// a bad range is refused when the study starts, not at its trial).
pub fn check_space(space: &Space, base: &Hyper) -> Result<(), SpaceError> {
    let mut rng = Rng::new(base.seed);
    for _ in 0..32 {
        let point = crate::tpe::random_point(space, &mut rng);
        space.apply(&space.values(&point), base, &Recipe::default())?;
    }
    Ok(())
}
