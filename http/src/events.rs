//! `GET /api/runs/{id}/events`: a run's progress as server-sent events.
//!
//! Events (`event:` name, JSON `data:`, a sequence number as `id:`): `log` `{"line"}`,
//! `progress` `{"epoch","done","total"}`, `epoch` (the trainer's epoch report), and last
//! `done` `{"status","model","bytes","metrics","error"}`, after which the stream ends. An
//! adaptation (`POST /api/adapt`) streams `log`, `progress` `{"done","total"}` and its own
//! `done` (see [`crate::adapting`]).
//! A stream always starts from the beginning of the run (or after `Last-Event-ID`), so a
//! client that connects late or reconnects misses nothing; a stream of a run that has ended
//! always ends with its `done` event, whatever `Last-Event-ID` says.
//!
//! Runs started by this server stream from memory as they happen. Any other run (ended
//! before the server started, or trained by `pismo train` meanwhile) streams from its record
//! on disk, which is polled once a second while the run is `running`.
//!
//! `GET /api/studies/{name}/events` streams a study the same way: a study started by this
//! server from memory (`begin`, `trial_started`, `epoch`, `progress`, `trial_ended`,
//! `trial_stopped`, `best`, then `done` `{"status","trials","best","elapsed","cut_short",
//! "error"}`), any other from its journal (`study`, `trial_started`, `epoch`,
//! `trial_ended`, each the journal's line as data), followed once a second while another
//! process runs it, then `done` `{"status":"ended"}`.
//!
//! A stream runs on its connection's thread; at most [`MAX_STREAMS`] are open at once (more
//! get a 503). The response is chunked, one flushed chunk per event, and the connection
//! closes after the last chunk.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pismo_storage::registry::OwnedMeta;
use pismo_storage::runs::{Metric, Status};
use pismo_storage::studies::journal::JournalEvent;
use serde::Serialize;
use serde_json::{json, Value};

use crate::jobs::{Done, Job, SseEvent};
use crate::limits::MAX_STREAMS;
use crate::redact::Redact;
use crate::reply::ApiError;
use crate::request::Request;
use crate::State;

/// A comment line is sent after this long without an event, so dead clients are noticed.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// How often a run on disk is read again while it is running.
const POLL: Duration = Duration::from_secs(1);

/// Whose events a stream sends.
pub(crate) enum Stream {
    /// A training run, by id.
    Run(String),
    /// A study, by name.
    Study(String),
}

/// Answers `request` for the events of `what` on `out`, until the run or study ends, the
/// client leaves or the server stops.
pub(crate) fn stream(state: &State, out: &mut TcpStream, request: &Request, what: &Stream) {
    if state.streams.fetch_add(1, Ordering::SeqCst) >= MAX_STREAMS {
        state.streams.fetch_sub(1, Ordering::SeqCst);
        let e = ApiError::new(
            503,
            format!("too many event streams are open (at most {MAX_STREAMS}); try again later"),
        )
        .with_header("Retry-After", "5");
        let _ = e.into_reply().write_to(out, true, false);
        return;
    }
    let after = last_event_id(request);
    match what {
        Stream::Run(id) => send(
            state,
            out,
            after,
            state.training.job(id).or_else(|| state.adapting.job(id)),
            || state.runs.info(id).map(drop).map_err(ApiError::from),
            |out| from_disk(state, out, id, after),
        ),
        Stream::Study(name) => send(
            state,
            out,
            after,
            state.tuning.job(name),
            || state.tuning.journal(name).map(drop),
            |out| study_from_disk(state, out, name, after),
        ),
    }
    state.streams.fetch_sub(1, Ordering::SeqCst);
}

/// Replays a study's journal, following it while another process runs the study.
fn study_from_disk(state: &State, out: &mut Sse<'_>, name: &str, after: u64) -> io::Result<()> {
    let mut out = Numbered { out, seq: 0, after };
    let mut sent = 0usize;
    loop {
        stopping(state)?;
        let running = state.tuning.running(name);
        let events = match state.tuning.journal(name) {
            Ok(events) => events,
            Err(e) => {
                return out.send_done(&json!({ "status": "failed", "error": e.message }));
            }
        };
        for event in events.iter().skip(sent) {
            let kind = match event {
                JournalEvent::Study { .. } => "study",
                JournalEvent::Started { .. } => "trial_started",
                JournalEvent::Epoch { .. } => "epoch",
                JournalEvent::Ended { .. } => "trial_ended",
            };
            out.send(kind, event)?;
            sent += 1;
        }
        if !running {
            return out.send_done(&json!({ "status": "ended" }));
        }
        let waited = Instant::now();
        while waited.elapsed() < POLL {
            stopping(state)?;
            std::thread::sleep(Duration::from_millis(100));
        }
        out.out.heartbeat()?;
    }
}

fn last_event_id(request: &Request) -> u64 {
    request
        .header("Last-Event-ID")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Streams a run's or a study's events: live from its `job` when this server runs it, else
/// `from_disk`, once `exists` has said it is there (if not, its error is a plain JSON reply
/// sent before any event).
fn send(
    state: &State,
    writer: &mut TcpStream,
    after: u64,
    job: Option<Arc<Job>>,
    exists: impl FnOnce() -> Result<(), ApiError>,
    from_disk: impl FnOnce(&mut Sse<'_>) -> io::Result<()>,
) {
    if job.is_none() {
        if let Err(e) = exists() {
            let _ = state
                .shown(None, e)
                .into_reply()
                .write_to(writer, true, false);
            return;
        }
    }
    let mut out = Sse {
        writer,
        last_write: Instant::now(),
        redact: state.redact.as_ref(),
    };
    if out.head().is_err() {
        return;
    }
    let _ = match job {
        Some(job) => from_job(state, &mut out, &job, after),
        None => from_disk(&mut out),
    }
    .and_then(|()| out.end());
}

/// The response being written: chunked, one chunk per event, flushed.
struct Sse<'a> {
    writer: &'a mut TcpStream,
    last_write: Instant,
    /// With a token: every event's data names no host folder ([`crate::redact`]).
    redact: Option<&'a Redact>,
}

impl Sse<'_> {
    fn head(&mut self) -> io::Result<()> {
        self.writer.write_all(
            b"HTTP/1.1 200 OK\r\n\
              Content-Type: text/event-stream; charset=utf-8\r\n\
              Cache-Control: no-store\r\n\
              X-Accel-Buffering: no\r\n\
              Connection: close\r\n\
              Transfer-Encoding: chunked\r\n\r\n",
        )?;
        self.chunk("retry: 2000\n\n")
    }

    fn chunk(&mut self, text: &str) -> io::Result<()> {
        write!(self.writer, "{:x}\r\n{text}\r\n", text.len())?;
        self.writer.flush()?;
        self.last_write = Instant::now();
        Ok(())
    }

    fn event(&mut self, e: &SseEvent) -> io::Result<()> {
        let data = self
            .redact
            .map_or(Cow::Borrowed(e.data.as_str()), |r| r.clean(&e.data));
        self.chunk(&format!(
            "id: {}\nevent: {}\ndata: {data}\n\n",
            e.id, e.name
        ))
    }

    /// A comment, if nothing was written for a while: fails once the client is gone.
    fn heartbeat(&mut self) -> io::Result<()> {
        if self.last_write.elapsed() >= HEARTBEAT {
            self.chunk(": keep-alive\n\n")?;
        }
        Ok(())
    }

    fn end(&mut self) -> io::Result<()> {
        self.writer.write_all(b"0\r\n\r\n")?;
        self.writer.flush()
    }
}

fn stopping(state: &State) -> io::Result<()> {
    if state.stopping.load(Ordering::SeqCst) {
        Err(io::Error::other("the server is stopping"))
    } else {
        Ok(())
    }
}

fn from_job(state: &State, out: &mut Sse<'_>, job: &Job, mut after: u64) -> io::Result<()> {
    loop {
        stopping(state)?;
        let (events, done) = job.wait_after(after, Duration::from_millis(500));
        for e in &events {
            out.event(e)?;
            after = e.id;
        }
        if done && events.is_empty() {
            return Ok(());
        }
        out.heartbeat()?;
    }
}

/// Replays a run from its record, following it while it is `running`.
fn from_disk(state: &State, out: &mut Sse<'_>, id: &str, after: u64) -> io::Result<()> {
    let mut out = Numbered { out, seq: 0, after };
    let mut lines_sent = 0usize;
    let mut epochs_sent = 0u32;
    loop {
        stopping(state)?;
        let record = match state.runs.get(id) {
            Ok(r) => r,
            Err(e) => {
                return out.send("done", &Done::failed(e.to_string()));
            }
        };
        let log = state.runs.log(id).unwrap_or_default();
        let epochs = epochs_of(&record.metrics, record.info.params.epochs);
        let ended = record.info.status != Status::Running;
        // Only whole lines: the last one may still be being written.
        let whole = log.rsplit_once('\n').map_or("", |(whole, _)| whole);
        for line in whole.lines().skip(lines_sent) {
            out.send("log", &json!({ "line": line }))?;
            lines_sent += 1;
            // An epoch's event follows its log line, as when the run is live.
            if let Some(n) = epoch_of_line(line) {
                for (&epoch, report) in epochs.range(epochs_sent + 1..=n) {
                    out.send("epoch", report)?;
                    epochs_sent = epoch;
                }
            }
        }
        if ended {
            for report in epochs.range(epochs_sent + 1..).map(|(_, r)| r) {
                out.send("epoch", report)?;
            }
            // The model the run registered: its file's size and the metrics it holds.
            let model = record.info.model;
            let file = model.as_deref().and_then(|m| {
                let (id, bytes) = state.registry.load(Some(m)).ok()?;
                Some((bytes.len() as u64, OwnedMeta::decode(&id, &bytes).ok()))
            });
            let done = Done {
                status: record.info.status,
                model,
                bytes: file.as_ref().map(|(size, _)| *size),
                metrics: file.and_then(|(_, meta)| meta).map(|meta| meta.metrics),
                error: record.info.error,
            };
            return out.send_done(&done);
        }
        let waited = Instant::now();
        while waited.elapsed() < POLL {
            stopping(state)?;
            std::thread::sleep(Duration::from_millis(100));
        }
        out.out.heartbeat()?;
    }
}

/// A replay: events numbered from 1, those up to `after` (the client's `Last-Event-ID`)
/// counted but not sent — except `done`, which is always sent.
///
/// The `done` rule matters after a restart: a client that followed a run live resumes
/// with an id of the live numbering (which counts batch progress events, not on disk), so
/// its `Last-Event-ID` can be past the whole replay. Without `done` its stream would end
/// with nothing, and an `EventSource` would reconnect every 2 s, never learning that the run
/// ended (found by `bench/soak`: the 60 streams that followed the run killed with the
/// server).
struct Numbered<'a, 'b> {
    out: &'a mut Sse<'b>,
    seq: u64,
    after: u64,
}

impl Numbered<'_, '_> {
    fn send(&mut self, name: &'static str, data: &impl Serialize) -> io::Result<()> {
        self.seq += 1;
        if self.seq <= self.after {
            return Ok(());
        }
        self.write(self.seq, name, data)
    }

    /// The last event, sent even when the client's `Last-Event-ID` is past it; its id then
    /// follows the client's, so ids keep increasing for the client.
    fn send_done(&mut self, done: &impl Serialize) -> io::Result<()> {
        self.seq = (self.seq + 1).max(self.after + 1);
        self.write(self.seq, "done", done)
    }

    fn write(&mut self, id: u64, name: &'static str, data: &impl Serialize) -> io::Result<()> {
        self.out.event(&SseEvent {
            id,
            name,
            data: serde_json::to_string(data).unwrap_or_else(|_| "null".to_owned()),
        })
    }
}

/// `N` of a log line `epoch N/M …`.
fn epoch_of_line(line: &str) -> Option<u32> {
    line.strip_prefix("epoch ")?.split('/').next()?.parse().ok()
}

/// Per-epoch metrics of a run record as `epoch` events (only epochs whose last metric,
/// `epoch_seconds`, is written).
fn epochs_of(metrics: &[Metric], epochs: u32) -> BTreeMap<u32, Value> {
    let mut by_step: BTreeMap<u32, serde_json::Map<String, Value>> = BTreeMap::new();
    for m in metrics {
        if m.name == "test_accuracy" {
            continue;
        }
        by_step
            .entry(m.step)
            .or_default()
            .insert(m.name.clone(), crate::catalog::metric_value(m.value));
    }
    by_step
        .into_iter()
        .filter(|(_, values)| values.contains_key("epoch_seconds"))
        .map(|(step, v)| {
            let get = |name: &str| v.get(name).cloned().unwrap_or(Value::Null);
            (
                step,
                json!({
                    "epoch": step,
                    "epochs": epochs,
                    "lr": get("lr"),
                    "train_loss": get("train_loss"),
                    "train_accuracy": get("train_accuracy"),
                    "val_loss": get("val_loss"),
                    "val_accuracy": get("val_accuracy"),
                    "seconds": get("epoch_seconds"),
                    "eta_seconds": null,
                    "improved": null,
                }),
            )
        })
        .collect()
}
