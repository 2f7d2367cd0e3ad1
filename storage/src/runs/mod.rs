//! Run records, pismo's counterpart of MLflow tracking: each training run's parameters,
//! per-epoch metrics, log, status and model.
//!
//! - [`Runs`] is the policy every caller uses: run ids, newest-first listings, and
//!   [`RunWriter`], which records a run while it trains without ever failing the training.
//! - [`store::RunStore`] is where the records live: the runs folder
//!   ([`folder::FolderRuns`], the default: one folder per run) or a PostgreSQL database
//!   (crate `pismo-store`).
//!
//! Guarantees on every store:
//! - Run ids are `YYYYMMDD-HHMMSS-xxxxxx` (UTC start time, 24 random bits), so they sort by
//!   start time to the second; a store never gives one id to two runs (the loser draws
//!   another).
//! - A record is replaced whole: readers see the old one or the new one.
//! - A [`RunWriter`] dropped without [`RunWriter::finish`] (error path, panic) marks its run
//!   `failed` with error `"interrupted"`. A killed process cannot: its run stays `running`
//!   where it is stored, and readers report it as `failed` once its writer is gone (the
//!   store says how it knows).
//! - Run ids given by callers are checked (`[A-Za-z0-9_-]`, 1–128 characters) before they
//!   reach a store.

pub mod folder;
pub mod store;

use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize};

use self::folder::FolderRuns;
use self::store::{RunSink, RunStore};
use crate::registry::ModelId;
use pismo_core::hyper::Hyper;
use pismo_files::process;
use pismo_files::stamp::utc_stamp;

/// The error recorded when a [`RunWriter`] is dropped unfinished.
pub const INTERRUPTED: &str = "interrupted";

/// Longest accepted run id.
const MAX_ID_LEN: usize = 128;

// ---------------------------------------------------------------------------------------------
// Errors

/// Why a run operation failed; every variant carries the run id, the path or the store.
#[derive(Debug)]
#[non_exhaustive]
pub enum RunsError {
    /// A run id with characters outside `[A-Za-z0-9_-]` (or empty, or too long).
    InvalidId {
        /// The id as given.
        id: String,
    },
    /// No run with that id.
    NotFound {
        /// The id asked for.
        id: String,
        /// The store: the runs folder or the database.
        location: String,
    },
    /// A stored record that cannot be parsed.
    Corrupt {
        /// The file, or the run in its database.
        location: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A file-system operation failed.
    Io {
        /// What was being done ("read", "create folder", …).
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A store other than a folder failed (a database that refused or could not be reached).
    Store {
        /// The store, for people: a database URL without password.
        location: String,
        /// The whole message.
        message: String,
    },
}

impl RunsError {
    /// True for "no such run" (an HTTP 404).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

impl fmt::Display for RunsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidId { id } => write!(
                f,
                "invalid run id `{id}`: expected 1-{MAX_ID_LEN} letters, digits, `_` or `-`"
            ),
            Self::NotFound { id, location } => write!(f, "no run `{id}` in {location}"),
            Self::Corrupt { location, detail } => {
                write!(f, "corrupt run record {location}: {detail}")
            }
            Self::Io {
                action,
                path,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
            Self::Store { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for RunsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The hyperparameters as (name, value) pairs in declaration order, with the names used
/// everywhere else (flags with `_`, JSON, run records, MLflow params).
pub fn hyper_fields(h: &Hyper) -> [(&'static str, String); 12] {
    [
        ("hidden_size", h.hidden_size.to_string()),
        ("dropout_rate", h.dropout_rate.to_string()),
        ("reg_lambda", h.reg_lambda.to_string()),
        ("initial_lr", h.initial_lr.to_string()),
        ("decay", h.decay.to_string()),
        ("momentum", h.momentum.to_string()),
        ("batch_size", h.batch_size.to_string()),
        ("epochs", h.epochs.to_string()),
        ("patience", h.patience.to_string()),
        ("seed", h.seed.to_string()),
        ("val_size", h.val_size.to_string()),
        ("augment", h.augment.to_string()),
    ]
}

/// Checks a run id: 1–128 characters of `[A-Za-z0-9_-]`, so it is one safe path component.
pub fn validate_run_id(id: &str) -> Result<(), RunsError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(RunsError::InvalidId { id: id.to_owned() })
    }
}

// ---------------------------------------------------------------------------------------------
// Records

/// Where a run is. Serialised in lowercase: `"running"`, `"finished"`, ….
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Training. (A run whose process died without a word is read as `Failed`.)
    Running,
    /// Ended normally.
    Finished,
    /// Ended with an error ([`RunInfo::error`]).
    Failed,
    /// Stopped on request.
    Stopped,
}

impl Status {
    /// The name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Finished => "finished",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The epoch whose weights a run kept: the one with the lowest finite `val_loss` (the first
/// of equals), as the trainer chooses. `None` without validation losses.
pub fn kept_epoch(metrics: &[Metric]) -> Option<u32> {
    metrics
        .iter()
        .filter(|m| m.name == "val_loss" && m.value.is_finite())
        .min_by(|a, b| a.value.total_cmp(&b.value).then(a.step.cmp(&b.step)))
        .map(|m| m.step)
}

/// The content of `run.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The run's id (its folder name).
    pub run_id: String,
    /// A free-form name given by the user (e.g. the model name).
    pub name: String,
    /// Where the run is.
    pub status: Status,
    /// Start time, Unix milliseconds.
    pub start_unix_ms: u64,
    /// End time, Unix milliseconds; `None` while running.
    pub end_unix_ms: Option<u64>,
    /// The hyperparameters.
    pub params: Hyper,
    /// The registered model, `"name@version"`, once there is one.
    pub model: Option<String>,
    /// Why the run failed.
    pub error: Option<String>,
    /// Which data it trained on (e.g. a digest of the MNIST files).
    pub dataset: String,
    /// The process that ran it.
    #[serde(default)]
    pub pid: u32,
    /// When that process started (Linux: clock ticks since boot, `/proc/PID/stat` field 22),
    /// so a later process given the same pid is not taken for it. Absent in records written
    /// before pismo kept it, and off Linux; such runs are judged by the pid alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start_time: Option<u64>,
    /// Labels of the run by key, e.g. `study` and `trial` for a trial of `pismo tune`.
    /// Absent in records written before pismo kept them, and in runs without tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

impl RunInfo {
    /// Wall time of the run so far (or in total once ended), in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.end_unix_ms
            .unwrap_or_else(now_unix_ms)
            .saturating_sub(self.start_unix_ms)
    }
}

/// One line of `metrics.jsonl`. A non-finite value is written as `null` and read back as NaN.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// The epoch (or other step counter).
    pub step: u32,
    /// The metric's name, e.g. `"val_loss"`.
    pub name: String,
    /// Its value.
    #[serde(deserialize_with = "nan_if_null")]
    pub value: f64,
    /// When it was logged, Unix milliseconds.
    pub timestamp: u64,
}

fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// A run with its metrics, as [`Runs::get`] returns it. Serialised as the fields of
/// [`RunInfo`] plus `"metrics": [...]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run.
    #[serde(flatten)]
    pub info: RunInfo,
    /// Its metrics in the order they were logged.
    pub metrics: Vec<Metric>,
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

// ---------------------------------------------------------------------------------------------
// Run ids

static ID_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A new run id for a run started at `now`: the UTC stamp and 24 bits hashed from the
/// nanoseconds, the pid, a per-process counter and std's per-process random hash keys.
fn new_run_id(now: SystemTime) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut h = RandomState::new().build_hasher();
    h.write_u128(since.as_nanos());
    h.write_u32(std::process::id());
    h.write_u64(ID_COUNTER.fetch_add(1, Ordering::Relaxed));
    let bits = h.finish();
    format!(
        "{}-{:06x}",
        utc_stamp(since.as_secs()),
        (bits ^ (bits >> 32)) & 0xff_ffff
    )
}

// ---------------------------------------------------------------------------------------------
// The runs

/// Where run records are kept, and the rules for reading and writing them.
#[derive(Clone, Debug)]
pub struct Runs {
    store: Arc<dyn RunStore>,
}

impl Runs {
    /// The runs in the folder `dir` (a missing folder has no runs; the first run makes it).
    pub fn open(dir: impl Into<PathBuf>) -> Self {
        Self::with_store(Arc::new(FolderRuns::new(dir)))
    }

    /// The runs in `store`.
    pub fn with_store(store: Arc<dyn RunStore>) -> Self {
        Self { store }
    }

    /// `$PISMO_RUNS` if set and not empty, else `./runs`.
    pub fn default_dir() -> PathBuf {
        pismo_files::dirs::from_env("PISMO_RUNS", "./runs")
    }

    /// Where the runs are, for messages: the folder or the database (without password).
    pub fn location(&self) -> String {
        self.store.location()
    }

    /// The runs folder, when the runs are kept in one.
    pub fn folder(&self) -> Option<&Path> {
        self.store.folder()
    }

    /// Where tuning studies kept as journal files go: `<runs folder>/studies`, or with the
    /// runs in a database, the local runs folder's (`$PISMO_RUNS`, else `./runs`).
    pub fn studies_folder(&self) -> PathBuf {
        self.folder()
            .map_or_else(Self::default_dir, Path::to_path_buf)
            .join("studies")
    }

    /// Starts a run: a new record with status `running`, no metrics and an empty log.
    pub fn create(
        &self,
        name: &str,
        params: &Hyper,
        dataset: &str,
    ) -> Result<RunWriter, RunsError> {
        for _ in 0..100 {
            let start = SystemTime::now();
            let info = RunInfo {
                run_id: new_run_id(start),
                name: name.to_owned(),
                status: Status::Running,
                start_unix_ms: start
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                end_unix_ms: None,
                params: *params,
                model: None,
                error: None,
                dataset: dataset.to_owned(),
                pid: std::process::id(),
                pid_start_time: process::own_start_time(),
                tags: BTreeMap::new(),
            };
            if let Some(sink) = self.store.create(&info)? {
                return Ok(RunWriter {
                    location: self.store.location(),
                    info,
                    sink,
                    first_error: None,
                    done: false,
                });
            }
        }
        Err(RunsError::Store {
            location: self.location(),
            message: format!(
                "cannot draw a free run id in {}: 100 ids in a row were taken",
                self.location()
            ),
        })
    }

    /// All runs, newest first. Runs that cannot be read are left out; see
    /// [`Runs::list_with_problems`] to learn which.
    pub fn list(&self) -> Result<Vec<RunInfo>, RunsError> {
        Ok(self.list_with_problems()?.0)
    }

    /// All readable runs, newest first, and one error per run that could not be read (a
    /// corrupt or missing record). Fails only if the store itself cannot be read.
    pub fn list_with_problems(&self) -> Result<(Vec<RunInfo>, Vec<RunsError>), RunsError> {
        let (mut runs, problems) = self.store.list()?;
        runs.sort_by(|a, b| (b.start_unix_ms, &b.run_id).cmp(&(a.start_unix_ms, &a.run_id)));
        Ok((runs, problems))
    }

    /// The record of run `id` (without metrics).
    pub fn info(&self, id: &str) -> Result<RunInfo, RunsError> {
        validate_run_id(id)?;
        self.store.info(id)
    }

    /// Run `id` with its metrics. A cut-short last metric (the run is writing it, or was
    /// killed while it did) is left out; any other unreadable metric is an error.
    pub fn get(&self, id: &str) -> Result<RunRecord, RunsError> {
        let info = self.info(id)?;
        let metrics = self.store.metrics(id)?;
        Ok(RunRecord { info, metrics })
    }

    /// The metrics of run `id` (for a run already listed: without reading its record again).
    pub fn metrics(&self, id: &str) -> Result<Vec<Metric>, RunsError> {
        validate_run_id(id)?;
        self.store.metrics(id)
    }

    /// The training log of run `id` (invalid UTF-8 is replaced, a missing log is empty).
    pub fn log(&self, id: &str) -> Result<String, RunsError> {
        validate_run_id(id)?;
        self.store.log(id)
    }

    /// Records `model` as the model of run `id`, which has ended (e.g. the best trial of a
    /// study, registered once the study is over). The record is replaced whole.
    pub fn set_model(&self, id: &str, model: &ModelId) -> Result<(), RunsError> {
        validate_run_id(id)?;
        self.store.set_model(id, &model.to_string())
    }

    /// Stores run `run` (with its `log`) from another store under its own id; `false` when
    /// this store has a run with that id already.
    pub fn import(&self, run: &RunRecord, log: &str) -> Result<bool, RunsError> {
        validate_run_id(&run.info.run_id)?;
        self.store.import(run, log)
    }
}

// ---------------------------------------------------------------------------------------------
// Writing a run

/// Writes one run while it trains. Logging never fails the training: the first error is
/// kept ([`RunWriter::first_error`]) and returned by [`RunWriter::try_finish`]. Dropped
/// without `finish`, it marks the run `failed` with error [`INTERRUPTED`].
#[derive(Debug)]
pub struct RunWriter {
    location: String,
    info: RunInfo,
    sink: Box<dyn RunSink>,
    first_error: Option<RunsError>,
    done: bool,
}

impl RunWriter {
    /// The run's id.
    pub fn id(&self) -> &str {
        &self.info.run_id
    }

    /// Where the run is kept, for messages: its store.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The record as last written.
    pub fn info(&self) -> &RunInfo {
        &self.info
    }

    fn keep(&mut self, result: Result<(), RunsError>) {
        if let Err(e) = result {
            self.first_error.get_or_insert(e);
        }
    }

    fn write_info(&mut self) -> Result<(), RunsError> {
        self.sink.write_info(&self.info)
    }

    /// Appends a metric: `step`, `name`, `value` and the time.
    pub fn log_metric(&mut self, step: u32, name: &str, value: f64) {
        let metric = Metric {
            step,
            name: name.to_owned(),
            value,
            timestamp: now_unix_ms(),
        };
        let result = self.sink.append_metric(&metric);
        self.keep(result);
    }

    /// Appends `line` to the log.
    pub fn log_line(&mut self, line: &str) {
        let result = self.sink.append_log(line);
        self.keep(result);
    }

    /// Records the model the run registered (replaces the record).
    pub fn set_model(&mut self, id: &ModelId) {
        self.info.model = Some(id.to_string());
        let result = self.write_info();
        self.keep(result);
    }

    /// Tags the run with `key` = `value` (replaces the record).
    pub fn set_tag(&mut self, key: &str, value: &str) {
        self.info.tags.insert(key.to_owned(), value.to_owned());
        let result = self.write_info();
        self.keep(result);
    }

    /// The first error met while logging, if any (logging goes on after it, best effort).
    pub fn first_error(&self) -> Option<&RunsError> {
        self.first_error.as_ref()
    }

    /// Ends the run with `status` (`finished`, `failed` or `stopped`) and an optional error
    /// message, best effort: see [`RunWriter::try_finish`] to learn whether it was recorded.
    pub fn finish(self, status: Status, error: Option<&str>) {
        let _ = self.try_finish(status, error);
    }

    /// [`RunWriter::finish`], returning the first error met while logging or while writing
    /// the final record.
    pub fn try_finish(mut self, status: Status, error: Option<&str>) -> Result<(), RunsError> {
        self.done = true;
        self.info.status = status;
        self.info.error = error.map(str::to_owned);
        self.info.end_unix_ms = Some(now_unix_ms().max(self.info.start_unix_ms));
        let result = self.write_info();
        match self.first_error.take() {
            Some(e) => Err(e),
            None => result,
        }
    }
}

impl Drop for RunWriter {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.info.status = Status::Failed;
        self.info.error = Some(INTERRUPTED.to_owned());
        self.info.end_unix_ms = Some(now_unix_ms().max(self.info.start_unix_ms));
        let _ = self.write_info();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn run_ids_are_sortable_unique_and_safe() {
        let now = UNIX_EPOCH + Duration::from_secs(1_795_734_301);
        let ids: std::collections::BTreeSet<String> = (0..1000).map(|_| new_run_id(now)).collect();
        assert!(ids.len() > 990, "{}", ids.len());
        for id in &ids {
            assert!(id.starts_with("20261126-230501-") && id.len() == 22, "{id}");
            validate_run_id(id).unwrap();
        }
    }

    #[test]
    fn run_ids_are_checked() {
        for bad in [
            "",
            "..",
            "../x",
            "a/b",
            "a\\b",
            "a.b",
            "a b",
            "ä",
            &"x".repeat(129),
        ] {
            let e = validate_run_id(bad).unwrap_err();
            assert!(e.to_string().contains(&format!("`{bad}`")), "{e}");
        }
        let tmp = tempfile::Builder::new()
            .prefix("pismo-runs-traversal-")
            .tempdir()
            .unwrap();
        let runs = Runs::open(tmp.path().join("runs"));
        std::fs::create_dir_all(tmp.path().join("secret")).unwrap();
        for bad in ["..", "../secret", "/etc"] {
            assert!(matches!(runs.get(bad), Err(RunsError::InvalidId { .. })));
            assert!(matches!(runs.log(bad), Err(RunsError::InvalidId { .. })));
        }
        assert!(runs.get("nope").unwrap_err().is_not_found());
    }
}
