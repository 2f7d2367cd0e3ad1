//! The runs folder, the default run store: one folder per run.
//!
//! ```text
//! <runs>/20261126-230501-3fa9c2/run.json       RunInfo: name, status, params, times, model, …
//! <runs>/20261126-230501-3fa9c2/metrics.jsonl  {"step":1,"name":"val_loss","value":0.1,"timestamp":…}
//! <runs>/20261126-230501-3fa9c2/log.txt        the training log, plain lines
//! ```
//!
//! - A run's folder is made with `create_dir`, which fails if it exists, so two processes
//!   never share a run: the loser draws another id.
//! - `run.json` is only ever replaced by rename: readers see a whole record, old or new.
//! - `metrics.jsonl` and `log.txt` are append-only, one `write` per line. A reader may see a
//!   last line cut short (the run is still writing, or was killed); it is ignored.
//! - A killed process cannot end its run: its run stays `running` on disk, and readers report
//!   it as `failed` once its process is gone: no process has [`RunInfo::pid`], or the one
//!   that has it started at another time than [`RunInfo::pid_start_time`] (the pid was
//!   reused). Checked on Linux, in `/proc`; records without a start time are judged by the
//!   pid.
//! - An imported run is written in a hidden folder and renamed into place whole.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use super::store::{RunSink, RunStore};
use super::{Metric, RunInfo, RunRecord, RunsError, Status};
use pismo_files::atomic::{remove_dead_temps, replace_atomic};
use pismo_files::process;

/// The record of a run inside its folder.
pub const RUN_FILE: &str = "run.json";
/// The metrics of a run inside its folder (JSON Lines).
pub const METRICS_FILE: &str = "metrics.jsonl";
/// The training log of a run inside its folder.
pub const LOG_FILE: &str = "log.txt";

/// A run folder without `run.json` younger than this is being created, not broken.
const CREATING: Duration = Duration::from_secs(60);

fn io_err(action: &'static str, path: &Path, source: io::Error) -> RunsError {
    RunsError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, detail: impl Into<String>) -> RunsError {
    RunsError::Corrupt {
        location: path.display().to_string(),
        detail: detail.into(),
    }
}

/// A runs folder. A missing folder has no runs; the first run creates it.
#[derive(Clone, Debug)]
pub struct FolderRuns {
    dir: PathBuf,
}

impl FolderRuns {
    /// The runs in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The folder of run `id`, if it exists.
    fn run_dir(&self, id: &str) -> Result<PathBuf, RunsError> {
        let dir = self.dir.join(id);
        if dir.is_dir() {
            Ok(dir)
        } else {
            Err(RunsError::NotFound {
                id: id.to_owned(),
                location: self.location(),
            })
        }
    }

    fn read_lines_file(
        &self,
        id: &str,
        file: &str,
    ) -> Result<Option<(PathBuf, Vec<u8>)>, RunsError> {
        let path = self.run_dir(id)?.join(file);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some((path, bytes))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &path, e)),
        }
    }
}

impl RunStore for FolderRuns {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    fn folder(&self) -> Option<&Path> {
        Some(&self.dir)
    }

    fn create(&self, info: &RunInfo) -> Result<Option<Box<dyn RunSink>>, RunsError> {
        fs::create_dir_all(&self.dir).map_err(|e| io_err("create folder", &self.dir, e))?;
        let dir = self.dir.join(&info.run_id);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(None),
            Err(e) => return Err(io_err("create folder", &dir, e)),
        }
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
        write_info_file(&dir, info)?;
        Ok(Some(Box::new(FolderSink { dir, metrics, log })))
    }

    fn list(&self) -> Result<(Vec<RunInfo>, Vec<RunsError>), RunsError> {
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
            if super::validate_run_id(&id).is_err() || !entry.file_type().is_ok_and(|t| t.is_dir())
            {
                continue;
            }
            match read_info(&entry.path(), &id) {
                Ok(info) => runs.push(info),
                Err(RunsError::Io { source, .. })
                    if source.kind() == io::ErrorKind::NotFound && is_young(&entry.path()) => {}
                Err(e) => problems.push(e),
            }
        }
        Ok((runs, problems))
    }

    fn info(&self, id: &str) -> Result<RunInfo, RunsError> {
        read_info(&self.run_dir(id)?, id)
    }

    fn metrics(&self, id: &str) -> Result<Vec<Metric>, RunsError> {
        match self.read_lines_file(id, METRICS_FILE)? {
            Some((path, bytes)) => parse_metrics(&path, &bytes),
            None => Ok(Vec::new()),
        }
    }

    fn log(&self, id: &str) -> Result<String, RunsError> {
        Ok(self
            .read_lines_file(id, LOG_FILE)?
            .map(|(_, bytes)| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default())
    }

    fn set_model(&self, id: &str, model: &str) -> Result<(), RunsError> {
        let dir = self.run_dir(id)?;
        let mut info = read_info(&dir, id)?;
        info.model = Some(model.to_owned());
        write_info_file(&dir, &info)
    }

    fn import(&self, run: &RunRecord, log: &str) -> Result<bool, RunsError> {
        let id = &run.info.run_id;
        let dir = self.dir.join(id);
        if dir.exists() {
            return Ok(false);
        }
        fs::create_dir_all(&self.dir).map_err(|e| io_err("create folder", &self.dir, e))?;
        // Hidden (not a run id), so listings skip it while it fills.
        let staging = self
            .dir
            .join(format!(".import-{id}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir(&staging).map_err(|e| io_err("create folder", &staging, e))?;
        let filled = (|| {
            let mut metrics = Vec::new();
            for m in &run.metrics {
                metrics.extend(metric_line(m));
            }
            let path = staging.join(METRICS_FILE);
            fs::write(&path, metrics).map_err(|e| io_err("write", &path, e))?;
            let path = staging.join(LOG_FILE);
            fs::write(&path, log).map_err(|e| io_err("write", &path, e))?;
            write_info_file(&staging, &run.info)?;
            fs::File::open(&staging)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_err("sync", &staging, e))?;
            if dir.exists() {
                return Ok(false);
            }
            fs::rename(&staging, &dir).map_err(|e| io_err("rename into", &dir, e))?;
            Ok(true)
        })();
        if !matches!(filled, Ok(true)) {
            let _ = fs::remove_dir_all(&staging);
        }
        filled
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
    let info: RunInfo =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(&path, e.to_string()))?;
    if info.run_id != id {
        return Err(corrupt(
            &path,
            format!("it records run `{}` (copied by hand?)", info.run_id),
        ));
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
        // A `run.json` temp file the killed process may have left (see `pismo_files::atomic`).
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
            Err(e) => return Err(corrupt(path, format!("line {}: {e}", i + 1))),
        }
    }
    Ok(metrics)
}

/// One line of `metrics.jsonl`, newline included.
fn metric_line(metric: &Metric) -> Vec<u8> {
    let mut line = serde_json::to_vec(metric).unwrap_or_default();
    line.push(b'\n');
    line
}

/// Replaces `run.json` in `run_dir` with `info`, atomically.
fn write_info_file(run_dir: &Path, info: &RunInfo) -> Result<(), RunsError> {
    let path = run_dir.join(RUN_FILE);
    let mut text = serde_json::to_vec_pretty(info).map_err(|e| corrupt(&path, e.to_string()))?;
    text.push(b'\n');
    replace_atomic(&path, &text).map_err(|e| io_err("write", &path, e))
}

/// The files one run appends to while it trains.
#[derive(Debug)]
struct FolderSink {
    dir: PathBuf,
    metrics: fs::File,
    log: fs::File,
}

impl RunSink for FolderSink {
    fn write_info(&mut self, info: &RunInfo) -> Result<(), RunsError> {
        write_info_file(&self.dir, info)
    }

    fn append_metric(&mut self, metric: &Metric) -> Result<(), RunsError> {
        self.metrics
            .write_all(&metric_line(metric))
            .and_then(|()| self.metrics.flush())
            .map_err(|e| io_err("append to", &self.dir.join(METRICS_FILE), e))
    }

    fn append_log(&mut self, line: &str) -> Result<(), RunsError> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.log
            .write_all(&bytes)
            .and_then(|()| self.log.flush())
            .map_err(|e| io_err("append to", &self.dir.join(LOG_FILE), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::Runs;
    use pismo_core::hyper::Hyper;

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
            crate::registry::tests::proc_start(std::process::id())
        );

        // Another process now has the pid the record names.
        let mut other = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let (other_pid, other_start) = (other.id(), crate::registry::tests::proc_start(other.id()));
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

    /// The files of a run, as other tools read them. (What a run records, on every store, is
    /// checked by `store/tests/runs.rs`.)
    #[test]
    fn a_run_is_a_folder_of_a_record_metrics_and_a_log() {
        let tmp = temp_dir("record");
        let runs = Runs::open(tmp.path().join("runs"));
        let mut w = runs.create("mnist", &Hyper::DEFAULT, "sha256:abc").unwrap();
        let id = w.id().to_owned();
        w.log_line("epoch 1: loss 0.3");
        w.log_metric(1, "val_loss", 0.25);
        w.log_metric(2, "val_loss", f64::NAN);
        w.set_model(&"mnist@4".parse().unwrap());
        w.try_finish(Status::Finished, None).unwrap();

        let dir = runs.folder().unwrap().join(&id);
        let on_disk: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join(RUN_FILE)).unwrap()).unwrap();
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
        assert_eq!(on_disk["status"], "finished");
        let metrics = fs::read_to_string(dir.join(METRICS_FILE)).unwrap();
        let lines: Vec<&str> = metrics.lines().collect();
        assert!(lines[0].starts_with(r#"{"step":1,"name":"val_loss","value":0.25,"timestamp":"#));
        assert!(
            lines[1].contains(r#""value":null"#),
            "NaN is written as null"
        );
        assert_eq!(
            fs::read_to_string(dir.join(LOG_FILE)).unwrap(),
            "epoch 1: loss 0.3\n"
        );
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn logging_errors_surface_in_try_finish() {
        let tmp = temp_dir("errors");
        let runs = Runs::open(tmp.path().join("runs"));
        let mut w = runs.create("x", &Hyper::DEFAULT, "").unwrap();
        assert!(w.first_error().is_none());
        fs::remove_dir_all(runs.folder().unwrap().join(w.id())).unwrap();
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
        let path = runs.folder().unwrap().join(&id).join(METRICS_FILE);
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
        fs::write(
            runs.folder().unwrap().join(&ids[1]).join(RUN_FILE),
            b"{\"run_id\":",
        )
        .unwrap();
        fs::write(runs.folder().unwrap().join("stray-file"), b"x").unwrap();
        fs::create_dir(runs.folder().unwrap().join(".hidden")).unwrap();

        let (listed, problems) = runs.list_with_problems().unwrap();
        let names: Vec<&str> = listed.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["c", "a"]);
        assert_eq!(problems.len(), 1);
        let p = problems[0].to_string();
        assert!(
            p.starts_with("corrupt run record") && p.contains(&ids[1]),
            "{p}"
        );
        assert_eq!(runs.list().unwrap().len(), 2);
        assert!(runs.get(&ids[1]).is_err());
    }

    #[test]
    fn records_written_before_tags_existed_read_without_tags() {
        let tmp = temp_dir("tags");
        let runs = Runs::open(tmp.path());
        let mut w = runs.create("study-a", &Hyper::DEFAULT, "d").unwrap();
        let id = w.id().to_owned();
        w.set_tag("study", "study-a");
        w.finish(Status::Finished, None);
        assert_eq!(runs.info(&id).unwrap().tags.len(), 1);
        let path = tmp.path().join(&id).join(RUN_FILE);
        let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("tags");
        fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        assert!(runs.info(&id).unwrap().tags.is_empty());
    }
}
