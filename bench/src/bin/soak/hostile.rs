//! Stalled and malformed clients, over raw sockets, at a steady modest rate.
//!
//! Stalled: a new client every second, alternating a request head cut off mid-header and a
//! `POST /api/predict` whose body stops after 4000 of 100000 bytes; each then waits for the
//! server to answer (408) or close, up to 60 s. Malformed: ten clients a second, in turn
//! garbage bytes, an HTTP/2 preface, a TLS ClientHello, a 64 KiB header line and a
//! `Content-Length` of 99999999999; each reads the answer until the server closes, up to
//! 5 s. An answer is recorded by its status (`408`), or as `closed` (no answer, then end
//! of stream) or `reset`. What is wrong: no answer and no close in time (`timeout`), or a
//! 5xx other than the 505 that `http/src/limits.rs` documents for an HTTP/2 preface.
//!
//! Issue 29's table, one case a second in turn ([`issue_29`]): 8 MiB of `{"":0}` where
//! pixels belong (400, or 503 from the budgets), a well-formed 8 MiB `dataframe_split` of
//! 5342 rows with its columns reversed (200, or 503), 64 KiB of `{"":0}` to an alias `PUT`
//! (400), an unknown data-frame column (400), two `Host` headers and two
//! `Transfer-Encoding` lines (400), eight heads announcing an 8 MiB body and eight chunked
//! heads, each sending nothing more (408 after 5 s), and 80 idle connections from one more
//! address (`IDLE_FROM`: those over its cap of 64 get 503, the others are closed by the
//! server). Any other answer, or none, is wrong.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::shared::{connect_from, Counts, Shared, Window, HOSTILE_FROM, IDLE_FROM};

#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// `kind: outcome` → count, for clients wholly outside the restart window.
    pub outcomes: Counts,
    /// Clients that met the restart (their outcome is the kill's, not the server's).
    pub in_window: u64,
    /// Outcomes that are wrong (see the module doc), `kind: outcome` → count.
    pub wrong: Counts,
    /// Longest time the server let a stalled client of each kind hold its connection
    /// (from the connect to the close), `(stalled head, stalled body)`.
    pub longest_stall: (Duration, Duration),
    /// Longest time from the connect to the first byte of the answer (the 408).
    pub longest_answer: (Duration, Duration),
}

impl Tally {
    pub fn merge(&mut self, o: &Tally) {
        self.outcomes.merge(&o.outcomes);
        self.in_window += o.in_window;
        self.wrong.merge(&o.wrong);
        self.longest_stall.0 = self.longest_stall.0.max(o.longest_stall.0);
        self.longest_stall.1 = self.longest_stall.1.max(o.longest_stall.1);
        self.longest_answer.0 = self.longest_answer.0.max(o.longest_answer.0);
        self.longest_answer.1 = self.longest_answer.1.max(o.longest_answer.1);
    }

    pub fn clients(&self) -> u64 {
        self.outcomes.total() + self.in_window
    }
}

/// The client kinds and their bytes.
fn malformed(kind: usize, host: &str) -> (&'static str, Vec<u8>) {
    match kind % 5 {
        0 => {
            // Deterministic noise, ending as a head would.
            let mut x = 0x2545_f491_u32;
            let mut b: Vec<u8> = (0..512)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x >> 24) as u8
                })
                .collect();
            b.extend_from_slice(b"\r\n\r\n");
            ("garbage", b)
        }
        1 => ("http2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec()),
        2 => {
            let mut b = vec![0x16, 3, 1, 0, 0x2f, 1, 0, 0, 0x2b, 3, 3];
            b.extend_from_slice(&[0x5a; 32]);
            b.extend_from_slice(&[0, 0, 2, 0x13, 1, 1, 0]);
            ("tls hello", b)
        }
        3 => {
            let mut b = format!("GET /ping HTTP/1.1\r\nHost: {host}\r\nX-Big: ").into_bytes();
            b.extend(std::iter::repeat_n(b'a', 64 << 10));
            b.extend_from_slice(b"\r\n\r\n");
            ("oversize header", b)
        }
        _ => (
            "huge content-length",
            format!(
                "POST /api/predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/png\r\nContent-Length: 99999999999\r\n\r\n"
            )
            .into_bytes(),
        ),
    }
}

/// How one client ended: `408`, `closed`, `reset`, `timeout`, `connect: …`; and when the
/// first byte of an answer came.
fn outcome(
    s: &mut TcpStream,
    deadline: Instant,
    shared: &Shared,
    answered: &mut Option<Instant>,
) -> String {
    let mut first = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if shared.stopping() {
            return "stopped".into();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return "timeout".into();
        }
        let _ = s.set_read_timeout(Some(left.min(Duration::from_millis(500))));
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answered.get_or_insert_with(Instant::now);
                if first.len() < 16 {
                    first.extend_from_slice(&buf[..n]);
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                return match status(&first) {
                    Some(code) => code.to_string(),
                    None => "reset".into(),
                };
            }
            Err(e) => return format!("error: {}", e.kind()),
        }
    }
    match status(&first) {
        Some(code) => code.to_string(),
        None if first.is_empty() => "closed".into(),
        None => "not http".into(),
    }
}

fn status(first: &[u8]) -> Option<u16> {
    if first.len() >= 12 && first.starts_with(b"HTTP/1.") {
        std::str::from_utf8(&first[9..12]).ok()?.parse().ok()
    } else {
        None
    }
}

fn wrong(kind: &str, outcome: &str) -> bool {
    let code: Option<u16> = outcome.parse().ok();
    match code {
        Some(505) => kind != "http2 preface",
        Some(200) => !kind.starts_with("well-formed"),
        // The budgets may refuse a large body, and one client's connections over its cap.
        Some(503) => !(kind.contains("8 MiB") || kind == "idle flood"),
        Some(c) => !(400..500).contains(&c),
        None => !matches!(outcome, "closed" | "reset" | "stopped"),
    }
}

/// One client: connect, write `bytes` (a write cut short by the server's close is fine),
/// read until the server closes or `patience` passes.
fn one(shared: &Shared, kind: &str, bytes: &[u8], patience: Duration, t: &Mutex<Tally>) {
    one_from(shared, HOSTILE_FROM, kind, bytes, patience, t)
}

/// [`one`] from the loopback address `from`.
fn one_from(
    shared: &Shared,
    from: std::net::Ipv4Addr,
    kind: &str,
    bytes: &[u8],
    patience: Duration,
    t: &Mutex<Tally>,
) {
    let g0 = shared.window.now();
    let started = Instant::now();
    let mut answered = None;
    let result = match connect_from(&shared.addr, from, Duration::from_secs(5)) {
        Ok(mut s) => {
            let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
            let _ = s.write_all(bytes);
            outcome(&mut s, started + patience, shared, &mut answered)
        }
        Err(e) => format!("connect: {}", e.kind()),
    };
    let held = started.elapsed();
    let answer = answered.map_or(held, |a| a - started);
    let mut t = t.lock().unwrap_or_else(|e| e.into_inner());
    if result == "stopped" {
        return;
    }
    if !Window::outside(g0, shared.window.now()) {
        t.in_window += 1;
        return;
    }
    match kind {
        "stalled head" => {
            t.longest_stall.0 = t.longest_stall.0.max(held);
            t.longest_answer.0 = t.longest_answer.0.max(answer);
        }
        "stalled body" => {
            t.longest_stall.1 = t.longest_stall.1.max(held);
            t.longest_answer.1 = t.longest_answer.1.max(answer);
        }
        _ => {}
    }
    if wrong(kind, &result) {
        t.wrong.add(format!("{kind}: {result}"));
    }
    t.outcomes.add(format!("{kind}: {result}"));
}

/// Starts a stalled client every second (each on a thread of its own) until the run stops.
pub fn stalled(shared: Arc<Shared>) -> Tally {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let host = shared.host();
    let mut threads = Vec::new();
    let mut n = 0usize;
    while !shared.sleep(Duration::from_secs(1)) {
        let (kind, bytes): (&'static str, Vec<u8>) = if n.is_multiple_of(2) {
            (
                "stalled head",
                format!("POST /api/predict HTTP/1.1\r\nHost: {host}\r\nContent-Ty").into_bytes(),
            )
        } else {
            let mut b = format!(
                "POST /api/predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n"
            )
            .into_bytes();
            b.extend(std::iter::repeat_n(0u8, 4000));
            ("stalled body", b)
        };
        n += 1;
        let (shared, tally) = (shared.clone(), tally.clone());
        threads.push(std::thread::spawn(move || {
            one(&shared, kind, &bytes, Duration::from_secs(60), &tally)
        }));
        threads.retain(|t| !t.is_finished());
    }
    for t in threads {
        let _ = t.join();
    }
    let t = tally.lock().unwrap_or_else(|e| e.into_inner()).clone();
    t
}

/// Ten malformed clients a second, one after another, until the run stops.
pub fn malformed_clients(shared: Arc<Shared>) -> Tally {
    let tally = Mutex::new(Tally::default());
    let host = shared.host();
    let mut n = 0usize;
    while !shared.sleep(Duration::from_millis(100)) {
        let (kind, bytes) = malformed(n, &host);
        n += 1;
        one(&shared, kind, &bytes, Duration::from_secs(5), &tally);
    }
    tally.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// A `POST` of `body` to `path` on `host`, as JSON, closing the connection.
fn post(host: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut b = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    b.extend_from_slice(body);
    b
}

/// `open`, as many `item`s joined by commas as keep the whole within `limit` bytes, `close`.
fn repeat(open: &str, item: &str, close: &str, limit: usize) -> Vec<u8> {
    let n = (limit - open.len() - close.len()) / (item.len() + 1);
    format!("{open}{}{close}", vec![item; n].join(",")).into_bytes()
}

/// A well-formed data frame of blank rows just under 8 MiB, its 784 columns reversed.
fn reversed_frame() -> Vec<u8> {
    let reversed: Vec<String> = (0..784).rev().map(|i| format!("\"pixel{i}\"")).collect();
    let row = format!("[{}]", vec!["0"; 784].join(","));
    repeat(
        &format!(
            "{{\"dataframe_split\":{{\"columns\":[{}],\"data\":[",
            reversed.join(",")
        ),
        &row,
        "]}}",
        (8 << 20) - 1024,
    )
}

/// A data frame of one blank row whose last column is `ink`, not a pixel.
fn unknown_column_frame() -> Vec<u8> {
    let mut columns: Vec<String> = (0..783).map(|i| format!("\"pixel{i}\"")).collect();
    columns.push("\"ink\"".into());
    let row = format!("[{}]", vec!["0"; 784].join(","));
    format!(
        "{{\"dataframe_split\":{{\"columns\":[{}],\"data\":[{row}]}}}}",
        columns.join(",")
    )
    .into_bytes()
}

/// A `PUT` of 64 KiB of empty-key objects to an alias.
fn alias_put(host: &str) -> Vec<u8> {
    let mut alias = post(
        host,
        "/api/aliases/soak-objects",
        &repeat("{\"a\":[", "{\"\":0}", "]}", 60 << 10),
    );
    alias[..4].copy_from_slice(b"PUT ");
    alias.remove(4);
    alias
}

/// The head of a predict `POST` with `fields`, and no body.
fn head(host: &str, fields: &str) -> Vec<u8> {
    format!("POST /api/predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{fields}\r\n")
        .into_bytes()
}

/// The cases of issue 29's table (see the module doc): `(kind, bytes, clients at once)`.
fn issue_29_cases(host: &str) -> Vec<(&'static str, Vec<u8>, usize)> {
    let post = |path: &str, body: &[u8]| post(host, path, body);
    let head = |fields: &str| head(host, fields);
    vec![
        (
            "8 MiB of empty-key objects as pixels",
            post(
                "/api/predict",
                &repeat("{\"pixels\":[", "{\"\":0}", "]}", 8 << 20),
            ),
            1,
        ),
        (
            "well-formed 8 MiB data frame, columns reversed",
            post("/invocations", &reversed_frame()),
            1,
        ),
        (
            "64 KiB of empty-key objects to an alias PUT",
            alias_put(host),
            1,
        ),
        (
            "unknown data-frame column",
            post("/invocations", &unknown_column_frame()),
            1,
        ),
        (
            "two Host headers",
            format!("GET /ping HTTP/1.1\r\nHost: {host}\r\nHost: evil.example\r\n\r\n")
                .into_bytes(),
            1,
        ),
        (
            "two Transfer-Encoding lines",
            head("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"),
            1,
        ),
        (
            "silent 8 MiB Content-Length",
            head("Content-Length: 8388608\r\n"),
            8,
        ),
        (
            "silent chunked body",
            head("Transfer-Encoding: chunked\r\n"),
            8,
        ),
        ("idle flood", Vec::new(), 80),
    ]
}

/// Issue 29's table, one case a second in turn, each client on a thread of its own, until
/// the run stops.
pub fn issue_29(shared: Arc<Shared>) -> Tally {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let cases: Vec<_> = issue_29_cases(&shared.host())
        .into_iter()
        .map(|(kind, bytes, n)| (kind, Arc::new(bytes), n))
        .collect();
    let mut threads = Vec::new();
    let mut n = 0usize;
    while !shared.sleep(Duration::from_secs(1)) {
        let (kind, bytes, clients) = cases[n % cases.len()].clone();
        n += 1;
        for _ in 0..clients {
            let (shared, tally, bytes) = (shared.clone(), tally.clone(), bytes.clone());
            let (from, patience) = if kind == "idle flood" {
                (IDLE_FROM, Duration::from_secs(20))
            } else {
                (HOSTILE_FROM, Duration::from_secs(60))
            };
            threads.push(std::thread::spawn(move || {
                one_from(&shared, from, kind, &bytes, patience, &tally)
            }));
        }
        threads.retain(|t| !t.is_finished());
    }
    for t in threads {
        let _ = t.join();
    }
    let t = tally.lock().unwrap_or_else(|e| e.into_inner()).clone();
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_counts_as_wrong() {
        assert!(!wrong("garbage", "400"));
        assert!(!wrong("tls hello", "closed"));
        assert!(!wrong("http2 preface", "505"));
        assert!(wrong("garbage", "505"));
        assert!(wrong("stalled body", "500"));
        assert!(wrong("stalled head", "timeout"));
        assert!(wrong("garbage", "200"));
        assert!(wrong("garbage", "503"));
        assert!(!wrong("8 MiB of empty-key objects as pixels", "503"));
        assert!(!wrong(
            "well-formed 8 MiB data frame, columns reversed",
            "200"
        ));
        assert!(wrong("silent chunked body", "timeout"));
        assert_eq!(status(b"HTTP/1.1 431 Request"), Some(431));
    }
}
