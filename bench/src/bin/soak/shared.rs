//! What the load threads share: the server's address, the stop flag, the restart window and
//! the run the event streams follow; and the counters they report with.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The restart window: from just before the kill -9 until the restarted server answers
/// `/ping`. A generation counter, odd while the window is open: an exchange is outside the
/// window when the generation is the same even number at its start and at its end.
#[derive(Debug, Default)]
pub struct Window(AtomicU64);

impl Window {
    pub fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    pub fn open(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    pub fn close(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether an exchange that started at generation `g0` and ended at `g1` was wholly
    /// outside the window.
    pub fn outside(g0: u64, g1: u64) -> bool {
        g0 == g1 && g0.is_multiple_of(2)
    }
}

#[derive(Debug)]
pub struct Shared {
    /// `127.0.0.1:PORT`, the same for both server lifetimes.
    pub addr: SocketAddr,
    pub stop: AtomicBool,
    pub window: Window,
    /// The training run the event streams follow (the latest one started).
    pub run_id: Mutex<Option<String>>,
    pub started: Instant,
}

impl Shared {
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Sleeps `d`, waking early when the run stops; returns whether it is stopping.
    pub fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        while Instant::now() < end {
            if self.stopping() {
                return true;
            }
            std::thread::sleep((end - Instant::now()).min(Duration::from_millis(50)));
        }
        self.stopping()
    }

    pub fn run_id(&self) -> Option<String> {
        self.run_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Counts by name (error kinds, answer codes).
#[derive(Debug, Default, Clone)]
pub struct Counts(pub BTreeMap<String, u64>);

impl Counts {
    pub fn add(&mut self, key: impl Into<String>) {
        *self.0.entry(key.into()).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Counts) {
        for (k, v) in &other.0 {
            *self.0.entry(k.clone()).or_default() += v;
        }
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// `a 3, b 1`, or `none`.
    pub fn summary(&self) -> String {
        if self.0.is_empty() {
            return "none".into();
        }
        self.0
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// First few error messages, for the log.
#[derive(Debug, Default, Clone)]
pub struct Firsts(pub Vec<String>);

impl Firsts {
    pub fn add(&mut self, what: &str, message: impl AsRef<str>) {
        if self.0.len() < 5 {
            self.0.push(format!("{what}: {}", message.as_ref()));
        }
    }

    pub fn merge(&mut self, other: &Firsts) {
        for m in &other.0 {
            if self.0.len() < 5 {
                self.0.push(m.clone());
            }
        }
    }
}

/// The loopback address the stalled and malformed clients connect from, and the one of the
/// event streams: `pismo serve` lets one address hold at most a quarter of its connections
/// (issue 29), and these are other people than the predictions, `/ping` and the control
/// requests, which connect from 127.0.0.1.
pub const HOSTILE_FROM: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
pub const STREAMS_FROM: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// Issue 29's idle flood: more connections than one client may hold.
pub const IDLE_FROM: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);

/// A connection to `addr` from the loopback address `from`, within `timeout`.
pub fn connect_from(
    addr: &SocketAddr,
    from: Ipv4Addr,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(from.into(), 0).into())?;
    socket.connect_timeout(&(*addr).into(), timeout)?;
    Ok(socket.into())
}

/// One request on a new connection with `Connection: close`; returns the status and body.
pub fn one_shot(
    addr: &SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), String> {
    let mut s = TcpStream::connect_timeout(addr, timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(b) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default());
    s.write_all(&bytes).map_err(|e| format!("write: {e}"))?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    let status = pismo_bench::client::parse_status(
        answer.split(|&b| b == b'\n').next().ok_or("empty answer")?,
    )
    .ok_or_else(|| {
        format!(
            "not an HTTP answer: {:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(60)])
        )
    })?;
    let body = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or_else(Vec::new, |i| answer[i + 4..].to_vec());
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exchange_is_outside_the_window_only_if_it_never_met_it() {
        let w = Window::default();
        let g0 = w.now();
        assert!(Window::outside(g0, w.now()));
        w.open();
        assert!(!Window::outside(g0, w.now()), "ended in the window");
        let g1 = w.now();
        w.close();
        assert!(!Window::outside(g1, w.now()), "started in the window");
        assert!(!Window::outside(g0, w.now()), "spanned the window");
        assert!(Window::outside(w.now(), w.now()));
    }
}
