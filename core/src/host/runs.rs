//! Run records, the file-based counterpart of MLflow tracking: one folder per training run.
//!
//! ```text
//! <runs>/20261126-230501-3fa9c2/run.json       RunInfo: name, status, params, times, model, …
//! <runs>/20261126-230501-3fa9c2/metrics.jsonl  {"step":1,"name":"val_loss","value":0.1,"timestamp":…}
//! <runs>/20261126-230501-3fa9c2/log.txt        the training log, plain lines
//! ```
//!
//! Guarantees:
//! - Run ids are `YYYYMMDD-HHMMSS-xxxxxx` (UTC start time, 24 random bits), so they sort by
//!   start time to the second. The folder is made with `create_dir`, which fails if it exists,
//!   so two processes never share a run: the loser draws another id.
//! - `run.json` is only ever replaced by rename: readers see a whole record, old or new.
//! - `metrics.jsonl` and `log.txt` are append-only, one `write` per line. A reader may see a
//!   last line cut short (the run is still writing, or was killed); [`Runs::get`] ignores it.
//! - A [`RunWriter`] dropped without [`RunWriter::finish`] (error path, panic) marks its run
//!   `failed` with error `"interrupted"`. A killed process cannot: its run stays `running`
//!   on disk, and readers ([`Runs::info`], [`Runs::get`], [`Runs::list`]) report it as
//!   `failed` once its process is gone: no process has [`RunInfo::pid`], or the one that has
//!   it started at another time than [`RunInfo::pid_start_time`] (the pid was reused).
//!   Checked on Linux, in `/proc`; records without a start time are judged by the pid.
//! - Run ids given by callers are checked (`[A-Za-z0-9_-]`, 1–128 characters) before they
//!   touch a path.

use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize};

use super::atomic::{remove_dead_temps, replace_atomic};
use super::process;
use super::registry::ModelId;
use crate::hyper::Hyper;

/// The record of a run inside its folder.
pub const RUN_FILE: &str = "run.json";
/// The metrics of a run inside its folder (JSON Lines).
pub const METRICS_FILE: &str = "metrics.jsonl";
/// The training log of a run inside its folder.
pub const LOG_FILE: &str = "log.txt";
/// The error recorded when a [`RunWriter`] is dropped unfinished.
pub const INTERRUPTED: &str = "interrupted";

/// Longest accepted run id.
const MAX_ID_LEN: usize = 128;
/// A run folder without `run.json` younger than this is being created, not broken.
const CREATING: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Errors

/// Why a run operation failed; every variant carries the run id or the path.
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
        /// The runs folder.
        dir: PathBuf,
    },
    /// A run file that cannot be parsed.
    Corrupt {
        /// The file.
        path: PathBuf,
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
            Self::NotFound { id, dir } => write!(f, "no run `{id}` in {}", dir.display()),
            Self::Corrupt { path, detail } => {
                write!(f, "corrupt run file {}: {detail}", path.display())
            }
            Self::Io {
                action,
                path,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
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

fn io_err(action: &'static str, path: &Path, source: io::Error) -> RunsError {
    RunsError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
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

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so leap days end a year; 146097 days are 400 years.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era * 400 + yoe + u64::from(month <= 2);
    (year, month, day)
}

/// `YYYYMMDD-HHMMSS` in UTC (also names the drawings `pismo draw` saves).
pub fn utc_stamp(unix_secs: u64) -> String {
    let (y, mo, d) = civil_from_days(unix_secs / 86_400);
    let s = unix_secs % 86_400;
    format!(
        "{y:04}{mo:02}{d:02}-{:02}{:02}{:02}",
        s / 3_600,
        s / 60 % 60,
        s % 60
    )
}

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
// The runs folder

/// A runs folder. A missing folder has no runs; [`Runs::create`] creates it.
#[derive(Clone, Debug)]
pub struct Runs {
    dir: PathBuf,
}

impl Runs {
    /// The runs in `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `$PISMO_RUNS` if set and not empty, else `./runs`.
    pub fn default_dir() -> PathBuf {
        std::env::var_os("PISMO_RUNS")
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from("./runs"), PathBuf::from)
    }

    /// The runs folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The folder of run `id` (checked, and existing).
    pub fn run_dir(&self, id: &str) -> Result<PathBuf, RunsError> {
        validate_run_id(id)?;
        let dir = self.dir.join(id);
        if dir.is_dir() {
            Ok(dir)
        } else {
            Err(RunsError::NotFound {
                id: id.to_owned(),
                dir: self.dir.clone(),
            })
        }
    }

    /// Starts a run: a new folder with `run.json` (status `running`), an empty
    /// `metrics.jsonl` and `log.txt`.
    pub fn create(
        &self,
        name: &str,
        params: &Hyper,
        dataset: &str,
    ) -> Result<RunWriter, RunsError> {
        fs::create_dir_all(&self.dir).map_err(|e| io_err("create folder", &self.dir, e))?;
        let mut attempt = 0;
        let (run_id, dir, start) = loop {
            let start = SystemTime::now();
            let run_id = new_run_id(start);
            let dir = self.dir.join(&run_id);
            match fs::create_dir(&dir) {
                Ok(()) => break (run_id, dir, start),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => {
                    attempt += 1;
                }
                Err(e) => return Err(io_err("create folder", &dir, e)),
            }
        };
        let info = RunInfo {
            run_id,
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
        let open_append = |file: &str| {
            let path = dir.join(file);
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| io_err("create", &path, e))
        };
        let metrics = open_append(METRICS_FILE)?;
        let log = open_append(LOG_FILE)?;
        let writer = RunWriter {
            dir,
            info,
            metrics,
            log,
            first_error: None,
            done: false,
        };
        writer.write_info()?;
        Ok(writer)
    }

    /// All runs, newest first. Runs whose `run.json` cannot be read are left out; see
    /// [`Runs::list_with_problems`] to learn which.
    pub fn list(&self) -> Result<Vec<RunInfo>, RunsError> {
        Ok(self.list_with_problems()?.0)
    }

    /// All readable runs, newest first, and one error per run folder that could not be read
    /// (a corrupt or missing `run.json`). Fails only if the runs folder itself cannot be read.
    pub fn list_with_problems(&self) -> Result<(Vec<RunInfo>, Vec<RunsError>), RunsError> {
        let read_dir = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
            Err(e) => return Err(io_err("read folder", &self.dir, e)),
        };
        let mut runs = Vec::new();
        let mut problems = Vec::new();
        for entry in read_dir {
            let entry = entry.map_err(|e| io_err("read folder", &self.dir, e))?;
            let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if validate_run_id(&id).is_err() || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            match read_info(&entry.path(), &id) {
                Ok(info) => runs.push(info),
                Err(RunsError::Io { source, .. })
                    if source.kind() == io::ErrorKind::NotFound && is_young(&entry.path()) => {}
                Err(e) => problems.push(e),
            }
        }
        runs.sort_by(|a, b| (b.start_unix_ms, &b.run_id).cmp(&(a.start_unix_ms, &a.run_id)));
        Ok((runs, problems))
    }

    /// The record of run `id` (without metrics).
    pub fn info(&self, id: &str) -> Result<RunInfo, RunsError> {
        read_info(&self.run_dir(id)?, id)
    }

    /// Run `id` with its metrics. A cut-short last line of `metrics.jsonl` is ignored; any
    /// other unparsable line is an error naming the file and line.
    pub fn get(&self, id: &str) -> Result<RunRecord, RunsError> {
        let info = self.info(id)?;
        let metrics = self.metrics(id)?;
        Ok(RunRecord { info, metrics })
    }

    /// The metrics of run `id` (for a run already listed: without reading `run.json` again).
    /// A cut-short last line is ignored, as in [`Runs::get`]; no file means no metrics.
    pub fn metrics(&self, id: &str) -> Result<Vec<Metric>, RunsError> {
        let path = self.run_dir(id)?.join(METRICS_FILE);
        match fs::read(&path) {
            Ok(bytes) => parse_metrics(&path, &bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io_err("read", &path, e)),
        }
    }

    /// The training log of run `id` (invalid UTF-8 is replaced, a missing log is empty).
    pub fn log(&self, id: &str) -> Result<String, RunsError> {
        let path = self.run_dir(id)?.join(LOG_FILE);
        match fs::read(&path) {
            Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(io_err("read", &path, e)),
        }
    }
}

impl Runs {
    /// Records `model` as the model of run `id`, which has ended (e.g. the best trial of a
    /// study, registered once the study is over). `run.json` is replaced atomically.
    pub fn set_model(&self, id: &str, model: &ModelId) -> Result<(), RunsError> {
        let dir = self.run_dir(id)?;
        let mut info = read_info(&dir, id)?;
        info.model = Some(model.to_string());
        write_info_file(&dir, &info)
    }
}

fn is_young(dir: &Path) -> bool {
    fs::metadata(dir)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < CREATING)
}

fn read_info(run_dir: &Path, id: &str) -> Result<RunInfo, RunsError> {
    let path = run_dir.join(RUN_FILE);
    let bytes = fs::read(&path).map_err(|e| io_err("read", &path, e))?;
    let info: RunInfo = serde_json::from_slice(&bytes).map_err(|e| RunsError::Corrupt {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    if info.run_id != id {
        return Err(RunsError::Corrupt {
            path,
            detail: format!("it records run `{}` (copied by hand?)", info.run_id),
        });
    }
    Ok(orphan_check(info, run_dir))
}

/// A `running` run whose process is gone (killed, crashed) is reported as `failed`, with the
/// time its log last changed as its end; the file is left as it is, and the temp files of
/// dead writers in the run's folder are removed.
fn orphan_check(mut info: RunInfo, run_dir: &Path) -> RunInfo {
    if info.status == Status::Running
        && info.pid != 0
        && process::is_gone(info.pid, info.pid_start_time)
    {
        // A `run.json` temp file the killed process may have left (see `host::atomic`).
        remove_dead_temps(run_dir);
        info.status = Status::Failed;
        info.error = Some(format!(
            "the training process (pid {}) ended without closing the run (killed or crashed)",
            info.pid
        ));
        info.end_unix_ms = [LOG_FILE, METRICS_FILE, RUN_FILE]
            .iter()
            .filter_map(|f| fs::metadata(run_dir.join(f)).ok()?.modified().ok())
            .max()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as u64);
    }
    info
}

fn parse_metrics(path: &Path, bytes: &[u8]) -> Result<Vec<Metric>, RunsError> {
    let text = String::from_utf8_lossy(bytes);
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut metrics = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Metric>(line) {
            Ok(m) => metrics.push(m),
            Err(_) if i + 1 == lines.len() && !complete => break,
            Err(e) => {
                return Err(RunsError::Corrupt {
                    path: path.to_path_buf(),
                    detail: format!("line {}: {e}", i + 1),
                })
            }
        }
    }
    Ok(metrics)
}

// ---------------------------------------------------------------------------------------------
// Writing a run

/// Replaces `run.json` in `run_dir` with `info`, atomically.
fn write_info_file(run_dir: &Path, info: &RunInfo) -> Result<(), RunsError> {
    let path = run_dir.join(RUN_FILE);
    let mut text = serde_json::to_vec_pretty(info).map_err(|e| RunsError::Corrupt {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    text.push(b'\n');
    replace_atomic(&path, &text).map_err(|e| io_err("write", &path, e))
}

/// Writes one run while it trains. Logging never fails the training: the first I/O error is
/// kept ([`RunWriter::first_error`]) and returned by [`RunWriter::try_finish`]. Dropped without `finish`, it marks the run
/// `failed` with error [`INTERRUPTED`].
#[derive(Debug)]
pub struct RunWriter {
    dir: PathBuf,
    info: RunInfo,
    metrics: fs::File,
    log: fs::File,
    first_error: Option<RunsError>,
    done: bool,
}

impl RunWriter {
    /// The run's id.
    pub fn id(&self) -> &str {
        &self.info.run_id
    }

    /// The run's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
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

    fn write_info(&self) -> Result<(), RunsError> {
        write_info_file(&self.dir, &self.info)
    }

    /// Appends `{"step","name","value","timestamp"}` to `metrics.jsonl`.
    pub fn log_metric(&mut self, step: u32, name: &str, value: f64) {
        let metric = Metric {
            step,
            name: name.to_owned(),
            value,
            timestamp: now_unix_ms(),
        };
        let mut line = serde_json::to_vec(&metric).unwrap_or_default();
        line.push(b'\n');
        let result = self
            .metrics
            .write_all(&line)
            .and_then(|()| self.metrics.flush())
            .map_err(|e| io_err("append to", &self.dir.join(METRICS_FILE), e));
        self.keep(result);
    }

    /// Appends `line` (and a newline) to `log.txt`.
    pub fn log_line(&mut self, line: &str) {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        let result = self
            .log
            .write_all(&bytes)
            .and_then(|()| self.log.flush())
            .map_err(|e| io_err("append to", &self.dir.join(LOG_FILE), e));
        self.keep(result);
    }

    /// Records the model the run registered (rewrites `run.json`).
    pub fn set_model(&mut self, id: &ModelId) {
        self.info.model = Some(id.to_string());
        let result = self.write_info();
        self.keep(result);
    }

    /// Tags the run with `key` = `value` (rewrites `run.json`).
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
    /// the final `run.json`.
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

    fn temp_dir(tag: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("pismo-runs-{tag}-"))
            .tempdir()
            .unwrap()
    }

    #[test]
    fn a_running_run_whose_process_is_gone_reads_as_failed() {
        let tmp = temp_dir("orphan");
        let runs = Runs::open(tmp.path());
        let writer = runs.create("mnist", &Hyper::DEFAULT, "d").unwrap();
        let id = writer.id().to_owned();
        // Our own process is alive: still running.
        assert_eq!(runs.info(&id).unwrap().status, Status::Running);
        // A process that has ended (and been reaped) in its place.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let path = tmp.path().join(&id).join(RUN_FILE);
        let mut info: RunInfo = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        info.pid = pid;
        info.pid_start_time = None;
        fs::write(&path, serde_json::to_vec(&info).unwrap()).unwrap();
        // The dead process was killed while it rewrote run.json.
        let left = tmp
            .path()
            .join(&id)
            .join(format!(".run.json.tmp-{pid}-0-1-2"));
        fs::write(&left, b"{").unwrap();
        let read = runs.info(&id).unwrap();
        if cfg!(target_os = "linux") {
            assert_eq!(read.status, Status::Failed);
            assert!(read.error.unwrap().contains(&format!("pid {pid}")));
            assert!(read.end_unix_ms.is_some());
            assert_eq!(runs.list().unwrap()[0].status, Status::Failed);
            assert!(!left.exists());
        }
        // The record on disk is left as it was.
        let on_disk: RunInfo = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(on_disk.status, Status::Running);
        drop(writer);
    }

    /// Issue 11 row 10: a dead run whose pid was reused by another process showed as
    /// `running` for ever. The run records its process's start time; a live pid with another
    /// start time is not the run's process.
    #[cfg(target_os = "linux")]
    #[test]
    fn issue11_row10_a_reused_pid_does_not_keep_a_dead_run_running() {
        let tmp = temp_dir("reused-pid");
        let runs = Runs::open(tmp.path());
        let writer = runs.create("mnist", &Hyper::DEFAULT, "d").unwrap();
        let id = writer.id().to_owned();
        std::mem::forget(writer); // as if killed: nothing marks the run ended
        let path = tmp.path().join(&id).join(RUN_FILE);
        let on_disk: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            on_disk["pid_start_time"],
            crate::host::registry::tests::proc_start(std::process::id())
        );

        // Another process now has the pid the record names.
        let mut other = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let (other_pid, other_start) = (
            other.id(),
            crate::host::registry::tests::proc_start(other.id()),
        );
        let record = |pid_start: Option<u64>| {
            let mut v = on_disk.clone();
            v["pid"] = other_pid.into();
            match pid_start {
                Some(s) => v["pid_start_time"] = s.into(),
                None => drop(v.as_object_mut().unwrap().remove("pid_start_time")),
            }
            fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
            runs.info(&id).unwrap()
        };
        let reused = record(Some(other_start + 1));
        assert_eq!(reused.status, Status::Failed);
        assert!(reused
            .error
            .unwrap()
            .contains("ended without closing the run"));
        assert_eq!(runs.list().unwrap()[0].status, Status::Failed);
        // The same pid and start time: the run's own process, alive.
        assert_eq!(record(Some(other_start)).status, Status::Running);
        // A record from before start times were kept: judged by the pid, as before.
        assert_eq!(record(None).status, Status::Running);
        other.kill().unwrap();
        other.wait().unwrap();
        assert_eq!(record(None).status, Status::Failed);
    }

    #[test]
    fn utc_stamps_match_the_calendar() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        assert_eq!(utc_stamp(951_782_400), "20000229-000000");
        assert_eq!(utc_stamp(1_700_000_000), "20231114-221320");
        assert_eq!(utc_stamp(1_795_734_301), "20261126-230501");
        assert_eq!(utc_stamp(4_107_542_399), "21000228-235959");
        assert_eq!(utc_stamp(4_107_542_400), "21000301-000000");
    }

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
        let tmp = temp_dir("traversal");
        let runs = Runs::open(tmp.path().join("runs"));
        fs::create_dir_all(tmp.path().join("secret")).unwrap();
        for bad in ["..", "../secret", "/etc"] {
            assert!(matches!(runs.get(bad), Err(RunsError::InvalidId { .. })));
            assert!(matches!(runs.log(bad), Err(RunsError::InvalidId { .. })));
        }
        assert!(runs.get("nope").unwrap_err().is_not_found());
    }

    #[test]
    fn a_run_records_params_metrics_log_and_model() {
        let tmp = temp_dir("record");
        let runs = Runs::open(tmp.path().join("runs"));
        assert!(runs.list().unwrap().is_empty());
        let mut w = runs.create("mnist", &Hyper::DEFAULT, "sha256:abc").unwrap();
        let id = w.id().to_owned();
        assert_eq!(runs.info(&id).unwrap().status, Status::Running);
        w.log_line("epoch 1: loss 0.3");
        w.log_metric(1, "val_loss", 0.25);
        w.log_metric(1, "val_accuracy", 0.93);
        w.log_metric(2, "val_loss", f64::NAN);
        w.set_model(&"mnist@4".parse().unwrap());
        assert_eq!(runs.info(&id).unwrap().model.as_deref(), Some("mnist@4"));
        w.try_finish(Status::Finished, None).unwrap();

        let rec = runs.get(&id).unwrap();
        assert_eq!(rec.info.run_id, id);
        assert_eq!(rec.info.name, "mnist");
        assert_eq!(rec.info.status, Status::Finished);
        assert_eq!(rec.info.params, Hyper::DEFAULT);
        assert_eq!(rec.info.dataset, "sha256:abc");
        assert_eq!(rec.info.pid, std::process::id());
        assert!(rec.info.end_unix_ms.unwrap() >= rec.info.start_unix_ms);
        assert_eq!(rec.metrics.len(), 3);
        assert_eq!(
            (rec.metrics[1].step, rec.metrics[1].name.as_str()),
            (1, "val_accuracy")
        );
        assert_eq!(rec.metrics[0].value, 0.25);
        assert!(rec.metrics[2].value.is_nan());
        assert_eq!(runs.log(&id).unwrap(), "epoch 1: loss 0.3\n");

        // The JSON the CLI and server print: RunInfo's fields plus "metrics".
        let json = serde_json::to_value(&rec).unwrap();
        assert_eq!(json["status"], "finished");
        assert_eq!(json["params"]["hidden_size"], 128);
        assert_eq!(json["metrics"][0]["name"], "val_loss");
        assert!(json["error"].is_null());
        let back: RunRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back.info, rec.info);

        let on_disk: serde_json::Value =
            serde_json::from_slice(&fs::read(runs.dir().join(&id).join(RUN_FILE)).unwrap())
                .unwrap();
        for key in [
            "run_id",
            "name",
            "status",
            "start_unix_ms",
            "end_unix_ms",
            "params",
            "model",
            "error",
            "dataset",
            "pid",
        ] {
            assert!(on_disk.get(key).is_some(), "{key}");
        }
        let leftovers: Vec<_> = fs::read_dir(runs.dir().join(&id))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_dropped_writer_marks_the_run_interrupted() {
        let tmp = temp_dir("drop");
        let runs = Runs::open(tmp.path().join("runs"));
        let id = {
            let w = runs.create("x", &Hyper::DEFAULT, "").unwrap();
            w.id().to_owned()
        };
        let info = runs.info(&id).unwrap();
        assert_eq!(info.status, Status::Failed);
        assert_eq!(info.error.as_deref(), Some(INTERRUPTED));

        let runs2 = runs.clone();
        let panicked = std::thread::spawn(move || {
            let mut w = runs2.create("y", &Hyper::DEFAULT, "").unwrap();
            w.log_line("about to fail");
            panic!("training blew up in run {}", w.id());
        })
        .join();
        assert!(panicked.is_err());
        let listed = runs.list().unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().all(|r| r.status == Status::Failed));
    }

    #[test]
    fn logging_errors_surface_in_try_finish() {
        let tmp = temp_dir("errors");
        let runs = Runs::open(tmp.path().join("runs"));
        let mut w = runs.create("x", &Hyper::DEFAULT, "").unwrap();
        assert!(w.first_error().is_none());
        fs::remove_dir_all(w.dir()).unwrap();
        w.set_model(&"x@1".parse().unwrap());
        assert!(w.first_error().is_some());
        let e = w
            .try_finish(Status::Finished, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains(RUN_FILE), "{e}");
    }

    #[test]
    fn a_cut_short_last_metric_line_is_ignored_a_broken_middle_one_is_not() {
        let tmp = temp_dir("metrics");
        let runs = Runs::open(tmp.path().join("runs"));
        let mut w = runs.create("m", &Hyper::DEFAULT, "").unwrap();
        w.log_metric(1, "val_loss", 0.5);
        w.log_metric(2, "val_loss", 0.4);
        let id = w.id().to_owned();
        w.finish(Status::Stopped, Some("stopped by user"));
        let path = runs.dir().join(&id).join(METRICS_FILE);
        let good = fs::read_to_string(&path).unwrap();

        fs::write(&path, format!("{good}{{\"step\":3,\"name\":\"val_lo")).unwrap();
        let rec = runs.get(&id).unwrap();
        assert_eq!(rec.metrics.len(), 2);
        assert_eq!(rec.info.status, Status::Stopped);
        assert_eq!(rec.info.error.as_deref(), Some("stopped by user"));

        fs::write(&path, format!("garbage\n{good}")).unwrap();
        let e = runs.get(&id).unwrap_err().to_string();
        assert!(e.contains("metrics.jsonl") && e.contains("line 1"), "{e}");
    }

    #[test]
    fn list_is_newest_first_and_skips_corrupt_runs() {
        let tmp = temp_dir("list");
        let runs = Runs::open(tmp.path().join("runs"));
        let mut ids = Vec::new();
        for name in ["a", "b", "c"] {
            let w = runs.create(name, &Hyper::DEFAULT, "").unwrap();
            ids.push(w.id().to_owned());
            w.try_finish(Status::Finished, None).unwrap();
            std::thread::sleep(Duration::from_millis(3));
        }
        fs::write(runs.dir().join(&ids[1]).join(RUN_FILE), b"{\"run_id\":").unwrap();
        fs::write(runs.dir().join("stray-file"), b"x").unwrap();
        fs::create_dir(runs.dir().join(".hidden")).unwrap();

        let (listed, problems) = runs.list_with_problems().unwrap();
        let names: Vec<&str> = listed.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["c", "a"]);
        assert_eq!(problems.len(), 1);
        let p = problems[0].to_string();
        assert!(
            p.starts_with("corrupt run file") && p.contains(&ids[1]),
            "{p}"
        );
        assert_eq!(runs.list().unwrap().len(), 2);
        assert!(runs.get(&ids[1]).is_err());
    }

    #[test]
    fn tags_are_kept_and_records_without_them_still_read() {
        let tmp = temp_dir("tags");
        let runs = Runs::open(tmp.path());
        let mut w = runs.create("study-a", &Hyper::DEFAULT, "d").unwrap();
        let id = w.id().to_owned();
        w.set_tag("study", "study-a");
        w.set_tag("trial", "3");
        w.finish(Status::Finished, None);
        let info = runs.info(&id).unwrap();
        assert_eq!(info.tags.get("study").map(String::as_str), Some("study-a"));
        assert_eq!(info.tags.get("trial").map(String::as_str), Some("3"));
        // A finished run can be pointed at the model registered for it afterwards.
        runs.set_model(&id, &"study-a@1".parse().unwrap()).unwrap();
        let info = runs.info(&id).unwrap();
        assert_eq!(info.model.as_deref(), Some("study-a@1"));
        assert_eq!(info.tags.len(), 2);
        // A record written before tags existed has none.
        let path = runs.run_dir(&id).unwrap().join(RUN_FILE);
        let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("tags");
        fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        assert!(runs.info(&id).unwrap().tags.is_empty());
    }
}
