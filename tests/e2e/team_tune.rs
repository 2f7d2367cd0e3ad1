//! One tuning study shared by several `pismo tune` processes through a real PostgreSQL
//! cluster (issue 15): the workers split the trials between them and none runs twice, the
//! study ends with every trial it was given, the last worker out registers the best model
//! once, and a worker killed with SIGKILL mid-trial has its trial run again by another once
//! its lease has run out.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use pismo_storage::studies::journal::{JournalEvent, Replay};
use pismo_tests::postgres::{postgres_or_skip, PgCluster};
use pismo_tests::{full_mnist, Pismo};
use serde_json::Value;

/// Small networks, so that a trial takes seconds.
const TINY_SPACE: &str = r#"{"hidden_size": {"choice": [16, 32]},
    "initial_lr": {"log": [0.01, 0.3]}, "batch_size": {"choice": [32, 64]}}"#;

/// The events of study `study` in database `db`, in order.
fn events(cluster: &PgCluster, db: &str, study: &str) -> Vec<JournalEvent> {
    cluster
        .psql(
            db,
            &[("study", study)],
            "SELECT event FROM pismo_study_events WHERE study = :'study' ORDER BY seq;",
        )
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a stored event parses"))
        .collect()
}

/// How many times each trial was started.
fn starts(events: &[JournalEvent]) -> BTreeMap<u32, usize> {
    let mut starts = BTreeMap::new();
    for event in events {
        if let JournalEvent::Started { trial, .. } = event {
            *starts.entry(*trial).or_default() += 1;
        }
    }
    starts
}

/// A `pismo tune` worker in `p`'s sandbox with its own runs folder (as if on its own host),
/// its JSON lines going to `<runs>.jsonl`.
fn worker(p: &Pismo, runs: &str, args: &[&str]) -> Child {
    let runs = p.home.join(runs);
    let out = File::create(runs.with_extension("jsonl")).unwrap();
    let err = File::create(runs.with_extension("log")).unwrap();
    p.command(&[&["tune", "--json", "--runs", runs.to_str().unwrap()], args].concat())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .expect("start pismo tune")
}

/// The flags of a worker that makes study `study` of `trials` tiny trials (3 epochs, most
/// of MNIST held out) in the database `url`, then `extra`.
fn fresh_study<'a>(
    url: &'a str,
    space: &'a str,
    study: &'a str,
    trials: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "--store",
        url,
        "--study",
        study,
        "--trials",
        trials,
        "--epochs",
        "3",
        "--val-size",
        "55000",
        "--space",
        space,
    ];
    args.extend_from_slice(extra);
    args
}

/// Waits for `child` (at most `limit`), then returns its exit code, JSON lines and stderr.
fn finish(p: &Pismo, runs: &str, mut child: Child, limit: Duration) -> (i32, Vec<Value>, String) {
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("worker {runs} did not finish in {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let path = p.home.join(runs);
    let stdout = std::fs::read_to_string(path.with_extension("jsonl")).unwrap();
    let stderr = std::fs::read_to_string(path.with_extension("log")).unwrap();
    eprintln!("worker {runs} ({status}):\n{stderr}");
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    (status.code().unwrap_or(-1), lines, stderr)
}

/// The trials a worker's JSON lines say it started.
fn trials_started(lines: &[Value]) -> Vec<u64> {
    lines
        .iter()
        .filter(|v| v["event"] == "trial_started")
        .map(|v| v["trial"].as_u64().unwrap())
        .collect()
}

/// The `done` line of a worker.
fn done(lines: &[Value]) -> &Value {
    lines
        .iter()
        .find(|v| v["event"] == "done")
        .expect("a done line")
}

/// Waits until `ready` holds of the study's events (polling), or panics after `limit`.
fn wait_for(
    cluster: &PgCluster,
    db: &str,
    study: &str,
    limit: Duration,
    what: &str,
    ready: impl Fn(&[JournalEvent]) -> bool,
) {
    let deadline = Instant::now() + limit;
    while !ready(&events(cluster, db, study)) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A cluster with a migrated database `tune` and a sandbox on the full MNIST with the tiny
/// space as `space.json`; `None` (skipped, loudly) without PostgreSQL or MNIST.
fn setup(test: &str) -> Option<(PgCluster, String, Pismo, String)> {
    let cluster = postgres_or_skip(test)?;
    let data = full_mnist()?;
    let url = cluster.create_database("tune");
    let p = Pismo::new().with_data(data);
    p.run(&["store", "migrate", "--store", &url]).expect_code(0);
    let space = p.home.join("space.json");
    std::fs::write(&space, TINY_SPACE).unwrap();
    Some((cluster, url, p, space.display().to_string()))
}

fn registered_models(p: &Pismo, url: &str) -> Vec<String> {
    p.run(&["models", "list", "--store", url, "--json"])
        .expect_code(0)
        .json_lines()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn two_workers_share_a_study_run_each_trial_once_and_register_the_best_once() {
    let Some((cluster, url, p, space)) =
        setup("two_workers_share_a_study_run_each_trial_once_and_register_the_best_once")
    else {
        return;
    };
    const TRIALS: u32 = 8;
    let first = worker(
        &p,
        "runs-a",
        &fresh_study(&url, &space, "shared", "8", &["--alias", "best"]),
    );
    // The second joins once the first has made the study.
    wait_for(
        &cluster,
        "tune",
        "shared",
        Duration::from_secs(60),
        "the study",
        |e| !e.is_empty(),
    );
    let second = worker(
        &p,
        "runs-b",
        &[
            "--store", &url, "--study", "shared", "--resume", "--trials", "8", "--alias", "best",
        ],
    );
    let (code_a, lines_a, err_a) = finish(&p, "runs-a", first, Duration::from_secs(400));
    let (code_b, lines_b, err_b) = finish(&p, "runs-b", second, Duration::from_secs(400));
    assert_eq!((code_a, code_b), (0, 0), "{err_a}\n{err_b}");

    // Each trial ran on one worker, once; both worked; together they ran them all.
    let (a, b) = (trials_started(&lines_a), trials_started(&lines_b));
    assert!(!a.is_empty() && !b.is_empty(), "a ran {a:?}, b ran {b:?}");
    let all: BTreeSet<u64> = a.iter().chain(&b).copied().collect();
    assert_eq!(
        all.len(),
        a.len() + b.len(),
        "a trial ran twice: {a:?} {b:?}"
    );
    assert_eq!(all, (0..u64::from(TRIALS)).collect());
    let events = events(&cluster, "tune", "shared");
    assert!(
        starts(&events).values().all(|&n| n == 1),
        "{:?}",
        starts(&events)
    );
    let replay = Replay::of(&events);
    assert!(replay.interrupted.is_empty());
    assert_eq!(replay.finished.len() as u32, TRIALS, "the study finished");
    let claims = cluster.psql(
        "tune",
        &[],
        "SELECT count(*), sum(claims), bool_and(ended) FROM pismo_trials WHERE study = 'shared';",
    );
    assert_eq!(claims.trim(), "8|8|t", "one claim per trial, all ended");

    // Both report the whole study's best; exactly one registered it.
    let (done_a, done_b) = (done(&lines_a), done(&lines_b));
    assert_eq!(done_a["trials"], TRIALS);
    assert_eq!(done_b["trials"], TRIALS);
    assert_eq!(done_a["best"]["run_id"], done_b["best"]["run_id"]);
    let models: Vec<&Value> = [done_a, done_b]
        .into_iter()
        .map(|d| &d["model"])
        .filter(|m| !m.is_null())
        .collect();
    assert_eq!(models, vec!["shared@1"], "{done_a}\n{done_b}");
    assert_eq!(registered_models(&p, &url), vec!["shared@1"]);
    let shown = p.run(&["models", "show", "best", "--store", &url, "--json"]);
    let shown = &shown.expect_code(0).json_lines()[0];
    assert_eq!(shown["id"], "shared@1");
    let best_accuracy = done_a["best"]["val_accuracy"].as_f64().unwrap();
    let best_of_trials = replay
        .finished
        .iter()
        .filter_map(|t| t.score)
        .fold(0.0, f64::max);
    assert!((best_accuracy - best_of_trials).abs() < 1e-6);
}

#[test]
fn a_worker_killed_mid_trial_has_its_trial_run_again_after_its_lease() {
    let Some((cluster, url, p, space)) =
        setup("a_worker_killed_mid_trial_has_its_trial_run_again_after_its_lease")
    else {
        return;
    };
    let mut doomed = worker(
        &p,
        "runs-doomed",
        &fresh_study(&url, &space, "lease", "4", &["--lease", "3s"]),
    );
    // SIGKILL once a trial has started and trained an epoch: it can write nothing more.
    wait_for(
        &cluster,
        "tune",
        "lease",
        Duration::from_secs(120),
        "a trial's epoch",
        |e| e.iter().any(|e| matches!(e, JournalEvent::Epoch { .. })),
    );
    doomed.kill().unwrap();
    doomed.wait().unwrap();
    let before = Replay::of(&events(&cluster, "tune", "lease"));
    let killed: Vec<u32> = before.open.iter().map(|t| t.trial).collect();
    assert_eq!(killed.len(), 1, "one trial was running: {before:?}");
    let killed = killed[0];

    let rescuer = worker(
        &p,
        "runs-rescuer",
        &[
            "--store", &url, "--study", "lease", "--resume", "--trials", "4", "--alias", "best",
            "--lease", "3s",
        ],
    );
    let (code, lines, err) = finish(&p, "runs-rescuer", rescuer, Duration::from_secs(400));
    assert_eq!(code, 0, "{err}");
    assert!(
        trials_started(&lines).contains(&u64::from(killed)),
        "the killed worker's trial ran again"
    );

    let events = events(&cluster, "tune", "lease");
    let replay = Replay::of(&events);
    assert!(replay.interrupted.is_empty(), "{replay:?}");
    assert_eq!(replay.finished.len(), 4, "the study finished");
    let starts = starts(&events);
    assert_eq!(starts[&killed], 2, "{starts:?}");
    assert!(
        starts.iter().all(|(t, &n)| *t == killed || n == 1),
        "only the killed trial ran twice: {starts:?}"
    );
    let rerun = replay.finished.iter().find(|t| t.trial == killed).unwrap();
    assert_eq!(
        rerun.values, before.open[0].values,
        "rerun with its settings"
    );
    assert_ne!(rerun.run_id, before.open[0].run_id, "a new run record");
    let claims = cluster.psql(
        "tune",
        &[("t", &killed.to_string())],
        "SELECT claims FROM pismo_trials WHERE study = 'lease' AND trial = :'t';",
    );
    assert_eq!(claims.trim(), "2");
    // The rerun started only once the lease had run out: at least 3 s after the killed
    // worker's last word about the trial, by the database's own clock.
    let gap = cluster.psql(
        "tune",
        &[("t", &killed.to_string())],
        "WITH t AS (SELECT seq, at, event::jsonb AS e FROM pismo_study_events
                     WHERE study = 'lease' AND (event::jsonb->>'trial')::int = :'t'),
              rerun AS (SELECT max(seq) AS seq FROM t WHERE e->>'event' = 'started')
         SELECT extract(epoch FROM (SELECT at FROM t WHERE seq = (SELECT seq FROM rerun))
                                 - (SELECT max(at) FROM t WHERE seq < (SELECT seq FROM rerun)));",
    );
    let gap: f64 = gap.trim().parse().expect("seconds");
    assert!(
        gap >= 3.0,
        "the rerun started {gap} s after the killed worker's last event"
    );
    assert_eq!(done(&lines)["model"], "lease@1");
    assert_eq!(registered_models(&p, &url), vec!["lease@1"]);
}

/// A study name that exists is refused without --resume; a missing one with it; `--lease`
/// outside a database is a usage error.
#[test]
fn shared_study_flags_are_checked() {
    let Some((_cluster, url, p, space)) = setup("shared_study_flags_are_checked") else {
        return;
    };
    let out = p.run(&[
        "tune", "--store", &url, "--study", "nope", "--resume", "--trials", "1",
    ]);
    out.expect_code(1);
    assert!(out.stderr.contains("no study `nope`"), "{}", out.stderr);
    let out = p.run(&["tune", "--study", "f", "--trials", "1", "--lease", "5s"]);
    out.expect_code(2);
    assert!(out.stderr.contains("--lease applies"), "{}", out.stderr);
    let args = [
        "tune",
        "--store",
        &url,
        "--study",
        "once",
        "--trials",
        "1",
        "--epochs",
        "1",
        "--val-size",
        "55000",
        "--space",
        &space,
    ];
    p.run(&args).expect_code(0);
    let out = p.run(&args);
    out.expect_code(2);
    assert!(out.stderr.contains("study `once` exists"), "{}", out.stderr);
}

/// A worker whose database connection is cut mid-study stops with a clear error, leaving
/// no trial half-ended; a worker that resumes the study finishes it.
#[test]
fn a_lost_connection_stops_the_worker_cleanly_and_a_resume_finishes_the_study() {
    let Some((cluster, url, p, space)) =
        setup("a_lost_connection_stops_the_worker_cleanly_and_a_resume_finishes_the_study")
    else {
        return;
    };
    let cut = worker(
        &p,
        "runs-cut",
        &fresh_study(
            &url,
            &space,
            "cut",
            "4",
            &["--lease", "3s", "--alias", "best"],
        ),
    );
    wait_for(
        &cluster,
        "tune",
        "cut",
        Duration::from_secs(120),
        "a trial's epoch",
        |e| e.iter().any(|e| matches!(e, JournalEvent::Epoch { .. })),
    );
    assert!(cluster.kill_connections("tune") >= 1);
    let (code, _, err) = finish(&p, "runs-cut", cut, Duration::from_secs(120));
    assert_eq!(code, 1, "{err}");
    let last = err
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    assert!(
        last.starts_with("error: ") && last.contains("study `cut`"),
        "one clear line naming the study: {err}"
    );
    let before = Replay::of(&events(&cluster, "tune", "cut"));
    assert!(before.finished.len() < 4);
    assert!(registered_models(&p, &url).is_empty(), "nothing registered");

    let resumed = worker(
        &p,
        "runs-resumed",
        &[
            "--store", &url, "--study", "cut", "--resume", "--trials", "4", "--alias", "best",
        ],
    );
    let (code, lines, err) = finish(&p, "runs-resumed", resumed, Duration::from_secs(400));
    assert_eq!(code, 0, "{err}");
    let after = Replay::of(&events(&cluster, "tune", "cut"));
    assert!(after.interrupted.is_empty(), "{after:?}");
    assert_eq!(after.finished.len(), 4);
    let ended: BTreeSet<u32> = after.finished.iter().map(|t| t.trial).collect();
    assert_eq!(ended, (0..4).collect(), "each trial ended once");
    assert_eq!(done(&lines)["model"], "cut@1");
}

/// A `pismo serve` request with a JSON body (or none); returns the status code and the body.
fn call(addr: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let answer = crate::serve::request(addr, &head, body.as_bytes());
    let status = answer[9..12].parse().expect("a status code");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// A study started from the page of a replica whose store is a database lives in the
/// database: the other replica lists and shows it, its trials' runs are the store's, its best
/// model is registered into the store's registry, and `pismo tune` workers could join it.
/// Nothing is written to a local folder.
#[test]
fn a_study_started_from_a_replica_lives_in_the_store() {
    let Some(cluster) = postgres_or_skip("a_study_started_from_a_replica…") else {
        return;
    };
    let Some(mnist) = full_mnist() else {
        return;
    };
    let url = cluster.create_database("webtune");
    let p = Pismo::new().with_data(mnist);
    p.run(&["store", "migrate", "--store", &url]).expect_code(0);
    let one = p.serve("127.0.0.1:0", &["--store", &url]);
    let two = p.serve("127.0.0.1:0", &["--store", &url]);
    let body = format!(
        r#"{{"study": "webtune", "trials": 2, "epochs": 2, "val_size": 50000, "space": {TINY_SPACE}}}"#
    );
    let (status, started) = call(one.addr(), "POST", "/api/tune", &body);
    assert_eq!(status, 202, "{started}");

    let deadline = Instant::now() + Duration::from_secs(300);
    let state = loop {
        let (status, state) = call(two.addr(), "GET", "/api/studies/webtune", "");
        assert_eq!(status, 200, "{state}");
        let ended = state["trials"]
            .as_array()
            .is_some_and(|t| t.len() == 2 && t.iter().all(|t| t["ended"].is_number()));
        if ended && state["running"] == false {
            break state;
        }
        assert!(Instant::now() < deadline, "the study never ended: {state}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        state["best"]["val_accuracy"].as_f64().unwrap() > 0.5,
        "{state}"
    );
    let (_, listed) = call(two.addr(), "GET", "/api/studies", "");
    assert_eq!(listed[0]["study"], "webtune", "{listed}");
    assert_eq!(listed[0]["trials"], 2, "{listed}");
    assert_eq!(starts(&events(&cluster, "webtune", "webtune")).len(), 2);

    // Its trials' runs are in the store, tagged with the study.
    let runs = p.run(&["runs", "list", "--store", &url, "--json"]);
    runs.expect_code(0);
    let tagged = runs
        .json_lines()
        .iter()
        .filter(|r| r["tags"]["study"] == "webtune")
        .count();
    assert_eq!(tagged, 2, "{}", runs.stdout);

    // "Use best" on the other replica registers it into the store.
    let (status, used) = call(two.addr(), "POST", "/api/studies/webtune/use", "{}");
    assert_eq!(status, 201, "{used}");
    let model = used["model"].as_str().unwrap();
    let shown = p.run(&["models", "show", model, "--store", &url]);
    shown.expect_code(0);
    // The study is a shared one: a `pismo tune` worker finds it, with nothing left to do.
    let joined = p.run(&[
        "tune", "--store", &url, "--study", "webtune", "--resume", "--trials", "2", "--json",
    ]);
    joined.expect_code(0);
    assert_eq!(starts(&events(&cluster, "webtune", "webtune")).len(), 2);
    assert!(
        !p.runs().join("studies").exists(),
        "a study journal was written to the local folder"
    );
}
