//! `pismo runs export --mlflow` and `pismo train --mlflow` against a real `mlflow server`
//! (pip, pinned in `tests/mlflow/requirements.txt`; sqlite store and artifacts in a temp
//! folder), read back with MLflow's own Python client (`tests/mlflow/read_back.py`): params,
//! tags, every metric's history, the log and model artifacts byte for byte, the registered
//! versions and aliases; a second export makes no second run; MLflow's 4xx, a closed port and
//! a bad URI are clear errors, and training goes on when MLflow is down.
//!
//! Python comes from `PISMO_MLFLOW_PYTHON` (a venv with the pinned packages; `.ci/run` makes
//! one in `target/venv-mlflow`). Without it the server tests print SKIPPED and pass, unless
//! `PISMO_REQUIRE_MLFLOW=1` (CI sets it): then they fail and say what is missing.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pismo_core::host::registry::{ModelId, Registry};
use pismo_core::host::runs::Runs;
use pismo_tests::{full_mnist, train_tiny_model, workspace_root, Pismo, TempDir};
use serde_json::Value;

/// How long `mlflow server` may take to answer `/health` (it imports a lot on a busy
/// machine).
const STARTUP: Duration = Duration::from_secs(180);

/// The Python of `PISMO_MLFLOW_PYTHON`, or `None` after a SKIPPED banner (a panic when
/// `PISMO_REQUIRE_MLFLOW=1`).
fn python() -> Option<PathBuf> {
    let python = std::env::var_os("PISMO_MLFLOW_PYTHON").filter(|p| !p.is_empty());
    let missing = match &python {
        None => "PISMO_MLFLOW_PYTHON is not set (a Python with tests/mlflow/requirements.txt \
                 installed, e.g. target/venv-mlflow/bin/python as .ci/run makes it)"
            .to_owned(),
        Some(p) if !Path::new(p).exists() => {
            format!(
                "PISMO_MLFLOW_PYTHON={} does not exist",
                Path::new(p).display()
            )
        }
        Some(p) => return Some(PathBuf::from(p)),
    };
    let required = std::env::var("PISMO_REQUIRE_MLFLOW").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "PISMO_REQUIRE_MLFLOW=1 but the MLflow test cannot run: {missing}"
    );
    eprintln!(
        "\n##########################################################################\n\
         SKIPPED: the MLflow tests against a real mlflow server (tests/e2e/mlflow.rs):\n  \
         {missing}\n\
         ##########################################################################\n"
    );
    None
}

/// A running `mlflow server`, killed when dropped (also when an assert fails) with every
/// process it started (uvicorn's): they share its own process group.
struct Server {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Server {
    /// Starts `mlflow server` on a free port with its store and artifacts in `dir`, and
    /// waits until `/health` answers.
    fn start(python: &Path, dir: &Path) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = dir.join("server.log");
        let out = File::create(&log).expect("server log");
        let child = Command::new(python)
            .args([
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--workers",
                "1",
            ])
            .args(["--port", &port.to_string()])
            .arg("--backend-store-uri")
            .arg(format!("sqlite:///{}", dir.join("mlflow.db").display()))
            .arg("--artifacts-destination")
            .arg(dir.join("artifacts"))
            // MLflow's job runner (GenAI jobs) is not needed: fewer processes on a busy machine.
            .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
            .process_group(0)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start mlflow server");
        let mut server = Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        let started = Instant::now();
        loop {
            if health(port) {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("mlflow server exited ({status}):\n{}", server.log_text());
            }
            assert!(
                started.elapsed() < STARTUP,
                "mlflow server did not answer /health within {STARTUP:?}:\n{}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The group's id is the server's pid (`process_group(0)`).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `GET /health` on `port` answers 200.
fn health(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let head = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let mut answer = String::new();
    stream.write_all(head.as_bytes()).is_ok()
        && stream.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}

/// What the server holds, as MLflow's Python client reads it (artifacts downloaded under
/// `dir`).
fn read_back(python: &Path, server: &Server, experiment: &str, dir: &Path) -> Value {
    let out = Command::new(python)
        .arg(workspace_root().join("tests/mlflow/read_back.py"))
        .args([&server.url, experiment])
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run read_back.py");
    assert!(
        out.status.success(),
        "read_back.py failed: {}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
    serde_json::from_slice(&out.stdout).expect("read_back.py prints JSON")
}

/// The read-back run tagged with the pismo run `run_id` (exactly one).
fn mlflow_run<'a>(back: &'a Value, run_id: &str) -> &'a Value {
    let runs: Vec<&Value> = back["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["tags"]["pismo.run_id"] == run_id)
        .collect();
    assert_eq!(runs.len(), 1, "MLflow runs of pismo run {run_id}: {back}");
    runs[0]
}

/// The local file of artifact `path` of a read-back run.
fn artifact(run: &Value, path: &str) -> Vec<u8> {
    let found = run["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["path"] == path)
        .unwrap_or_else(|| panic!("no artifact {path} in {}", run["artifacts"]));
    std::fs::read(found["file"].as_str().unwrap()).unwrap()
}

/// Checks one exported run against pismo's record: params, tags, status, every metric's
/// history, the log and model artifacts.
fn check_run(back: &Value, runs: &Runs, registry: &Registry, run_id: &str) {
    let record = runs.get(run_id).unwrap();
    let info = &record.info;
    let run = mlflow_run(back, run_id);
    assert_eq!(run["run_name"], info.name.as_str());
    assert_eq!(run["status"], "FINISHED");
    assert_eq!(run["start_time"], info.start_unix_ms);
    assert_eq!(run["end_time"], info.end_unix_ms.unwrap());
    let params = &run["params"];
    let h = &info.params;
    for (name, value) in [
        ("hidden_size", h.hidden_size.to_string()),
        ("epochs", h.epochs.to_string()),
        ("initial_lr", h.initial_lr.to_string()),
        ("dropout_rate", h.dropout_rate.to_string()),
        ("seed", h.seed.to_string()),
        ("val_size", h.val_size.to_string()),
        ("augment", h.augment.to_string()),
    ] {
        assert_eq!(params[name], value.as_str(), "param {name}: {params}");
    }
    let tags = &run["tags"];
    assert_eq!(tags["pismo.dataset"], info.dataset.as_str());
    assert_eq!(tags["pismo.model"], info.model.as_deref().unwrap());

    // Every metric's history: the same steps, values and timestamps as metrics.jsonl.
    let mut ours: BTreeMap<&str, Vec<(u64, f64, u64)>> = BTreeMap::new();
    for m in &record.metrics {
        ours.entry(&m.name)
            .or_default()
            .push((u64::from(m.step), m.value, m.timestamp));
    }
    let theirs: BTreeMap<&str, Vec<(u64, f64, u64)>> = run["metrics"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(key, history)| {
            let points = history
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p[0].as_u64().unwrap(),
                        p[1].as_f64().unwrap(),
                        p[2].as_u64().unwrap(),
                    )
                })
                .collect();
            (key.as_str(), points)
        })
        .collect();
    for history in ours.values_mut() {
        history.sort_by(|a, b| a.partial_cmp(b).unwrap());
    }
    assert!(ours.contains_key("val_loss") && ours["val_loss"].len() == info.params.epochs as usize);
    assert_eq!(theirs, ours, "metric histories of run {run_id}");

    assert_eq!(
        String::from_utf8(artifact(run, "log.txt")).unwrap(),
        runs.log(run_id).unwrap()
    );
    let id: ModelId = info.model.as_deref().unwrap().parse().unwrap();
    assert_eq!(
        artifact(run, &format!("model/{}", id.file_name())),
        registry.read(&id).unwrap(),
        "the model artifact is the model file"
    );
}

#[test]
fn runs_and_models_reach_a_real_mlflow_server_and_read_back_with_its_client() {
    let Some(python) = python() else { return };
    let home = TempDir::new("mlflow");
    let server = Server::start(&python, home.path());
    let p = Pismo::new();
    let (registry, runs) = (Registry::open(p.registry()), Runs::open(p.runs()));
    assert_eq!(train_tiny_model(&p.registry(), &p.runs()), "tiny@1");
    assert_eq!(train_tiny_model(&p.registry(), &p.runs()), "tiny@2");
    p.run(&["models", "alias", "tiny@2", "best"]).expect_code(0);
    p.run(&["models", "alias", "tiny@1", "first"])
        .expect_code(0);
    let run_of = |model: &str| {
        runs.list()
            .unwrap()
            .into_iter()
            .find(|i| i.model.as_deref() == Some(model))
            .unwrap()
            .run_id
    };
    let ids = [run_of("tiny@1"), run_of("tiny@2")];

    // tiny@2 alone: MLflow would number it 1, so it is refused, saying why.
    let gap = p.run(&["runs", "export", "--mlflow", &server.url, &ids[1]]);
    gap.expect_code(1);
    assert!(
        gap.stderr.contains("would make it version 1")
            && gap.stderr.contains("tiny@1..tiny@1 first"),
        "{}",
        gap.stderr
    );
    // Every run, oldest first: tiny@1's run is made, tiny@2's (made above, unregistered) is
    // completed.
    let out = p.run(&["runs", "export", "--mlflow", &server.url]);
    out.expect_code(0);
    assert!(
        out.stdout
            .contains(&format!("run {} -> MLflow run ", ids[0])),
        "{}",
        out.stdout
    );
    assert_eq!(
        out.stdout.matches(" created: ").count(),
        1,
        "{}",
        out.stdout
    );
    assert_eq!(
        out.stdout.matches(" updated (it was incomplete): ").count(),
        1,
        "{}",
        out.stdout
    );
    // Exported again: found by the pismo.run_id tag and skipped, no second MLflow run.
    let again = p.run(&["runs", "export", "--mlflow", &server.url, &ids[0], &ids[1]]);
    again.expect_code(0);
    assert_eq!(
        again.stdout.matches("already exported: skipped").count(),
        2,
        "{}",
        again.stdout
    );

    let back = read_back(&python, &server, "pismo", &home.join("back"));
    assert_eq!(back["runs"].as_array().unwrap().len(), 2, "{back}");
    for id in &ids {
        check_run(&back, &runs, &registry, id);
    }
    // The registry: tiny versions 1 and 2 from their runs, tagged with pismo's version,
    // with pismo's aliases.
    let model = &back["models"]["tiny"];
    let versions = model["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{model}");
    for (k, version) in versions.iter().enumerate() {
        let number = k + 1;
        assert_eq!(version["version"], number);
        assert_eq!(version["tags"]["pismo.version"], number.to_string());
        let pismo_run = &ids[k];
        assert_eq!(version["tags"]["pismo.run_id"], pismo_run.as_str());
        assert_eq!(version["run_id"], mlflow_run(&back, pismo_run)["run_id"]);
    }
    assert_eq!(model["aliases"]["best"], "2");
    assert_eq!(model["aliases"]["first"], "1");

    // MLflow's own 4xx: it reserves aliases like `v3`. Exit 1 with its error_code.
    p.run(&["models", "alias", "tiny@2", "v3"]).expect_code(0);
    let refused = p.run(&["runs", "export", "--mlflow", &server.url]);
    refused.expect_code(1);
    assert!(
        refused.stderr.contains("INVALID_PARAMETER_VALUE") && refused.stderr.contains("'v3'"),
        "{}",
        refused.stderr
    );
    p.run(&["models", "unalias", "v3"]).expect_code(0);

    // Into another experiment: three new MLflow runs there; tiny@1 and tiny@2 are found in
    // the registry by their pismo.version tag, tiny@3 becomes version 3.
    let third = train_tiny_model(&p.registry(), &p.runs());
    assert_eq!(third, "tiny@3");
    let out = p.run(&[
        "runs",
        "export",
        "--mlflow",
        &server.url,
        "--experiment",
        "second",
    ]);
    out.expect_code(0);
    assert_eq!(
        out.stdout.matches(" created: ").count(),
        3,
        "{}",
        out.stdout
    );
    let back = read_back(&python, &server, "second", &home.join("second"));
    assert_eq!(
        back["models"]["tiny"]["versions"].as_array().unwrap().len(),
        3
    );

    // pismo train --mlflow streams a run of the real binary (it needs the MNIST training
    // split: CI has it).
    let Some(mnist) = full_mnist() else { return };
    let p = Pismo::new().with_data(mnist);
    let out = p.run(&[
        "train",
        "--name",
        "live",
        "--hidden-size",
        "16",
        "--epochs",
        "2",
        "--val-size",
        "1000",
        "--alias",
        "default",
        "--quiet",
        "--mlflow",
        &server.url,
        "--experiment",
        "live",
    ]);
    out.expect_code(0);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
    assert!(
        out.stderr.contains("registered model live version 1"),
        "{}",
        out.stderr
    );
    let back = read_back(&python, &server, "live", &home.join("live"));
    let runs = Runs::open(p.runs());
    let id = runs.list().unwrap()[0].run_id.clone();
    check_run(&back, &runs, &Registry::open(p.registry()), &id);
    assert_eq!(back["models"]["live"]["aliases"]["default"], "1");

    // A `pismo tune` study's trials carry their study and trial into MLflow as tags.
    let p = Pismo::new().with_data(full_mnist().expect("checked above"));
    let space = home.join("space.json");
    std::fs::write(&space, r#"{"hidden_size": {"choice": [16, 32]}}"#).unwrap();
    let space = space.to_str().unwrap();
    let args = [
        "tune",
        "--trials",
        "2",
        "--epochs",
        "1",
        "--val-size",
        "55000",
    ];
    let rest = ["--study", "sweep", "--space", space, "--alias", "best"];
    p.run(&[&args[..], &rest[..]].concat()).expect_code(0);
    let out = p.run(&[
        "runs",
        "export",
        "--mlflow",
        &server.url,
        "--experiment",
        "sweep",
    ]);
    out.expect_code(0);
    let back = read_back(&python, &server, "sweep", &home.join("sweep"));
    let runs = Runs::open(p.runs());
    let mut trials: Vec<String> = runs
        .list()
        .unwrap()
        .iter()
        .map(|info| {
            let run = mlflow_run(&back, &info.run_id);
            assert_eq!(run["tags"]["pismo.study"], "sweep", "{run}");
            run["tags"]["pismo.trial"].as_str().unwrap().to_owned()
        })
        .collect();
    trials.sort();
    assert_eq!(trials, ["0", "1"]);
    drop(server);
}

#[test]
fn training_goes_on_when_mlflow_is_down_and_export_says_it_cannot_reach_it() {
    // A port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let closed = format!("http://127.0.0.1:{port}");
    let p = Pismo::new();
    train_tiny_model(&p.registry(), &p.runs());
    let out = p.run(&["runs", "export", "--mlflow", &closed]);
    out.expect_code(1);
    assert!(
        out.stderr
            .starts_with(&format!("error: cannot reach MLflow at {closed}: ")),
        "{}",
        out.stderr
    );

    let Some(mnist) = full_mnist() else { return };
    let p = Pismo::new().with_data(mnist);
    let out = p.run(&[
        "train",
        "--name",
        "offline",
        "--hidden-size",
        "16",
        "--epochs",
        "1",
        "--val-size",
        "1000",
        "--quiet",
        "--mlflow",
        &closed,
    ]);
    out.expect_code(0);
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning: MLflow"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning line: {}", out.stderr);
    assert!(
        warnings[0].contains("cannot reach MLflow") && warnings[0].contains("pismo runs export"),
        "{}",
        warnings[0]
    );
    assert!(
        out.stdout.contains("registered offline@1"),
        "{}",
        out.stdout
    );
    Registry::open(p.registry())
        .read(&ModelId::new("offline", 1).unwrap())
        .expect("the model is registered locally");
}

#[test]
fn a_bad_mlflow_uri_is_a_usage_error() {
    let p = Pismo::new();
    for args in [
        &["runs", "export", "--mlflow", "localhost:5000"][..],
        &["runs", "export", "--mlflow", "file:///tmp/mlruns"],
        &[
            "runs",
            "export",
            "--mlflow",
            "http://127.0.0.1:5000",
            "--experiment",
            " ",
        ],
        &["train", "--mlflow", "ftp://example.org"],
        &["train", "--experiment", "x"],
    ] {
        let out = p.run(args);
        out.expect_code(2);
        assert!(
            out.stderr.starts_with("error: "),
            "{args:?}: {}",
            out.stderr
        );
    }
    let out = p.run(&["runs", "export", "--mlflow", "localhost:5000"]);
    assert!(
        out.stderr.contains("invalid MLflow URI `localhost:5000`"),
        "{}",
        out.stderr
    );
}
