//! Getting MNIST from the page: training, tuning and adapting need it, and a person on the
//! page should not have to find a terminal to get it. `GET /api/data` says whether the
//! server has MNIST and how a fetch it started is going; `POST /api/data/fetch` (guarded
//! like training) starts one: the server runs the [`FetchCommand`] it was given (`pismo
//! serve` gives `pismo data fetch --data DIR` and its mirrors) as a child process and keeps
//! the last lines it writes, for the page to show.
//!
//! Invariants:
//! - at most one fetch at a time: another `POST` gets 409 while one runs, and one when MNIST
//!   is already there starts nothing (200);
//! - a server given no command answers 501 and says what to run instead;
//! - the lines kept never name the data folder (it is a path on the host: "the data
//!   folder" stands in for it);
//! - stopping the server kills a fetch that is still running (the command keeps its
//!   partial download, which the next fetch resumes).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use serde_json::json;

use crate::reply::{ApiError, Reply};
use crate::training::Training;

/// The lines of a fetch the page is shown: the last ones, enough for a download's progress
/// and its outcome.
const KEPT_LINES: usize = 12;

/// The command that downloads MNIST into the server's data folder: a program and its
/// arguments, run with no input; its stderr is what the page shows, its exit status says
/// whether it worked.
#[derive(Debug, Clone)]
pub struct FetchCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

/// The fetching side of the server.
pub(crate) struct Fetching {
    command: Option<FetchCommand>,
    /// The data folder as the command's lines spell it, to be left out of them.
    data_dir: String,
    state: Arc<Mutex<FetchState>>,
}

/// What the page is told about the fetch this server started, if any.
#[derive(Default, Serialize)]
struct FetchState {
    running: bool,
    /// The last lines of its stderr (at most [`KEPT_LINES`]).
    lines: VecDeque<String>,
    /// How the last fetch ended, when it failed.
    error: Option<String>,
    #[serde(skip)]
    child: Option<Child>,
}

impl Fetching {
    pub fn new(command: Option<FetchCommand>, data_dir: &std::path::Path) -> Self {
        Self {
            command,
            data_dir: data_dir.display().to_string(),
            state: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, FetchState> {
        lock(&self.state)
    }

    /// `GET /api/data`: `{"available","error","token_required",
    /// "fetch":{"possible","running","lines","error"}}`.
    pub fn describe(&self, training: &Training, token_required: bool) -> Result<Reply, ApiError> {
        let (available, error) = training.data_status();
        let state = self.lock();
        Reply::json(&json!({
            "available": available,
            "error": error,
            "token_required": token_required,
            "fetch": {
                "possible": self.command.is_some(),
                "running": state.running,
                "lines": state.lines,
                "error": state.error,
            },
        }))
    }

    /// `POST /api/data/fetch` (the caller has authorized it).
    pub fn start(&self, training: &Training) -> Result<Reply, ApiError> {
        let Some(command) = &self.command else {
            return Err(ApiError::new(
                501,
                "this server cannot fetch MNIST itself: run `pismo data fetch` where it runs",
            ));
        };
        let mut state = self.lock();
        if state.running {
            return Err(ApiError::new(
                409,
                "MNIST is being fetched already: wait for it to end",
            ));
        }
        if training.data_status().0 {
            return Reply::json(&json!({ "started": false, "available": true }));
        }
        let mut child = Command::new(&command.program)
            .args(&command.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                eprintln!(
                    "pismo serve: cannot start {}: {e}",
                    command.program.display()
                );
                ApiError::new(
                    500,
                    "cannot start the fetch (the server's log says why): run `pismo data fetch` instead",
                )
            })?;
        let stderr = child.stderr.take().expect("stderr is piped");
        *state = FetchState {
            running: true,
            child: Some(child),
            ..FetchState::default()
        };
        drop(state);
        let shared = self.state.clone();
        let data_dir = self.data_dir.clone();
        std::thread::Builder::new()
            .name("pismo-fetch".to_owned())
            .spawn(move || follow(&shared, stderr, &data_dir))
            .map_err(|e| ApiError::new(500, format!("cannot start a thread: {e}")))?;
        Ok(Reply::json(&json!({ "started": true, "available": false }))?.with_status(202))
    }

    /// Kills a fetch that is running (the server is stopping).
    pub fn kill(&self) {
        if let Some(child) = &mut self.lock().child {
            let _ = child.kill();
        }
    }
}

fn lock(state: &Mutex<FetchState>) -> MutexGuard<'_, FetchState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Keeps the child's stderr lines (also in the server's log) until it ends, then its outcome.
fn follow(state: &Mutex<FetchState>, stderr: impl std::io::Read, data_dir: &str) {
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        eprintln!("pismo serve: fetch: {line}");
        let line = line
            .replace(&format!("{data_dir}/"), "")
            .replace(data_dir, "the data folder");
        let mut state = lock(state);
        if state.lines.len() == KEPT_LINES {
            state.lines.pop_front();
        }
        state.lines.push_back(line);
    }
    // The child closed its stderr: it is ending, and is waited for outside the lock.
    let child = lock(state).child.take();
    let status = child.map(|mut child| child.wait());
    let mut state = lock(state);
    state.running = false;
    state.error = match status {
        Some(Ok(s)) if s.success() => None,
        Some(Ok(s)) => Some(format!(
            "the fetch failed ({s}): {}",
            state.lines.back().map_or("no reason given", String::as_str)
        )),
        Some(Err(e)) => Some(format!("the fetch could not be followed: {e}")),
        None => Some("the fetch was stopped".to_owned()),
    };
}
