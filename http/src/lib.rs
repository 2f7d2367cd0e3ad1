//! `pismo serve`: pismo's HTTP API, MLflow's scoring protocol and the web page, over
//! HTTP/1.1 parsed by `httparse` under pismo's own connection loop.
//!
//! [`Server::start`] binds an address and serves each connection on a thread of its own,
//! under the limits of [`limits`] (head and body size, read deadlines, idle keep-alive, a
//! connection cap, an image-decoding memory budget). [`serve`] starts a server and blocks.
//!
//! The modules, outside in:
//! - `server`: [`Options`], binding, the accept loop and the connection cap, stopping.
//! - `connection`: one connection: reading requests within the limits, keep-alive,
//!   writing answers, refusing what is not HTTP/1.x.
//! - `auth`: the `Host` check on every request, the token and `Origin` check on changes.
//! - `routes`: method and path to handler; endpoints are listed there.
//! - `request`: the whole request a handler gets, and its body as JSON.
//! - `reply`: answers and JSON errors; `redact`: the host folders a server with a token
//!   keeps out of them.
//! - handlers: `scoring` (predictions; `mlflow` parses MLflow's bodies), `catalog`
//!   (registry and runs), `drawn` (corrected drawings), `training`, `adapting` (a model
//!   fine-tuned to the corrections), `tuning` (hyperparameter studies), `fetching` (MNIST
//!   fetched from the page), `events`
//!   (server-sent events of runs and studies), `page` (the embedded web page); `jobs` runs
//!   training and adapting in the background and keeps their events; `budget` holds the
//!   image-decoding and body budgets; `allocator` makes glibc's malloc give freed memory
//!   back to the system.
//!
//! Guarantees, tested in `tests/api/` (`limits.rs` for the limits): every request gets a
//! response; errors are JSON `{"error":"…"}` with a 4xx status (400 bad input, 401/403
//! missing/wrong token, 404 unknown model/run/route, 405 wrong method, 408 too slow, 409
//! conflict, 413 body over [`Options::max_body`] or an image over 4096 px on a side, 415
//! wrong content type, 421 a `Host` that is not loopback on a server without a token, 431
//! head too large) or a 5xx (501 a transfer coding other than chunked, 503 no training
//! data, too many connections, bodies or images being decoded, 505 not HTTP/1.x); a panic in
//! a handler is caught and answered with a 500 JSON error. With a token ([`Options::token`],
//! required on a non-loopback address) everything that trains or changes the registry needs
//! `Authorization: Bearer TOKEN`.
//!
//! A shell, like the `pismo` binary that starts it: it depends on the libraries below it (the
//! core, `pismo-engine`, `pismo-digits`, `pismo-storage`, `pismo-training`, `pismo-tuning`)
//! and may not depend on the binary or on `pismo-window`; it takes its registry and run
//! records as `pismo-storage`'s interfaces, so it links no database client.

// `deny`, not `forbid`: `allocator` alone allows it, for two calls into glibc's malloc.
#![deny(unsafe_code)]

mod adapting;
mod allocator;
mod auth;
mod budget;
mod catalog;
mod connection;
mod drawn;
mod events;
mod fetching;
#[doc(hidden)]
pub mod fuzzing;
mod jobs;
pub mod limits;
mod mlflow;
mod page;
mod redact;
mod reply;
mod request;
mod routes;
mod scoring;
mod server;
mod training;
mod tuning;

pub use fetching::FetchCommand;
pub(crate) use server::State;
pub use server::{serve, Options, ServeError, Server, STOP_WAIT};
