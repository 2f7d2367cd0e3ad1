//! The server under test: `pismo serve` as a child process, watched by a supervisor thread.
//!
//! One [`Lifetime`] is one process. Its supervisor thread samples `VmRSS` and `VmHWM` from
//! `/proc/PID/status` every 100 ms and notices an exit within 20 ms. An exit that
//! [`Lifetime::kill9`] did not ask for is a crash; the report keeps its exit status and
//! the tail of the server's log.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How to start `pismo serve`.
#[derive(Debug, Clone)]
pub struct Launch {
    pub bin: PathBuf,
    pub registry: PathBuf,
    pub runs: PathBuf,
    pub data: PathBuf,
    pub drawn: PathBuf,
    /// The server's stderr is appended here.
    pub log: PathBuf,
    /// A cgroup folder the server joins before it starts (its `cgroup.procs` is written by a
    /// shell that then `exec`s the server, so all of its memory is counted there).
    pub cgroup: Option<PathBuf>,
}

/// What one process did, once it is gone.
#[derive(Debug, Clone, Default)]
pub struct LifetimeReport {
    pub pid: u32,
    /// Largest `VmHWM` read (the kernel's own peak of the resident set), KiB.
    pub hwm_kb: u64,
    /// Largest `VmRSS` sampled, KiB.
    pub rss_kb: u64,
    /// Set when the process exited without being asked to: how.
    pub crash: Option<String>,
    /// How long it lived.
    pub seconds: f64,
    /// `(seconds since the start, VmRSS KiB)` of every sample.
    pub samples: Vec<(f64, u64)>,
}

impl LifetimeReport {
    /// `VmRSS` growth over the last two thirds of the lifetime (after start-up and the
    /// first training run's MNIST load): `(MB, MB a minute)`. A leak shows as a steady rate.
    pub fn growth(&self) -> Option<(f64, f64)> {
        let from = self.seconds / 3.0;
        let first = self.samples.iter().find(|(t, _)| *t >= from)?;
        let last = self.samples.last()?;
        let minutes = (last.0 - first.0) / 60.0;
        if minutes <= 0.0 {
            return None;
        }
        let mb = (last.1 as f64 - first.1 as f64) / 1024.0;
        Some((mb, mb / minutes))
    }
}

/// A running `pismo serve`.
#[derive(Debug)]
pub struct Lifetime {
    pub pid: u32,
    kill: Arc<AtomicBool>,
    exited: Arc<AtomicBool>,
    report: Arc<Mutex<LifetimeReport>>,
    supervisor: Option<JoinHandle<()>>,
}

impl Lifetime {
    /// Starts `pismo serve --addr 127.0.0.1:PORT` and returns once it printed its URL (its
    /// first line on stdout), that is once it listens.
    pub fn start(launch: &Launch, port: u16) -> Result<Lifetime, String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&launch.log)
            .map_err(|e| format!("{}: {e}", launch.log.display()))?;
        let mut command = match &launch.cgroup {
            Some(dir) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg("echo $$ > \"$0/cgroup.procs\" && exec \"$@\"")
                    .arg(dir)
                    .arg(&launch.bin);
                c
            }
            None => Command::new(&launch.bin),
        };
        let mut child = command
            .arg("serve")
            .arg("--addr")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--registry")
            .arg(&launch.registry)
            .arg("--runs")
            .arg(&launch.runs)
            .arg("--data")
            .arg(&launch.data)
            .arg("--drawn")
            .arg(&launch.drawn)
            .env_remove("PISMO_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", launch.bin.display()))?;
        let pid = child.id();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut line = String::new();
        let read = stdout.read_line(&mut line);
        if !matches!(read, Ok(n) if n > 0) || !line.starts_with("http://") {
            let _ = child.kill();
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            return Err(format!(
                "pismo serve did not start ({status}); its log:\n{}",
                log_tail(&launch.log)
            ));
        }
        let kill = Arc::new(AtomicBool::new(false));
        let exited = Arc::new(AtomicBool::new(false));
        let report = Arc::new(Mutex::new(LifetimeReport {
            pid,
            ..LifetimeReport::default()
        }));
        let supervisor = {
            let (kill, exited, report) = (kill.clone(), exited.clone(), report.clone());
            let log = launch.log.clone();
            std::thread::Builder::new()
                .name("soak-supervisor".into())
                .spawn(move || supervise(child, stdout, &kill, &exited, &report, &log))
                .map_err(|e| e.to_string())?
        };
        Ok(Lifetime {
            pid,
            kill,
            exited,
            report,
            supervisor: Some(supervisor),
        })
    }

    /// Whether the process is gone (crashed, unless [`Lifetime::kill9`] was called).
    pub fn exited(&self) -> bool {
        self.exited.load(Ordering::SeqCst)
    }

    /// SIGKILL (`Child::kill`), then waits for the process; returns its report.
    pub fn kill9(&mut self) -> LifetimeReport {
        self.kill.store(true, Ordering::SeqCst);
        self.join()
    }

    /// Waits for the supervisor (after a crash or a kill) and returns the report.
    pub fn join(&mut self) -> LifetimeReport {
        if let Some(s) = self.supervisor.take() {
            let _ = s.join();
        }
        self.report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn supervise(
    mut child: Child,
    _stdout: BufReader<std::process::ChildStdout>,
    kill: &AtomicBool,
    exited: &AtomicBool,
    report: &Mutex<LifetimeReport>,
    log: &std::path::Path,
) {
    let started = Instant::now();
    let mut last_sample = Instant::now() - Duration::from_secs(1);
    let status_path = format!("/proc/{}/status", child.id());
    loop {
        if last_sample.elapsed() >= Duration::from_millis(100) {
            last_sample = Instant::now();
            if let Some((rss, hwm)) = memory(&status_path) {
                let mut r = report.lock().unwrap_or_else(|e| e.into_inner());
                r.rss_kb = r.rss_kb.max(rss);
                r.hwm_kb = r.hwm_kb.max(hwm);
                r.samples.push((started.elapsed().as_secs_f64(), rss));
            }
        }
        if kill.load(Ordering::SeqCst) {
            // The last sample first: VmHWM holds the peak since the start.
            if let Some((rss, hwm)) = memory(&status_path) {
                let mut r = report.lock().unwrap_or_else(|e| e.into_inner());
                r.rss_kb = r.rss_kb.max(rss);
                r.hwm_kb = r.hwm_kb.max(hwm);
            }
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut r = report.lock().unwrap_or_else(|e| e.into_inner());
                r.crash = Some(format!(
                    "pismo serve (pid {}) exited by itself: {status}; its log ends:\n{}",
                    r.pid,
                    log_tail(log)
                ));
                break;
            }
            Ok(None) => {}
            Err(e) => {
                let mut r = report.lock().unwrap_or_else(|e| e.into_inner());
                r.crash = Some(format!("cannot wait for pismo serve: {e}"));
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    report.lock().unwrap_or_else(|e| e.into_inner()).seconds = started.elapsed().as_secs_f64();
    exited.store(true, Ordering::SeqCst);
}

/// `(VmRSS, VmHWM)` in KiB.
fn memory(status_path: &str) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(status_path).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// The last 20 lines of the server's log.
fn log_tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A free loopback port: bound, read and released (the server binds it with
/// `SO_REUSEADDR`, also after the restart).
pub fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}
