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

pub(crate) fn route(state: &Arc<State>, request: &Request) -> Result<Routed, ApiError> {
    let path = request.path.as_str();
    let method = request.method.clone();
    let allow = |allowed: &[Method], allow: &'static str| {
        if allowed.contains(&method) || (allowed.contains(&Method::Get) && method == Method::Head) {
            Ok(method.clone())
        } else {
            Err(ApiError::new(
                405,
                format!("{method} is not allowed on {path}: use {allow}"),
            )
            .with_header("Allow", allow))
        }
    };
    let get = || allow(&[Method::Get], "GET");
    let post = || allow(&[Method::Post], "POST");
    let reply = match path {
        "/api/predict" => {
            post()?;
            scoring::predict(state, request)?
        }
        "/invocations" => {
            post()?;
            scoring::invocations(state, request)?
        }
        "/ping" | "/health" => {
            get()?;
            Reply::text(200, "application/json", "\n")
        }
        "/version" => {
            get()?;
            Reply::text(200, "text/plain; charset=utf-8", env!("CARGO_PKG_VERSION"))
        }
        "/api/models" => {
            get()?;
            Reply::json(&state.registry.list()?)?
        }
        "/api/models/deleted" => {
            get()?;
            let deleted = state.registry.deleted()?;
            Reply::json(&deleted.iter().map(ToString::to_string).collect::<Vec<_>>())?
        }
        "/api/aliases" => {
            get()?;
            catalog::aliases(state)?
        }
        "/api/runs" => {
            get()?;
            catalog::runs_with_summaries(state)?
        }
        "/api/drawn" => {
            if allow(&[Method::Get, Method::Post], "GET, POST")? == Method::Post {
                authorize(state, request)?;
                crate::drawn::save(state, request)?
            } else {
                crate::drawn::counts(state)?
            }
        }
        "/api/train" => {
            if allow(&[Method::Get, Method::Post], "GET, POST")? == Method::Post {
                authorize(state, request)?;
                let (body, _permit) = small_json(state, request)?;
                state.training.start(&body, &state.registry, &state.runs)?
            } else {
                state.training.describe(state.options.token.is_some())?
            }
        }
        "/api/adapt" => {
            if allow(&[Method::Get, Method::Post], "GET, POST")? == Method::Post {
                authorize(state, request)?;
                let (body, _permit) = small_json(state, request)?;
                state.adapting.start(state, &body)?
            } else {
                state.adapting.describe(state)?
            }
        }
        "/api/data" => {
            get()?;
            state
                .fetching
                .describe(&state.training, state.options.token.is_some())?
        }
        "/api/data/fetch" => {
            post()?;
            authorize(state, request)?;
            state.fetching.start(&state.training)?
        }
        "/api/tune" => {
            if allow(&[Method::Get, Method::Post], "GET, POST")? == Method::Post {
                authorize(state, request)?;
                let (body, _permit) = small_json(state, request)?;
                state
                    .tuning
                    .start(&body, &state.training, &state.registry, &state.runs)?
            } else {
                state
                    .tuning
                    .describe(&state.training, state.options.token.is_some())?
            }
        }
        "/api/studies" => {
            get()?;
            state.tuning.list()?
        }
        _ if page::asset(path).is_some() => {
            get()?;
            let asset = page::asset(path).expect("checked above");
            Reply::text(200, asset.content_type, asset.body)
                .with_header("Cache-Control", "no-cache")
        }
        _ => {
            if let Some(alias) = one_segment(path, "/api/aliases/") {
                let alias = percent_decode(alias);
                if allow(&[Method::Put, Method::Delete], "PUT, DELETE")? == Method::Put {
                    authorize(state, request)?;
                    let (body, _permit) = small_json(state, request)?;
                    catalog::set_alias(state, &alias, &body)?
                } else {
                    authorize(state, request)?;
                    catalog::remove_alias(state, &alias)?
                }
            } else if let Some(rest) = path.strip_prefix("/api/runs/") {
                let (id, what) = rest.split_once('/').unwrap_or((rest, ""));
                let id = percent_decode(id);
                if id.is_empty() || what.contains('/') {
                    return Err(ApiError::new(404, format!("no such route: {path}")));
                }
                match what {
                    "" => {
                        get()?;
                        catalog::run_with_best(state, &id)?
                    }
                    "log" => {
                        get()?;
                        Reply::text(200, "text/plain; charset=utf-8", state.runs.log(&id)?)
                    }
                    "events" => {
                        allow(&[Method::Get], "GET")?;
                        if method == Method::Head {
                            state.runs.info(&id)?;
                            Reply::text(200, "text/event-stream; charset=utf-8", "")
                        } else {
                            return Ok(Routed::Events(Stream::Run(id)));
                        }
                    }
                    "stop" => {
                        post()?;
                        authorize(state, request)?;
                        if state.adapting.job(&id).is_some() {
                            return Err(ApiError::new(
                                409,
                                format!("run {id} adapts a model: an adaptation cannot be stopped (it takes seconds)"),
                            ));
                        }
                        state.training.stop(&id, &state.runs)?
                    }
                    _ => return Err(ApiError::new(404, format!("no such route: {path}"))),
                }
            } else if let Some(rest) = path.strip_prefix("/api/studies/") {
                let (name, what) = rest.split_once('/').unwrap_or((rest, ""));
                let name = percent_decode(name);
                if name.is_empty() || what.contains('/') {
                    return Err(ApiError::new(404, format!("no such route: {path}")));
                }
                match what {
                    "" => {
                        get()?;
                        state.tuning.state(&name, &state.runs)?
                    }
                    "events" => {
                        get()?;
                        if method == Method::Head {
                            state.tuning.journal(&name)?;
                            Reply::text(200, "text/event-stream; charset=utf-8", "")
                        } else {
                            return Ok(Routed::Events(Stream::Study(name)));
                        }
                    }
                    "stop" => {
                        post()?;
                        authorize(state, request)?;
                        state.tuning.stop(&name)?
                    }
                    "use" => {
                        post()?;
                        authorize(state, request)?;
                        state.tuning.use_best(&name, &state.registry, &state.runs)?
                    }
                    _ => return Err(ApiError::new(404, format!("no such route: {path}"))),
                }
            } else {
                return Err(ApiError::new(404, format!("no such route: {path}")));
            }
        }
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
