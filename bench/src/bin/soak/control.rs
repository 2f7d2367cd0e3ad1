//! The slower clients: `/ping` every 100 ms, alias moves every 500 ms, and training runs
//! started through `POST /api/train` and followed to their end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pismo_bench::histogram::Histogram;
use serde_json::{json, Value};

use crate::shared::{one_shot, Counts, Firsts, Shared, Window};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Requests of one kind: how they went outside and inside the restart window.
#[derive(Debug, Clone)]
pub struct Calls {
    /// Latencies of the successful calls outside the restart window.
    pub outside: Histogram,
    pub errors: Counts,
    pub window_errors: Counts,
    pub firsts: Firsts,
}

impl Calls {
    fn new() -> Self {
        Calls {
            outside: Histogram::new(),
            errors: Counts::default(),
            window_errors: Counts::default(),
            firsts: Firsts::default(),
        }
    }

    /// Records one call that started at generation `g0`, took `ns`, and expected `want`.
    fn record(
        &mut self,
        shared: &Shared,
        g0: u64,
        ns: u64,
        want: u16,
        result: &Result<(u16, Vec<u8>), String>,
    ) {
        let outside = Window::outside(g0, shared.window.now());
        let failure = match result {
            Ok((code, _)) if *code == want => None,
            Ok((code, body)) => Some((
                format!("status {code}"),
                format!(
                    "{code}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ),
            )),
            Err(m) => Some((m.split(':').next().unwrap_or("error").to_owned(), m.clone())),
        };
        match (failure, outside) {
            (None, true) => self.outside.record(ns),
            (None, false) => {}
            (Some((kind, m)), true) => {
                self.errors.add(kind);
                self.firsts.add("call", m);
            }
            (Some((kind, _)), false) => self.window_errors.add(kind),
        }
    }
}

/// `GET /ping` on a new connection every 100 ms.
pub fn pinger(shared: Arc<Shared>) -> Calls {
    let mut c = Calls::new();
    while !shared.sleep(Duration::from_millis(100)) {
        let g0 = shared.window.now();
        let t0 = Instant::now();
        let result = one_shot(&shared.addr, "GET", "/ping", None, TIMEOUT);
        c.record(&shared, g0, t0.elapsed().as_nanos() as u64, 200, &result);
    }
    c
}

/// `PUT /api/aliases/{alias}` every 500 ms, moving it round `targets`.
pub fn alias_mover(shared: Arc<Shared>, alias: String, targets: Vec<String>) -> Calls {
    let mut c = Calls::new();
    let mut n = 0;
    while !shared.sleep(Duration::from_millis(500)) {
        let body = json!({ "model": targets[n % targets.len()] }).to_string();
        n += 1;
        let g0 = shared.window.now();
        let t0 = Instant::now();
        let path = format!("/api/aliases/{alias}");
        let result = one_shot(&shared.addr, "PUT", &path, Some(body.as_bytes()), TIMEOUT);
        c.record(&shared, g0, t0.elapsed().as_nanos() as u64, 200, &result);
    }
    c
}

/// One training run as it went.
#[derive(Debug, Clone, Default)]
pub struct Training {
    pub run_id: String,
    /// `finished`, `failed`, … or what went wrong following it.
    pub status: String,
    /// The model it registered, `NAME@V`.
    pub model: Option<String>,
    pub seconds: f64,
    pub test_accuracy: Option<f64>,
    /// Killed with the server mid-training: it must read as `failed` afterwards, with no
    /// model.
    pub killed: bool,
}

/// Starts a run with `params` and follows it to its end (see [`start`] and [`follow`]).
pub fn train(shared: &Shared, params: &Value, give_up: Instant) -> Training {
    let t0 = Instant::now();
    match start(shared, params, give_up) {
        Ok(id) => {
            let mut t = follow(shared, &id, give_up);
            t.seconds = t0.elapsed().as_secs_f64();
            t
        }
        Err(status) => Training {
            status,
            ..Training::default()
        },
    }
}

/// `POST /api/train` with `params` (again each second while the server cannot be reached,
/// until `give_up`); the run id, which the event streams follow from now on.
pub fn start(shared: &Shared, params: &Value, give_up: Instant) -> Result<String, String> {
    let body = params.to_string();
    let started = loop {
        match one_shot(
            &shared.addr,
            "POST",
            "/api/train",
            Some(body.as_bytes()),
            TIMEOUT,
        ) {
            Ok((202, b)) => break serde_json::from_slice::<Value>(&b).ok(),
            Ok((code, b)) => {
                return Err(format!(
                    "POST /api/train: {code} {}",
                    String::from_utf8_lossy(&b)
                ))
            }
            Err(e) if Instant::now() < give_up => {
                eprintln!("soak: POST /api/train: {e}; again in 1 s");
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => return Err(format!("POST /api/train: {e}")),
        }
    };
    let id = started
        .as_ref()
        .and_then(|v| v["run_id"].as_str())
        .map(str::to_owned)
        .ok_or("POST /api/train: no run_id in the answer")?;
    *shared.run_id.lock().unwrap_or_else(|e| e.into_inner()) = Some(id.clone());
    Ok(id)
}

/// The status of run `id` (`running`, `finished`, …) and its record, if the server answers.
pub fn status(shared: &Shared, id: &str) -> Option<(String, Value)> {
    let path = format!("/api/runs/{id}");
    match one_shot(&shared.addr, "GET", &path, None, TIMEOUT) {
        Ok((200, b)) => {
            let v: Value = serde_json::from_slice(&b).ok()?;
            Some((v["status"].as_str()?.to_owned(), v))
        }
        _ => None,
    }
}

/// Polls `GET /api/runs/{id}` every 500 ms until the run is no longer `running` (or
/// `give_up` passes).
pub fn follow(shared: &Shared, id: &str, give_up: Instant) -> Training {
    let t0 = Instant::now();
    let mut out = Training {
        run_id: id.to_owned(),
        ..Training::default()
    };
    loop {
        if let Some((status, v)) = status(shared, id) {
            if status != "running" {
                out.status = status;
                out.model = v["model"].as_str().map(str::to_owned);
                out.test_accuracy = v["metrics"].as_array().and_then(|m| {
                    m.iter()
                        .filter(|m| m["name"] == "test_accuracy")
                        .find_map(|m| m["value"].as_f64())
                });
                break;
            }
        }
        if Instant::now() > give_up {
            out.status = "still running when the soak gave up on it".into();
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    out.seconds = t0.elapsed().as_secs_f64();
    out
}
