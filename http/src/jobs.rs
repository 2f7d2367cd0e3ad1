//! Background runs of the server — training (`POST /api/train`) and adapting
//! (`POST /api/adapt`) — and their replayable events, which `GET /api/runs/{id}/events`
//! streams ([`crate::events`]).
//!
//! - [`Job`]: the events of one run (or study), kept in memory for late clients.
//! - [`Jobs`]: the runs of one kind started by this server, and the limit on how many run at
//!   once. A run counts from the moment its request is accepted ([`Jobs::reserve`]) until its
//!   `done` event, so two simultaneous requests cannot both slip under the limit.
//! - [`launch`]: starts a run's work on a thread of its own and answers 202 with its run id
//!   once the run record exists (or the error the work ended with before that). Every run
//!   that started ends with exactly one `done` event, also when its work fails or panics.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use pismo_core::hyper::Metrics;
use pismo_storage::runs::Status;
use serde::Serialize;
use serde_json::json;

use crate::reply::{ApiError, Reply};

/// Replayable events of one run: what `GET /api/runs/{id}/events` streams.
pub(crate) struct Job {
    run_id: String,
    log: Mutex<EventLog>,
    changed: Condvar,
    cancel: AtomicBool,
}

/// One server-sent event: its sequence number, name and JSON data.
#[derive(Clone)]
pub(crate) struct SseEvent {
    pub id: u64,
    pub name: &'static str,
    pub data: String,
}

#[derive(Default)]
struct EventLog {
    events: Vec<SseEvent>,
    next_id: u64,
    done: bool,
}

impl Job {
    /// The events of run (or study) `run_id`, none yet.
    pub fn new(run_id: &str) -> Self {
        Self {
            run_id: run_id.to_owned(),
            log: Mutex::new(EventLog {
                next_id: 1,
                ..EventLog::default()
            }),
            changed: Condvar::new(),
            cancel: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, EventLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends an event; a `progress` event replaces a `progress` event just before it, so
    /// the replay of a long run is not mostly stale progress.
    pub fn push(&self, name: &'static str, data: &impl Serialize) {
        // Straight to text: f32 fields keep their shortest form (0.03, not 0.0299999993).
        let data = serde_json::to_string(data).unwrap_or_else(|_| "null".to_owned());
        let mut log = self.lock();
        if log.done {
            return;
        }
        let id = log.next_id;
        log.next_id += 1;
        if name == "progress" && log.events.last().is_some_and(|e| e.name == "progress") {
            log.events.pop();
        }
        log.events.push(SseEvent { id, name, data });
        if name == "done" {
            log.done = true;
        }
        drop(log);
        self.changed.notify_all();
    }

    /// A `log` event of one line.
    pub fn line(&self, line: &str) {
        self.push("log", &json!({ "line": line }));
    }

    /// Events after `after` (a sequence number), and whether the run is over, waiting up to
    /// `timeout` for something new.
    pub fn wait_after(&self, after: u64, timeout: std::time::Duration) -> (Vec<SseEvent>, bool) {
        let log = self.lock();
        let (log, _) = self
            .changed
            .wait_timeout_while(log, timeout, |log| {
                !log.done && log.events.last().is_none_or(|e| e.id <= after)
            })
            .unwrap_or_else(|e| e.into_inner());
        let new = log
            .events
            .iter()
            .filter(|e| e.id > after)
            .cloned()
            .collect();
        (new, log.done)
    }

    pub fn is_done(&self) -> bool {
        self.lock().done
    }

    /// Asks the work behind the events to stop.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    /// The flag [`Job::cancel`] sets.
    pub fn cancel_flag(&self) -> &AtomicBool {
        &self.cancel
    }

    /// Whether [`Job::cancel`] was called.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }
}

/// The last event of a run (an adaptation's adds its figures, see `crate::adapting`).
#[derive(Serialize)]
pub(crate) struct Done {
    pub status: Status,
    /// The registered model, `NAME@V`.
    pub model: Option<String>,
    /// Its file size.
    pub bytes: Option<u64>,
    pub metrics: Option<Metrics>,
    pub error: Option<String>,
}

impl Done {
    pub fn failed(error: String) -> Self {
        Self {
            status: Status::Failed,
            model: None,
            bytes: None,
            metrics: None,
            error: Some(error),
        }
    }
}

/// The runs of one kind that this server started, by run id (kept after they end, for
/// their events), and how many may run at once.
pub(crate) struct Jobs {
    max_concurrent: usize,
    slots: Mutex<Slots>,
}

struct Slots {
    jobs: HashMap<String, Arc<Job>>,
    /// Requests accepted whose run record does not exist yet.
    starting: usize,
}

/// Why [`Jobs::reserve`] refused: the runs going on (ids, sorted; empty while they are
/// still starting) and how many count against the limit.
pub(crate) struct Busy {
    pub ids: Vec<String>,
    pub count: usize,
}

impl Jobs {
    /// No runs yet; at most `max_concurrent` at once (at least 1).
    pub fn new(max_concurrent: usize) -> Arc<Self> {
        Arc::new(Self {
            max_concurrent: max_concurrent.max(1),
            slots: Mutex::new(Slots {
                jobs: HashMap::new(),
                starting: 0,
            }),
        })
    }

    fn slots(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent
    }

    /// The run `id` if this server started it.
    pub fn job(&self, id: &str) -> Option<Arc<Job>> {
        self.slots().jobs.get(id).cloned()
    }

    /// Ids of the runs going on now, sorted.
    pub fn active(&self) -> Vec<String> {
        active(&self.slots())
    }

    /// A slot for one more run, or what keeps it from starting.
    pub fn reserve(self: &Arc<Self>) -> Result<Reservation, Busy> {
        let mut slots = self.slots();
        let ids = active(&slots);
        let count = ids.len() + slots.starting;
        if count >= self.max_concurrent {
            return Err(Busy { ids, count });
        }
        slots.starting += 1;
        Ok(Reservation(Some(self.clone())))
    }
}

fn active(slots: &Slots) -> Vec<String> {
    let mut ids: Vec<String> = slots
        .jobs
        .values()
        .filter(|j| !j.is_done())
        .map(|j| j.run_id.clone())
        .collect();
    ids.sort();
    ids
}

/// A reserved slot of a run whose record does not exist yet; freed when dropped, so an early
/// error or a panic gives the slot back. Once the run record exists its [`Job`] holds the
/// slot instead, until its `done` event.
pub(crate) struct Reservation(Option<Arc<Jobs>>);

impl Reservation {
    /// Run `run_id` started: its job takes the slot.
    fn started(mut self, run_id: &str) -> Arc<Job> {
        let jobs = self.0.take().expect("a reservation is used once");
        let job = Arc::new(Job::new(run_id));
        let mut slots = jobs.slots();
        slots.jobs.insert(run_id.to_owned(), job.clone());
        slots.starting = slots.starting.saturating_sub(1);
        job
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(jobs) = self.0.take() {
            let mut slots = jobs.slots();
            slots.starting = slots.starting.saturating_sub(1);
        }
    }
}

/// What a run's work holds while it runs: it says when its run record exists
/// ([`Launch::started`]) and reports into the run's [`Job`] after that.
pub(crate) struct Launch {
    reservation: Option<Reservation>,
    started: mpsc::Sender<Result<String, ApiError>>,
    job: Option<Arc<Job>>,
}

impl Launch {
    /// The run record `run_id` exists: the request is answered 202 with it.
    pub fn started(&mut self, run_id: &str) {
        if let Some(r) = self.reservation.take() {
            self.job = Some(r.started(run_id));
        }
        let _ = self.started.send(Ok(run_id.to_owned()));
    }

    /// The run's events, once it started.
    pub fn job(&self) -> Option<&Arc<Job>> {
        self.job.as_ref()
    }
}

/// Runs `work` on a thread named `thread` and answers 202 with the run id once it calls
/// [`Launch::started`]. `work` returns the data of the `done` event (serialised as it is:
/// f32 fields keep their shortest form); an error it returns
/// before the run started is the answer to the request, one after that (or a panic, named
/// with `what`, e.g. "training session") ends the run with a failed `done`.
pub(crate) fn launch<D: Serialize>(
    thread: &str,
    what: &'static str,
    reservation: Reservation,
    work: impl FnOnce(&mut Launch) -> Result<D, ApiError> + Send + 'static,
) -> Result<Reply, ApiError> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(thread.to_owned())
        .spawn(move || {
            let mut launch = Launch {
                reservation: Some(reservation),
                started: tx,
                job: None,
            };
            let result = catch_unwind(AssertUnwindSafe(|| work(&mut launch)));
            // The slot is free before the `done` event is seen.
            drop(launch.reservation.take());
            let Some(job) = launch.job else {
                let e = match result {
                    Ok(Err(e)) => e,
                    Ok(Ok(_)) => {
                        ApiError::new(500, format!("the {what} ended before its run started"))
                    }
                    Err(_) => ApiError::new(500, format!("the {what} panicked")),
                };
                let _ = launch.started.send(Err(e));
                return;
            };
            match result {
                Ok(Ok(done)) => job.push("done", &done),
                Ok(Err(e)) => job.push("done", &Done::failed(e.message)),
                Err(_) => job.push(
                    "done",
                    &Done::failed(format!("internal error: the {what} panicked")),
                ),
            }
        })
        .map_err(|e| ApiError::new(500, format!("cannot start a thread for the {what}: {e}")))?;
    match rx.recv() {
        Ok(Ok(run_id)) => Ok(Reply::json(&json!({
            "run_id": run_id,
            "run": format!("/api/runs/{run_id}"),
            "events": format!("/api/runs/{run_id}/events"),
        }))?
        .with_status(202)
        .with_header("Location", format!("/api/runs/{run_id}"))),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ApiError::new(
            500,
            format!("the {what} ended before its run started"),
        )),
    }
}
