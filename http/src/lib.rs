//! `pismo serve`: the HTTP API of pismo and MLflow's scoring protocol, over tiny_http.
//!
//! [`Server::start`] binds an address and answers on a small fixed pool of worker threads
//! ([`Options::workers`]) that take requests from tiny_http, so one slow client holds at most
//! one worker. [`serve`] starts a server and blocks. Endpoints (see `DESIGN.md`, "HTTP"):
//!
//! - `POST /api/predict[?model=REF]`: a PNG body (`image/png`), or JSON `{"pixels":[784]}`
//!   (a 28x28 image, numbers in 0..=1) or `{"image":{"width":W,"height":H,"data":[W*H]}}`
//!   (grey bytes). Every image goes through `pismo_core::preprocess::to_input`, as in
//!   `pismo predict`; the answer holds the 784 numbers the model saw.
//! - `GET /api/models`, `GET /api/runs`, `GET /api/runs/{id}`: the registry and run records.
//! - `POST /invocations`, `GET /ping`, `GET /health`, `GET /version`: MLflow's scoring
//!   protocol. Rows of `/invocations` are the model's input as is (784 numbers in 0..=1,
//!   light ink on black as in MNIST), like a pyfunc wrapping a scikit-learn classifier.
//!
//! Guarantees, tested in `tests/api.rs`: every request gets a response; errors are JSON
//! `{"error":"…"}` with a 4xx status (400 bad input, 404 unknown model/run/route, 405 wrong
//! method, 413 body over [`Options::max_body`] or PNG over 4096 px on a side, 415 wrong content
//! type); a panic in a handler is caught and answered with a 500 JSON error.

#![forbid(unsafe_code)]

mod page;

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use pismo_core::host::image::{self, ImageError};
use pismo_core::host::model::AnyMlp;
use pismo_core::host::registry::{Registry, RegistryError};
use pismo_core::host::runs::{Runs, RunsError};
use pismo_core::mlp::{CLASSES, INPUT};
use pismo_core::preprocess::{self, GreyImage};
use serde::Serialize;
use serde_json::{json, Value};
use tiny_http::{Header, Method, Request, Response};

/// Largest request body accepted by default: 8 MiB.
pub const DEFAULT_MAX_BODY: usize = 8 << 20;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Worker threads answering requests (at least 1).
    pub workers: usize,
    /// Largest request body in bytes; larger ones get 413.
    pub max_body: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            workers: 4,
            max_body: DEFAULT_MAX_BODY,
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

/// What the handlers share: folders, options and the decoded models by `NAME@V`.
struct State {
    registry: Registry,
    runs: Runs,
    options: Options,
    models: Mutex<HashMap<String, Arc<AnyMlp>>>,
}

/// A running server. [`Server::stop`] (or dropping it) stops the workers.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port) and starts the workers.
    pub fn start(
        addr: &str,
        registry_dir: impl Into<PathBuf>,
        runs_dir: impl Into<PathBuf>,
        options: Options,
    ) -> Result<Server, ServeError> {
        let http = tiny_http::Server::http(addr).map_err(|e| ServeError {
            addr: addr.to_owned(),
            message: e.to_string(),
        })?;
        let bound = http.server_addr().to_ip().ok_or_else(|| ServeError {
            addr: addr.to_owned(),
            message: "not an IP address".to_owned(),
        })?;
        let http = Arc::new(http);
        let state = Arc::new(State {
            registry: Registry::open(registry_dir),
            runs: Runs::open(runs_dir),
            options: options.clone(),
            models: Mutex::new(HashMap::new()),
        });
        let stopping = Arc::new(AtomicBool::new(false));
        let workers = (0..options.workers.max(1))
            .map(|_| {
                let (http, state, stopping) = (http.clone(), state.clone(), stopping.clone());
                std::thread::spawn(move || worker(&http, &state, &stopping))
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

fn worker(http: &tiny_http::Server, state: &State, stopping: &AtomicBool) {
    while !stopping.load(Ordering::SeqCst) {
        let mut request = match http.recv_timeout(Duration::from_millis(100)) {
            Ok(Some(request)) => request,
            Ok(None) => continue,
            Err(_) => break,
        };
        let reply = guarded(|| route(state, &mut request));
        // A client that went away is not our problem.
        let _ = request.respond(reply.into_response());
    }
}

/// Runs a handler; its error, or a panic (the last resort: a 500), becomes a JSON reply.
fn guarded(handler: impl FnOnce() -> Result<Reply, ApiError>) -> Reply {
    catch_unwind(AssertUnwindSafe(handler))
        .unwrap_or_else(|_| Err(ApiError::new(500, "internal error: the handler panicked")))
        .unwrap_or_else(ApiError::into_reply)
}

// ---------------------------------------------------------------------------------------
// Replies and errors

/// A response before it is handed to tiny_http.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    allow: Option<&'static str>,
}

impl Reply {
    fn json(value: &impl Serialize) -> Result<Reply, ApiError> {
        let mut body = serde_json::to_vec(value)
            .map_err(|e| ApiError::new(500, format!("cannot serialise the answer: {e}")))?;
        body.push(b'\n');
        Ok(Reply {
            status: 200,
            content_type: "application/json",
            body,
            allow: None,
        })
    }

    fn text(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            content_type,
            body: body.into(),
            allow: None,
        }
    }

    fn into_response(self) -> Response<std::io::Cursor<Vec<u8>>> {
        let mut response = Response::from_data(self.body)
            .with_status_code(self.status)
            .with_header(header("Content-Type", self.content_type));
        if let Some(allow) = self.allow {
            response.add_header(header("Allow", allow));
        }
        response
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static header is valid")
}

/// An error answer: a status and a message, sent as `{"error": message}`.
#[derive(Debug)]
struct ApiError {
    status: u16,
    message: String,
    allow: Option<&'static str>,
}

impl ApiError {
    fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            allow: None,
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    fn into_reply(self) -> Reply {
        let mut body = serde_json::to_vec(&json!({ "error": self.message }))
            .unwrap_or_else(|_| b"{\"error\":\"internal error\"}".to_vec());
        body.push(b'\n');
        Reply {
            status: self.status,
            content_type: "application/json",
            body,
            allow: self.allow,
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let status = if e.is_not_found() {
            404
        } else if e.is_invalid() {
            400
        } else {
            500
        };
        Self::new(status, e.to_string())
    }
}

impl From<RunsError> for ApiError {
    fn from(e: RunsError) -> Self {
        let status = match e {
            RunsError::InvalidId { .. } => 400,
            ref e if e.is_not_found() => 404,
            _ => 500,
        };
        Self::new(status, e.to_string())
    }
}

// ---------------------------------------------------------------------------------------
// Routing

fn route(state: &State, request: &mut Request) -> Result<Reply, ApiError> {
    let url = request.url().to_owned();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let method = request.method().clone();
    let only = |allowed: Method, allow: &'static str| {
        if method == allowed || (allowed == Method::Get && method == Method::Head) {
            Ok(())
        } else {
            Err(ApiError {
                status: 405,
                message: format!("{method} is not allowed on {path}: use {allow}"),
                allow: Some(allow),
            })
        }
    };
    match path {
        "/api/predict" => {
            only(Method::Post, "POST")?;
            predict(state, request, query_param(query, "model").as_deref())
        }
        "/api/models" => {
            only(Method::Get, "GET")?;
            Reply::json(&state.registry.list()?)
        }
        "/api/runs" => {
            only(Method::Get, "GET")?;
            Reply::json(&state.runs.list()?)
        }
        "/invocations" => {
            only(Method::Post, "POST")?;
            invocations(state, request, query_param(query, "model").as_deref())
        }
        "/ping" | "/health" => {
            only(Method::Get, "GET")?;
            Ok(Reply::text(200, "application/json", "\n"))
        }
        "/version" => {
            only(Method::Get, "GET")?;
            Ok(Reply::text(
                200,
                "text/plain; charset=utf-8",
                env!("CARGO_PKG_VERSION"),
            ))
        }
        _ if page::asset(path).is_some() => {
            only(Method::Get, "GET")?;
            let asset = page::asset(path).expect("checked above");
            Ok(Reply::text(200, asset.content_type, asset.body))
        }
        _ => match path.strip_prefix("/api/runs/") {
            Some(id) if !id.is_empty() && !id.contains('/') => {
                only(Method::Get, "GET")?;
                Reply::json(&state.runs.get(&percent_decode(id))?)
            }
            _ => Err(ApiError::new(404, format!("no such route: {path}"))),
        },
    }
}

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
fn content_type(request: &Request) -> Option<String> {
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
fn read_body(state: &State, request: &mut Request) -> Result<Vec<u8>, ApiError> {
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

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("malformed JSON: {e}")))
}

// ---------------------------------------------------------------------------------------
// Models

/// The model `reference` means, decoded once per `NAME@V` and then shared.
fn model(state: &State, reference: Option<&str>) -> Result<(String, Arc<AnyMlp>), ApiError> {
    let reference = reference.filter(|r| !r.is_empty());
    let id = state.registry.resolve(reference)?;
    let key = id.to_string();
    let mut models = state.models.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(mlp) = models.get(&key) {
        return Ok((key, mlp.clone()));
    }
    let bytes = state.registry.read(&id)?;
    let (mlp, _) = AnyMlp::decode(&bytes)
        .map_err(|e| ApiError::new(500, format!("model {key} does not decode: {e}")))?;
    let mlp = Arc::new(mlp);
    models.insert(key.clone(), mlp.clone());
    Ok((key, mlp))
}

fn argmax(p: &[f32; CLASSES]) -> usize {
    let mut best = 0;
    for (i, &v) in p.iter().enumerate() {
        if v > p[best] {
            best = i;
        }
    }
    best
}

// ---------------------------------------------------------------------------------------
// POST /api/predict

#[derive(Serialize)]
struct Prediction<'a> {
    model: &'a str,
    label: usize,
    probabilities: &'a [f32],
    input: &'a [f32],
}

fn predict(
    state: &State,
    request: &mut Request,
    model_ref: Option<&str>,
) -> Result<Reply, ApiError> {
    let kind = content_type(request);
    let body = read_body(state, request)?;
    let img = match kind.as_deref() {
        Some("image/png") => png_image(&body)?,
        Some("application/json") => json_image(&parse_json(&body)?)?,
        other => {
            return Err(ApiError::new(
                415,
                format!(
                    "unsupported content type {}: send image/png or application/json",
                    other.map_or("(none)".to_owned(), |t| format!("`{t}`"))
                ),
            ))
        }
    };
    let mut x = [0.0f32; INPUT];
    preprocess::to_input(
        &GreyImage {
            width: img.width,
            height: img.height,
            data: &img.data,
        },
        &mut x,
    )
    .map_err(|e| ApiError::bad(e.to_string()))?;
    let (name, mlp) = model(state, model_ref)?;
    let p = mlp.predict_proba(&x);
    Reply::json(&Prediction {
        model: &name,
        label: argmax(&p),
        probabilities: &p,
        input: &x,
    })
}

/// A grey image owned by the request.
struct Grey {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

fn png_image(body: &[u8]) -> Result<Grey, ApiError> {
    let img = image::decode_png(body).map_err(|e| match e {
        ImageError::TooLarge { .. } => ApiError::new(413, format!("{e}")),
        e => ApiError::bad(format!("malformed PNG: {e}")),
    })?;
    let grey = img.as_grey();
    Ok(Grey {
        width: grey.width,
        height: grey.height,
        data: grey.data.to_vec(),
    })
}

/// `{"pixels":[784 numbers in 0..=1]}` or `{"image":{"width":W,"height":H,"data":[W*H]}}`.
fn json_image(value: &Value) -> Result<Grey, ApiError> {
    if let Some(pixels) = value.get("pixels") {
        let x = numbers(pixels, "pixels")?;
        if x.len() != INPUT {
            return Err(ApiError::bad(format!(
                "`pixels` must hold {INPUT} numbers (28x28), got {}",
                x.len()
            )));
        }
        let data = x.iter().map(|&v| (v * 255.0).round() as u8).collect();
        return Ok(Grey {
            width: 28,
            height: 28,
            data,
        });
    }
    if let Some(img) = value.get("image") {
        let side = |name: &str| {
            img.get(name)
                .and_then(Value::as_u64)
                .filter(|&v| v > 0)
                .ok_or_else(|| ApiError::bad(format!("`image.{name}` must be a positive integer")))
        };
        let (width, height) = (side("width")?, side("height")?);
        let max = u64::from(image::MAX_PNG_SIDE);
        if width > max || height > max {
            return Err(ApiError::new(
                413,
                format!("the image is {width}x{height} pixels, at most {max}x{max}"),
            ));
        }
        let data = img
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| ApiError::bad("`image.data` must be an array of grey bytes"))?;
        if data.len() as u64 != width * height {
            return Err(ApiError::bad(format!(
                "`image.data` must hold width*height = {} bytes, got {}",
                width * height,
                data.len()
            )));
        }
        let data = data
            .iter()
            .map(|v| {
                v.as_u64()
                    .and_then(|b| u8::try_from(b).ok())
                    .ok_or_else(|| ApiError::bad("`image.data` values must be integers 0..=255"))
            })
            .collect::<Result<Vec<u8>, _>>()?;
        return Ok(Grey {
            width: width as usize,
            height: height as usize,
            data,
        });
    }
    Err(ApiError::bad(
        "the JSON body needs `pixels` (784 numbers) or `image` {width, height, data}",
    ))
}

/// An array of finite numbers in 0..=1.
fn numbers(value: &Value, what: &str) -> Result<Vec<f32>, ApiError> {
    let array = value
        .as_array()
        .ok_or_else(|| ApiError::bad(format!("`{what}` must be an array of numbers")))?;
    array.iter().map(|v| number(v, what)).collect()
}

fn number(v: &Value, what: &str) -> Result<f32, ApiError> {
    let n = v
        .as_f64()
        .ok_or_else(|| ApiError::bad(format!("`{what}` must hold numbers, got {v}")))?;
    if !n.is_finite() || !(0.0..=1.0).contains(&n) {
        return Err(ApiError::bad(format!(
            "`{what}` values must be finite numbers in 0..=1, got {n}"
        )));
    }
    Ok(n as f32)
}

// ---------------------------------------------------------------------------------------
// POST /invocations (MLflow)

fn invocations(
    state: &State,
    request: &mut Request,
    model_ref: Option<&str>,
) -> Result<Reply, ApiError> {
    let kind = content_type(request);
    if kind.as_deref() != Some("application/json") {
        return Err(ApiError::new(
            415,
            format!(
                "unsupported content type {}: /invocations takes application/json",
                kind.map_or("(none)".to_owned(), |t| format!("`{t}`"))
            ),
        ));
    }
    let body = read_body(state, request)?;
    let rows = mlflow_rows(&parse_json(&body)?)?;
    let (_, mlp) = model(state, model_ref)?;
    let predictions: Vec<usize> = rows.iter().map(|x| argmax(&mlp.predict_proba(x))).collect();
    Reply::json(&json!({ "predictions": predictions }))
}

/// The rows of an MLflow scoring body, each the model's 784 inputs.
fn mlflow_rows(value: &Value) -> Result<Vec<[f32; INPUT]>, ApiError> {
    let object = value
        .as_object()
        .ok_or_else(|| ApiError::bad("the body must be a JSON object"))?;
    let keys = [
        "dataframe_split",
        "dataframe_records",
        "instances",
        "inputs",
    ];
    let found: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| object.contains_key(*k))
        .collect();
    let [key] = found[..] else {
        return Err(ApiError::bad(format!(
            "the body needs exactly one of {}",
            keys.join(", ")
        )));
    };
    let v = &object[key];
    match key {
        "dataframe_split" => {
            if let Some(columns) = v.get("columns").and_then(Value::as_array) {
                if columns.len() != INPUT {
                    return Err(ApiError::bad(format!(
                        "`dataframe_split.columns` must name {INPUT} columns, got {}",
                        columns.len()
                    )));
                }
            }
            let data = v
                .get("data")
                .ok_or_else(|| ApiError::bad("`dataframe_split` needs `data`"))?;
            list_rows(data, "dataframe_split.data")
        }
        "dataframe_records" => {
            let records = v
                .as_array()
                .ok_or_else(|| ApiError::bad("`dataframe_records` must be an array"))?;
            records.iter().map(record_row).collect()
        }
        _ => list_rows(v, key),
    }
}

fn list_rows(value: &Value, what: &str) -> Result<Vec<[f32; INPUT]>, ApiError> {
    let rows = value
        .as_array()
        .ok_or_else(|| ApiError::bad(format!("`{what}` must be an array of rows")))?;
    rows.iter()
        .map(|row| {
            let x = numbers(row, what)?;
            <[f32; INPUT]>::try_from(x.as_slice()).map_err(|_| {
                ApiError::bad(format!(
                    "each row of `{what}` must hold {INPUT} numbers, got {}",
                    x.len()
                ))
            })
        })
        .collect()
}

/// One record `{"0": v, …}` or `{"pixel0": v, …}`: 784 columns, placed by the number that
/// ends their name.
fn record_row(record: &Value) -> Result<[f32; INPUT], ApiError> {
    let what = "dataframe_records";
    let record = record
        .as_object()
        .ok_or_else(|| ApiError::bad("each of `dataframe_records` must be an object"))?;
    if record.len() != INPUT {
        return Err(ApiError::bad(format!(
            "each record must hold {INPUT} columns, got {}",
            record.len()
        )));
    }
    let mut x = [0.0f32; INPUT];
    let mut seen = [false; INPUT];
    for (name, v) in record {
        let digits = name.trim_start_matches(|c: char| !c.is_ascii_digit());
        let index = digits
            .parse::<usize>()
            .ok()
            .filter(|&i| i < INPUT && !seen[i])
            .ok_or_else(|| {
                ApiError::bad(format!(
                    "record column `{name}`: columns must be 0..{INPUT} (or pixel0..pixel{}), each once",
                    INPUT - 1
                ))
            })?;
        seen[index] = true;
        x[index] = number(v, what)?;
    }
    Ok(x)
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
        let reply = guarded(|| panic!("boom"));
        assert_eq!(reply.status, 500);
        let v: Value = serde_json::from_slice(&reply.body).unwrap();
        assert!(v["error"].as_str().unwrap().contains("panicked"));
        let reply = guarded(|| Err(ApiError::new(404, "no")));
        assert_eq!(
            (reply.status, reply.content_type),
            (404, "application/json")
        );
    }

    #[test]
    fn records_are_placed_by_column_number() {
        let mut record = serde_json::Map::new();
        for i in 0..INPUT {
            record.insert(format!("pixel{i}"), json!(if i == 700 { 1.0 } else { 0.0 }));
        }
        let x = record_row(&Value::Object(record)).unwrap();
        assert_eq!(x[700], 1.0);
        assert_eq!(x.iter().sum::<f32>(), 1.0);
    }
}
