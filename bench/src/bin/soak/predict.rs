//! Predictions: `N` keep-alive connections, each sending `POST /api/predict` at a steady
//! pace, with real MNIST test digits as 28x28 PNGs (three in four) and as JSON `pixels`
//! (one in four). Every answer is parsed in full: a JSON object with a `label` 0..=9, ten
//! `probabilities` summing to 1 and the `model` that answered. Every latency (first byte
//! written to last byte read) goes into one of two histograms, outside or inside the
//! restart window.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pismo_bench::client::{Answer, Conn, Failure, Kind};
use pismo_bench::histogram::Histogram;
use pismo_core::mlp::INPUT;
use pismo_core::preprocess::GreyImage;
use pismo_digits::image;
use pismo_digits::mnist::{self, Split};

use crate::shared::{Counts, Firsts, Shared, Window};

/// One prepared request and the digit it shows.
#[derive(Debug)]
pub struct Body {
    request: Vec<u8>,
    truth: u8,
}

/// The first `count` MNIST test digits as requests to `host`.
pub fn bodies(test_data: &std::path::Path, count: usize, host: &str) -> Result<Vec<Body>, String> {
    let test = mnist::load_split(test_data, Split::Test)
        .map_err(|e| format!("MNIST test digits in {}: {e}", test_data.display()))?;
    let mut out = Vec::new();
    for (i, digit) in test.images.iter().take(count).enumerate() {
        let (content_type, body) = if i % 4 == 3 {
            let pixels: Vec<String> = digit[..INPUT]
                .iter()
                .map(|&p| format!("{}", f32::from(p) / 255.0))
                .collect();
            (
                "application/json",
                format!("{{\"pixels\":[{}]}}", pixels.join(",")).into_bytes(),
            )
        } else {
            let grey = GreyImage::new(28, 28, digit).map_err(|e| e.to_string())?;
            ("image/png", image::encode_png(&grey))
        };
        let mut request = format!(
            "POST /api/predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\nAccept: application/json\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(&body);
        out.push(Body {
            request,
            truth: test.labels[i],
        });
    }
    Ok(out)
}

/// What the prediction connections measured.
#[derive(Debug, Clone)]
pub struct Tally {
    pub outside: Histogram,
    pub inside: Histogram,
    /// Failures outside the restart window, by kind.
    pub errors: Counts,
    /// Failures in the restart window (connection refused while the server is down…).
    pub window_errors: Counts,
    pub firsts: Firsts,
    pub correct: u64,
    pub connects: u64,
    /// Answers by the `model` that gave them.
    pub models: BTreeMap<String, u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Self::new()
    }
}

impl Tally {
    fn new() -> Self {
        Tally {
            outside: Histogram::new(),
            inside: Histogram::new(),
            errors: Counts::default(),
            window_errors: Counts::default(),
            firsts: Firsts::default(),
            correct: 0,
            connects: 0,
            models: BTreeMap::new(),
        }
    }

    pub fn merge(&mut self, o: &Tally) {
        self.outside.merge(&o.outside);
        self.inside.merge(&o.inside);
        self.errors.merge(&o.errors);
        self.window_errors.merge(&o.window_errors);
        self.firsts.merge(&o.firsts);
        self.correct += o.correct;
        self.connects += o.connects;
        for (k, v) in &o.models {
            *self.models.entry(k.clone()).or_default() += v;
        }
    }

    pub fn answered(&self) -> u64 {
        self.outside.total + self.inside.total
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Connect => "connect",
        Kind::Io => "i/o",
        Kind::Status => "status",
        Kind::Protocol => "protocol",
        Kind::Answer => "bad answer",
        Kind::WrongLabel => "wrong label",
    }
}

/// The `(label, model)` of an answer, after checking it in full.
fn check(body: &[u8]) -> Result<(u8, String), String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let label = v
        .get("label")
        .and_then(|l| l.as_u64())
        .filter(|&l| l <= 9)
        .ok_or("no `label` 0..=9")?;
    let p = v
        .get("probabilities")
        .and_then(|p| p.as_array())
        .ok_or("no `probabilities`")?;
    let sum: f64 = p.iter().filter_map(|x| x.as_f64()).sum();
    if p.len() != 10 || (sum - 1.0).abs() > 1e-3 {
        return Err(format!("{} probabilities summing to {sum}", p.len()));
    }
    let input = v
        .get("input")
        .and_then(|i| i.as_array())
        .map_or(0, Vec::len);
    if input != INPUT {
        return Err(format!("`input` holds {input} numbers, not {INPUT}"));
    }
    let model = v
        .get("model")
        .and_then(|m| m.as_str())
        .ok_or("no `model`")?
        .to_owned();
    Ok((label as u8, model))
}

/// Waits until `due`, then sets it `interval` later; a connection running late skips the
/// missed requests rather than sending them in a burst. No wait for a zero `interval`.
fn pace(due: &mut Instant, interval: Duration) {
    if interval.is_zero() {
        return;
    }
    let now = Instant::now();
    if *due > now {
        std::thread::sleep(*due - now);
    } else if now - *due > interval {
        *due = now; // late: no burst to catch up
    }
    *due += interval;
}

/// Whether the connection should close after it, and the `(label, model)` of an answer
/// `sent` back on `c`, checked in full ([`check`]).
fn checked(sent: Result<Answer, Failure>, c: &Conn) -> Result<(bool, u8, String), Failure> {
    let answer = sent?;
    c.expect_ok(&answer)?;
    let (label, model) = check(&c.body).map_err(|m| Failure::new(Kind::Answer, m))?;
    Ok((answer.close, label, model))
}

impl Tally {
    /// A connection that could not be opened; `outside` the restart window or not.
    fn open_failed(&mut self, f: &Failure, outside: bool) {
        if outside {
            self.errors.add(kind_name(f.kind));
            self.firsts.add("predict", &f.message);
        } else {
            self.window_errors.add(kind_name(f.kind));
        }
    }

    /// An answer in `ns` nanoseconds from `model`, right or not.
    fn answered_by(&mut self, ns: u64, outside: bool, right: bool, model: String) {
        if outside {
            self.outside.record(ns);
        } else {
            self.inside.record(ns);
        }
        self.correct += u64::from(right);
        match self.models.get_mut(&model) {
            Some(n) => *n += 1,
            None => {
                self.models.insert(model, 1);
            }
        }
    }

    /// A request that failed (no answer, or a wrong one).
    fn request_failed(&mut self, f: &Failure, outside: bool) {
        let name = match f.kind {
            Kind::Status => format!("status {}", f.message.get(7..10).unwrap_or("?")),
            k => kind_name(k).to_owned(),
        };
        if outside {
            self.errors.add(name);
            self.firsts.add("predict", &f.message);
        } else {
            self.window_errors.add(name);
        }
    }
}

/// One connection's loop: a request every `interval` (none if zero: back to back).
pub fn connection(
    shared: Arc<Shared>,
    bodies: Arc<Vec<Body>>,
    first: usize,
    interval: Duration,
) -> Tally {
    let mut t = Tally::new();
    let host = shared.host();
    let mut conn: Option<Conn> = None;
    let mut next = first;
    let mut due = Instant::now();
    while !shared.stopping() {
        pace(&mut due, interval);
        let body = &bodies[next % bodies.len()];
        next += 1;
        let g0 = shared.window.now();
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Conn::open(&host) {
                Ok(c) => {
                    t.connects += 1;
                    conn.insert(c)
                }
                Err(f) => {
                    t.open_failed(&f, Window::outside(g0, shared.window.now()));
                    shared.sleep(Duration::from_millis(20));
                    continue;
                }
            },
        };
        let t0 = Instant::now();
        let sent = c.send(&body.request);
        let ns = t0.elapsed().as_nanos() as u64;
        let outside = Window::outside(g0, shared.window.now());
        match checked(sent, c) {
            Ok((close, label, model)) => {
                t.answered_by(ns, outside, label == body.truth, model);
                if close {
                    conn = None;
                }
            }
            Err(f) => {
                t.request_failed(&f, outside);
                conn = None;
            }
        }
    }
    t
}
