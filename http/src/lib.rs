//! `pismo serve`: pismo's HTTP API, MLflow's scoring protocol and the web page, over
//! tiny_http.
//!
//! [`Server::start`] binds an address and answers on a small fixed pool of worker threads
//! ([`Options::workers`]) that take requests from tiny_http; event streams and training runs
//! get threads of their own, so they never hold a worker. [`serve`] starts a server and
//! blocks. Endpoints (see `DESIGN.md`, "HTTP", and the README):
//!
//! - `GET /`: the web page ([`page`]).
//! - `POST /api/predict[?model=REF]`, `POST /invocations`, `GET /ping|/health|/version`:
//!   scoring ([`scoring`]).
//! - `GET /api/models`, `GET|PUT|DELETE /api/aliases[/{alias}]`: the registry.
//! - `GET /api/runs`, `GET /api/runs/{id}`, `GET /api/runs/{id}/log`: run records.
//! - `GET|POST /api/drawn`: corrected drawings, counted and saved ([`drawn`]).
//! - `GET|POST /api/train`, `POST /api/runs/{id}/stop`: training ([`training`]);
//!   `GET /api/runs/{id}/events`: its progress as server-sent events ([`events`]).
//!
//! Guarantees, tested in `tests/api.rs`: every request gets a response; errors are JSON
//! `{"error":"…"}` with a 4xx status (400 bad input, 401/403 missing/wrong token, 404 unknown
//! model/run/route, 405 wrong method, 409 conflict, 413 body over [`Options::max_body`] or an
//! image over 4096 px on a side, 415 wrong content type) or a 5xx (503 no training data); a
//! panic in a handler is caught and answered with a 500 JSON error. With a token
//! ([`Options::token`], required on a non-loopback address) everything that trains or
//! changes the registry needs `Authorization: Bearer TOKEN`.

#![forbid(unsafe_code)]

mod drawn;
mod events;
mod page;
mod reply;
mod scoring;
mod training;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Read;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use pismo_core::host::model::AnyMlp;
use pismo_core::host::registry::Registry;
use pismo_core::host::runs::{RunInfo, Runs};
use serde::Serialize;
use serde_json::{json, Value};
use tiny_http::{Method, Request};

use reply::{ApiError, Reply};
use training::Training;

/// Largest request body accepted by default: 8 MiB.
pub const DEFAULT_MAX_BODY: usize = 8 << 20;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Worker threads answering requests (at least 1). When all are busy the pool grows,
    /// up to [`MAX_WORKERS`], and the extra workers end once idle.
    pub workers: usize,
    /// Largest request body in bytes; larger ones get 413.
    pub max_body: usize,
    /// MNIST for `POST /api/train` (raw or `.gz` IDX files), loaded on first use.
    pub data_dir: PathBuf,
    /// Training runs at once (at least 1); more get 409.
    pub max_training: usize,
    /// The token that training and registry changes need (`Authorization: Bearer …`).
    /// Required when the address is not a loopback one.
    pub token: Option<String>,
    /// The folder of corrected drawings for `POST /api/drawn`.
    pub drawn_dir: PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            workers: 4,
            max_body: DEFAULT_MAX_BODY,
            data_dir: PathBuf::from("data/mnist"),
            max_training: 1,
            token: None,
            drawn_dir: PathBuf::from(pismo_core::host::drawn::DEFAULT_DIR),
        }
    }
}

/// Why the server could not start.
#[derive(Debug)]
pub struct ServeError {
    addr: String,
    message: String,
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot listen on {}: {}", self.addr, self.message)
    }
}

impl std::error::Error for ServeError {}

/// A decoded model and the file it came from (size, modification time), so a file that
/// changes under the same `NAME@V` is decoded again.
struct Cached {
    size: u64,
    modified: Option<SystemTime>,
    mlp: Arc<AnyMlp>,
}

/// What the handlers share.
struct State {
    registry: Registry,
    runs: Runs,
    options: Options,
    models: Mutex<HashMap<String, Cached>>,
    training: Arc<Training>,
    /// Event streams open now.
    streams: AtomicUsize,
    pool: Pool,
    stopping: Arc<AtomicBool>,
}

/// A running server. [`Server::stop`] (or dropping it) stops the workers.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port) and starts the workers. A non-loopback
    /// address without [`Options::token`] is refused.
    pub fn start(
        addr: &str,
        registry_dir: impl Into<PathBuf>,
        runs_dir: impl Into<PathBuf>,
        options: Options,
    ) -> Result<Server, ServeError> {
        let fail = |message: String| ServeError {
            addr: addr.to_owned(),
            message,
        };
        if options.token.as_deref() == Some("") {
            return Err(fail("the token must not be empty".to_owned()));
        }
        let http = tiny_http::Server::from_listener(listen(addr).map_err(fail)?, None)
            .map_err(|e| fail(e.to_string()))?;
        let bound = http
            .server_addr()
            .to_ip()
            .ok_or_else(|| fail("not an IP address".to_owned()))?;
        if !bound.ip().is_loopback() && options.token.is_none() {
            return Err(fail(format!(
                "{} is reachable from other machines: give a token for training and registry changes (pismo serve --token …)",
                bound.ip()
            )));
        }
        let http = Arc::new(http);
        let stopping = Arc::new(AtomicBool::new(false));
        let state = Arc::new(State {
            registry: Registry::open(registry_dir),
            runs: Runs::open(runs_dir),
            training: Arc::new(Training::new(
                options.data_dir.clone(),
                options.max_training.max(1),
            )),
            options: options.clone(),
            models: Mutex::new(HashMap::new()),
            streams: AtomicUsize::new(0),
            pool: Pool::default(),
            stopping: stopping.clone(),
        });
        spawn_nudger(bound, stopping.clone());
        let base = options.workers.clamp(1, MAX_WORKERS);
        state.pool.total.store(base, Ordering::SeqCst);
        let workers = (0..base)
            .map(|_| {
                let (http, state) = (http.clone(), state.clone());
                std::thread::spawn(move || worker(http, state, false))
            })
            .collect();
        Ok(Server {
            addr: bound,
            stopping,
            workers,
        })
    }

    /// The address the server listens on (with the real port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the workers (each finishes the request it is answering) and waits for them.
    /// Event streams end within a second; training runs go on to their end.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Blocks until the workers end (they only end after [`Server::stop`] from elsewhere, so
    /// in practice: forever).
    pub fn wait(mut self) {
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }

    fn shutdown(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A listening socket on `addr` with `TCP_NODELAY`, which the connections it accepts
/// inherit (Linux, the BSDs). tiny_http writes a response's head and body in separate
/// `send`s; with Nagle's algorithm the body waits for the client's delayed ACK of the head,
/// 40 ms per keep-alive request (measured in bench/README.md, "Serving").
fn listen(addr: &str) -> Result<std::net::TcpListener, String> {
    use socket2::{Domain, Socket, Type};
    use std::net::ToSocketAddrs;
    let target = addr
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| "the address resolves to nothing".to_owned())?;
    let socket =
        Socket::new(Domain::for_address(target), Type::STREAM, None).map_err(|e| e.to_string())?;
    socket.set_reuse_address(true).map_err(|e| e.to_string())?;
    socket.set_nodelay(true).map_err(|e| e.to_string())?;
    socket.bind(&target.into()).map_err(|e| e.to_string())?;
    socket.listen(1024).map_err(|e| e.to_string())?;
    Ok(socket.into())
}

/// How often [`spawn_nudger`] connects.
const NUDGE_EVERY: Duration = Duration::from_millis(50);

/// Works around a lost wake-up in tiny_http 0.12's connection thread pool: when several
/// connections arrive at once, the pool can queue one for a thread it believes idle but that
/// has just taken another connection; the queued connection then waits until some
/// keep-alive connection closes, which for a browser can be minutes (reproduced by
/// `tests/api.rs`, `a_burst_of_new_connections_is_served`). A connection that closes at once
/// makes the pool start a thread when none is idle, and that thread goes on to the queued
/// connections. So a thread connects to the server every [`NUDGE_EVERY`] and hangs up, until
/// the server stops.
fn spawn_nudger(bound: SocketAddr, stopping: Arc<AtomicBool>) {
    let mut target = bound;
    if target.ip().is_unspecified() {
        target.set_ip(match target {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let _ = std::thread::Builder::new()
        .name("pismo-http-nudge".to_owned())
        .spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                std::thread::sleep(NUDGE_EVERY);
                // Closed with a reset (linger 0): no TIME_WAIT socket left per nudge.
                if let Ok(socket) = socket2::Socket::new(
                    socket2::Domain::for_address(target),
                    socket2::Type::STREAM,
                    None,
                ) {
                    let _ = socket.set_linger(Some(Duration::ZERO));
                    let _ = socket.connect_timeout(&target.into(), Duration::from_secs(1));
                }
            }
        });
}

/// Starts a server on `addr` and answers requests until the process ends.
pub fn serve(
    addr: &str,
    registry_dir: impl Into<PathBuf>,
    runs_dir: impl Into<PathBuf>,
    options: Options,
) -> Result<(), ServeError> {
    Server::start(addr, registry_dir, runs_dir, options)?.wait();
    Ok(())
}

/// What a route does with a request.
enum Routed {
    /// Answer it with this.
    Reply(Reply),
    /// Stream the events of this run on a thread of its own.
    Events(String),
}

/// Most request workers at once: the pool grows past [`Options::workers`] when every worker
/// is busy (a client that stalls mid-body holds one), up to this many.
pub const MAX_WORKERS: usize = 64;

/// How long a worker added to a busy pool stays without work before it ends.
const EXTRA_WORKER_IDLE: Duration = Duration::from_secs(10);

/// Worker counts of the request pool.
#[derive(Default)]
struct Pool {
    total: AtomicUsize,
    busy: AtomicUsize,
}

/// Takes requests until the server stops. An extra worker (`extra`) also ends after
/// [`EXTRA_WORKER_IDLE`] without a request. Taking a request while every other worker is
/// busy adds a worker, so the next request never waits for a stalled one.
fn worker(http: Arc<tiny_http::Server>, state: Arc<State>, extra: bool) {
    let mut idle_since = std::time::Instant::now();
    while !state.stopping.load(Ordering::SeqCst) {
        let mut request = match http.recv_timeout(Duration::from_millis(100)) {
            Ok(Some(request)) => request,
            Ok(None) => {
                if extra && idle_since.elapsed() >= EXTRA_WORKER_IDLE {
                    break;
                }
                continue;
            }
            Err(_) => break,
        };
        let busy = state.pool.busy.fetch_add(1, Ordering::SeqCst) + 1;
        if busy >= state.pool.total.load(Ordering::SeqCst) {
            grow(&http, &state);
        }
        match guarded(|| route(&state, &mut request)) {
            Ok(Routed::Events(id)) => events::spawn(state.clone(), request, id),
            Ok(Routed::Reply(reply)) => {
                // A client that went away is not our problem.
                let _ = request.respond(reply.into_response());
            }
            Err(e) => {
                let _ = request.respond(e.into_reply().into_response());
            }
        }
        state.pool.busy.fetch_sub(1, Ordering::SeqCst);
        idle_since = std::time::Instant::now();
    }
    state.pool.total.fetch_sub(1, Ordering::SeqCst);
}

/// Adds an extra worker, unless the pool is at [`MAX_WORKERS`].
fn grow(http: &Arc<tiny_http::Server>, state: &Arc<State>) {
    let total = &state.pool.total;
    let mut n = total.load(Ordering::SeqCst);
    while n < MAX_WORKERS {
        match total.compare_exchange(n, n + 1, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => {
                let (http, state) = (http.clone(), state.clone());
                let spawned = std::thread::Builder::new()
                    .name("pismo-http-extra".to_owned())
                    .spawn(move || worker(http, state, true));
                if spawned.is_err() {
                    total.fetch_sub(1, Ordering::SeqCst);
                }
                return;
            }
            Err(now) => n = now,
        }
    }
}

/// Runs a handler; a panic (the last resort) becomes a 500 error.
fn guarded<T>(handler: impl FnOnce() -> Result<T, ApiError>) -> Result<T, ApiError> {
    catch_unwind(AssertUnwindSafe(handler))
        .unwrap_or_else(|_| Err(ApiError::new(500, "internal error: the handler panicked")))
}

// ---------------------------------------------------------------------------------------
// Routing

fn route(state: &Arc<State>, request: &mut Request) -> Result<Routed, ApiError> {
    let url = request.url().to_owned();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let method = request.method().clone();
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
            scoring::predict(state, request, query_param(query, "model").as_deref())?
        }
        "/invocations" => {
            post()?;
            scoring::invocations(state, request, query_param(query, "model").as_deref())?
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
        "/api/aliases" => {
            get()?;
            let aliases: BTreeMap<String, String> = state
                .registry
                .aliases()?
                .into_iter()
                .map(|(alias, id)| (alias, id.to_string()))
                .collect();
            Reply::json(&aliases)?
        }
        "/api/runs" => {
            get()?;
            runs_with_summaries(state)?
        }
        "/api/drawn" => drawn::handle(
            state,
            request,
            &allow(&[Method::Get, Method::Post], "GET, POST")?,
        )?,
        "/api/train" => {
            if allow(&[Method::Get, Method::Post], "GET, POST")? == Method::Post {
                authorize(state, request)?;
                let body = json_body(state, request)?;
                state.training.start(&body, &state.registry, &state.runs)?
            } else {
                state.training.describe(state.options.token.is_some())?
            }
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
                    let body = json_body(state, request)?;
                    set_alias(state, &alias, &body)?
                } else {
                    authorize(state, request)?;
                    let old = state.registry.remove_alias(&alias)?;
                    Reply::json(&json!({ "alias": alias, "model": old.to_string() }))?
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
                        run_with_best(state, &id)?
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
                            return Ok(Routed::Events(id));
                        }
                    }
                    "stop" => {
                        post()?;
                        authorize(state, request)?;
                        state.training.stop(&id, &state.runs)?
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

// ---------------------------------------------------------------------------------------
// Token

/// A request that trains or changes the registry: a browser must send it from pismo's own
/// page (an `Origin` of another site is refused), and with a token configured it must carry
/// `Authorization: Bearer TOKEN`.
fn authorize(state: &State, request: &Request) -> Result<(), ApiError> {
    let header = |name: &'static str| {
        request
            .headers()
            .iter()
            .find(|h| h.field.equiv(name))
            .map(|h| h.value.as_str().trim().to_owned())
    };
    if let Some(origin) = header("Origin") {
        let origin_host = origin.split_once("://").map_or("", |(_, host)| host);
        if header("Host").as_deref() != Some(origin_host) {
            return Err(ApiError::new(
                403,
                format!("cross-origin request from {origin} refused: use pismo's own page or a non-browser client"),
            ));
        }
    }
    let Some(token) = &state.options.token else {
        return Ok(());
    };
    let Some(given) = header("Authorization") else {
        return Err(ApiError::new(
            401,
            "this server needs a token to train or change the registry: send `Authorization: Bearer TOKEN` (the token `pismo serve` printed)",
        )
        .with_header("WWW-Authenticate", "Bearer"));
    };
    let given = given.strip_prefix("Bearer ").unwrap_or("").trim();
    if same_secret(given.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::new(403, "wrong token").with_header("WWW-Authenticate", "Bearer"))
    }
}

/// Equality whose time does not depend on where the first difference is.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

// ---------------------------------------------------------------------------------------
// Registry and runs

/// `PUT /api/aliases/{alias}` with `{"model": "NAME@V"}` (or any reference).
fn set_alias(state: &State, alias: &str, body: &Value) -> Result<Reply, ApiError> {
    let reference = body
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            ApiError::bad("the body must be {\"model\": \"NAME@VERSION\"}")
                .with("field", json!("model"))
        })?;
    let id = state.registry.resolve(Some(reference))?;
    state.registry.set_alias(alias, &id)?;
    Reply::json(&json!({ "alias": alias, "model": id.to_string() }))
}

/// A run as listed: its record, the last value of each metric (`summary`) and the metrics
/// of its best epoch (`best`: lowest validation loss, the weights the trainer kept).
#[derive(Serialize)]
struct RunSummary {
    #[serde(flatten)]
    info: RunInfo,
    summary: BTreeMap<String, Value>,
    best: Option<BTreeMap<String, Value>>,
}

/// The metrics of the epoch with the lowest finite `val_loss` (the first of equals), with
/// `epoch` = its step.
fn best_epoch(metrics: &[pismo_core::host::runs::Metric]) -> Option<BTreeMap<String, Value>> {
    let best = pismo_core::host::runs::kept_epoch(metrics)?;
    let mut out: BTreeMap<String, Value> = metrics
        .iter()
        .filter(|m| m.step == best && m.name != "test_accuracy" && m.value.is_finite())
        .map(|m| (m.name.clone(), metric_value(m.value)))
        .collect();
    out.insert("epoch".to_owned(), json!(best));
    Some(out)
}

/// A metric of a run record as JSON. Metrics are f32 values stored as f64: they are shown
/// in their shortest f32 form (0.03, not 0.029999999329447743). Not finite: `null`.
fn metric_value(v: f64) -> Value {
    format!("{}", v as f32)
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// `GET /api/runs/{id}`: the record with every metric, and `best` as in the list.
fn run_with_best(state: &State, id: &str) -> Result<Reply, ApiError> {
    #[derive(Serialize)]
    struct WithBest {
        #[serde(flatten)]
        record: pismo_core::host::runs::RunRecord,
        best: Option<BTreeMap<String, Value>>,
    }
    let record = state.runs.get(id)?;
    let best = best_epoch(&record.metrics);
    Reply::json(&WithBest { record, best })
}

fn runs_with_summaries(state: &State) -> Result<Reply, ApiError> {
    let runs: Vec<RunSummary> = state
        .runs
        .list()?
        .into_iter()
        .map(|info| {
            let mut summary = BTreeMap::new();
            let mut best = None;
            if let Ok(metrics) = state.runs.metrics(&info.run_id) {
                best = best_epoch(&metrics);
                for m in metrics {
                    if m.value.is_finite() {
                        summary.insert(m.name, metric_value(m.value));
                    }
                }
            }
            RunSummary {
                info,
                summary,
                best,
            }
        })
        .collect();
    Reply::json(&runs)
}

/// The model `reference` means, decoded once per `NAME@V` and file version, then shared.
fn model(state: &State, reference: Option<&str>) -> Result<(String, Arc<AnyMlp>), ApiError> {
    let reference = reference.filter(|r| !r.is_empty());
    let id = state.registry.resolve(reference)?;
    let key = id.to_string();
    let file = std::fs::metadata(state.registry.path_of(&id)?)
        .map_err(|e| ApiError::new(404, format!("model {key}: {e}")))?;
    let (size, modified) = (file.len(), file.modified().ok());
    let mut models = state.models.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = models.get(&key) {
        if c.size == size && c.modified == modified {
            return Ok((key, c.mlp.clone()));
        }
    }
    let bytes = state.registry.read(&id)?;
    let (mlp, _) = AnyMlp::decode(&bytes)
        .map_err(|e| ApiError::new(500, format!("model {key} does not decode: {e}")))?;
    let mlp = Arc::new(mlp);
    models.insert(
        key.clone(),
        Cached {
            size,
            modified,
            mlp: mlp.clone(),
        },
    );
    Ok((key, mlp))
}

// ---------------------------------------------------------------------------------------
// Requests

/// The value of `name` in a query string, percent-decoded.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------
// Bodies

/// The media type of the request, lower case, without parameters (`; charset=…`).
pub(crate) fn content_type(request: &Request) -> Option<String> {
    request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Content-Type"))
        .map(|h| {
            let v = h.value.as_str();
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

/// Reads the body: 413 over the limit (by `Content-Length` first, then while reading), 400
/// when empty.
pub(crate) fn read_body(state: &State, request: &mut Request) -> Result<Vec<u8>, ApiError> {
    let limit = state.options.max_body;
    let too_large = || {
        ApiError::new(
            413,
            format!("the body is larger than the limit of {limit} bytes"),
        )
    };
    if request.body_length().is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    request
        .as_reader()
        .take(limit as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| ApiError::bad(format!("cannot read the body: {e}")))?;
    if body.len() > limit {
        return Err(too_large());
    }
    if body.is_empty() {
        return Err(ApiError::bad(
            "missing body: send a PNG (image/png) or JSON (application/json)",
        ));
    }
    Ok(body)
}

pub(crate) fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("malformed JSON: {e}")))
}

/// A JSON body (415 for another content type).
pub(crate) fn json_body(state: &State, request: &mut Request) -> Result<Value, ApiError> {
    let kind = content_type(request);
    if kind.as_deref() != Some("application/json") {
        return Err(unsupported_type(kind, "application/json"));
    }
    parse_json(&read_body(state, request)?)
}

/// The 415 for a body of media type `kind`, naming what is `accepted`.
pub(crate) fn unsupported_type(kind: Option<String>, accepted: &str) -> ApiError {
    ApiError::new(
        415,
        format!(
            "unsupported content type {}: send {accepted}",
            kind.map_or("(none)".to_owned(), |t| format!("`{t}`"))
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_percent_decoded() {
        assert_eq!(
            query_param("a=1&model=tiny%401", "model").as_deref(),
            Some("tiny@1")
        );
        assert_eq!(query_param("model=x", "other"), None);
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn a_panicking_handler_becomes_a_500_json_error() {
        // As the worker answers: the error, or the panic's 500, as a JSON reply.
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
