//! `loadgen`: a closed-loop HTTP/1.1 load generator for `bench/serve-load`.
//!
//! ```text
//! loadgen --url http://HOST:PORT/PATH --bodies DIR [--connections N] [--duration S]
//!         [--warmup S] [--name NAME] [--content-type TYPE]
//! ```
//!
//! `N` threads each open one keep-alive connection (plain `std::net::TcpStream`, Nagle off)
//! and send `POST PATH` requests back to back — the next request leaves when the previous
//! answer has been read — for `warmup + duration` seconds. Bodies are the files of `DIR`,
//! sorted by name and sent round-robin (each connection starts at a different one); the
//! content type comes from the extension (`.png`: `image/png`, `.json`: `application/json`)
//! unless `--content-type` is given.
//!
//! Each answer is checked: status 200, a `Content-Length` body (chunked answers are counted
//! as errors), a JSON object holding `"label":D` (pismo's `/api/predict`) or
//! `"predictions":[D` (MLflow's `/invocations`). When a body file is named `…-L.ext`, `D`
//! must be `L` (the label `pismo-bench serve-data` computed in-process through the server's
//! own path). The first answer of every connection is also parsed in full with serde_json.
//! Anything else is an error: it is counted by kind, the connection is reopened, and the run
//! says so on stderr and exits with status 1.
//!
//! Latency is from the first byte written to the last byte of the body read (the answer is
//! checked after that, outside the measurement), recorded into a log-linear histogram (64 sub-buckets per
//! power of two of nanoseconds: ≤ 1.6 % error; percentiles report a bucket's upper edge,
//! capped by the exact maximum). Only answers that arrive after the warm-up and before the
//! end are counted; throughput is their number over the measured seconds. A closed loop
//! measures service time at the throughput it reaches: it cannot show the queueing an
//! open-loop arrival rate above that throughput would cause.
//!
//! Output: a table on stderr and one JSON object on stdout. Exit status: 0 success, 1 the
//! run had errors (or none succeeded), 2 usage error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pismo_bench::client::{trim, Conn, Failure, Kind};
use pismo_bench::histogram::Histogram;

const USAGE: &str = "usage: loadgen --url http://HOST:PORT/PATH --bodies DIR [--connections N] \
                     [--duration S] [--warmup S] [--name NAME] [--content-type TYPE]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let config = match Config::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let name = config.name.clone();
    match run(config) {
        Ok(report) => {
            eprintln!("{}", report.table());
            println!("{}", report.json());
            if report.errors.total() > 0 || report.requests == 0 {
                eprintln!(
                    "\n!!! {}: {} ERRORS in {} requests ({}) — the numbers above are not valid !!!\n",
                    name,
                    report.errors.total(),
                    report.requests + report.errors.total(),
                    report.errors.summary()
                );
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Configuration and bodies

#[derive(Debug)]
struct Config {
    host: String,
    path: String,
    bodies: PathBuf,
    content_type: Option<String>,
    connections: usize,
    duration: Duration,
    warmup: Duration,
    name: String,
}

impl Config {
    fn parse(args: &[String]) -> Result<Config, String> {
        let (mut url, mut bodies, mut content_type, mut name) = (None, None, None, None);
        let (mut connections, mut duration, mut warmup) = (1usize, 10.0f64, 2.0f64);
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let seconds = || match value.parse::<f64>() {
                Ok(s) if s.is_finite() && s >= 0.0 => Ok(s),
                _ => Err(format!("{flag}: expected seconds, got `{value}`")),
            };
            match flag.as_str() {
                "--url" => url = Some(value.clone()),
                "--bodies" => bodies = Some(PathBuf::from(value)),
                "--content-type" => content_type = Some(value.clone()),
                "--name" => name = Some(value.clone()),
                "--connections" => {
                    connections = value
                        .parse::<usize>()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| format!("--connections: expected N > 0, got `{value}`"))?
                }
                "--duration" => duration = seconds()?,
                "--warmup" => warmup = seconds()?,
                other => return Err(format!("unknown flag `{other}`")),
            }
        }
        let url = url.ok_or("--url is required")?;
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("--url must start with http://, got `{url}`"))?;
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if duration <= 0.0 {
            return Err("--duration must be above 0".into());
        }
        Ok(Config {
            host: host.to_owned(),
            path: path.to_owned(),
            bodies: bodies.ok_or("--bodies DIR is required")?,
            content_type,
            connections,
            duration: Duration::from_secs_f64(duration),
            warmup: Duration::from_secs_f64(warmup),
            name: name.unwrap_or_else(|| path.to_owned()),
        })
    }
}

/// One prepared request: the whole message (headers and body) and the label it must get.
#[derive(Debug)]
struct Body {
    request: Vec<u8>,
    body_len: usize,
    label: Option<u8>,
}

fn load_bodies(config: &Config) -> Result<Vec<Body>, String> {
    let dir = &config.bodies;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("{}: no body files", dir.display()));
    }
    files
        .iter()
        .map(|path| {
            let body = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let content_type = match (&config.content_type, extension(path)) {
                (Some(t), _) => t.clone(),
                (None, "png") => "image/png".to_owned(),
                (None, "json") => "application/json".to_owned(),
                (None, other) => {
                    return Err(format!(
                        "{}: unknown extension `{other}`: give --content-type",
                        path.display()
                    ))
                }
            };
            let mut request = format!(
                "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\n\
                 Content-Length: {}\r\nAccept: application/json\r\n\r\n",
                config.path,
                config.host,
                body.len()
            )
            .into_bytes();
            request.extend_from_slice(&body);
            Ok(Body {
                request,
                body_len: body.len(),
                label: expected_label(path),
            })
        })
        .collect()
}

fn extension(path: &Path) -> &str {
    path.extension().and_then(|e| e.to_str()).unwrap_or("")
}

/// `L` of a file named `…-L.ext`, when `L` is one digit.
fn expected_label(path: &Path) -> Option<u8> {
    let stem = path.file_stem()?.to_str()?;
    let (_, l) = stem.rsplit_once('-')?;
    match l.as_bytes() {
        [d @ b'0'..=b'9'] => Some(d - b'0'),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Errors

/// Errors by kind, and the first few messages.
#[derive(Debug, Default, Clone)]
struct Errors {
    connect: u64,
    io: u64,
    status: u64,
    protocol: u64,
    answer: u64,
    wrong_label: u64,
    first: Vec<String>,
}

impl Errors {
    fn add(&mut self, kind: Kind, message: String) {
        let n = match kind {
            Kind::Connect => &mut self.connect,
            Kind::Io => &mut self.io,
            Kind::Status => &mut self.status,
            Kind::Protocol => &mut self.protocol,
            Kind::Answer => &mut self.answer,
            Kind::WrongLabel => &mut self.wrong_label,
        };
        *n += 1;
        if self.first.len() < 5 {
            self.first.push(message);
        }
    }

    fn total(&self) -> u64 {
        self.connect + self.io + self.status + self.protocol + self.answer + self.wrong_label
    }

    fn merge(&mut self, other: &Errors) {
        self.connect += other.connect;
        self.io += other.io;
        self.status += other.status;
        self.protocol += other.protocol;
        self.answer += other.answer;
        self.wrong_label += other.wrong_label;
        for m in &other.first {
            if self.first.len() < 5 {
                self.first.push(m.clone());
            }
        }
    }

    fn summary(&self) -> String {
        let mut parts = vec![
            format!("connect {}", self.connect),
            format!("i/o {}", self.io),
            format!("status {}", self.status),
            format!("protocol {}", self.protocol),
            format!("bad answer {}", self.answer),
            format!("wrong label {}", self.wrong_label),
        ];
        if let Some(m) = self.first.first() {
            parts.push(format!("first: {m}"));
        }
        parts.join(", ")
    }
}

/// The digit after `"label":` or `"predictions":[` (whitespace allowed around `:` and `[`)
/// in an answer, checked cheaply on every answer (a full parse of a 10 KB answer would take
/// load generator time from the server).
fn answered_label(body: &[u8]) -> Result<u8, String> {
    let body = trim(body);
    if body.first() != Some(&b'{') || body.last() != Some(&b'}') {
        return Err("the answer is not a JSON object".into());
    }
    for (key, open) in [(&b"\"label\""[..], false), (&b"\"predictions\""[..], true)] {
        let Some(i) = find(body, key) else { continue };
        let mut rest = trim(&body[i + key.len()..]);
        rest = rest.strip_prefix(b":").map(trim).unwrap_or(b"");
        if open {
            rest = rest.strip_prefix(b"[").map(trim).unwrap_or(b"");
        }
        return match rest {
            [d @ b'0'..=b'9', next, ..] if !next.is_ascii_digit() => Ok(d - b'0'),
            _ => Err(format!("no digit after {}", String::from_utf8_lossy(key))),
        };
    }
    Err("the answer has neither \"label\" nor \"predictions\"".into())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The full check of a connection's first answer: valid JSON with an integer `label` in
/// 0..=9 and ten `probabilities` that sum to 1, or `predictions` of integers in 0..=9.
fn full_check(body: &[u8]) -> Result<(), String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let digit = |v: &serde_json::Value| v.as_u64().is_some_and(|d| d <= 9);
    if let Some(label) = v.get("label") {
        let p = v
            .get("probabilities")
            .and_then(|p| p.as_array())
            .ok_or("no `probabilities` array")?;
        let sum: f64 = p.iter().filter_map(|x| x.as_f64()).sum();
        if !digit(label) || p.len() != 10 || (sum - 1.0).abs() > 1e-3 {
            return Err(format!(
                "implausible prediction: label {label}, {} probabilities summing to {sum}",
                p.len()
            ));
        }
        return Ok(());
    }
    match v.get("predictions").and_then(|p| p.as_array()) {
        Some(p) if !p.is_empty() && p.iter().all(digit) => Ok(()),
        _ => Err("neither a `label` nor `predictions` of digits".into()),
    }
}

// ---------------------------------------------------------------------------------------
// The run

/// What one connection's thread measured.
#[derive(Debug)]
struct Tally {
    latency: Histogram,
    errors: Errors,
    connects: u64,
    warmup_requests: u64,
}

fn connection(
    config: &Config,
    bodies: &[Body],
    first: usize,
    measure_from: Instant,
    end: Instant,
) -> Tally {
    let mut tally = Tally {
        latency: Histogram::new(),
        errors: Errors::default(),
        connects: 0,
        warmup_requests: 0,
    };
    let mut conn: Option<Conn> = None;
    let mut next = first;
    while Instant::now() < end {
        let body = &bodies[next % bodies.len()];
        next += 1;
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Conn::open(&config.host) {
                Ok(c) => {
                    tally.connects += 1;
                    conn.insert(c)
                }
                Err(f) => {
                    tally.errors.add(f.kind, f.message);
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        let t0 = Instant::now();
        let exchanged = c.exchange(&body.request);
        // The answer is in: the checks below are the load generator's time, not the server's.
        let t1 = Instant::now();
        let result = exchanged.and_then(|close| {
            let check = || -> Result<(), Failure> {
                let label = answered_label(&c.body).map_err(|m| Failure::new(Kind::Answer, m))?;
                if c.answered == 1 {
                    full_check(&c.body).map_err(|m| Failure::new(Kind::Answer, m))?;
                }
                match body.label {
                    Some(want) if want != label => Err(Failure::new(
                        Kind::WrongLabel,
                        format!("answered {label}, expected {want}"),
                    )),
                    _ => Ok(()),
                }
            };
            check().map(|()| close)
        });
        match result {
            Ok(close) => {
                if t1 > end {
                    // The answer came after the end: not counted (one per connection at most).
                } else if t0 >= measure_from {
                    tally.latency.record((t1 - t0).as_nanos() as u64);
                } else {
                    tally.warmup_requests += 1;
                }
                if close {
                    conn = None;
                }
            }
            Err(f) => {
                if t1 <= end {
                    tally.errors.add(f.kind, f.message);
                }
                conn = None;
            }
        }
    }
    tally
}

#[derive(Debug)]
struct Report {
    name: String,
    url: String,
    bodies: usize,
    body_bytes_mean: f64,
    connections: usize,
    seconds: f64,
    warmup: f64,
    requests: u64,
    warmup_requests: u64,
    connects: u64,
    latency: Histogram,
    errors: Errors,
}

fn run(config: Config) -> Result<Report, String> {
    let bodies = Arc::new(load_bodies(&config)?);
    let config = Arc::new(config);
    let start = Instant::now();
    let measure_from = start + config.warmup;
    let end = measure_from + config.duration;
    let stride = (bodies.len() / config.connections).max(1);
    let threads: Vec<_> = (0..config.connections)
        .map(|i| {
            let (config, bodies) = (config.clone(), bodies.clone());
            std::thread::spawn(move || connection(&config, &bodies, i * stride, measure_from, end))
        })
        .collect();
    let mut latency = Histogram::new();
    let mut errors = Errors::default();
    let (mut connects, mut warmup_requests) = (0, 0);
    for t in threads {
        let tally = t.join().map_err(|_| "a connection thread panicked")?;
        latency.merge(&tally.latency);
        errors.merge(&tally.errors);
        connects += tally.connects;
        warmup_requests += tally.warmup_requests;
    }
    Ok(Report {
        name: config.name.clone(),
        url: format!("http://{}{}", config.host, config.path),
        bodies: bodies.len(),
        body_bytes_mean: bodies.iter().map(|b| b.body_len as f64).sum::<f64>()
            / bodies.len() as f64,
        connections: config.connections,
        seconds: config.duration.as_secs_f64(),
        warmup: config.warmup.as_secs_f64(),
        requests: latency.total,
        warmup_requests,
        connects,
        latency,
        errors,
    })
}

impl Report {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    fn ms(&self, q: f64) -> f64 {
        self.latency.quantile(q) as f64 / 1e6
    }

    fn table(&self) -> String {
        format!(
            "{:<28} {:>5} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}\n{:<28} {:>5} {:>10.0} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>7}",
            "scenario", "conns", "req/s", "mean ms", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors",
            self.name,
            self.connections,
            self.rps(),
            self.latency.mean_ns() / 1e6,
            self.ms(0.50),
            self.ms(0.90),
            self.ms(0.99),
            self.latency.max_ns as f64 / 1e6,
            self.errors.total(),
        )
    }

    fn json(&self) -> serde_json::Value {
        let e = &self.errors;
        serde_json::json!({
            "bench": "loadgen",
            "name": self.name,
            "url": self.url,
            "bodies": self.bodies,
            "body_bytes_mean": self.body_bytes_mean,
            "connections": self.connections,
            "seconds": self.seconds,
            "warmup_seconds": self.warmup,
            "requests": self.requests,
            "warmup_requests": self.warmup_requests,
            "connects": self.connects,
            "rps": self.rps(),
            "latency_ms": {
                "mean": self.latency.mean_ns() / 1e6,
                "p50": self.ms(0.50),
                "p90": self.ms(0.90),
                "p99": self.ms(0.99),
                "p999": self.ms(0.999),
                "max": self.latency.max_ns as f64 / 1e6,
            },
            "errors": {
                "total": e.total(),
                "connect": e.connect,
                "io": e.io,
                "status": e.status,
                "protocol": e.protocol,
                "bad_answer": e.answer,
                "wrong_label": e.wrong_label,
                "first": e.first,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pismo_bench::client::parse_status;

    #[test]
    fn answers_are_checked() {
        assert_eq!(
            answered_label(b"{\"model\":\"m@1\",\"label\":7,\"p\":[]}\n"),
            Ok(7)
        );
        assert_eq!(answered_label(b"{\"predictions\": [3]}"), Ok(3));
        assert!(answered_label(b"{\"label\":12}").is_err());
        assert!(answered_label(b"{\"error\":\"no\"}").is_err());
        assert!(full_check(b"{\"predictions\":[3]}").is_ok());
        assert!(full_check(b"{\"label\":3,\"probabilities\":[0.5,0.5]}").is_err());
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(expected_label(Path::new("d/00012-4.png")), Some(4));
        assert_eq!(expected_label(Path::new("d/x.png")), None);
    }
}
