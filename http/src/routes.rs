//! Routing: which handler answers a method and path. One `match` on the path, so a new
//! route is one arm (a new handler module and a line here). Each arm checks the method
//! (405 with `Allow` otherwise; `HEAD` is served wherever `GET` is), and routes that train
//! or change the registry call [`authorize`] before they look at the body. Only the routes
//! that take images accept large bodies ([`body_limit`]).
//!
//! Endpoints (`docs/HTTP.md` gives each one's requests and answers):
//! - `GET /`: the web page ([`crate::page`]).
//! - `POST /api/predict[?model=REF]`, `POST /invocations`, `GET /ping|/health|/version`:
//!   scoring ([`crate::scoring`]).
//! - `GET /api/models`, `GET /api/models/deleted` (the versions deleted: the page names a
//!   linked model that was), `GET|PUT|DELETE /api/aliases[/{alias}]`: the registry
//!   ([`crate::catalog`]).
//! - `GET /api/runs`, `GET /api/runs/{id}`, `GET /api/runs/{id}/log`: run records.
//! - `GET|POST /api/drawn`: corrected drawings, counted and saved ([`crate::drawn`]).
//! - `GET|POST /api/train`, `POST /api/runs/{id}/stop`: training ([`crate::training`]);
//!   `GET /api/runs/{id}/events`: its progress as server-sent events ([`crate::events`]).
//! - `GET|POST /api/adapt`: adapting a model to the corrections ([`crate::adapting`]),
//!   guarded like training; its progress on the same `GET /api/runs/{id}/events`.
//! - `GET /api/data`, `POST /api/data/fetch`: whether MNIST is there, and fetching it
//!   ([`crate::fetching`]), guarded like training.
//! - `GET|POST /api/tune`, `GET /api/studies`, `GET /api/studies/{name}`,
//!   `POST /api/studies/{name}/stop|use`: hyperparameter studies ([`crate::tuning`]);
//!   `GET /api/studies/{name}/events`: a study's events.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use serde_json::Value;

use crate::budget::Permit;
use crate::catalog;
use crate::events::Stream;
use crate::page;
use crate::reply::{ApiError, Reply};
use crate::request::{percent_decode, Method, Request};
use crate::scoring;
use crate::State;

/// What a route does with a request.
pub(crate) enum Routed {
    /// Answer it with this.
    Reply(Reply),
    /// Stream the events of this run or study (on the connection's thread).
    Events(Stream),
}

/// Runs a handler; a panic (the last resort) becomes a 500 error.
pub(crate) fn guarded<T>(handler: impl FnOnce() -> Result<T, ApiError>) -> Result<T, ApiError> {
    catch_unwind(AssertUnwindSafe(handler))
        .unwrap_or_else(|_| Err(ApiError::new(500, "internal error: the handler panicked")))
}

/// The routes whose bodies are images: `POST /api/predict`, MLflow's `/invocations`, a
/// corrected drawing.
const IMAGE_ROUTES: [&str; 3] = ["/api/predict", "/invocations", "/api/drawn"];

/// The most a body sent to `path` may hold: a route that takes an image may get the
/// server's body limit ([`crate::Options::max_body`]), every other route's JSON is small
/// ([`crate::Options::max_small_body`]).
pub(crate) fn body_limit(options: &crate::Options, path: &str) -> usize {
    if IMAGE_ROUTES.contains(&path) {
        options.max_body
    } else {
        options.max_small_body.min(options.max_body)
    }
}

/// The small JSON body of a route that takes no image, as a [`Value`], within the decoding
/// budget at [`crate::limits::SMALL_JSON_BYTES_PER_BODY_BYTE`] a byte (415 for another
/// content type); the permit gives it back when dropped.
fn small_json(state: &State, request: &Request) -> Result<(Value, Permit), ApiError> {
    scoring::charged_json(
        state,
        request,
        crate::limits::SMALL_JSON_BYTES_PER_BODY_BYTE,
    )
}

/// A request that trains or changes the registry (see [`crate::auth::authorize`]).
fn authorize(state: &State, request: &Request) -> Result<(), ApiError> {
    crate::auth::authorize(state.options.token.as_deref(), request)
}

/// `request`'s method if it is one of `allowed` (a GET route also answers HEAD), else a 405
/// naming the methods that are (`allow`, the `Allow` header's value).
fn allow(request: &Request, allowed: &[Method], allow: &'static str) -> Result<Method, ApiError> {
    let method = &request.method;
    if allowed.contains(method) || (allowed.contains(&Method::Get) && *method == Method::Head) {
        Ok(method.clone())
    } else {
        Err(ApiError::new(
            405,
            format!("{method} is not allowed on {}: use {allow}", request.path),
        )
        .with_header("Allow", allow))
    }
}

fn get(request: &Request) -> Result<Method, ApiError> {
    allow(request, &[Method::Get], "GET")
}

fn post(request: &Request) -> Result<Method, ApiError> {
    allow(request, &[Method::Post], "POST")
}

/// Whether `request` is the POST of a route that also answers GET (405 for other methods).
fn is_post_of_get_post(request: &Request) -> Result<bool, ApiError> {
    Ok(allow(request, &[Method::Get, Method::Post], "GET, POST")? == Method::Post)
}

fn no_route(path: &str) -> ApiError {
    ApiError::new(404, format!("no such route: {path}"))
}

pub(crate) fn route(state: &Arc<State>, request: &Request) -> Result<Routed, ApiError> {
    let path = request.path.as_str();
    let reply = match path {
        "/api/predict" => {
            post(request)?;
            scoring::predict(state, request)?
        }
        "/invocations" => {
            post(request)?;
            scoring::invocations(state, request)?
        }
        "/ping" | "/health" => {
            get(request)?;
            Reply::text(200, "application/json", "\n")
        }
        "/version" => {
            get(request)?;
            Reply::text(200, "text/plain; charset=utf-8", env!("CARGO_PKG_VERSION"))
        }
        "/api/models" => {
            get(request)?;
            Reply::json(&state.registry.list()?)?
        }
        "/api/models/deleted" => {
            get(request)?;
            let deleted = state.registry.deleted()?;
            Reply::json(&deleted.iter().map(ToString::to_string).collect::<Vec<_>>())?
        }
        "/api/aliases" => {
            get(request)?;
            catalog::aliases(state)?
        }
        "/api/runs" => {
            get(request)?;
            catalog::runs_with_summaries(state)?
        }
        "/api/data" => {
            get(request)?;
            state
                .fetching
                .describe(&state.training, state.options.token.is_some())?
        }
        "/api/data/fetch" => {
            post(request)?;
            authorize(state, request)?;
            state.fetching.start(&state.training)?
        }
        "/api/studies" => {
            get(request)?;
            state.tuning.list()?
        }
        "/api/drawn" | "/api/train" | "/api/adapt" | "/api/tune" => {
            return jobs(state, request).map(Routed::Reply)
        }
        _ if page::asset(path).is_some() => {
            get(request)?;
            let asset = page::asset(path).expect("checked above");
            Reply::text(200, asset.content_type, asset.body)
                .with_header("Cache-Control", "no-cache")
        }
        _ => {
            if let Some(alias) = one_segment(path, "/api/aliases/") {
                alias_route(state, request, &percent_decode(alias))?
            } else if let Some(rest) = path.strip_prefix("/api/runs/") {
                return run_route(state, request, rest);
            } else if let Some(rest) = path.strip_prefix("/api/studies/") {
                return study_route(state, request, rest);
            } else {
                return Err(no_route(path));
            }
        }
    };
    Ok(Routed::Reply(reply))
}

/// The routes whose GET describes and whose POST (authorized) starts or saves something.
fn jobs(state: &Arc<State>, request: &Request) -> Result<Reply, ApiError> {
    let starts = is_post_of_get_post(request)?;
    if starts {
        authorize(state, request)?;
    }
    let token = state.options.token.is_some();
    match (request.path.as_str(), starts) {
        ("/api/drawn", true) => crate::drawn::save(state, request),
        ("/api/drawn", false) => crate::drawn::counts(state),
        ("/api/train", true) => {
            let (body, _permit) = small_json(state, request)?;
            state.training.start(&body, &state.registry, &state.runs)
        }
        ("/api/train", false) => state.training.describe(token),
        ("/api/adapt", true) => {
            let (body, _permit) = small_json(state, request)?;
            state.adapting.start(state, &body)
        }
        ("/api/adapt", false) => state.adapting.describe(state),
        ("/api/tune", true) => {
            let (body, _permit) = small_json(state, request)?;
            state
                .tuning
                .start(&body, &state.training, &state.registry, &state.runs)
        }
        ("/api/tune", false) => state.tuning.describe(&state.training, token),
        (path, _) => Err(no_route(path)),
    }
}

/// `/api/aliases/NAME`: PUT points it at a model, DELETE removes it (both authorized).
fn alias_route(state: &Arc<State>, request: &Request, alias: &str) -> Result<Reply, ApiError> {
    let method = allow(request, &[Method::Put, Method::Delete], "PUT, DELETE")?;
    authorize(state, request)?;
    if method == Method::Put {
        let (body, _permit) = small_json(state, request)?;
        catalog::set_alias(state, alias, &body)
    } else {
        catalog::remove_alias(state, alias)
    }
}

/// `rest` of a `/api/runs/` path split into a percent-decoded name and what follows it, if
/// the name is not empty and at most one more segment follows.
fn name_and_what<'a>(path: &str, rest: &'a str) -> Result<(String, &'a str), ApiError> {
    let (name, what) = rest.split_once('/').unwrap_or((rest, ""));
    let name = percent_decode(name);
    if name.is_empty() || what.contains('/') {
        return Err(no_route(path));
    }
    Ok((name, what))
}

/// `/api/runs/ID[/log|/events|/stop]`.
fn run_route(state: &Arc<State>, request: &Request, rest: &str) -> Result<Routed, ApiError> {
    let (id, what) = name_and_what(&request.path, rest)?;
    let reply = match what {
        "" => {
            get(request)?;
            catalog::run_with_best(state, &id)?
        }
        "log" => {
            get(request)?;
            Reply::text(200, "text/plain; charset=utf-8", state.runs.log(&id)?)
        }
        "events" => {
            if get(request)? == Method::Head {
                state.runs.info(&id)?;
                Reply::text(200, "text/event-stream; charset=utf-8", "")
            } else {
                return Ok(Routed::Events(Stream::Run(id)));
            }
        }
        "stop" => {
            post(request)?;
            authorize(state, request)?;
            if state.adapting.job(&id).is_some() {
                return Err(ApiError::new(
                    409,
                    format!("run {id} adapts a model: an adaptation cannot be stopped (it takes seconds)"),
                ));
            }
            state.training.stop(&id, &state.runs)?
        }
        _ => return Err(no_route(&request.path)),
    };
    Ok(Routed::Reply(reply))
}

/// `/api/studies/NAME[/events|/stop|/use]`.
fn study_route(state: &Arc<State>, request: &Request, rest: &str) -> Result<Routed, ApiError> {
    let (name, what) = name_and_what(&request.path, rest)?;
    let reply = match what {
        "" => {
            get(request)?;
            state.tuning.state(&name, &state.runs)?
        }
        "events" => {
            if get(request)? == Method::Head {
                state.tuning.journal(&name)?;
                Reply::text(200, "text/event-stream; charset=utf-8", "")
            } else {
                return Ok(Routed::Events(Stream::Study(name)));
            }
        }
        "stop" => {
            post(request)?;
            authorize(state, request)?;
            state.tuning.stop(&name)?
        }
        "use" => {
            post(request)?;
            authorize(state, request)?;
            state.tuning.use_best(&name, &state.registry, &state.runs)?
        }
        _ => return Err(no_route(&request.path)),
    };
    Ok(Routed::Reply(reply))
}

/// `rest` of `path` = `prefix` + `rest`, if `rest` is one non-empty path segment.
fn one_segment<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix)
        .filter(|rest| !rest.is_empty() && !rest.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn a_panicking_handler_becomes_a_500_json_error() {
        // As the connection answers: the error, or the panic's 500, as a JSON reply.
        let reply = guarded::<Reply>(|| panic!("boom")).unwrap_or_else(ApiError::into_reply);
        assert_eq!(reply.status, 500);
        let v: Value = serde_json::from_slice(&reply.body).unwrap();
        assert!(v["error"].as_str().unwrap().contains("panicked"));
        let reply =
            guarded::<Reply>(|| Err(ApiError::new(404, "no"))).unwrap_or_else(ApiError::into_reply);
        assert_eq!(
            (reply.status, reply.content_type),
            (404, "application/json")
        );
    }
}
