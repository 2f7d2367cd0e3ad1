//! Training from the web: `GET /api/train` (defaults, limits, whether MNIST is there),
//! `POST /api/train` (202 + run id; the run trains on a thread of its own through
//! `pismo_training::session::run_with_data`, exactly as `pismo train` does) and
//! `POST /api/runs/{id}/stop`.
//!
//! Invariants: at most [`crate::Options::max_training`] runs train at once, counted and
//! started by [`crate::jobs`] (which also guarantees each run exactly one `done` event).
//! MNIST is loaded once, on the first request that needs it, and shared by every run after
//! that (training, studies and adapting, [`crate::adapting`]).

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pismo_core::hyper::{Hyper, HIDDEN_SIZES};
use pismo_digits::mnist::{self, Dataset, Split};
use pismo_storage::registry::{self, Registry};
use pismo_storage::runs::Runs;
use pismo_training::session::{self, SessionError, SessionEvent, TrainRequest};
use pismo_training::trainer::{Event, TrainError};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::jobs::{launch, Done, Job, Jobs, Launch};
use crate::reply::{ApiError, Reply};

/// The name a run registers its model under when the request names none.
pub(crate) const DEFAULT_NAME: &str = "mnist";

/// MNIST in memory, loaded on first use.
pub(crate) struct Data {
    pub train: Dataset,
    pub test: Option<Dataset>,
    /// What run records and models name as their training data.
    pub digest: String,
}

/// The training side of the server.
pub(crate) struct Training {
    data_dir: PathBuf,
    data: Mutex<Option<Arc<Data>>>,
    jobs: Arc<Jobs>,
}

impl Training {
    pub fn new(data_dir: PathBuf, max_concurrent: usize) -> Self {
        Self {
            data_dir,
            data: Mutex::new(None),
            jobs: Jobs::new(max_concurrent),
        }
    }

    /// The run `id` if this server started it.
    pub fn job(&self, id: &str) -> Option<Arc<Job>> {
        self.jobs.job(id)
    }

    /// Ids of the runs training now.
    fn active(&self) -> Vec<String> {
        self.jobs.active()
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
            max_concurrent: self.jobs.max_concurrent(),
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
        let max = self.jobs.max_concurrent();
        let reservation = self.jobs.reserve().map_err(|busy| {
            let what = if max == 1 {
                "a training run is already in progress".to_owned()
            } else {
                format!("{} training runs are already in progress", busy.count)
            };
            let ids = busy.ids;
            ApiError::new(
                409,
                format!(
                    "{what} ({}); this server trains at most {max} at once (pismo serve --max-training N)",
                    if ids.is_empty() { "starting".to_owned() } else { ids.join(", ") },
                ),
            )
            .with("active", json!(ids))
        })?;
        let data = self.data()?;
        let request = TrainRequest {
            name,
            hyper,
            data_dir: self.data_dir.clone(),
            threads: 0,
            aliases,
            recipe: Default::default(),
            corpora_dir: pismo_digits::corpora::default_dir(),
            tags: Vec::new(),
            register: true,
        };
        let (registry, runs) = (registry.clone(), runs.clone());
        launch(
            "pismo-train",
            "training session",
            reservation,
            move |launch| train(launch, &request, &data, &registry, &runs),
        )
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

/// The training thread: one session, its events into the run's [`Job`]; the `done` event.
fn train(
    launch: &mut Launch,
    request: &TrainRequest,
    data: &Data,
    registry: &Registry,
    runs: &Runs,
) -> Result<Done, ApiError> {
    let mut registered_bytes: Option<usize> = None;
    let finished = session::run_with_data(
        request,
        &data.train,
        data.test.as_ref(),
        &data.digest,
        registry,
        runs,
        &mut |event| {
            if let SessionEvent::Started { run_id } = event {
                launch.started(run_id);
                return ControlFlow::Continue(());
            }
            let Some(job) = launch.job() else {
                return ControlFlow::Continue(());
            };
            match event {
                SessionEvent::Train(Event::Log(line))
                | SessionEvent::Line(line)
                | SessionEvent::Summary(line) => job.line(line),
                SessionEvent::Train(Event::Batch {
                    epoch, done, total, ..
                }) => job.push(
                    "progress",
                    &json!({ "epoch": epoch, "done": done, "total": total }),
                ),
                SessionEvent::Train(Event::Epoch(report)) => {
                    job.line(&session::epoch_line(report));
                    job.push("epoch", report);
                }
                SessionEvent::Registered { bytes, .. } => registered_bytes = Some(bytes),
                SessionEvent::Started { .. } => {}
            }
            if job.cancelled() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    )
    .map_err(session_error)?;
    Ok(Done {
        status: finished.status,
        model: finished.model.map(|m| m.to_string()),
        bytes: registered_bytes.map(|bytes| bytes as u64),
        metrics: Some(finished.metrics),
        error: None,
    })
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
            "name" => name = model_name(value)?,
            "aliases" => aliases = alias_list(value)?,
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
    Ok((name, aliases, hyperparameters(&hyper_fields, &known)?))
}

/// `name`: a model name.
fn model_name(value: &Value) -> Result<String, ApiError> {
    let name = value
        .as_str()
        .ok_or_else(|| ApiError::bad("`name` must be a string").with("field", json!("name")))?;
    registry::validate_name(name)
        .map_err(|e| ApiError::bad(e.to_string()).with("field", json!("name")))?;
    Ok(name.to_owned())
}

/// `aliases`: an array of alias names.
fn alias_list(value: &Value) -> Result<Vec<String>, ApiError> {
    let not_strings =
        || ApiError::bad("`aliases` must be an array of strings").with("field", json!("aliases"));
    let list = value.as_array().ok_or_else(not_strings)?;
    list.iter()
        .map(|alias| {
            let alias = alias.as_str().ok_or_else(not_strings)?;
            registry::validate_alias(alias)
                .map_err(|e| ApiError::bad(e.to_string()).with("field", json!("aliases")))?;
            Ok(alias.to_owned())
        })
        .collect()
}

/// The hyperparameters `fields` set over the defaults, each checked on its own so that the
/// error names it (`known`: the defaults as JSON, for the expected type).
fn hyperparameters(fields: &Map<String, Value>, known: &Value) -> Result<Hyper, ApiError> {
    let mut hyper = Hyper::DEFAULT;
    let mut merged = serde_json::to_value(hyper).unwrap_or(Value::Null);
    for (key, value) in fields {
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
    Ok(hyper)
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
