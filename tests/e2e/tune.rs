//! `pismo tune` as users run it: the real binary on real MNIST, its journal read back with
//! the core's own replay, its trials as run records, its best model in the registry.
//!
//! Trials are kept small (tiny hidden layers, 2–3 epochs, most of MNIST held out for
//! validation) so that a study of several trials takes seconds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use pismo_core::hyper::Hyper;
use pismo_storage::runs::{RunInfo, Runs, Status};
use pismo_storage::studies::journal::{FileJournal, JournalEvent, Replay, TrialState};
use pismo_tests::{full_mnist, Output, Pismo};
use serde_json::Value;

/// Small networks, a learning rate and a batch size to choose.
const TINY_SPACE: &str = r#"{"hidden_size": {"choice": [16, 32]},
    "initial_lr": {"log": [0.01, 0.3]}, "batch_size": {"choice": [32, 64]}}"#;

/// A sandbox on the full MNIST with `space` as `space.json`, or `None` (skipped, loudly) if
/// MNIST is missing and not required.
fn sandbox(space: &str) -> Option<(Pismo, String)> {
    let data = full_mnist()?;
    let p = Pismo::new().with_data(data);
    let path = p.home.join("space.json");
    std::fs::write(&path, space).unwrap();
    Some((p, path.display().to_string()))
}

/// The events of a study journal, read without taking its lock (a study may be running).
/// A torn last line (a write cut by a kill) is left out, as the journal does on opening.
fn journal_events(runs: &Path, study: &str) -> Vec<JournalEvent> {
    let path = runs.join("studies").join(format!("{study}.jsonl"));
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    lines
        .iter()
        .enumerate()
        .filter(|(i, _)| complete || i + 1 < lines.len())
        .map(|(_, l)| serde_json::from_str(l).expect("a whole journal line parses"))
        .collect()
}

/// The run records of `study`'s trials, by trial number.
fn trial_runs(runs: &Path, study: &str) -> BTreeMap<u32, Vec<RunInfo>> {
    let mut by_trial: BTreeMap<u32, Vec<RunInfo>> = BTreeMap::new();
    for info in Runs::open(runs).list().unwrap() {
        if info.tags.get("study").map(String::as_str) == Some(study) {
            let trial = info.tags["trial"].parse().expect("trial tag is a number");
            by_trial.entry(trial).or_default().push(info);
        }
    }
    by_trial
}

fn json_events<'a>(out: &'a [Value], event: &str) -> Vec<&'a Value> {
    out.iter().filter(|v| v["event"] == event).collect()
}

fn tune(p: &Pismo, args: &[&str]) -> Output {
    let started = Instant::now();
    let out = p.run(&[&["tune"], args].concat());
    eprintln!(
        "pismo tune {} took {:.1}s\n{}",
        args.join(" "),
        started.elapsed().as_secs_f64(),
        out.stderr
    );
    out
}

/// A study's first trial is the run `pismo train` would make (its defaults) when the space
/// holds those settings; TPE's points follow.
#[test]
fn the_first_trial_is_the_study_s_own_settings_when_the_space_holds_them() {
    let space = r#"{"hidden_size": {"choice": [16, 128]}, "dropout_rate": {"uniform": [0.0, 0.6]},
        "batch_size": {"choice": [32, 64, 128]}}"#;
    let Some((p, space)) = sandbox(space) else {
        return;
    };
    let args = ["--trials", "2", "--epochs", "1", "--val-size", "57000"];
    let out = tune(
        &p,
        &[&args[..], &["--space", &space, "--study", "s"]].concat(),
    );
    out.expect_code(0);
    let replay = Replay::of(&journal_events(&p.runs(), "s"));
    let first = replay
        .finished
        .iter()
        .find(|t| t.trial == 0)
        .expect("trial 0");
    let defaults = Hyper::DEFAULT;
    assert_eq!(first.values["hidden_size"], f64::from(defaults.hidden_size));
    assert_eq!(first.values["dropout_rate"] as f32, defaults.dropout_rate);
    assert_eq!(first.values["batch_size"], f64::from(defaults.batch_size));
}

#[test]
fn a_study_runs_tagged_trials_journals_them_and_registers_the_best() {
    let Some((p, space)) = sandbox(TINY_SPACE) else {
        return;
    };
    let out = tune(
        &p,
        &[
            "--trials",
            "5",
            "--epochs",
            "3",
            "--val-size",
            "55000",
            "--space",
            &space,
            "--study",
            "s1",
            "--alias",
            "best",
            "--json",
        ],
    );
    out.expect_code(0);
    let lines = out.json_lines();
    assert_eq!(
        json_events(&lines, "trial_started").len(),
        5,
        "{}",
        out.stdout
    );
    let done = json_events(&lines, "done");
    assert_eq!(done.len(), 1);
    let done = done[0];
    assert_eq!(done["trials"], 5);
    assert_eq!(done["model"], "s1@1");
    assert_eq!(lines.last().unwrap()["event"], "done", "done comes last");

    // The journal replays to the five trials, each once, each with its run record.
    let replay = Replay::of(&journal_events(&p.runs(), "s1"));
    assert!(replay.interrupted.is_empty());
    assert_eq!(replay.next_trial, 5);
    let trials: BTreeSet<u32> = replay.finished.iter().map(|t| t.trial).collect();
    assert_eq!(trials, (0..5).collect());
    let runs = trial_runs(&p.runs(), "s1");
    assert_eq!(runs.keys().copied().collect::<BTreeSet<_>>(), trials);
    for t in &replay.finished {
        let [run] = runs[&t.trial].as_slice() else {
            panic!("trial {} has {} run records", t.trial, runs[&t.trial].len());
        };
        assert_eq!(run.run_id, t.run_id);
        assert_eq!(run.name, "s1");
        // The trial's settings are the run's.
        assert_eq!(f64::from(run.params.hidden_size), t.values["hidden_size"]);
        assert_eq!(f64::from(run.params.batch_size), t.values["batch_size"]);
        assert_eq!(run.params.initial_lr, t.values["initial_lr"] as f32);
        // A pruned trial stopped before its last epoch; a complete one trained them all.
        match t.state {
            TrialState::Pruned => {
                assert!(t.epochs < 3, "trial {}: {} epochs", t.trial, t.epochs);
                assert_eq!(run.status, Status::Stopped);
            }
            TrialState::Complete => {
                assert_eq!(t.epochs, 3);
                assert_eq!(run.status, Status::Finished);
            }
            TrialState::Failed => panic!("trial {} failed", t.trial),
        }
        assert_eq!(t.curve.len() as u32, t.epochs);
    }
    // The first trial at a rung always goes on, so trial 0 completes.
    assert_eq!(replay.finished[0].state, TrialState::Complete);

    // The best is the highest validation accuracy of all trials; its run points at the model.
    let best_score = replay
        .finished
        .iter()
        .filter_map(|t| t.score)
        .fold(f64::MIN, f64::max);
    let best_run = done["best"]["run_id"].as_str().unwrap();
    assert_eq!(done["best"]["val_accuracy"].as_f64().unwrap(), best_score);
    let info = Runs::open(p.runs()).info(best_run).unwrap();
    assert_eq!(info.model.as_deref(), Some("s1@1"));
    let registered: Vec<String> = Runs::open(p.runs())
        .list()
        .unwrap()
        .into_iter()
        .filter_map(|r| r.model)
        .collect();
    assert_eq!(registered, ["s1@1"], "only the best trial is registered");

    // `pismo eval` reads it through the alias; `pismo runs` shows the study and trial.
    let eval = p.run(&["eval", "--model", "best", "--json"]);
    eval.expect_code(0);
    assert!(eval.stdout.contains("s1@1"), "{}", eval.stdout);
    let list = p.run(&["runs", "list"]);
    list.expect_code(0);
    assert_eq!(
        list.stdout.matches("study=s1 trial=").count(),
        5,
        "{}",
        list.stdout
    );
    let show = p.run(&["runs", "show", best_run]);
    assert!(
        show.stdout.contains("tags      study=s1 trial="),
        "{}",
        show.stdout
    );

    // The printed `pismo train` command trains the best trial again, to the same score.
    let command = done["train_command"].as_str().unwrap();
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    assert!(args.starts_with(&["train", "--name", "s1"]), "{command}");
    let again = p.run(&[&args[..], &["--json"]].concat());
    again.expect_code(0);
    let trained = again.json_lines().pop().unwrap();
    assert_eq!(
        trained["metrics"]["val_accuracy"].as_f64().unwrap() as f32,
        best_score as f32,
        "{command}"
    );

    // A study name in use needs --resume.
    let again = tune(&p, &["--trials", "1", "--study", "s1"]);
    again.expect_code(2);
    assert!(again.stderr.contains("--resume"), "{}", again.stderr);
}

/// The number in the trainer's header line, "…, N thread(s), …", of each of `study`'s runs.
fn trial_threads(p: &Pismo, study: &str) -> Vec<usize> {
    let runs = Runs::open(p.runs());
    trial_runs(&p.runs(), study)
        .values()
        .flatten()
        .map(|info| {
            let log = runs.log(&info.run_id).unwrap();
            let header = log
                .lines()
                .find(|l| l.starts_with("training 784-"))
                .unwrap_or_else(|| panic!("no header in {log}"));
            let words: Vec<&str> = header.split_whitespace().collect();
            let at = words
                .iter()
                .position(|w| w.starts_with("thread"))
                .unwrap_or_else(|| panic!("no thread count in {header}"));
            words[at - 1].parse().unwrap()
        })
        .collect()
}

#[test]
fn parallel_trials_share_the_cores_without_oversubscribing() {
    // 256 hidden units can use many threads, so a low count comes from the study, not the net.
    let Some((p, space)) =
        sandbox(r#"{"hidden_size": {"choice": [256]}, "initial_lr": {"log": [0.01, 0.1]}}"#)
    else {
        return;
    };
    let cores = std::thread::available_parallelism().unwrap().get();
    let common = ["--epochs", "2", "--val-size", "57000", "--space", &space];
    tune(
        &p,
        &[&["--trials", "1", "--study", "one"], &common[..]].concat(),
    )
    .expect_code(0);
    // (A net of 256 units splits into at most 16 blocks of 16, one per thread.)
    let all = cores.min(16);
    assert_eq!(trial_threads(&p, "one"), [all], "one trial uses every core");
    if cores < 2 {
        // One core cannot run two trials without oversubscribing it: refused.
        let out = tune(
            &p,
            &[&["--trials", "2", "--parallel", "2"], &common[..]].concat(),
        );
        out.expect_code(2);
        assert!(out.stderr.contains("cores"), "{}", out.stderr);
        return;
    }
    let out = tune(
        &p,
        &[
            &["--trials", "4", "--parallel", "2", "--study", "two"],
            &common[..],
        ]
        .concat(),
    );
    out.expect_code(0);
    let threads = trial_threads(&p, "two");
    assert_eq!(threads.len(), 4);
    for n in threads {
        assert_eq!(
            n,
            all / 2,
            "each of 2 trials gets half of the {cores} cores"
        );
    }
    // The trials did run side by side: some two overlapped in time.
    let infos: Vec<RunInfo> = trial_runs(&p.runs(), "two")
        .into_values()
        .flatten()
        .collect();
    let overlap = infos.iter().any(|a| {
        infos.iter().any(|b| {
            a.run_id != b.run_id
                && a.start_unix_ms < b.end_unix_ms.unwrap()
                && b.start_unix_ms < a.end_unix_ms.unwrap()
        })
    });
    assert!(overlap, "no two trials ran at the same time");
}

#[test]
fn a_study_killed_mid_trial_resumes_without_repeating_finished_trials() {
    // Slower trials than elsewhere, so the kill lands while one is training.
    let Some((p, space)) =
        sandbox(r#"{"hidden_size": {"choice": [64, 128]}, "initial_lr": {"log": [0.01, 0.1]}}"#)
    else {
        return;
    };
    const K: u32 = 6;
    let args = [
        "tune",
        "--trials",
        "6",
        "--epochs",
        "2",
        "--val-size",
        "45000",
        "--space",
        &space,
        "--study",
        "k",
        "--json",
    ];
    let mut child = p
        .command(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let before = loop {
        let replay = Replay::of(&journal_events(&p.runs(), "k"));
        if !replay.finished.is_empty() && !replay.interrupted.is_empty() {
            // SIGKILL: no chance to write anything more.
            child.kill().unwrap();
            child.wait().unwrap();
            break Replay::of(&journal_events(&p.runs(), "k"));
        }
        let done = child.try_wait().unwrap();
        assert!(done.is_none(), "the study ended before it could be killed");
        assert!(Instant::now() < deadline, "no trial finished in time");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(!before.finished.is_empty() && !before.interrupted.is_empty());
    assert!((before.finished.len() as u32) < K);
    let interrupted: Vec<u32> = before.interrupted.iter().map(|t| t.0).collect();
    let finished: Vec<u32> = before.finished.iter().map(|t| t.trial).collect();

    let out = tune(&p, &["--study", "k", "--resume", "--trials", "6", "--json"]);
    out.expect_code(0);
    let lines = out.json_lines();
    let started: Vec<u64> = json_events(&lines, "trial_started")
        .iter()
        .map(|v| v["trial"].as_u64().unwrap())
        .collect();
    // The interrupted trial runs first, from the start, with its settings.
    assert_eq!(started[0], u64::from(interrupted[0]), "{started:?}");
    for t in &finished {
        assert!(!started.contains(&u64::from(*t)), "trial {t} ran again");
    }

    let events = journal_events(&p.runs(), "k");
    let after = Replay::of(&events);
    assert!(after.interrupted.is_empty());
    assert_eq!(
        after.finished.len() as u32,
        K,
        "the study ends with {K} trials"
    );
    let numbers: BTreeSet<u32> = after.finished.iter().map(|t| t.trial).collect();
    assert_eq!(numbers.len() as u32, K, "each trial ended once");
    for t in &before.finished {
        let again = after.finished.iter().find(|a| a.trial == t.trial).unwrap();
        assert_eq!(again, t, "a finished trial is kept as it was");
    }
    for (t, values) in &before.interrupted {
        let rerun = after.finished.iter().find(|a| a.trial == *t).unwrap();
        assert_eq!(&rerun.values, values, "trial {t} reran with its settings");
        // Its first epoch's score is counted once: the killed attempt's epochs are dropped.
        assert_eq!(rerun.curve[0].0, 1);
        assert!(rerun.curve.windows(2).all(|w| w[0].0 < w[1].0));
    }
    // The killed attempt's run record reads as failed; the rerun has its own.
    let runs = trial_runs(&p.runs(), "k");
    let attempts = &runs[&interrupted[0]];
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(
        attempts
            .iter()
            .filter(|r| r.status == Status::Failed)
            .count(),
        1
    );
    // The time of both sessions adds up.
    assert!(after.elapsed > before.elapsed);

    // A finished study registers its best later: no trial runs, the best trial's model is kept.
    let out = tune(
        &p,
        &[
            "--study", "k", "--resume", "--trials", "6", "--alias", "late", "--json",
        ],
    );
    out.expect_code(0);
    let lines = out.json_lines();
    assert!(json_events(&lines, "trial_started").is_empty());
    let done = json_events(&lines, "done")[0];
    assert_eq!(done["model"], "k@1");
    let best_run = done["best"]["run_id"].as_str().unwrap();
    let best = after
        .finished
        .iter()
        .find(|t| t.run_id == best_run)
        .unwrap();
    let top = after
        .finished
        .iter()
        .filter_map(|t| t.score)
        .fold(f64::MIN, f64::max);
    assert_eq!(best.score, Some(top));
    assert_eq!(
        Runs::open(p.runs())
            .info(best_run)
            .unwrap()
            .model
            .as_deref(),
        Some("k@1")
    );
}

#[test]
fn the_same_seed_gives_the_same_trials() {
    let study = |seed: &str| -> Option<Vec<(BTreeMap<String, f64>, f64)>> {
        let (p, space) = sandbox(TINY_SPACE)?;
        let out = tune(
            &p,
            &[
                "--trials",
                "3",
                "--epochs",
                "2",
                "--val-size",
                "55000",
                "--seed",
                seed,
                "--space",
                &space,
                "--study",
                "same",
            ],
        );
        out.expect_code(0);
        let finished = Replay::of(&journal_events(&p.runs(), "same")).finished;
        Some(
            finished
                .into_iter()
                .map(|t| (t.values, t.score.unwrap()))
                .collect(),
        )
    };
    let Some(first) = study("5") else {
        return;
    };
    let second = study("5").unwrap();
    assert_eq!(first.len(), 3);
    // The same settings, and (training being deterministic) the same scores.
    assert_eq!(first, second);
    let other = study("6").unwrap();
    assert_ne!(first[0].0, other[0].0, "another seed draws other settings");
}

#[test]
fn a_budget_ends_the_study_and_leaves_the_running_trial_to_resume() {
    let Some((p, space)) = sandbox(TINY_SPACE) else {
        return;
    };
    // No --trials: only the budget can end this study.
    let out = tune(
        &p,
        &[
            "--budget",
            "3s",
            "--epochs",
            "3",
            "--val-size",
            "55000",
            "--space",
            &space,
            "--study",
            "b",
            "--json",
        ],
    );
    out.expect_code(0);
    let replay = Replay::of(&journal_events(&p.runs(), "b"));
    assert!(!replay.finished.is_empty(), "no trial in 3s");
    let last = replay
        .finished
        .iter()
        .map(|t| t.elapsed)
        .fold(0.0, f64::max);
    // A trial that passes the budget stops within a batch (it then stays unfinished); one
    // that ends its last epoch just before may still close (its test accuracy) after it.
    assert!(last <= 5.0, "a trial ended at {last}s of a 3s budget");
    let done = out.json_lines().pop().unwrap();
    assert_eq!(done["event"], "done");
    assert_eq!(done["cut_short"], !replay.interrupted.is_empty());
    // The study's own clock (training, not loading MNIST) stops at the budget.
    let elapsed = done["elapsed"].as_f64().unwrap();
    assert!((3.0..6.0).contains(&elapsed), "the study ran {elapsed}s");
}

#[test]
fn ctrl_c_ends_the_study_and_registers_the_best_so_far() {
    let Some((p, space)) = sandbox(TINY_SPACE) else {
        return;
    };
    let mut child = p
        .command(&[
            "tune",
            "--trials",
            "1000",
            "--epochs",
            "3",
            "--val-size",
            "55000",
            "--space",
            &space,
            "--study",
            "c",
            "--alias",
            "best",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Replay::of(&journal_events(&p.runs(), "c")).finished.len() < 2 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the study ended by itself"
        );
        assert!(Instant::now() < deadline, "no trial finished in time");
        std::thread::sleep(Duration::from_millis(10));
    }
    // SIGINT, as Ctrl-C sends it, through the real `kill`.
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let done: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(done["event"], "done", "{stdout}");
    assert_eq!(done["model"], "c@1");
    let replay = Replay::of(&journal_events(&p.runs(), "c"));
    assert!(replay.finished.len() < 1000);
    assert_eq!(done["trials"], replay.finished.len());
    // The trial Ctrl-C stopped is unfinished: a resume runs it again.
    assert_eq!(done["cut_short"], !replay.interrupted.is_empty());
    let best_run = done["best"]["run_id"].as_str().unwrap();
    assert_eq!(
        Runs::open(p.runs())
            .info(best_run)
            .unwrap()
            .model
            .as_deref(),
        Some("c@1")
    );
}

/// The last line of stderr, which names the problem.
fn error_line(out: &Output) -> &str {
    let line = out.stderr.lines().last().unwrap_or_default();
    assert!(line.starts_with("error: "), "{}", out.stderr);
    line
}

#[test]
fn bad_space_files_and_flags_are_usage_errors_that_say_why() {
    // None of these gets as far as loading MNIST: the sandbox has none.
    let p = Pismo::new();
    let write = |name: &str, text: &str| -> PathBuf {
        let path = p.home.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let cases: [(&str, &str, &str); 5] = [
        ("not-json.json", "hidden_size: 64", "not valid JSON"),
        (
            "unknown.json",
            r#"{"learning_rat": {"log": [0.01, 0.1]}}"#,
            "`learning_rat` is not a setting",
        ),
        (
            "range.json",
            r#"{"dropout_rate": {"uniform": [0.1, 1.5]}}"#,
            "outside its range",
        ),
        (
            "reversed.json",
            r#"{"initial_lr": {"log": [0.1, 0.01]}}"#,
            "low < high",
        ),
        ("empty.json", "{}", "names no setting"),
    ];
    for (name, text, why) in cases {
        let path = write(name, text);
        let out = p.run(&["tune", "--trials", "2", "--space", path.to_str().unwrap()]);
        out.expect_code(2);
        let line = error_line(&out);
        assert!(line.contains(name) && line.contains(why), "{name}: {line}");
    }
    let missing = p.run(&["tune", "--trials", "2", "--space", "nowhere.json"]);
    missing.expect_code(2);
    assert!(error_line(&missing).contains("nowhere.json"));

    for (args, why) in [
        (&["--budget", "10x"][..], "invalid --budget `10x`"),
        (&["--budget", "0s"][..], "too short"),
        (&["--trials", "0"][..], "--trials must be at least 1"),
        (
            &["--trials", "2", "--parallel", "0"][..],
            "--parallel must be at least 1",
        ),
        (&["--trials", "2", "--parallel", "100000"][..], "cores"),
        (&["--trials", "2", "--resume"][..], "--resume needs --study"),
        (&[][..], "give --budget"),
        (&["--trials", "2", "--study", "Bad Name"][..], "--study"),
        (&["--trials", "2", "--alias", "42"][..], "alias"),
        (&["--trials", "2", "--epochs", "0"][..], "epochs"),
    ] {
        let out = p.run(&[&["tune"], args].concat());
        out.expect_code(2);
        let line = error_line(&out);
        assert!(line.contains(why), "{args:?}: {line}");
    }
    // Nothing was started: no journal.
    assert!(!p.runs().join("studies").exists());

    // Resuming a study that does not exist, or one another `pismo tune` holds, fails.
    let out = p.run(&["tune", "--trials", "2", "--study", "ghost", "--resume"]);
    out.expect_code(1);
    assert!(error_line(&out).contains("no study `ghost`"));
    let _held = FileJournal::open(&p.runs().join("studies"), "held").unwrap();
    let out = p.run(&["tune", "--trials", "2", "--study", "held", "--resume"]);
    out.expect_code(1);
    assert!(error_line(&out).contains("in use by another `pismo tune`"));
}
