//! The on-disk stores through the real `pismo` binary (issue 11 rows 7–10): a temp file left
//! by a `pismo` killed with SIGKILL goes the next time the registry is opened, a model file
//! renamed by hand is refused by `predict` and `models alias`, a directory named
//! `aliases.lock` is an error and not a hang, and a run whose pid was reused reads as failed.

use std::io::BufRead;
use std::process::Stdio;
use std::time::{Duration, Instant};

use pismo_tests::{workspace_root, Pismo};

/// Start time of process `pid`, field 22 of `/proc/PID/stat`.
fn proc_start(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    let rest = stat.rsplit_once(") ").expect("stat fields").1;
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

/// Issue 11 row 7: a `pismo` killed with SIGKILL while it registered left its hidden temp
/// file (up to 407 KB) in the registry for ever. The writer is a real `pismo serve`, killed
/// with SIGKILL; the temp file carries its pid and start time as pismo names them. The next
/// `pismo models list` removes it and keeps the temp file of a live writer.
#[cfg(target_os = "linux")]
#[test]
fn issue11_row7_a_temp_file_of_a_pismo_killed_with_sigkill_is_removed() {
    let p = Pismo::new();
    let registry = p.registry();
    std::fs::create_dir_all(&registry).unwrap();
    std::fs::copy(
        workspace_root().join("models/mnist.v1.pismo"),
        registry.join("mnist.v1.pismo"),
    )
    .unwrap();
    let mut server = p
        .command(&["serve", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start pismo serve");
    let mut url = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    assert!(url.starts_with("http://"), "{url}");
    let (pid, start) = (server.id(), proc_start(server.id()));
    let model = std::fs::read(registry.join("mnist.v1.pismo")).unwrap();
    let dead = registry.join(format!(".mnist.v2.pismo.tmp-{pid}-{start}-0-123456"));
    std::fs::write(&dead, &model).unwrap();
    let mut sleeper = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let live_pid = sleeper.id();
    let live = registry.join(format!(
        ".mnist.v3.pismo.tmp-{live_pid}-{}-0-1",
        proc_start(live_pid)
    ));
    std::fs::write(&live, &model).unwrap();

    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    let out = p.run(&["models", "list"]);
    out.expect_code(0);
    assert!(out.stdout.contains("mnist@1"), "{}", out.stdout);
    assert!(
        !dead.exists(),
        "the killed pismo's temp file is still there"
    );
    assert!(live.exists(), "a live writer's temp file was removed");
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}

/// Issue 11 row 8: `cp models/mnist-int8.v1.pismo reg/mnist.v2.pismo` was listed as corrupt
/// but `predict` used it and `models alias` pointed an alias at it.
#[test]
fn issue11_row8_predict_and_alias_refuse_a_model_file_renamed_by_hand() {
    let p = Pismo::new();
    let registry = p.registry();
    std::fs::create_dir_all(&registry).unwrap();
    let shipped = workspace_root().join("models");
    std::fs::copy(
        shipped.join("mnist.v1.pismo"),
        registry.join("mnist.v1.pismo"),
    )
    .unwrap();
    let copy = registry.join("mnist.v2.pismo");
    std::fs::copy(shipped.join("mnist-int8.v1.pismo"), &copy).unwrap();
    let png = workspace_root().join("samples/0-zero.png");
    let png = png.to_str().unwrap();

    for args in [
        &["predict", "--model", "mnist@2", png][..],
        &["predict", "--model", "mnist", png][..],
        &["models", "alias", "mnist@2", "best"][..],
    ] {
        let out = p.run(args);
        out.expect_code(1);
        let err = out.stderr.trim();
        assert!(
            err.contains(&copy.display().to_string()) && err.contains("holds model mnist-int8@1"),
            "{args:?}: {err}"
        );
    }
    assert!(!registry.join("aliases.json").exists());
    p.run(&["predict", "--model", "mnist@1", png])
        .expect_code(0);
}

/// Issue 11 row 9: `mkdir models/aliases.lock` made `pismo models alias` hang.
#[test]
fn issue11_row9_models_alias_with_a_directory_as_lock_fails_at_once() {
    let p = Pismo::new();
    let registry = p.registry();
    std::fs::create_dir_all(registry.join("aliases.lock")).unwrap();
    std::fs::copy(
        workspace_root().join("models/mnist.v1.pismo"),
        registry.join("mnist.v1.pismo"),
    )
    .unwrap();
    let mut child = p
        .command(&["models", "alias", "mnist@1", "best"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("pismo models alias still waits after 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("aliases.lock") && err.contains("is a directory"),
        "{err}"
    );
}

/// Issue 11 row 10: a dead run whose pid now belongs to another process showed as
/// `running` for ever in `pismo runs list`.
#[cfg(target_os = "linux")]
#[test]
fn issue11_row10_runs_list_shows_a_run_whose_pid_was_reused_as_failed() {
    let p = Pismo::new();
    let mut other = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let (pid, start) = (other.id(), proc_start(other.id()));
    let id = "20261201-120000-abcdef";
    let dir = p.runs().join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let record = |pid_start_time: u64| {
        let info = serde_json::json!({
            "run_id": id, "name": "mnist", "status": "running",
            "start_unix_ms": 1_796_126_400_000_u64, "end_unix_ms": null,
            "params": {}, "model": null, "error": null, "dataset": "d",
            "pid": pid, "pid_start_time": pid_start_time,
        });
        std::fs::write(dir.join("run.json"), info.to_string()).unwrap();
        let out = p.run(&["runs", "list", "--json"]);
        out.expect_code(0);
        out.json_lines()[0]["status"].as_str().unwrap().to_owned()
    };
    // The run's process started at another time than the one that has its pid now.
    assert_eq!(record(start + 1), "failed");
    assert_eq!(record(start), "running");
    other.kill().unwrap();
    other.wait().unwrap();
}
