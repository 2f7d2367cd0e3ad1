//! A study's storage: an append-only journal of events, its trial claims and its best
//! model, behind the [`StudyStore`] interface. Two stores implement it: [`FileJournal`]
//! here (one process runs the study) and `pismo-store`'s PostgreSQL study, which workers on
//! many hosts share (claims there are leases that expire).
//!
//! [`FileJournal`] keeps one JSON event per line in `<dir>/<study>.jsonl`, each fsynced
//! before the trial goes on, and holds an exclusive OS lock on it while a study runs (a
//! second `pismo tune` on the same study is refused, not interleaved). After a kill -9 the
//! last line may be torn: it is dropped when the journal is opened (it was never
//! acknowledged); a bad line anywhere else is corruption and an error.
//!
//! Readers that do not run the study (the web page's view of it) use [`read_events`], which
//! takes no lock and leaves out a line being written, and [`in_use`] to learn whether a
//! process runs it now.
//!
//! [`Replay`] rebuilds a study from its events: finished trials (kept), trials that started
//! but never ended (to run again from the start: their epochs' scores are not counted; while
//! the study runs, these are its running trials), and the next trial number.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How a trial ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialState {
    /// Trained to the last epoch (or stopped early by its patience).
    Complete,
    /// Stopped at a rung by successive halving.
    Pruned,
    /// Its run failed (the error is in its run record).
    Failed,
}

impl TrialState {
    /// Its name, as the journal spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            TrialState::Complete => "complete",
            TrialState::Pruned => "pruned",
            TrialState::Failed => "failed",
        }
    }
}

/// One event of a study.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum JournalEvent {
    /// The study's settings, first in the journal.
    Study {
        /// Seed of every random choice of the study.
        seed: u64,
        /// The search space, as a space file holds it.
        space: serde_json::Value,
        /// Epochs of the first rung.
        min_epochs: u32,
        /// Successive halving's reduction factor.
        eta: u32,
        /// Epochs of a trial that is never stopped.
        max_epochs: u32,
        /// The settings of every trial that the space does not vary (absent in journals
        /// written before they were kept: the defaults then).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base: Option<pismo_core::hyper::Hyper>,
    },
    /// A trial began with these settings.
    Started {
        /// Trial number, from 0.
        trial: u32,
        /// Its settings by name.
        values: BTreeMap<String, f64>,
        /// Its run record.
        run_id: String,
    },
    /// A trial's validation score at the end of an epoch.
    Epoch {
        /// Trial number.
        trial: u32,
        /// 1-based epoch.
        epoch: u32,
        /// Validation accuracy, 0..1.
        score: f64,
        /// Seconds since the study began (all sessions of it added up).
        elapsed: f64,
    },
    /// A trial ended.
    Ended {
        /// Trial number.
        trial: u32,
        /// How.
        state: TrialState,
        /// Its best validation accuracy (none if it failed before an epoch ended).
        score: Option<f64>,
        /// Epochs it trained.
        epochs: u32,
        /// Seconds since the study began.
        elapsed: f64,
    },
}

/// Why a study's storage failed.
#[derive(Debug)]
pub enum StoreError {
    /// Reading or writing failed.
    Io(PathBuf, io::Error),
    /// Another process runs this study.
    Busy(PathBuf),
    /// A shared store (a database) failed; the message names it.
    Shared(String),
    /// This worker's claim on the trial ran out and another worker took the trial.
    Lost(u32),
    /// A line other than a torn last one does not parse.
    Corrupt {
        /// The journal.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        why: String,
    },
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Io(p, e) => write!(f, "study journal {}: {e}", p.display()),
            StoreError::Busy(p) => write!(
                f,
                "study journal {} is in use by another `pismo tune`; wait for it or stop it",
                p.display()
            ),
            StoreError::Shared(message) => f.write_str(message),
            StoreError::Lost(trial) => write!(
                f,
                "trial {trial} was taken over by another worker (this worker's lease on it ran out)"
            ),
            StoreError::Corrupt { path, line, why } => write!(
                f,
                "study journal {} is corrupt at line {line}: {why}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for StoreError {}

/// What a worker may run next, as [`StudyStore::claim`] answers.
#[derive(Clone, Debug, PartialEq)]
pub enum Claim {
    /// A trial that started and never ended (its worker stopped or died): run it again from
    /// the start, with its settings.
    Rerun {
        /// Trial number.
        trial: u32,
        /// Its settings.
        values: BTreeMap<String, f64>,
    },
    /// A new trial number; the worker chooses its settings.
    New {
        /// Trial number.
        trial: u32,
    },
    /// Every trial left is claimed by other workers, which may still give one up: ask again
    /// shortly.
    Wait,
    /// The trial limit is reached: nothing is left to run.
    Done,
}

/// Whether the worker that asks is the one to register the study's best model now.
#[derive(Clone, Debug, PartialEq)]
pub enum Registration {
    /// Yes: these are the best model's bytes.
    Register(Vec<u8>),
    /// No trial has kept a model.
    NoModel,
    /// Other workers still run trials of the study: the last one out registers.
    OthersRunning,
    /// This best model was registered already (by another worker).
    AlreadyRegistered,
}

/// Where a study is kept: its events, which worker runs which trial, and its best model.
pub trait StudyStore: Send {
    /// Where the study is kept, for messages (a journal's path, a database without password).
    fn location(&self) -> String;
    /// Every event so far, in order.
    fn events(&mut self) -> Result<Vec<JournalEvent>, StoreError>;
    /// Appends one event durably (it survives a crash once this returns). An event of a trial
    /// whose claim this worker lost is refused with [`StoreError::Lost`].
    fn append(&mut self, event: &JournalEvent) -> Result<(), StoreError>;
    /// Claims the next trial for this worker: a trial left unfinished first, else a new
    /// number; [`Claim::Done`] once `limit` trials have ended or are claimed.
    fn claim(&mut self, limit: Option<u32>) -> Result<Claim, StoreError>;
    /// Tells the store this worker still runs `trial` (it may be called often: a store
    /// decides how often to write); [`StoreError::Lost`] if the claim was lost.
    fn renew(&mut self, trial: u32) -> Result<(), StoreError>;
    /// Gives `trial` up unfinished (the study is stopping here): another worker, or a
    /// resume, runs it again.
    fn release(&mut self, trial: u32) -> Result<(), StoreError>;
    /// The study's best model, if a trial kept one.
    fn best_model(&mut self) -> Result<Option<Vec<u8>>, StoreError>;
    /// Keeps `model` as the study's best unless the kept one is better (higher validation
    /// accuracy, ties: lower loss); whether it was kept.
    fn keep_best(
        &mut self,
        model: &[u8],
        val_accuracy: f64,
        val_loss: f64,
    ) -> Result<bool, StoreError>;
    /// Whether this worker registers the best model now (see [`Registration`]); a
    /// [`Registration::Register`] answer is given once per best model.
    fn take_registration(&mut self) -> Result<Registration, StoreError>;
}

/// The best-model file beside study `name`'s journal in `dir`.
pub fn best_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.best.pismo"))
}

/// Trial claims of a journal's one process: trials the journal left unfinished are run
/// again first, then new numbers.
#[derive(Debug)]
struct Claims {
    unfinished: std::collections::VecDeque<(u32, BTreeMap<String, f64>)>,
    next_trial: u32,
    ended: u32,
    claimed: std::collections::BTreeSet<u32>,
}

/// A study journal file, locked while open.
#[derive(Debug)]
pub struct FileJournal {
    path: PathBuf,
    best: PathBuf,
    file: File,
    /// The journal's events, read once and then kept up to date by `append`: this process
    /// is the only writer while it holds the lock, and the driver asks for them every epoch.
    events: Option<Vec<JournalEvent>>,
    /// Made from the events at the first claim.
    claims: Option<Claims>,
}

impl FileJournal {
    /// The journal of study `name` in `dir` (created if missing), locked for this process.
    pub fn open(dir: &Path, name: &str) -> Result<FileJournal, StoreError> {
        let path = dir.join(format!("{name}.jsonl"));
        let io_err = |e| StoreError::Io(path.clone(), e);
        std::fs::create_dir_all(dir).map_err(io_err)?;
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(StoreError::Busy(path)),
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(e)),
        }
        let mut journal = FileJournal {
            best: best_file(dir, name),
            path,
            file,
            events: None,
            claims: None,
        };
        journal.drop_torn_tail()?;
        Ok(journal)
    }

    /// Whether the journal holds no event yet.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        let len = self
            .file
            .metadata()
            .map_err(|e| StoreError::Io(self.path.clone(), e))?
            .len();
        Ok(len == 0)
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read_all(&mut self) -> Result<String, StoreError> {
        let mut text = String::new();
        self.file
            .seek(SeekFrom::Start(0))
            .and_then(|_| self.file.read_to_string(&mut text))
            .map_err(|e| StoreError::Io(self.path.clone(), e))?;
        Ok(text)
    }

    /// Cuts a last line that has no newline (a write a crash interrupted).
    fn drop_torn_tail(&mut self) -> Result<(), StoreError> {
        let text = self.read_all()?;
        if text.is_empty() || text.ends_with('\n') {
            return Ok(());
        }
        let keep = text.rfind('\n').map_or(0, |i| i + 1);
        self.file
            .set_len(keep as u64)
            .and_then(|_| self.file.sync_all())
            .map_err(|e| StoreError::Io(self.path.clone(), e))
    }
}

/// The events of a journal's text; a last line without its newline is left out when
/// `torn_tail` (a write in progress, or one a crash cut).
fn parse_events(path: &Path, text: &str, torn_tail: bool) -> Result<Vec<JournalEvent>, StoreError> {
    let whole = if torn_tail && !text.ends_with('\n') {
        text.rfind('\n').map_or("", |i| &text[..=i])
    } else {
        text
    };
    whole
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| StoreError::Corrupt {
                path: path.to_owned(),
                line: i + 1,
                why: e.to_string(),
            })
        })
        .collect()
}

/// The events of study `name`'s journal in `dir`, read without its lock (the study may be
/// running: a line being written is left out). A study that has no journal is
/// `StoreError::Io` with `NotFound`.
pub fn read_events(dir: &Path, name: &str) -> Result<Vec<JournalEvent>, StoreError> {
    let path = dir.join(format!("{name}.jsonl"));
    let text = std::fs::read_to_string(&path).map_err(|e| StoreError::Io(path.clone(), e))?;
    parse_events(&path, &text, true)
}

/// Whether a process holds study `name`'s journal in `dir` open (a study runs); false when
/// it has no journal. The check takes a shared lock for an instant.
pub fn in_use(dir: &Path, name: &str) -> bool {
    let Ok(file) = File::open(dir.join(format!("{name}.jsonl"))) else {
        return false;
    };
    matches!(
        file.try_lock_shared(),
        Err(std::fs::TryLockError::WouldBlock)
    )
}

impl StudyStore for FileJournal {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn events(&mut self) -> Result<Vec<JournalEvent>, StoreError> {
        if self.events.is_none() {
            let text = self.read_all()?;
            self.events = Some(parse_events(&self.path, &text, false)?);
        }
        Ok(self.events.clone().unwrap_or_default())
    }

    fn append(&mut self, event: &JournalEvent) -> Result<(), StoreError> {
        let mut line = serde_json::to_string(event).expect("events serialise");
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.sync_data())
            .map_err(|e| StoreError::Io(self.path.clone(), e))?;
        if let Some(events) = &mut self.events {
            events.push(event.clone());
        }
        if let (JournalEvent::Ended { trial, .. }, Some(claims)) = (event, &mut self.claims) {
            if claims.claimed.remove(trial) {
                claims.ended += 1;
            }
        }
        Ok(())
    }

    fn claim(&mut self, limit: Option<u32>) -> Result<Claim, StoreError> {
        if self.claims.is_none() {
            let replay = Replay::of(&self.events()?);
            self.claims = Some(Claims {
                unfinished: replay.interrupted.into_iter().collect(),
                next_trial: replay.next_trial,
                ended: replay.finished.len() as u32,
                claimed: Default::default(),
            });
        }
        let claims = self.claims.as_mut().expect("made above");
        // This process holds every claim, so a claimed trial never frees up for another.
        if limit.is_some_and(|n| claims.ended + claims.claimed.len() as u32 >= n) {
            return Ok(Claim::Done);
        }
        let claim = match claims.unfinished.pop_front() {
            Some((trial, values)) => Claim::Rerun { trial, values },
            None => {
                claims.next_trial += 1;
                Claim::New {
                    trial: claims.next_trial - 1,
                }
            }
        };
        if let Claim::Rerun { trial, .. } | Claim::New { trial } = claim {
            claims.claimed.insert(trial);
        }
        Ok(claim)
    }

    fn renew(&mut self, _trial: u32) -> Result<(), StoreError> {
        // The journal's lock is this process's claim on every trial.
        Ok(())
    }

    fn release(&mut self, trial: u32) -> Result<(), StoreError> {
        // It stays unfinished in the journal: the next session runs it again.
        if let Some(claims) = &mut self.claims {
            claims.claimed.remove(&trial);
        }
        Ok(())
    }

    fn best_model(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        match std::fs::read(&self.best) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Io(self.best.clone(), e)),
        }
    }

    fn keep_best(&mut self, model: &[u8], _accuracy: f64, _loss: f64) -> Result<bool, StoreError> {
        // One process runs the study, and its driver keeps the best in memory: the
        // comparison was made there.
        pismo_files::atomic::replace_atomic(&self.best, model)
            .map_err(|e| StoreError::Io(self.best.clone(), e))?;
        Ok(true)
    }

    fn take_registration(&mut self) -> Result<Registration, StoreError> {
        Ok(match self.best_model()? {
            Some(bytes) => Registration::Register(bytes),
            None => Registration::NoModel,
        })
    }
}

/// A finished trial, as read back.
#[derive(Clone, Debug, PartialEq)]
pub struct FinishedTrial {
    /// Trial number.
    pub trial: u32,
    /// Its settings.
    pub values: BTreeMap<String, f64>,
    /// Its run record.
    pub run_id: String,
    /// How it ended.
    pub state: TrialState,
    /// Its best validation accuracy.
    pub score: Option<f64>,
    /// Epochs it trained.
    pub epochs: u32,
    /// Its scores at the end of each epoch, in order.
    pub curve: Vec<(u32, f64)>,
    /// Seconds since the study began when it ended.
    pub elapsed: f64,
}

/// A trial that started and has not ended (yet).
#[derive(Clone, Debug, PartialEq)]
pub struct OpenTrial {
    /// Trial number.
    pub trial: u32,
    /// Its settings.
    pub values: BTreeMap<String, f64>,
    /// Its run record (empty if it has none).
    pub run_id: String,
    /// Its scores at the end of each epoch so far, in order.
    pub curve: Vec<(u32, f64)>,
}

/// A study rebuilt from its events.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Replay {
    /// The study's settings event, if written.
    pub study: Option<JournalEvent>,
    /// Trials that ended, in the order they ended.
    pub finished: Vec<FinishedTrial>,
    /// Trials that started but never ended (a crash): run again from the start.
    pub interrupted: Vec<(u32, BTreeMap<String, f64>)>,
    /// The same trials with their runs and the epochs they got through, by trial number
    /// (running now, if the study is).
    pub open: Vec<OpenTrial>,
    /// The next unused trial number.
    pub next_trial: u32,
    /// Seconds the study has run over all its sessions.
    pub elapsed: f64,
}

impl Replay {
    /// Rebuilds a study from its events.
    pub fn of(events: &[JournalEvent]) -> Replay {
        let mut replay = Replay::default();
        let mut open: BTreeMap<u32, OpenTrial> = BTreeMap::new();
        for event in events {
            match event {
                JournalEvent::Study { .. } => replay.study = Some(event.clone()),
                JournalEvent::Started {
                    trial,
                    values,
                    run_id,
                } => {
                    replay.next_trial = replay.next_trial.max(trial + 1);
                    let started = OpenTrial {
                        trial: *trial,
                        values: values.clone(),
                        run_id: run_id.clone(),
                        curve: Vec::new(),
                    };
                    open.insert(*trial, started);
                }
                JournalEvent::Epoch {
                    trial,
                    epoch,
                    score,
                    elapsed,
                } => {
                    replay.elapsed = replay.elapsed.max(*elapsed);
                    if let Some(t) = open.get_mut(trial) {
                        t.curve.push((*epoch, *score));
                    }
                }
                JournalEvent::Ended {
                    trial,
                    state,
                    score,
                    epochs,
                    elapsed,
                } => {
                    replay.elapsed = replay.elapsed.max(*elapsed);
                    if let Some(t) = open.remove(trial) {
                        replay.finished.push(FinishedTrial {
                            trial: *trial,
                            values: t.values,
                            run_id: t.run_id,
                            state: *state,
                            score: *score,
                            epochs: *epochs,
                            curve: t.curve,
                            elapsed: *elapsed,
                        });
                    }
                }
            }
        }
        replay.interrupted = open.iter().map(|(t, o)| (*t, o.values.clone())).collect();
        replay.open = open.into_values().collect();
        replay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(trial: u32) -> JournalEvent {
        JournalEvent::Started {
            trial,
            values: BTreeMap::from([("initial_lr".to_owned(), 0.01 * (trial + 1) as f64)]),
            run_id: format!("run-{trial}"),
        }
    }

    fn ended(trial: u32, score: f64) -> JournalEvent {
        JournalEvent::Ended {
            trial,
            state: TrialState::Complete,
            score: Some(score),
            epochs: 3,
            elapsed: 10.0 * trial as f64,
        }
    }

    #[test]
    fn replay_keeps_finished_trials_and_reruns_interrupted_ones() {
        let events = vec![
            started(0),
            started(1),
            JournalEvent::Epoch {
                trial: 1,
                epoch: 1,
                score: 0.9,
                elapsed: 4.0,
            },
            ended(0, 0.95),
            started(2),
        ];
        let r = Replay::of(&events);
        assert_eq!(r.finished.len(), 1);
        assert_eq!(r.finished[0].trial, 0);
        assert_eq!(
            r.interrupted.iter().map(|t| t.0).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(r.next_trial, 3);
        assert_eq!(r.open[0].curve, vec![(1, 0.9)]);
        assert_eq!(r.open[1].run_id, "run-2");
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_a_corrupt_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut j = FileJournal::open(dir.path(), "s").unwrap();
            j.append(&started(0)).unwrap();
            j.append(&ended(0, 0.9)).unwrap();
        }
        let path = dir.path().join("s.jsonl");
        // A crash in the middle of a write.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"event":"started","tri"#).unwrap();
        drop(f);
        {
            let mut j = FileJournal::open(dir.path(), "s").unwrap();
            assert_eq!(j.events().unwrap().len(), 2);
            j.append(&started(1)).unwrap();
            assert_eq!(j.events().unwrap().len(), 3);
        }
        // Garbage in the middle is not a torn write.
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("\"ended\"", "\"endd\"", 1)).unwrap();
        let err = FileJournal::open(dir.path(), "s")
            .unwrap()
            .events()
            .unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn the_study_event_keeps_the_shared_settings_and_reads_without_them() {
        let study = JournalEvent::Study {
            seed: 3,
            space: serde_json::json!({"initial_lr": {"log": [0.01, 0.1]}}),
            min_epochs: 1,
            eta: 3,
            max_epochs: 8,
            base: Some(pismo_core::hyper::Hyper {
                val_size: 5000,
                ..pismo_core::hyper::Hyper::DEFAULT
            }),
        };
        let line = serde_json::to_string(&study).unwrap();
        assert_eq!(serde_json::from_str::<JournalEvent>(&line).unwrap(), study);
        let old = r#"{"event":"study","seed":3,"space":{},"min_epochs":1,"eta":3,"max_epochs":8}"#;
        let JournalEvent::Study { base, .. } = serde_json::from_str(old).unwrap() else {
            panic!("not a study event");
        };
        assert_eq!(base, None);
    }

    #[test]
    fn a_study_in_use_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!in_use(dir.path(), "busy"));
        let first = FileJournal::open(dir.path(), "busy").unwrap();
        assert!(in_use(dir.path(), "busy"));
        let err = FileJournal::open(dir.path(), "busy").unwrap_err();
        assert!(err.to_string().contains("in use"), "{err}");
        drop(first);
        assert!(!in_use(dir.path(), "busy"));
    }

    #[test]
    fn a_running_study_reads_without_its_lock_and_without_a_line_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = FileJournal::open(dir.path(), "live").unwrap();
        j.append(&started(0)).unwrap();
        let path = dir.path().join("live.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"event":"ended","tri"#).unwrap();
        assert_eq!(read_events(dir.path(), "live").unwrap(), vec![started(0)]);
        let missing = read_events(dir.path(), "none").unwrap_err();
        assert!(matches!(&missing, StoreError::Io(_, e) if e.kind() == io::ErrorKind::NotFound));
    }
}
