//! `pismo runs export --mlflow` and `pismo train --mlflow` against a real `mlflow server`
//! (pip, pinned in `tests/mlflow/requirements.txt`; sqlite store and artifacts in a temp
//! folder), read back with MLflow's own Python client (`tests/mlflow/read_back.py`): params,
//! tags, every metric's history, the log and model artifacts byte for byte, the registered
//! versions and aliases; a second export makes no second run; a gap in versions does not
//! block; the shipped runs and models all go in (the runs of deleted models FINISHED and
//! tagged so, the int8 models registered with their aliases), and `mlflow models serve`
//! serves the default model's registered version with pismo's probabilities; MLflow's 4xx, a
//! closed port and a bad URI are clear errors, and training goes on when MLflow is down.
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

use pismo_storage::registry::{ModelId, Registry};
use pismo_storage::runs::Runs;
use pismo_tests::{full_mnist, idx3, t10k, train_tiny_model, workspace_root, Pismo, TempDir};
use serde_json::Value;

use crate::web::copy_dir;

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
        let port = free_port();
        let mut command = Command::new(python);
        command
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
            .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false");
        Self::launch(command, port, "/health", &dir.join("server.log"), dir)
    }

    /// Starts `mlflow models serve -m MODEL_URI` of the tracking server `tracking` on a free
    /// port, in the Python's own environment (`--env-manager local`: the venv has the
    /// packages the model's requirements.txt names), and waits until `/ping` answers.
    fn serve_model(python: &Path, tracking: &Server, model_uri: &str, dir: &Path) -> Server {
        let port = free_port();
        let mut command = Command::new(python);
        command
            .args(["-m", "mlflow", "models", "serve", "-m", model_uri])
            .args([
                "--env-manager",
                "local",
                "--host",
                "127.0.0.1",
                "--workers",
                "1",
            ])
            .args(["--port", &port.to_string()])
            .env("MLFLOW_TRACKING_URI", &tracking.url);
        // It starts `uvicorn` by name: the venv's bin folder first on PATH.
        if let Some(bin) = python.parent() {
            let path = std::env::var_os("PATH").unwrap_or_default();
            let paths = std::iter::once(bin.to_path_buf()).chain(std::env::split_paths(&path));
            command.env("PATH", std::env::join_paths(paths).expect("a PATH"));
        }
        Self::launch(command, port, "/ping", &dir.join("serve.log"), dir)
    }

    /// Runs `command` in its own process group, its output in `log`, and waits until `GET
    /// path` on `port` answers 200.
    fn launch(mut command: Command, port: u16, path: &str, log: &Path, dir: &Path) -> Server {
        let out = File::create(log).expect("server log");
        let child = command
            .process_group(0)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start an mlflow server");
        let mut server = Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log: log.to_path_buf(),
        };
        let started = Instant::now();
        loop {
            if answers(port, path) {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("{command:?} exited ({status}):\n{}", server.log_text());
            }
            assert!(
                started.elapsed() < STARTUP,
                "{command:?} did not answer {path} within {STARTUP:?}:\n{}",
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

/// A port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Whether `GET path` on `port` answers 200.
fn answers(port: u16, path: &str) -> bool {
    let head = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    http(port, &head, b"").is_some_and(|answer| answer.starts_with("HTTP/1.1 200"))
}

/// The whole answer to a request sent to `port`, or `None` if it could not be sent or read.
fn http(port: u16, head: &str, body: &[u8]) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .ok()?;
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
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
/// history, the log and its model's MLflow model folder.
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
    // One val_loss an epoch, fewer when early stopping ended the run.
    let epochs = ours.get("val_loss").map_or(0, Vec::len);
    assert!(epochs > 0 && epochs <= info.params.epochs as usize);
    assert_eq!(theirs, ours, "metric histories of run {run_id}");

    assert_eq!(
        String::from_utf8(artifact(run, "log.txt")).unwrap(),
        runs.log(run_id).unwrap()
    );
    let id: ModelId = info.model.as_deref().unwrap().parse().unwrap();
    // A model deleted since is not there (the shipped test checks the tag saying so).
    if registry.read(&id).is_ok() {
        check_model_folder(run, registry, &id);
    }
}

/// The MLflow model folder of `id` in `run`: the model file byte for byte, an `MLmodel` of
/// the ONNX flavour and the ONNX file.
fn check_model_folder(run: &Value, registry: &Registry, id: &ModelId) {
    let folder = format!("models/{}.v{}", id.name, id.version);
    assert_eq!(
        artifact(run, &format!("{folder}/{}", id.file_name())),
        registry.read(id).unwrap(),
        "the model artifact is the model file"
    );
    let mlmodel = String::from_utf8(artifact(run, &format!("{folder}/MLmodel"))).unwrap();
    assert!(
        mlmodel.contains("loader_module: mlflow.onnx") && mlmodel.contains("data: model.onnx"),
        "{mlmodel}"
    );
    assert!(artifact(run, &format!("{folder}/model.onnx")).starts_with(b"\x08\x07"));
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

    // tiny@2 alone: a gap (tiny@1 is not in MLflow) does not block it. MLflow numbers it 1;
    // its pismo.version tag says 2.
    let gap = p.run(&["runs", "export", "--mlflow", &server.url, &ids[1]]);
    gap.expect_code(0);
    assert!(
        gap.stdout
            .contains("model tiny@2 -> MLflow tiny version 1, aliases best"),
        "{}",
        gap.stdout
    );
    // Every run, oldest first: tiny@1's run is made (MLflow's version 2), tiny@2's is
    // skipped (it is complete).
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
        out.stdout.matches("already exported: skipped").count(),
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
    // Issue 28: with --json, one object per run saying the same.
    let json = p.run(&["runs", "export", "--json", "--mlflow", &server.url, &ids[1]]);
    json.expect_code(0);
    let lines = json.json_lines();
    assert_eq!(lines.len(), 1, "{}", json.stdout);
    assert_eq!(lines[0]["run_id"], ids[1].as_str(), "{}", json.stdout);
    assert_eq!(lines[0]["action"], "skipped", "{}", json.stdout);
    assert_eq!(lines[0]["models"][0]["model"], "tiny@2", "{}", json.stdout);
    assert_eq!(
        lines[0]["models"][0]["mlflow_version"], "1",
        "{}",
        json.stdout
    );

    let back = read_back(&python, &server, "pismo", &home.join("back"));
    assert_eq!(back["runs"].as_array().unwrap().len(), 2, "{back}");
    for id in &ids {
        check_run(&back, &runs, &registry, id);
    }
    // The registry: MLflow's versions 1 and 2 are tiny@2 and tiny@1 (the order they came
    // in), each tagged with pismo's version and run, with pismo's aliases.
    let model = &back["models"]["tiny"];
    let versions = model["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{model}");
    for (version, pismo_version) in versions.iter().zip([2, 1]) {
        assert_eq!(version["tags"]["pismo.version"], pismo_version.to_string());
        let pismo_run = &ids[pismo_version - 1];
        assert_eq!(version["tags"]["pismo.run_id"], pismo_run.as_str());
        assert_eq!(version["run_id"], mlflow_run(&back, pismo_run)["run_id"]);
    }
    assert_eq!(model["aliases"]["best"], "1");
    assert_eq!(model["aliases"]["first"], "2");

    // MLflow's own 4xx: it reserves aliases like `v3`. Exit 1 with its error_code. The new
    // run of tiny@3, whose alias MLflow refused, is still FINISHED (its status goes before its
    // models), and is completed by the next export.
    let third = train_tiny_model(&p.registry(), &p.runs());
    assert_eq!(third, "tiny@3");
    p.run(&["models", "alias", "tiny@3", "v3"]).expect_code(0);
    let refused = p.run(&["runs", "export", "--mlflow", &server.url]);
    refused.expect_code(1);
    assert!(
        refused.stderr.contains("INVALID_PARAMETER_VALUE") && refused.stderr.contains("'v3'"),
        "{}",
        refused.stderr
    );
    let third_run = run_of("tiny@3");
    let back = read_back(&python, &server, "pismo", &home.join("refused"));
    let run = mlflow_run(&back, &third_run);
    assert_eq!(run["status"], "FINISHED", "{run}");
    assert!(run["tags"]["pismo.exported"].is_null(), "{run}");
    p.run(&["models", "unalias", "v3"]).expect_code(0);
    let out = p.run(&["runs", "export", "--mlflow", &server.url, &third_run]);
    out.expect_code(0);
    assert!(
        out.stdout.contains(" updated (it was incomplete): ")
            && out.stdout.contains("model tiny@3 -> MLflow tiny version 3"),
        "{}",
        out.stdout
    );

    // Into another experiment: three new MLflow runs there; the three versions are found in
    // the registry by their pismo.version tag.
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

/// Issue 28, as a new user on a clean clone: every shipped run goes into MLflow (exit 0),
/// the runs whose models were deleted (`mnist@4`, `mnist@5`, `mnist@6`) FINISHED and tagged so, every
/// shipped model registered, the int8 ones included, with `default` on `mnist-int8`; and
/// `mlflow models serve -m models:/mnist-int8@default` answers `/invocations` with the
/// probabilities `pismo predict` gives.
#[test]
fn the_shipped_runs_and_models_reach_mlflow_and_it_serves_the_default() {
    /// Test images sent to the served model.
    const SERVED: usize = 200;
    let Some(python) = python() else { return };
    let home = TempDir::new("mlflow-shipped");
    let server = Server::start(&python, home.path());
    let p = Pismo::new();
    copy_dir(&workspace_root().join("models"), &p.registry());
    copy_dir(&workspace_root().join("runs"), &p.runs());
    let (registry, runs) = (Registry::open(p.registry()), Runs::open(p.runs()));
    let out = p.run(&["runs", "export", "--mlflow", &server.url]);
    out.expect_code(0);
    let infos = runs.list().unwrap();
    assert!(infos.len() >= 8, "the shipped runs");
    assert_eq!(
        out.stdout.matches(" created: ").count(),
        infos.len(),
        "{}",
        out.stdout
    );

    let back = read_back(&python, &server, "pismo", &home.join("back"));
    assert_eq!(
        back["runs"].as_array().unwrap().len(),
        infos.len(),
        "{back}"
    );
    for info in &infos {
        let run = mlflow_run(&back, &info.run_id);
        assert_eq!(run["status"], "FINISHED", "{run}");
        check_run(&back, &runs, &registry, &info.run_id);
        let own: ModelId = info.model.as_deref().unwrap().parse().unwrap();
        let gone = &run["tags"]["pismo.model_gone"];
        if registry.read(&own).is_ok() {
            assert!(gone.is_null(), "{run}");
        } else {
            assert_eq!(
                gone.as_str(),
                Some(format!("{own} was deleted from pismo's registry").as_str()),
                "{run}"
            );
        }
    }
    // Every shipped model is a version of its registered model, in an MLflow model folder of
    // the run that made it; numbered as in pismo (the runs went in oldest first) unless a
    // version before it was deleted.
    let ids = registry.ids().unwrap();
    let deleted = registry.deleted().unwrap();
    assert!(ids.len() >= 14, "the shipped models");
    for id in &ids {
        let versions = back["models"][&id.name]["versions"].as_array().unwrap();
        let version = versions
            .iter()
            .find(|v| v["tags"]["pismo.version"].as_str() == Some(&*id.version.to_string()))
            .unwrap_or_else(|| panic!("{id} is not registered: {versions:?}"));
        if !deleted
            .iter()
            .any(|d| d.name == id.name && d.version < id.version)
        {
            assert_eq!(version["version"], id.version, "{id}");
        }
        let run_id = version["tags"]["pismo.run_id"].as_str().unwrap();
        let run = mlflow_run(&back, run_id);
        assert_eq!(version["run_id"], run["run_id"]);
        check_model_folder(run, &registry, id);
    }
    let default = registry.resolve(Some("default")).unwrap();
    assert_eq!(
        back["models"][&default.name]["aliases"]["default"],
        default.version.to_string()
    );

    // MLflow serves the registered default: its probabilities are pismo's.
    let uri = format!("models:/{}@default", default.name);
    let served = Server::serve_model(&python, &server, &uri, home.path());
    let data = t10k();
    let images = &data.images[..SERVED];
    let rows: Vec<Vec<f32>> = images
        .iter()
        .map(|im| im.iter().map(|&b| f32::from(b) / 255.0).collect())
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({ "inputs": rows })).unwrap();
    let port = served.url.rsplit(':').next().unwrap().parse().unwrap();
    let head = format!(
        "POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let answer = http(port, &head, &body).expect("an answer from /invocations");
    let (status, reply) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(
        status.starts_with("HTTP/1.1 200"),
        "{answer}\n{}",
        served.log_text()
    );
    let reply: Value = serde_json::from_str(reply).expect("JSON");
    let theirs = reply["predictions"]["probabilities"]
        .as_array()
        .unwrap_or_else(|| panic!("{reply}"));
    assert_eq!(theirs.len(), SERVED);
    let idx = p.home.join("test.idx3");
    std::fs::write(&idx, idx3(images)).unwrap();
    let ours = p
        .run(&[
            "predict",
            "--json",
            "--model",
            "default",
            idx.to_str().unwrap(),
        ])
        .expect_code(0)
        .json_lines();
    let mut worst = 0.0f64;
    for (ours, theirs) in ours.iter().zip(theirs) {
        assert_eq!(ours["model"], default.to_string());
        let (ours, theirs) = (
            ours["probabilities"].as_array().unwrap(),
            theirs.as_array().unwrap(),
        );
        assert_eq!(theirs.len(), 10);
        for (a, b) in ours.iter().zip(theirs) {
            worst = worst.max((a.as_f64().unwrap() - b.as_f64().unwrap()).abs());
        }
    }
    println!("mlflow models serve: largest difference {worst:e} over {SERVED} images");
    assert!(worst <= 1e-5, "probabilities differ by {worst}");
    drop(served);
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
