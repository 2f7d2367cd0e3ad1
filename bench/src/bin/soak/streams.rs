//! Event streams: `N` clients on `GET /api/runs/{id}/events` of the latest training run,
//! behaving as the page's `EventSource`: a stream that breaks (the kill -9) is reopened
//! after the server's `retry:` (2 s) with `Last-Event-ID`; a stream that ended with its
//! `done` event is opened again from the start 2 s later, as a new viewer would. The chunked
//! body is decoded; event ids must increase within a stream and continue after the
//! `Last-Event-ID` of a resumed one.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::shared::{connect_from, Counts, Firsts, Shared, Window, STREAMS_FROM};

/// The `retry:` the server sends.
const RETRY: Duration = Duration::from_secs(2);

/// Streams open now and at most, across all clients.
#[derive(Debug, Default)]
pub struct Gauge {
    pub open: AtomicU64,
    pub peak: AtomicU64,
}

#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Streams answered 200.
    pub opened: u64,
    /// Streams that reached their `done` event.
    pub done: u64,
    pub events: u64,
    /// Failures outside the restart window, by kind.
    pub errors: Counts,
    /// Failures in the restart window (expected: the server is down).
    pub window_errors: Counts,
    pub firsts: Firsts,
}

impl Tally {
    pub fn merge(&mut self, o: &Tally) {
        self.opened += o.opened;
        self.done += o.done;
        self.events += o.events;
        self.errors.merge(&o.errors);
        self.window_errors.merge(&o.window_errors);
        self.firsts.merge(&o.firsts);
    }
}

enum End {
    /// The `done` event came, then the end of the body.
    Done,
    /// The connection ended without `done`.
    Broken(String),
    Failed(String, String),
}

pub fn client(shared: Arc<Shared>, gauge: Arc<Gauge>) -> Tally {
    let mut t = Tally::default();
    // (run id, last event id seen) of a stream to resume.
    let mut resume: Option<(String, u64)> = None;
    while !shared.stopping() {
        let Some(run) = shared.run_id() else {
            shared.sleep(Duration::from_millis(200));
            continue;
        };
        let after = match &resume {
            Some((id, last)) if *id == run => *last,
            _ => 0,
        };
        let g0 = shared.window.now();
        let mut last = after;
        let end = follow(&shared, &gauge, &run, &mut last, &mut t);
        let outside = Window::outside(g0, shared.window.now());
        match end {
            End::Done => {
                t.done += 1;
                resume = None;
            }
            End::Broken(m) | End::Failed(_, m) if shared.stopping() => {
                let _ = m;
                break;
            }
            End::Broken(m) => {
                if !outside {
                    t.window_errors.add("broken");
                } else {
                    t.errors.add("broken");
                    t.firsts.add("stream", m);
                }
                resume = Some((run, last));
            }
            End::Failed(kind, m) => {
                if outside {
                    t.errors.add(kind);
                    t.firsts.add("stream", m);
                } else {
                    t.window_errors.add(kind);
                }
                resume = Some((run, last));
            }
        }
        shared.sleep(RETRY);
    }
    t
}

/// One stream of run `run`, from after event `last`; updates `last`.
fn follow(shared: &Shared, gauge: &Gauge, run: &str, last: &mut u64, t: &mut Tally) -> End {
    let io = |e: std::io::Error| End::Failed("i/o".into(), e.to_string());
    let mut s = match connect_from(&shared.addr, STREAMS_FROM, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(e) => return End::Failed("connect".into(), e.to_string()),
    };
    // The server sends a heartbeat every 15 s.
    if let Err(e) = s.set_read_timeout(Some(Duration::from_secs(40))) {
        return io(e);
    }
    let resume = if *last > 0 {
        format!("Last-Event-ID: {last}\r\n")
    } else {
        String::new()
    };
    let request = format!(
        "GET /api/runs/{run}/events HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n{resume}\r\n",
        shared.addr
    );
    if let Err(e) = s.write_all(request.as_bytes()) {
        return io(e);
    }
    let mut r = BufReader::new(s);
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(0) => return End::Failed("closed".into(), "closed before answering".into()),
        Ok(_) => {}
        Err(e) => return io(e),
    }
    let status = pismo_bench::client::parse_status(line.as_bytes());
    if status != Some(200) {
        return End::Failed(
            format!("status {}", status.unwrap_or(0)),
            format!("answered {}", line.trim_end()),
        );
    }
    // Headers.
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => return End::Broken("closed in the headers".into()),
            Ok(_) if line == "\r\n" => break,
            Ok(_) => {}
            Err(e) => return End::Broken(e.to_string()),
        }
    }
    t.opened += 1;
    let now = gauge.open.fetch_add(1, Ordering::SeqCst) + 1;
    gauge.peak.fetch_max(now, Ordering::SeqCst);
    let end = events(shared, &mut r, last, t);
    gauge.open.fetch_sub(1, Ordering::SeqCst);
    end
}

/// Reads the chunked body: one or more events per chunk, `id:` `event:` `data:` lines.
fn events(shared: &Shared, r: &mut BufReader<TcpStream>, last: &mut u64, t: &mut Tally) -> End {
    let mut text = String::new();
    let mut line = String::new();
    let mut done = false;
    loop {
        if shared.stopping() {
            return End::Broken("stopping".into());
        }
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => return End::Broken("closed mid-stream".into()),
            Ok(_) => {}
            Err(e) => return End::Broken(e.to_string()),
        }
        let Ok(size) = usize::from_str_radix(line.trim_end(), 16) else {
            return End::Failed(
                "protocol".into(),
                format!("bad chunk size line {:?}", line.trim_end()),
            );
        };
        let mut chunk = vec![0u8; size + 2];
        if let Err(e) = r.read_exact(&mut chunk) {
            return End::Broken(e.to_string());
        }
        if size == 0 {
            return if done {
                End::Done
            } else {
                End::Failed("protocol".into(), "the stream ended without `done`".into())
            };
        }
        text.push_str(&String::from_utf8_lossy(&chunk[..size]));
        // Whole events end with a blank line.
        while let Some(i) = text.find("\n\n") {
            let event: String = text.drain(..i + 2).collect();
            for l in event.lines() {
                if let Some(id) = l.strip_prefix("id: ") {
                    let Ok(id) = id.parse::<u64>() else {
                        return End::Failed("protocol".into(), format!("bad id {id:?}"));
                    };
                    if id <= *last {
                        return End::Failed(
                            "protocol".into(),
                            format!("event id {id} after {last}"),
                        );
                    }
                    *last = id;
                    t.events += 1;
                } else if l == "event: done" {
                    done = true;
                }
            }
        }
    }
}
