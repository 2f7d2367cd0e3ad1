//! Adapting from the web (the page's "Learn from my N corrections"): `GET /api/adapt` says
//! whether it can run (the corrections kept, whether MNIST is there, the adaptation going
//! on), `POST /api/adapt` starts one: 202 + run id, the adaptation runs on a thread of its
//! own through `pismo_training::adapt::session::run_with_data`, exactly as `pismo adapt`
//! does, on the server's cached MNIST ([`crate::training::Training::data`]) and the
//! corrections `POST /api/drawn` keeps.
//!
//! The body: `{"model": REF, "name": NAME, "aliases": [ALIAS…], "force": false}`, every
//! member optional: the base defaults to the `default` alias, the name to the base's name
//! with `-mine` (a base already named `…-mine` gets a new version of its own name).
//!
//! Its events on `GET /api/runs/{id}/events`: `log` `{"line"}`, `progress` `{"done","total"}`
//! (fine-tuning steps, the final model's and every cross-validation fold's), then `done`
//! `{"status","model","error","adapted","forgets"}`: `adapted` holds the figures of
//! `pismo adapt --json` (corrections before/after, cross-validated; MNIST validation
//! before/after; the new model), `forgets` `{"before","after","max"}` the MNIST validation
//! accuracies when the result was refused for forgetting.
//!
//! Invariants: at most one adaptation at a time (another request gets 409, never a second
//! run interleaved with the first); nothing starts without corrections (409) or without
//! MNIST (503); errors never name folders of the host.

use std::ops::ControlFlow;
use std::sync::Arc;

use pismo_digits::drawn::DrawnStore;
use pismo_storage::registry::{self, ModelId};
use pismo_storage::runs::Status;
use pismo_training::adapt::session::{
    self, AdaptError, AdaptEvent, AdaptRequest, Adapted, MAX_FORGETTING,
};
use pismo_training::adapt::AdaptRecipe;
use serde::Serialize;
use serde_json::{json, Value};

use crate::jobs::{launch, Job, Jobs, Launch};
use crate::reply::{ApiError, Reply};
use crate::State;

/// What the adapted model's name adds to its base's.
const SUFFIX: &str = "-mine";

/// The seed of every adaptation started here (`pismo adapt`'s default).
const SEED: u64 = 1;

/// The adapting side of the server.
pub(crate) struct Adapting {
    jobs: Arc<Jobs>,
}

/// The last event of an adaptation.
#[derive(Serialize)]
struct AdaptDone {
    status: Status,
    /// The registered model, `NAME@V`.
    model: Option<String>,
    error: Option<String>,
    adapted: Option<Adapted>,
    forgets: Option<Value>,
}

impl Adapting {
    pub fn new() -> Self {
        Self { jobs: Jobs::new(1) }
    }

    /// The adaptation `id` if this server started it.
    pub fn job(&self, id: &str) -> Option<Arc<Job>> {
        self.jobs.job(id)
    }

    /// `GET /api/adapt`.
    pub fn describe(&self, state: &State) -> Result<Reply, ApiError> {
        let counts = corrections(state)?;
        let (available, error) = state.training.data_status();
        Reply::json(&json!({
            "corrections": { "total": counts.iter().sum::<usize>(), "counts": counts },
            "data": { "available": available, "error": error },
            "active": self.jobs.active(),
            "token_required": state.options.token.is_some(),
            "max_forgetting": MAX_FORGETTING,
            "name_suffix": SUFFIX,
        }))
    }

    /// `POST /api/adapt` (the caller has authorized it): checks the request, the corrections
    /// and MNIST, takes the one slot, starts the adaptation and answers once its run record
    /// exists (202 + its id).
    pub fn start(&self, state: &State, body: &Value) -> Result<Reply, ApiError> {
        let wanted = parse_request(body)?;
        let base = state.registry.resolve(wanted.model.as_deref())?;
        let name = adapted_name(&base, wanted.name)?;
        let counts = corrections(state)?;
        if counts.iter().sum::<usize>() == 0 {
            return Err(no_corrections());
        }
        let reservation = self.jobs.reserve().map_err(|busy| {
            ApiError::new(
                409,
                format!(
                    "a model is already being adapted ({}); this server adapts one at a time: wait for it to end",
                    if busy.ids.is_empty() { "starting".to_owned() } else { busy.ids.join(", ") }
                ),
            )
            .with("active", json!(busy.ids))
        })?;
        let data = state.training.data()?;
        let request = AdaptRequest {
            base: Some(base.to_string()),
            name,
            aliases: wanted.aliases,
            drawn_dir: state.options.drawn_dir.clone(),
            data_dir: state.training.data_dir().to_path_buf(),
            threads: 0,
            force: wanted.force,
            recipe: AdaptRecipe::DEFAULT,
            seed: SEED,
        };
        let (registry, runs) = (state.registry.clone(), state.runs.clone());
        launch(
            "pismo-adapt",
            "adapting session",
            reservation,
            move |launch| {
                let result = session::run_with_data(
                    &request,
                    &data.train,
                    data.test.as_ref(),
                    &registry,
                    &runs,
                    &mut |event| {
                        forward(event, launch);
                        ControlFlow::Continue(())
                    },
                );
                outcome(result)
            },
        )
    }
}

/// The adapted model's name: the one asked for, else the base's name with [`SUFFIX`] (once).
fn adapted_name(base: &ModelId, asked: Option<String>) -> Result<String, ApiError> {
    let name = asked.unwrap_or_else(|| {
        format!(
            "{}{SUFFIX}",
            base.name.strip_suffix(SUFFIX).unwrap_or(&base.name)
        )
    });
    registry::validate_name(&name).map_err(|e| {
        ApiError::bad(format!(
            "{e} (the adapted model's name; send \"name\" to choose one)"
        ))
        .with("field", json!("name"))
    })?;
    Ok(name)
}

/// An adapting session's event, passed on to its job's event stream.
fn forward(event: AdaptEvent, launch: &mut Launch) {
    match event {
        AdaptEvent::Started { run_id } => launch.started(run_id),
        AdaptEvent::Line(line) => {
            if let Some(job) = launch.job() {
                job.line(line);
            }
        }
        AdaptEvent::Steps { done, total } => {
            if let Some(job) = launch.job() {
                job.push("progress", &json!({ "done": done, "total": total }));
            }
        }
    }
}

/// How an adapting session ended, as its job reports it: a refusal for forgetting is a
/// failed job with the figures, not a server error.
fn outcome(result: Result<Adapted, AdaptError>) -> Result<AdaptDone, ApiError> {
    match result {
        Ok(adapted) => Ok(AdaptDone {
            status: Status::Finished,
            model: Some(adapted.model.clone()),
            error: None,
            adapted: Some(adapted),
            forgets: None,
        }),
        Err(AdaptError::Forgets {
            run_id,
            before,
            after,
        }) => Ok(AdaptDone {
            status: Status::Failed,
            model: None,
            error: Some(format!(
                "refused: the adapted model reads MNIST validation digits {:.2} % right, \
                 the base {:.2} % (more than {:.1} points lost; run {run_id}). Check the \
                 corrections' labels, or send \"force\": true to register it anyway",
                after * 100.0,
                before * 100.0,
                MAX_FORGETTING * 100.0
            )),
            adapted: None,
            forgets: Some(json!({ "before": before, "after": after, "max": MAX_FORGETTING })),
        }),
        Err(e) => Err(adapt_error(e)),
    }
}

/// The corrections kept, per digit.
fn corrections(state: &State) -> Result<[usize; 10], ApiError> {
    DrawnStore::open(state.options.drawn_dir.clone())
        .counts()
        .map_err(|e| {
            // The error names the folder on the host: it goes to the server's log.
            eprintln!("pismo serve: cannot read the corrections: {e}");
            ApiError::new(
                500,
                "cannot read the corrections kept on this server (the server's log says why)",
            )
        })
}

fn no_corrections() -> ApiError {
    ApiError::new(
        409,
        "no corrections yet: there is nothing to adapt to. Draw digits and correct the ones \
         pismo gets wrong with \"Wrong? This is a …\" (POST /api/drawn), then adapt",
    )
}

/// An error of the session as the client sees it (no host folders).
fn adapt_error(e: AdaptError) -> ApiError {
    match e {
        AdaptError::NoFolder(_) | AdaptError::NoCorrections(_) => no_corrections(),
        AdaptError::Drawn(e) => {
            eprintln!("pismo serve: cannot read the corrections: {e}");
            ApiError::new(
                500,
                "a correction kept on this server cannot be read (the server's log says which)",
            )
        }
        AdaptError::Data(e) => {
            eprintln!("pismo serve: cannot load MNIST for adapting: {e}");
            ApiError::new(
                503,
                "this server has no usable MNIST training data, which adapting rehearses and \
                 checks against (run `pismo data fetch`, or start `pismo serve` with --data DIR)",
            )
        }
        AdaptError::Registry(e) => e.into(),
        AdaptError::Runs(e) => e.into(),
        AdaptError::Busy(_) => ApiError::new(
            409,
            "another adaptation of this server's corrections is running (`pismo adapt` or \
             `pismo draw` on the same folder): wait for it to end",
        ),
        e => {
            eprintln!("pismo serve: adapting failed: {e}");
            ApiError::new(500, "adapting failed (the server's log says why)")
        }
    }
}

/// `POST /api/adapt`'s body, checked.
struct Wanted {
    model: Option<String>,
    name: Option<String>,
    aliases: Vec<String>,
    force: bool,
}

/// `{"model", "name", "aliases", "force"}`, all optional; unknown members and values of the
/// wrong type are 400s naming the field.
fn parse_request(body: &Value) -> Result<Wanted, ApiError> {
    let object = body.as_object().ok_or_else(|| {
        ApiError::bad("the body must be a JSON object: {\"model\", \"name\", \"aliases\", \"force\"}, all optional")
    })?;
    let field = |key: &str, msg: String| ApiError::bad(msg).with("field", json!(key));
    let mut wanted = Wanted {
        model: None,
        name: None,
        aliases: Vec::new(),
        force: false,
    };
    for (key, value) in object {
        match key.as_str() {
            "model" => {
                let model = value.as_str().ok_or_else(|| {
                    field(
                        key,
                        "`model` must be a model reference, e.g. \"default\" or \"mnist@2\"".into(),
                    )
                })?;
                wanted.model = Some(model.to_owned());
            }
            "name" => {
                let name = value
                    .as_str()
                    .ok_or_else(|| field(key, "`name` must be a string".into()))?;
                registry::validate_name(name).map_err(|e| field(key, e.to_string()))?;
                wanted.name = Some(name.to_owned());
            }
            "aliases" => {
                let bad = || field(key, "`aliases` must be an array of strings".into());
                for alias in value.as_array().ok_or_else(bad)? {
                    let alias = alias.as_str().ok_or_else(bad)?;
                    registry::validate_alias(alias).map_err(|e| field(key, e.to_string()))?;
                    wanted.aliases.push(alias.to_owned());
                }
            }
            "force" => {
                wanted.force = value
                    .as_bool()
                    .ok_or_else(|| field(key, "`force` must be true or false".into()))?;
            }
            _ => {
                return Err(field(
                    key,
                    format!("unknown field `{key}`: accepted are model, name, aliases, force"),
                ))
            }
        }
    }
    Ok(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_names_the_field_it_gets_wrong() {
        let w = parse_request(&json!({"model": "mnist@1", "aliases": ["mine"], "force": true}))
            .unwrap();
        assert_eq!(w.model.as_deref(), Some("mnist@1"));
        assert_eq!(
            (w.name, w.aliases, w.force),
            (None, vec!["mine".to_owned()], true)
        );
        for (body, field) in [
            (json!({"model": 3}), "model"),
            (json!({"name": "no spaces"}), "name"),
            (json!({"aliases": "x"}), "aliases"),
            (json!({"aliases": ["42"]}), "aliases"),
            (json!({"force": "yes"}), "force"),
            (json!({"modle": "mnist@1"}), "modle"),
        ] {
            let e = parse_request(&body).err().unwrap();
            assert_eq!(e.status, 400, "{body}");
            assert_eq!(e.extra[0].1, json!(field), "{body}: {}", e.message);
        }
        assert_eq!(parse_request(&json!([1])).err().unwrap().status, 400);
    }
}
