//! Training from the web: `GET /api/train` (defaults, limits, whether MNIST is there),
//! `POST /api/train` (202 + run id; the run trains on a thread of its own through
//! `pismo_core::host::session::run_with_data`, exactly as `pismo train` does) and
//! `POST /api/runs/{id}/stop`.
//!
//! Invariants: at most [`crate::Options::max_training`] runs train at once — a run counts from
//! the moment its request is accepted until its `done` event, so two simultaneous requests
//! cannot both slip under the limit; every run that started ends with exactly one `done`
//! event, also when the session fails or panics. MNIST is loaded once, on the first request
//! that needs it, and shared by every run after that.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use pismo_core::host::mnist::{self, Dataset, Split};
use pismo_core::host::registry::{self, Registry};
use pismo_core::host::runs::{Runs, Status};
use pismo_core::host::session::{self, SessionError, SessionEvent, TrainRequest};
use pismo_core::host::trainer::{Event, TrainError};
use pismo_core::hyper::{Hyper, Metrics, HIDDEN_SIZES};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::reply::{ApiError, Reply};

/// The name a run registers its model under when the request names none.
pub(crate) const DEFAULT_NAME: &str = "mnist";

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
}

/// The last event of a run.
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

/// MNIST in memory, loaded on first use.
pub(crate) struct Data {
    pub train: Dataset,
    pub test: Option<Dataset>,
    /// What run records and models name as their training data.
    pub digest: String,
}

struct Slots {
    /// Runs started by this server, by run id (kept after they end, for their events).
    jobs: HashMap<String, Arc<Job>>,
    /// Requests accepted whose run record does not exist yet.
    starting: usize,
}

impl Slots {
    /// Ids of the runs training now, sorted.
    fn active(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .jobs
            .values()
            .filter(|j| !j.is_done())
            .map(|j| j.run_id.clone())
            .collect();
        ids.sort();
        ids
    }
}

/// The training side of the server.
pub(crate) struct Training {
    data_dir: PathBuf,
    max_concurrent: usize,
    data: Mutex<Option<Arc<Data>>>,
    slots: Mutex<Slots>,
}

impl Training {
    pub fn new(data_dir: PathBuf, max_concurrent: usize) -> Self {
        Self {
            data_dir,
            max_concurrent,
            data: Mutex::new(None),
            slots: Mutex::new(Slots {
                jobs: HashMap::new(),
                starting: 0,
            }),
        }
    }

    fn slots(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The run `id` if this server started it.
    pub fn job(&self, id: &str) -> Option<Arc<Job>> {
        self.slots().jobs.get(id).cloned()
    }

    /// Ids of the runs training now.
    fn active(&self) -> Vec<String> {
        self.slots().active()
    }

    /// The MNIST folder.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// MNIST, loading it on first use; a 503 if it is not there.
    pub fn data(&self) -> Result<Arc<Data>, ApiError> {
        let mut data = self.data.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = &*data {
            return Ok(d.clone());
        }
        let (train, test) = session::load_data(&self.data_dir).map_err(|e| {
            // The error names files on the host: it goes to the server's log, not the client.
            eprintln!("pismo serve: cannot load the training data: {e}");
            ApiError::new(
                503,
                "this server has no usable MNIST training data (run `pismo data fetch`, or start `pismo serve` with --data DIR; the server's log says more)",
            )
        })?;
        let digest = if train.len() == 60_000 {
            Split::Train.digest().to_owned()
        } else {
            train.images_digest()
        };
        let d = Arc::new(Data {
            train,
            test,
            digest,
        });
        *data = Some(d.clone());
        Ok(d)
    }

    /// Whether MNIST is loadable, without loading it: `(available, error)`.
    pub fn data_status(&self) -> (bool, Option<String>) {
        if self
            .data
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
        {
            return (true, None);
        }
        let missing: Vec<&str> = [Split::Train.images(), Split::Train.labels()]
            .into_iter()
            .filter(|&known| mnist::find_known(&self.data_dir, known).is_err())
            .map(|known| known.name)
            .collect();
        if missing.is_empty() {
            (true, None)
        } else {
            // The folder is a path on the host: it is not shown to clients.
            (
                false,
                Some(format!(
                    "this server has no MNIST training data (missing {}): run `pismo data fetch`, or start `pismo serve` with --data DIR",
                    missing.join(", ")
                )),
            )
        }
    }

    /// `GET /api/train`.
    pub fn describe(&self, token_required: bool) -> Result<Reply, ApiError> {
        #[derive(Serialize)]
        struct Describe {
            defaults: Hyper,
            hidden_sizes: [u32; HIDDEN_SIZES.len()],
            default_name: &'static str,
            max_concurrent: usize,
            active: Vec<String>,
            data: Value,
            token_required: bool,
        }
        let (available, error) = self.data_status();
        Reply::json(&Describe {
            defaults: Hyper::DEFAULT,
            hidden_sizes: HIDDEN_SIZES,
            default_name: DEFAULT_NAME,
            max_concurrent: self.max_concurrent,
            active: self.active(),
            data: json!({
                "available": available,
                "error": error,
            }),
            token_required,
        })
    }

    /// `POST /api/train`: checks the request, reserves a slot, starts the run on its own
    /// thread and answers once the run record exists (202 + its id).
    pub fn start(
        self: &Arc<Self>,
        body: &Value,
        registry: &Registry,
        runs: &Runs,
    ) -> Result<Reply, ApiError> {
        let (name, aliases, hyper) = parse_request(body)?;
        hyper.validate().map_err(|e| {
            ApiError::bad(format!("{e} (got {})", field_value(&hyper, e.field)))
                .with("field", json!(e.field))
        })?;
        {
            let mut slots = self.slots();
            let ids = slots.active();
            let active = ids.len() + slots.starting;
            if active >= self.max_concurrent {
                let what = if self.max_concurrent == 1 {
                    "a training run is already in progress".to_owned()
                } else {
                    format!("{} training runs are already in progress", active)
                };
                return Err(ApiError::new(
                    409,
                    format!(
                        "{what} ({}); this server trains at most {} at once (pismo serve --max-training N)",
                        if ids.is_empty() { "starting".to_owned() } else { ids.join(", ") },
                        self.max_concurrent
                    ),
                )
                .with("active", json!(ids)));
            }
            slots.starting += 1;
        }
        let release = StartingSlot(self.clone());
        let data = self.data()?;
        let request = TrainRequest {
            name,
            hyper,
            data_dir: self.data_dir.clone(),
            threads: 0,
            aliases,
            recipe: Default::default(),
            corpora_dir: pismo_core::host::corpora::default_dir(),
            tags: Vec::new(),
            register: true,
        };
        let (tx, rx) = mpsc::channel();
        let (registry, runs) = (registry.clone(), runs.clone());
        let training = self.clone();
        std::thread::Builder::new()
            .name("pismo-train".to_owned())
            .spawn(move || training.run(release, request, &data, &registry, &runs, tx))
            .map_err(|e| ApiError::new(500, format!("cannot start a training thread: {e}")))?;
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
                "the training thread ended before its run started",
            )),
        }
    }

    /// The training thread: one session, its events into the run's [`Job`].
    fn run(
        self: Arc<Self>,
        release: StartingSlot,
        request: TrainRequest,
        data: &Data,
        registry: &Registry,
        runs: &Runs,
        started: mpsc::Sender<Result<String, ApiError>>,
    ) {
        let mut release = Some(release);
        let mut job: Option<Arc<Job>> = None;
        let mut registered_bytes: Option<usize> = None;
        let result = catch_unwind(AssertUnwindSafe(|| {
            session::run_with_data(
                &request,
                &data.train,
                data.test.as_ref(),
                &data.digest,
                registry,
                runs,
                &mut |event| {
                    match event {
                        SessionEvent::Started { run_id } => {
                            let j = Arc::new(Job::new(run_id));
                            {
                                let mut slots = self.slots();
                                slots.jobs.insert(run_id.to_owned(), j.clone());
                                // The job now holds the slot.
                                if let Some(r) = release.take() {
                                    r.release_locked(&mut slots);
                                }
                            }
                            let _ = started.send(Ok(run_id.to_owned()));
                            job = Some(j);
                        }
                        SessionEvent::Train(Event::Log(line)) | SessionEvent::Line(line) => {
                            if let Some(j) = &job {
                                j.push("log", &json!({ "line": line }));
                            }
                        }
                        SessionEvent::Train(Event::Batch { epoch, done, total }) => {
                            if let Some(j) = &job {
                                j.push(
                                    "progress",
                                    &json!({ "epoch": epoch, "done": done, "total": total }),
                                );
                            }
                        }
                        SessionEvent::Train(Event::Epoch(report)) => {
                            if let Some(j) = &job {
                                j.push("log", &json!({ "line": session::epoch_line(report) }));
                                j.push("epoch", report);
                            }
                        }
                        SessionEvent::Registered { bytes, .. } => registered_bytes = Some(bytes),
                    }
                    match &job {
                        Some(j) if j.cancel.load(Ordering::SeqCst) => ControlFlow::Break(()),
                        _ => ControlFlow::Continue(()),
                    }
                },
            )
        }));
        drop(release);
        let done = match result {
            Ok(Ok(finished)) => Done {
                status: finished.status,
                model: finished.model.map(|m| m.to_string()),
                bytes: registered_bytes.map(|bytes| bytes as u64),
                metrics: Some(finished.metrics),
                error: None,
            },
            Ok(Err(e)) => {
                if job.is_none() {
                    let _ = started.send(Err(session_error(e)));
                    return;
                }
                Done::failed(e.to_string())
            }
            Err(_) => {
                if job.is_none() {
                    let _ = started.send(Err(ApiError::new(500, "the training session panicked")));
                    return;
                }
                Done::failed("internal error: the training session panicked".to_owned())
            }
        };
        if let Some(j) = job {
            j.push("done", &done);
        }
    }

    /// `POST /api/runs/{id}/stop`: asks a run of this server to stop after its current batch.
    pub fn stop(&self, id: &str, runs: &Runs) -> Result<Reply, ApiError> {
        let Some(job) = self.job(id) else {
            runs.info(id)?; // 404 for an unknown run
            return Err(ApiError::new(
                409,
                format!("run {id} is not training in this server: only runs started here can be stopped here"),
            ));
        };
        if job.is_done() {
            return Err(ApiError::new(409, format!("run {id} has already ended")));
        }
        job.cancel();
        Ok(Reply::json(&json!({ "run_id": id, "stopping": true }))?.with_status(202))
    }
}

/// A reserved slot of a run whose record does not exist yet; freed when dropped, so an early
/// error or a panic gives the slot back.
struct StartingSlot(Arc<Training>);

impl StartingSlot {
    fn release_locked(self, slots: &mut Slots) {
        slots.starting = slots.starting.saturating_sub(1);
        std::mem::forget(self);
    }
}

impl Drop for StartingSlot {
    fn drop(&mut self) {
        let mut slots = self.0.slots();
        slots.starting = slots.starting.saturating_sub(1);
    }
}

fn session_error(e: SessionError) -> ApiError {
    match e {
        SessionError::Train(TrainError::Hyper(h)) => {
            ApiError::bad(h.to_string()).with("field", json!(h.field))
        }
        SessionError::Train(e) => ApiError::bad(e.to_string()),
        SessionError::Registry(e) if e.is_invalid() => ApiError::bad(e.to_string()),
        SessionError::Data(e) => ApiError::new(503, e.to_string()),
        e => ApiError::new(500, e.to_string()),
    }
}

/// The hyperparameter field's value as the client sent it, for error messages.
fn field_value(hyper: &Hyper, field: &str) -> String {
    serde_json::to_value(hyper)
        .ok()
        .and_then(|v| v.get(field).map(Value::to_string))
        .unwrap_or_default()
}

/// `{"name", "aliases", hyperparameters…}` → (name, aliases, hyperparameters). Unknown keys
/// and values of the wrong type are 400s naming the field.
pub(crate) fn parse_request(body: &Value) -> Result<(String, Vec<String>, Hyper), ApiError> {
    let object = body
        .as_object()
        .ok_or_else(|| ApiError::bad("the body must be a JSON object of hyperparameters"))?;
    let mut hyper_fields = Map::new();
    let mut name = DEFAULT_NAME.to_owned();
    let mut aliases = Vec::new();
    let known = serde_json::to_value(Hyper::DEFAULT).unwrap_or(Value::Null);
    for (key, value) in object {
        match key.as_str() {
            "name" => {
                name = value
                    .as_str()
                    .ok_or_else(|| {
                        ApiError::bad("`name` must be a string").with("field", json!("name"))
                    })?
                    .to_owned();
                registry::validate_name(&name)
                    .map_err(|e| ApiError::bad(e.to_string()).with("field", json!("name")))?;
            }
            "aliases" => {
                let list = value.as_array().ok_or_else(|| {
                    ApiError::bad("`aliases` must be an array of strings")
                        .with("field", json!("aliases"))
                })?;
                for alias in list {
                    let alias = alias.as_str().ok_or_else(|| {
                        ApiError::bad("`aliases` must be an array of strings")
                            .with("field", json!("aliases"))
                    })?;
                    registry::validate_alias(alias).map_err(|e| {
                        ApiError::bad(e.to_string()).with("field", json!("aliases"))
                    })?;
                    aliases.push(alias.to_owned());
                }
            }
            // The original's other name for the first learning rate.
            "learning_rate" => {
                hyper_fields.insert("initial_lr".to_owned(), value.clone());
            }
            key if known.get(key).is_some() => {
                hyper_fields.insert(key.to_owned(), value.clone());
            }
            key => {
                let mut accepted: Vec<&str> = known
                    .as_object()
                    .map(|o| o.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                accepted.extend(["name", "aliases", "learning_rate"]);
                return Err(ApiError::bad(format!(
                    "unknown field `{key}`: accepted are {}",
                    accepted.join(", ")
                ))
                .with("field", json!(key)));
            }
        }
    }
    // Each field on its own, so the error names it.
    let mut hyper = Hyper::DEFAULT;
    let mut merged = serde_json::to_value(hyper).unwrap_or(Value::Null);
    for (key, value) in &hyper_fields {
        let mut probe = merged.clone();
        probe[key.as_str()] = value.clone();
        match serde_json::from_value::<Hyper>(probe.clone()) {
            Ok(h) => {
                hyper = h;
                merged = probe;
            }
            Err(_) => {
                let expected = match &known[key.as_str()] {
                    Value::Bool(_) => "true or false",
                    Value::Number(n) if n.is_f64() => "a number",
                    _ => "a non-negative integer",
                };
                return Err(ApiError::bad(format!(
                    "invalid {key}: expected {expected}, got {value}"
                ))
                .with("field", json!(key)));
            }
        }
    }
    Ok((name, aliases, hyper))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_names_the_field_it_gets_wrong() {
        let (name, aliases, hyper) =
            parse_request(&json!({"hidden_size": 16, "learning_rate": 0.1, "aliases": ["x"]}))
                .unwrap();
        assert_eq!(
            (name.as_str(), aliases),
            (DEFAULT_NAME, vec!["x".to_owned()])
        );
        assert_eq!((hyper.hidden_size, hyper.initial_lr), (16, 0.1));
        assert_eq!(hyper.epochs, Hyper::DEFAULT.epochs);
        for (body, field) in [
            (json!({"epochs": "ten"}), "epochs"),
            (json!({"epochs": 2.5}), "epochs"),
            (json!({"epochs": -1}), "epochs"),
            (json!({"augment": 1}), "augment"),
            (json!({"hiden_size": 16}), "hiden_size"),
            (json!({"name": "no spaces"}), "name"),
            (json!({"aliases": "x"}), "aliases"),
        ] {
            let e = parse_request(&body).unwrap_err();
            assert_eq!(e.status, 400, "{body}");
            assert_eq!(e.extra[0].1, json!(field), "{body}: {}", e.message);
        }
    }
}
