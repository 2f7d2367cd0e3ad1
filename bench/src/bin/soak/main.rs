//! `soak`: `pismo serve` under mixed load for a while, killed with SIGKILL and restarted
//! halfway, then checked. Driven by `bench/soak` (see `bench/README.md`, "Soak").
//!
//! ```text
//! soak --pismo BIN [--duration S] [--registry DIR] [--data DIR] [--test-data DIR]
//!      [--connections N] [--rate R] [--streams N] [--train-hidden H] [--train-epochs E]
//!      [--rss-limit-mb MB] [--p99-limit-ms MS] [--cgroup DIR] [--keep]
//! ```
//!
//! It copies the registry `--registry` (default `models`) into a temporary folder, starts
//! `pismo serve` on a free loopback port with that copy, a temporary runs folder and the
//! MNIST of `--data`, and runs at once, until `--duration` seconds (default 600) have passed:
//!
//! - `predict`: `--connections` (8) keep-alive connections posting MNIST test digits to
//!   `/api/predict` at `--rate` (1000) requests a second in all (0: back to back);
//! - `streams`: `--streams` (60) event streams on the latest training run;
//! - `hostile`: a stalled client a second, ten malformed clients a second;
//! - `control`: `/ping` every 100 ms, the `default` alias moved between the shipped models
//!   every 500 ms, and three training runs (hidden `--train-hidden` 32, `--train-epochs` 3):
//!   run 1 at 2 s, followed to its end; run 2 at half time with twenty times the epochs;
//!   run 3 once the server is back, followed to its end;
//! - 3 s after run 2 started (every event stream follows it by then) the server is killed
//!   with SIGKILL and started again on the same port, registry and runs folder; run 2 must
//!   then read as `failed`. The restart window runs from the kill until the new server
//!   answers `/ping`; what happens in it is counted apart.
//!
//! Then it stops the load, kills the server, checks the registry copy (`check`) and prints a
//! markdown table: metric | value | limit | ok. Exit status: 0 every check passed, 1 a check
//! failed or the run could not be made, 2 usage error.

mod check;
mod control;
mod hostile;
mod predict;
mod server;
mod shared;
mod streams;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::server::{Launch, Lifetime, LifetimeReport};
use crate::shared::{one_shot, Counts, Shared, Window};

const USAGE: &str = "usage: soak --pismo BIN [--duration S] [--registry DIR] [--data DIR] \
                     [--test-data DIR] [--connections N] [--rate R] [--streams N] \
                     [--train-hidden H] [--train-epochs E] [--rss-limit-mb MB] \
                     [--p99-limit-ms MS] [--cgroup DIR] [--keep]";

#[derive(Debug)]
struct Config {
    pismo: PathBuf,
    duration: Duration,
    registry: PathBuf,
    data: PathBuf,
    test_data: PathBuf,
    connections: usize,
    rate: f64,
    streams: usize,
    train_hidden: u32,
    train_epochs: u32,
    rss_limit_mb: f64,
    p99_limit_ms: f64,
    keep: bool,
    /// A memory cgroup's folder that each server process joins (`bench/soak` makes one
    /// with a 512 MB limit).
    cgroup: Option<PathBuf>,
}

impl Config {
    fn parse(args: &[String]) -> Result<Config, String> {
        let mut c = Config {
            pismo: PathBuf::from("target/release/pismo"),
            duration: Duration::from_secs(600),
            registry: PathBuf::from("models"),
            data: PathBuf::from("data/mnist"),
            test_data: PathBuf::from("tests/data"),
            connections: 8,
            rate: 1000.0,
            streams: 60,
            train_hidden: 32,
            train_epochs: 3,
            rss_limit_mb: 300.0,
            p99_limit_ms: 10.0,
            keep: false,
            cgroup: None,
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            if flag == "--keep" {
                c.keep = true;
                continue;
            }
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let number = || match value.parse::<f64>() {
                Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
                _ => Err(format!("{flag}: expected a number, got `{value}`")),
            };
            let count = || match value.parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("{flag}: expected a count above 0, got `{value}`")),
            };
            match flag.as_str() {
                "--pismo" => c.pismo = PathBuf::from(value),
                "--duration" => c.duration = Duration::from_secs_f64(number()?.max(10.0)),
                "--registry" => c.registry = PathBuf::from(value),
                "--data" => c.data = PathBuf::from(value),
                "--test-data" => c.test_data = PathBuf::from(value),
                "--connections" => c.connections = count()?,
                "--rate" => c.rate = number()?,
                "--streams" => c.streams = count()?,
                "--train-hidden" => c.train_hidden = count()? as u32,
                "--train-epochs" => c.train_epochs = count()? as u32,
                "--rss-limit-mb" => c.rss_limit_mb = number()?,
                "--p99-limit-ms" => c.p99_limit_ms = number()?,
                "--cgroup" => c.cgroup = Some(PathBuf::from(value)),
                other => return Err(format!("unknown flag `{other}`")),
            }
        }
        Ok(c)
    }
}

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
    match run(&config) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn say(started: Instant, what: &str) {
    eprintln!("soak {:>6.1}s  {what}", started.elapsed().as_secs_f64());
}

/// Copies the regular files of `from` into `to`.
fn copy_registry(from: &std::path::Path, to: &std::path::Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    for e in std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let e = e.map_err(|e| e.to_string())?;
        if e.file_type().map_err(|e| e.to_string())?.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name()))
                .map_err(|err| format!("{}: {err}", e.path().display()))?;
        }
    }
    Ok(())
}

/// Polls `GET /ping` every 10 ms until it answers 200; the time it took.
fn wait_for_ping(addr: &SocketAddr, limit: Duration) -> Result<Duration, String> {
    let t0 = Instant::now();
    loop {
        if let Ok((200, _)) = one_shot(addr, "GET", "/ping", None, Duration::from_secs(2)) {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > limit {
            return Err(format!("the server did not answer /ping within {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A soak run: the server started on a copy of the registry, put under load, trained on,
/// killed and restarted half-way, then the load stopped and the report printed. Whether
/// every limit was kept.
fn run(config: &Config) -> Result<bool, String> {
    let started = Instant::now();
    let work = prepare(config)?;
    // The alias mover's round: the shipped models, f32 and int8 (hidden 128 and larger).
    let targets: Vec<String> = work.before.models.iter().cloned().collect();
    let launch = launch(config, &work);
    let port = server::free_port()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let bodies = Arc::new(predict::bodies(&config.test_data, 1000, &addr.to_string())?);

    let mut lifetime = Lifetime::start(&launch, port)?;
    wait_for_ping(&addr, Duration::from_secs(10))?;
    say(
        started,
        &format!(
            "pismo serve (pid {}) on {addr}, registry copy {} ({} models), for {:.0} s",
            lifetime.pid,
            work.registry.display(),
            work.before.models.len(),
            config.duration.as_secs_f64()
        ),
    );
    let shared = Arc::new(Shared {
        addr,
        stop: AtomicBool::new(false),
        window: Window::default(),
        run_id: Mutex::new(None),
        started: Instant::now(),
    });
    let times = Times::of(config, shared.started);
    let load = Load::start(config, &shared, &bodies, targets);
    let signals = Signals::default();
    let trainer = start_training(config, &shared, &times, &signals);
    let server = Server {
        launch: &launch,
        port,
        shared: &shared,
        started,
    };
    let mut timeline = keep_time(config, &server, &mut lifetime, &times, &signals, &load)?;

    say(started, "stopping the load");
    let trainings = trainer.join().map_err(|_| "the trainer thread panicked")?;
    shared.stop.store(true, Ordering::SeqCst);
    let gauge = load.gauge.clone();
    let mut seen = load.join()?;
    timeline.lifetimes.push(if lifetime.exited() {
        lifetime.join()
    } else {
        lifetime.kill9()
    });
    let elapsed = times.start.elapsed();
    seen.p.firsts.0.truncate(5);
    let peak_streams = gauge.peak.load(Ordering::SeqCst);
    let ok = report(
        config,
        &work,
        &seen,
        &timeline,
        &trainings,
        elapsed,
        peak_streams,
    )?;
    if config.keep || !ok {
        let kept = work.tmp.keep();
        eprintln!(
            "kept the registry copy, runs and server log in {}",
            kept.display()
        );
    }
    Ok(ok)
}

/// The folder of a run, its copy of the registry, and what that copy held at the start.
struct Work {
    tmp: tempfile::TempDir,
    root: PathBuf,
    registry: PathBuf,
    before: check::Snapshot,
}

/// A temporary folder with a copy of the registry, refused if the registry is damaged.
fn prepare(config: &Config) -> Result<Work, String> {
    let tmp = tempfile::Builder::new()
        .prefix("pismo-soak-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let root = tmp.path().to_path_buf();
    let registry = root.join("models");
    copy_registry(&config.registry, &registry)?;
    let before = check::snapshot(&registry)?;
    if !before.corrupt.is_empty() || !before.dangling.is_empty() {
        return Err(format!(
            "the registry {} is damaged before the soak: {:?} {:?}",
            config.registry.display(),
            before.corrupt,
            before.dangling
        ));
    }
    Ok(Work {
        tmp,
        root,
        registry,
        before,
    })
}

/// How the server is started: on the registry copy, its runs, drawings and log in the
/// run's folder.
fn launch(config: &Config, work: &Work) -> Launch {
    Launch {
        bin: config.pismo.clone(),
        registry: work.registry.clone(),
        runs: work.root.join("runs"),
        data: config.data.clone(),
        drawn: work.root.join("drawn"),
        log: work.root.join("server.log"),
        cgroup: config.cgroup.clone(),
    }
}

/// The moments of a run: its start (as the clients count), half time and end.
struct Times {
    start: Instant,
    half: Instant,
    end: Instant,
}

impl Times {
    fn of(config: &Config, start: Instant) -> Times {
        Times {
            start,
            half: start + config.duration / 2,
            end: start + config.duration,
        }
    }
}

/// The threads loading the server, each giving back what it saw once the run stops.
struct Load {
    predictors: Vec<JoinHandle<predict::Tally>>,
    streamers: Vec<JoinHandle<streams::Tally>>,
    gauge: Arc<streams::Gauge>,
    stalled: JoinHandle<hostile::Tally>,
    malformed: JoinHandle<hostile::Tally>,
    issue_29: JoinHandle<hostile::Tally>,
    pinger: JoinHandle<control::Calls>,
    mover: JoinHandle<control::Calls>,
}

/// What the load saw.
struct Seen {
    p: predict::Tally,
    s: streams::Tally,
    h: hostile::Tally,
    pings: control::Calls,
    moves: control::Calls,
}

impl Load {
    /// The predicting connections (`bodies` spread among them), the event streams, the
    /// hostile clients, the pinger and the alias mover (over `targets`).
    fn start(
        config: &Config,
        shared: &Arc<Shared>,
        bodies: &Arc<Vec<predict::Body>>,
        targets: Vec<String>,
    ) -> Load {
        let interval = if config.rate > 0.0 {
            Duration::from_secs_f64(config.connections as f64 / config.rate)
        } else {
            Duration::ZERO
        };
        let stride = bodies.len() / config.connections;
        let predictors = (0..config.connections)
            .map(|i| {
                let (shared, bodies) = (shared.clone(), bodies.clone());
                std::thread::spawn(move || {
                    predict::connection(shared, bodies, i * stride, interval)
                })
            })
            .collect();
        let gauge = Arc::new(streams::Gauge::default());
        let streamers = (0..config.streams)
            .map(|_| {
                let (shared, gauge) = (shared.clone(), gauge.clone());
                std::thread::spawn(move || streams::client(shared, gauge))
            })
            .collect();
        let on = |work| spawn_on(shared, work);
        let shared = shared.clone();
        Load {
            predictors,
            streamers,
            gauge,
            stalled: on(hostile::stalled),
            malformed: on(hostile::malformed_clients),
            issue_29: on(hostile::issue_29),
            pinger: spawn_on(&shared, control::pinger),
            mover: std::thread::spawn(move || {
                control::alias_mover(shared, "default".into(), targets)
            }),
        }
    }

    /// Waits for every thread (the run stopping) and adds up what they saw.
    fn join(self) -> Result<Seen, String> {
        let mut p = predict::Tally::default();
        for t in self.predictors {
            p.merge(&t.join().map_err(|_| "a prediction thread panicked")?);
        }
        let mut s = streams::Tally::default();
        for t in self.streamers {
            s.merge(&t.join().map_err(|_| "a stream thread panicked")?);
        }
        let mut h = self
            .stalled
            .join()
            .map_err(|_| "the stalled clients panicked")?;
        h.merge(
            &self
                .malformed
                .join()
                .map_err(|_| "the malformed clients panicked")?,
        );
        h.merge(
            &self
                .issue_29
                .join()
                .map_err(|_| "the clients of issue 29 panicked")?,
        );
        let pings = self.pinger.join().map_err(|_| "the pinger panicked")?;
        let moves = self.mover.join().map_err(|_| "the alias mover panicked")?;
        Ok(Seen {
            p,
            s,
            h,
            pings,
            moves,
        })
    }
}

/// `work` on a thread of its own, with the run's shared state.
fn spawn_on<T: Send + 'static>(shared: &Arc<Shared>, work: fn(Arc<Shared>) -> T) -> JoinHandle<T> {
    let shared = shared.clone();
    std::thread::spawn(move || work(shared))
}

/// The flags between the trainer and the clock: the trainer asks for the kill once its
/// second run is training, the clock says when the server is back.
#[derive(Default)]
struct Signals {
    kill_now: Arc<AtomicBool>,
    restarted: Arc<AtomicBool>,
}

/// Training: run 1 from the start, to its end; run 2 at half time, killed with the server
/// after 3 s of training; run 3 once the server is back, to its end.
fn start_training(
    config: &Config,
    shared: &Arc<Shared>,
    times: &Times,
    signals: &Signals,
) -> JoinHandle<Vec<control::Training>> {
    let params = json!({
        "name": "soak",
        "hidden_size": config.train_hidden,
        "epochs": config.train_epochs,
        "patience": 0,
    });
    let shared = shared.clone();
    let (kill_now, restarted) = (signals.kill_now.clone(), signals.restarted.clone());
    let half = times.half;
    // A run may end after the load stops: at most 5 minutes more.
    let give_up = times.end + Duration::from_secs(300);
    std::thread::spawn(move || {
        let wait_for = |flag: &AtomicBool| {
            while !flag.load(Ordering::SeqCst) && Instant::now() < give_up {
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        let mut runs = Vec::new();
        std::thread::sleep(Duration::from_secs(2));
        runs.push(control::train(&shared, &params, give_up));
        while Instant::now() < half {
            std::thread::sleep(Duration::from_millis(50));
        }
        runs.push(killed_run(&shared, &params, give_up, &kill_now, &|| {
            wait_for(&restarted)
        }));
        wait_for(&restarted);
        std::thread::sleep(Duration::from_secs(2));
        runs.push(control::train(&shared, &params, give_up));
        runs
    })
}

/// The run the kill interrupts: started, the kill asked for (`kill_now`) once it trains,
/// followed after the restart (`wait_for_restart`).
fn killed_run(
    shared: &Shared,
    params: &serde_json::Value,
    give_up: Instant,
    kill_now: &AtomicBool,
    wait_for_restart: &dyn Fn(),
) -> control::Training {
    // Long enough to be training at the kill.
    let mut long = params.clone();
    long["epochs"] = json!(config_epochs_for_kill(params));
    match control::start(shared, &long, give_up) {
        Ok(id) => {
            // Every event stream is on it after its 2 s retry.
            std::thread::sleep(Duration::from_secs(3));
            let running = control::status(shared, &id).map(|(s, _)| s);
            kill_now.store(true, Ordering::SeqCst);
            wait_for_restart();
            let mut t = control::follow(shared, &id, give_up);
            t.killed = true;
            if running.as_deref() != Some("running") {
                t.status = format!("{} (was {running:?} at the kill, not running)", t.status);
            }
            t
        }
        Err(status) => {
            kill_now.store(true, Ordering::SeqCst);
            control::Training {
                status,
                killed: true,
                ..control::Training::default()
            }
        }
    }
}

/// Where the server runs and how it is started again.
struct Server<'a> {
    launch: &'a Launch,
    port: u16,
    shared: &'a Shared,
    started: Instant,
}

impl Server<'_> {
    /// A new lifetime of the server in place of `lifetime`, once it answers `/ping`; the
    /// clients see the restart window open meanwhile.
    fn restart(&self, lifetime: &mut Lifetime) -> Result<(), String> {
        *lifetime = Lifetime::start(self.launch, self.port)?;
        wait_for_ping(&self.shared.addr, Duration::from_secs(30))?;
        self.shared.window.close();
        Ok(())
    }
}

/// The server's past lifetimes, how long the restart after the kill took, and when the
/// kill came (seconds into the run).
struct Timeline {
    lifetimes: Vec<LifetimeReport>,
    restart: Option<Duration>,
    kill_at: Option<f64>,
}

/// The clock until the end of the run: crashes noticed as they happen (the server started
/// again so the run goes on), and the kill at half time.
fn keep_time(
    config: &Config,
    server: &Server<'_>,
    lifetime: &mut Lifetime,
    times: &Times,
    signals: &Signals,
    load: &Load,
) -> Result<Timeline, String> {
    let started = server.started;
    let mut timeline = Timeline {
        lifetimes: Vec::new(),
        restart: None,
        kill_at: None,
    };
    let mut last_note = Instant::now();
    while Instant::now() < times.end {
        std::thread::sleep(Duration::from_millis(50));
        if lifetime.exited() {
            let report = lifetime.join();
            say(
                started,
                report.crash.as_deref().unwrap_or("the server exited"),
            );
            timeline.lifetimes.push(report);
            server.shared.window.open();
            server.restart(lifetime)?;
            continue;
        }
        // The kill comes when the trainer has a run training (not past 90 % of the time).
        if timeline.kill_at.is_none()
            && (signals.kill_now.load(Ordering::SeqCst)
                || (Instant::now() >= times.half
                    && Instant::now() + config.duration / 10 >= times.end))
        {
            kill_and_restart(server, lifetime, times, &mut timeline, load, signals)?;
        }
        if last_note.elapsed() >= Duration::from_secs(30) {
            last_note = Instant::now();
            say(
                started,
                &format!(
                    "event streams open {}",
                    load.gauge.open.load(Ordering::SeqCst)
                ),
            );
        }
    }
    Ok(timeline)
}

/// `kill -9` of the server and its restart, both recorded in `timeline`, the restart
/// signalled to the trainer.
fn kill_and_restart(
    server: &Server<'_>,
    lifetime: &mut Lifetime,
    times: &Times,
    timeline: &mut Timeline,
    load: &Load,
    signals: &Signals,
) -> Result<(), String> {
    timeline.kill_at = Some(times.start.elapsed().as_secs_f64());
    say(
        server.started,
        &format!(
            "kill -9 {} ({} event streams open)",
            lifetime.pid,
            load.gauge.open.load(Ordering::SeqCst)
        ),
    );
    server.shared.window.open();
    timeline.lifetimes.push(lifetime.kill9());
    let t0 = Instant::now();
    server.restart(lifetime)?;
    timeline.restart = Some(t0.elapsed());
    signals.restarted.store(true, Ordering::SeqCst);
    say(
        server.started,
        &format!(
            "restarted (pid {}) in {:.0} ms",
            lifetime.pid,
            t0.elapsed().as_secs_f64() * 1e3
        ),
    );
    Ok(())
}

/// Checks the registry after the run, prints the report's table and the first errors and
/// crashes; whether every limit was kept.
fn report(
    config: &Config,
    work: &Work,
    seen: &Seen,
    timeline: &Timeline,
    trainings: &[control::Training],
    elapsed: Duration,
    peak_streams: u64,
) -> Result<bool, String> {
    let after = check::snapshot(&work.registry)?;
    let mut expected = work.before.models.clone();
    for t in trainings {
        if let Some(m) = &t.model {
            expected.insert(m.clone());
        }
    }
    let report = Report {
        config,
        elapsed,
        p: &seen.p,
        s: &seen.s,
        h: &seen.h,
        pings: &seen.pings,
        moves: &seen.moves,
        lifetimes: &timeline.lifetimes,
        restart: timeline.restart,
        kill_at: timeline.kill_at,
        trainings,
        peak_streams,
        before: &work.before,
        after: &after,
        expected: &expected,
    };
    let (table, ok) = report.table();
    println!("{table}");
    let firsts = [
        &seen.p.firsts,
        &seen.s.firsts,
        &seen.pings.firsts,
        &seen.moves.firsts,
    ];
    for m in firsts.iter().flat_map(|f| &f.0) {
        eprintln!("first errors: {m}");
    }
    for l in &timeline.lifetimes {
        if let Some(c) = &l.crash {
            eprintln!("CRASH: {c}");
        }
    }
    Ok(ok)
}

/// Epochs of the run that the kill interrupts: twenty times the others (it is killed
/// anyway).
fn config_epochs_for_kill(params: &serde_json::Value) -> u64 {
    params["epochs"].as_u64().unwrap_or(3) * 20
}

struct Report<'a> {
    config: &'a Config,
    elapsed: Duration,
    p: &'a predict::Tally,
    s: &'a streams::Tally,
    h: &'a hostile::Tally,
    pings: &'a control::Calls,
    moves: &'a control::Calls,
    lifetimes: &'a [LifetimeReport],
    restart: Option<Duration>,
    kill_at: Option<f64>,
    trainings: &'a [control::Training],
    peak_streams: u64,
    before: &'a check::Snapshot,
    after: &'a check::Snapshot,
    expected: &'a std::collections::BTreeSet<String>,
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn yes(ok: bool) -> &'static str {
    if ok {
        "✅"
    } else {
        "❌ FAIL"
    }
}

/// The report's markdown table as it is written, and whether every checked row passed.
struct Rows {
    text: String,
    all: bool,
}

impl Rows {
    /// One row: `ok` is `None` for a figure with no limit, else whether it kept its `limit`.
    fn row(&mut self, metric: &str, value: String, limit: &str, ok: Option<bool>) {
        if ok == Some(false) {
            self.all = false;
        }
        let _ = writeln!(
            self.text,
            "| {metric} | {value} | {limit} | {} |",
            ok.map_or("", yes)
        );
    }
}

impl Report<'_> {
    /// The markdown table of the run, and whether every limit was kept.
    fn table(&self) -> (String, bool) {
        let mut t = Rows {
            text: String::from("| metric | value | limit | ok |\n|---|---|---|---|\n"),
            all: true,
        };
        self.server_rows(&mut t);
        self.prediction_rows(&mut t);
        self.memory_rows(&mut t);
        self.ping_rows(&mut t);
        self.training_rows(&mut t);
        self.stream_rows(&mut t);
        self.hostile_rows(&mut t);
        self.alias_move_rows(&mut t);
        self.registry_rows(&mut t);
        (t.text, t.all)
    }

    /// The run's length, crashes and the restart after the kill.
    fn server_rows(&self, t: &mut Rows) {
        let crashes = self.lifetimes.iter().filter(|l| l.crash.is_some()).count();
        t.row(
            "duration",
            format!(
                "{:.0} s, kill -9 at {}",
                self.elapsed.as_secs_f64(),
                self.kill_at
                    .map_or("— (not done)".to_owned(), |k| format!("{k:.0} s"))
            ),
            "",
            None,
        );
        t.row(
            "server crashes",
            crashes.to_string(),
            "0",
            Some(crashes == 0),
        );
        t.row(
            "restart: kill -9 until /ping answers",
            self.restart.map_or("not done".into(), |d| {
                format!("{:.0} ms", d.as_secs_f64() * 1e3)
            }),
            "",
            Some(self.restart.is_some()),
        );
    }

    /// The predictions: how many, their errors, latency and accuracy.
    fn prediction_rows(&self, t: &mut Rows) {
        let c = self.config;
        let p = self.p;
        t.row(
            &format!(
                "predictions answered ({} conns, {} req/s asked)",
                c.connections,
                if c.rate > 0.0 {
                    format!("{:.0}", c.rate)
                } else {
                    "max".into()
                }
            ),
            format!(
                "{} ({:.0}/s), {} in the restart window",
                p.answered(),
                p.answered() as f64 / self.elapsed.as_secs_f64(),
                p.inside.total
            ),
            "",
            None,
        );
        t.row(
            "prediction errors outside the restart",
            format!("{} ({})", p.errors.total(), p.errors.summary()),
            "0",
            Some(p.errors.total() == 0),
        );
        t.row(
            "prediction errors in the restart window",
            format!(
                "{} ({})",
                p.window_errors.total(),
                p.window_errors.summary()
            ),
            "",
            None,
        );
        t.row(
            "prediction p50 / p90 / p99.9 / max outside the restart",
            format!(
                "{:.2} / {:.2} / {:.2} / {:.1} ms",
                ms(p.outside.quantile(0.5)),
                ms(p.outside.quantile(0.9)),
                ms(p.outside.quantile(0.999)),
                ms(p.outside.max_ns)
            ),
            "",
            None,
        );
        let p99 = ms(p.outside.quantile(0.99));
        t.row(
            "**prediction p99 outside the restart**",
            format!("{p99:.2} ms"),
            &format!("< {} ms", c.p99_limit_ms),
            Some(p.outside.total > 0 && p99 < c.p99_limit_ms),
        );
        t.row(
            "predictions right (MNIST labels)",
            format!(
                "{:.2} % (models: {})",
                100.0 * p.correct as f64 / p.answered().max(1) as f64,
                p.models
                    .iter()
                    .map(|(m, n)| format!("{m} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "",
            None,
        );
    }

    /// Each server lifetime's memory.
    fn memory_rows(&self, t: &mut Rows) {
        let c = self.config;
        for (i, l) in self.lifetimes.iter().enumerate() {
            let mb = l.hwm_kb.max(l.rss_kb) as f64 / 1024.0;
            t.row(
                &format!("**peak RSS, server lifetime {}** (VmHWM)", i + 1),
                format!("{mb:.1} MB (pid {}, {:.0} s)", l.pid, l.seconds),
                &format!("≤ {} MB", c.rss_limit_mb),
                Some(mb <= c.rss_limit_mb),
            );
            if let (Some(first), Some(last)) = (l.samples.first(), l.samples.last()) {
                t.row(
                    &format!("RSS at start / end, lifetime {}", i + 1),
                    format!(
                        "{:.1} MB ({:.0} s) / {:.1} MB ({:.0} s)",
                        first.1 as f64 / 1024.0,
                        first.0,
                        last.1 as f64 / 1024.0,
                        last.0
                    ),
                    "",
                    None,
                );
            }
            if let Some((grew, rate)) = l.growth() {
                t.row(
                    &format!("RSS growth, lifetime {}, over its last two thirds", i + 1),
                    format!("{grew:+.1} MB ({rate:+.2} MB/min)"),
                    "",
                    None,
                );
            }
        }
    }

    /// `/ping`'s latency and errors.
    fn ping_rows(&self, t: &mut Rows) {
        let pings = self.pings;
        t.row(
            "/ping (new connection each, every 100 ms) p99 / max outside the restart",
            format!(
                "{:.2} / {:.1} ms ({} pings)",
                ms(pings.outside.quantile(0.99)),
                ms(pings.outside.max_ns),
                pings.outside.total
            ),
            "",
            None,
        );
        t.row(
            "/ping errors outside the restart",
            format!("{} ({})", pings.errors.total(), pings.errors.summary()),
            "0",
            Some(pings.errors.total() == 0),
        );
    }

    /// Each training run, the killed one expected to fail.
    fn training_rows(&self, t: &mut Rows) {
        let c = self.config;
        for (i, tr) in self.trainings.iter().enumerate() {
            let what = if tr.killed {
                format!(
                    "training run {} (killed with the server mid-training)",
                    i + 1
                )
            } else {
                format!(
                    "training run {} (POST /api/train, hidden {}, {} epochs)",
                    i + 1,
                    c.train_hidden,
                    c.train_epochs
                )
            };
            let accuracy = tr.test_accuracy.map_or(String::new(), |a| {
                format!(", test accuracy {:.2} %", a * 100.0)
            });
            let (limit, ok) = if tr.killed {
                (
                    "failed, no model",
                    tr.status == "failed" && tr.model.is_none(),
                )
            } else {
                ("finished", tr.status == "finished" && tr.model.is_some())
            };
            t.row(
                &what,
                format!(
                    "{} {}, {}{}",
                    tr.run_id,
                    tr.status,
                    tr.model.as_deref().unwrap_or("no model"),
                    if tr.killed {
                        String::new()
                    } else {
                        format!(" in {:.0} s{accuracy}", tr.seconds)
                    }
                ),
                limit,
                Some(ok),
            );
        }
    }

    /// The event streams.
    fn stream_rows(&self, t: &mut Rows) {
        let c = self.config;
        let s = self.s;
        t.row(
            "event streams open at once (peak)",
            format!(
                "{} ({} opened, {} followed to `done`, {} events)",
                self.peak_streams, s.opened, s.done, s.events
            ),
            &format!("{}", c.streams),
            Some(self.peak_streams >= c.streams as u64),
        );
        t.row(
            "event stream errors outside the restart",
            format!("{} ({})", s.errors.total(), s.errors.summary()),
            "0",
            Some(s.errors.total() == 0),
        );
        t.row(
            "event streams broken by the restart (reopened with Last-Event-ID)",
            format!(
                "{} ({})",
                s.window_errors.total(),
                s.window_errors.summary()
            ),
            "",
            None,
        );
    }

    /// The stalled and malformed clients and how they were answered.
    fn hostile_rows(&self, t: &mut Rows) {
        let h = self.h;
        let mut kinds: Counts = Counts::default();
        for (k, v) in &h.outcomes.0 {
            let kind = k.split(':').next().unwrap_or(k);
            *kinds.0.entry(kind.to_owned()).or_default() += v;
        }
        t.row(
            "stalled and malformed clients",
            format!(
                "{} ({}), {} met the restart",
                h.clients(),
                kinds.summary(),
                h.in_window
            ),
            "",
            None,
        );
        t.row(
            "their answers",
            h.outcomes.summary(),
            "4xx or close (505 for HTTP/2)",
            None,
        );
        t.row(
            "wrong answers to them (5xx, none in 5 s, stall not ended)",
            format!("{} ({})", h.wrong.total(), h.wrong.summary()),
            "0",
            Some(h.wrong.total() == 0),
        );
        // The server's timeouts (http/src/limits.rs) are socket read timeouts, which Linux
        // keeps on its timer wheel: a timeout of 10 or 30 s may fire up to 1/8 of it late
        // (the wheel's granularity at that range). Alone, on this machine, a stalled body
        // was answered 408 and closed after 30.6 s (server at nice 0) and 31.3 s (nice 10).
        let late = |timeout: Duration| timeout + timeout / 8 + Duration::from_millis(500);
        let (head, body) = h.longest_stall;
        let (head_answer, body_answer) = h.longest_answer;
        let (head_limit, body_limit) = (
            late(pismo_http::limits::HEAD_TIMEOUT),
            late(pismo_http::limits::BODY_TIMEOUT),
        );
        t.row(
            "longest stall: cut-off head / cut-off body, until the 408 (until the close)",
            format!(
                "{:.1} s ({:.1} s) / {:.1} s ({:.1} s)",
                head_answer.as_secs_f64(),
                head.as_secs_f64(),
                body_answer.as_secs_f64(),
                body.as_secs_f64()
            ),
            &format!(
                "timeouts 10 s / 30 s, + 1/8 + 0.5 s: {:.2} s / {:.2} s",
                head_limit.as_secs_f64(),
                body_limit.as_secs_f64()
            ),
            Some(head <= head_limit && body <= body_limit),
        );
    }

    /// The alias mover's moves.
    fn alias_move_rows(&self, t: &mut Rows) {
        let m = self.moves;
        t.row(
            "alias moves (PUT /api/aliases/default)",
            format!(
                "{} ok, p99 {:.1} ms; errors outside the restart {} ({})",
                m.outside.total,
                ms(m.outside.quantile(0.99)),
                m.errors.total(),
                m.errors.summary()
            ),
            "0 errors",
            Some(m.errors.total() == 0),
        );
    }

    /// The registry after the run against before it and the runs' models.
    fn registry_rows(&self, t: &mut Rows) {
        let (a, b) = (self.after, self.before);
        let missing: Vec<&String> = self.expected.difference(&a.models).collect();
        let unexpected: Vec<&String> = a.models.difference(self.expected).collect();
        t.row(
            "registry: models before → after (expected)",
            format!(
                "{} → {} ({}); missing {:?}, unexpected {:?}",
                b.models.len(),
                a.models.len(),
                self.expected.len(),
                missing,
                unexpected
            ),
            "none lost",
            Some(missing.is_empty() && unexpected.is_empty()),
        );
        t.row(
            "registry: corrupt model files",
            format!("{} {:?}", a.corrupt.len(), a.corrupt),
            "0",
            Some(a.corrupt.is_empty()),
        );
        t.row(
            "registry: aliases pointing at no model",
            format!("{} of {} {:?}", a.dangling.len(), a.aliases, a.dangling),
            "0",
            Some(a.dangling.is_empty()),
        );
        // Files that were there before the soak (a copy of the shipped folder) are not its.
        let left: Vec<&String> = a.stray.iter().filter(|f| !b.stray.contains(f)).collect();
        t.row(
            "registry: other files left (temp files)",
            format!("{} new {left:?} ({} before)", left.len(), b.stray.len()),
            "0 new",
            Some(left.is_empty()),
        );
    }
}
