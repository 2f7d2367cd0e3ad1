//! A team's PostgreSQL store through the real `pismo` binary, on a real throwaway cluster
//! (issue 15): `pismo store migrate` and `copy` (models, aliases and runs), every registry
//! and runs command with `--store` or `$PISMO_STORE`, clear errors for a database that is
//! missing or unmigrated, a training run kept in the database and killed mid-epoch, and two
//! `pismo serve` replicas on one store that both answer with a new `default` as soon as
//! `pismo models alias` has moved it; and `pismo adapt` on the store (base, result, run).

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use pismo_tests::postgres::postgres_or_skip;
use pismo_tests::{full_mnist, workspace_root, Pismo};

use crate::serve::request;

/// The shipped registry's `default` (models/aliases.json).
fn shipped_default() -> String {
    let aliases = std::fs::read_to_string(workspace_root().join("models/aliases.json")).unwrap();
    let aliases: serde_json::Value = serde_json::from_str(&aliases).unwrap();
    aliases["default"].as_str().unwrap().to_owned()
}

/// The whole answer to `POST /api/predict` of the shipped sample 7, with no model named.
fn predict_sample(addr: &str) -> String {
    let png = std::fs::read(workspace_root().join("samples/7-seven.png")).unwrap();
    let head = format!(
        "POST /api/predict HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n",
        png.len()
    );
    request(addr, &head, &png)
}

/// `POST /api/predict` of the shipped sample 7 with no model named; returns the model that
/// answered (`NAME@V`).
fn default_model_of(addr: &str) -> String {
    let answer = predict_sample(addr);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).expect("a body");
    let json: serde_json::Value = serde_json::from_str(body).expect("JSON");
    assert_eq!(json["label"], 7, "{json}");
    json["model"].as_str().expect("model").to_owned()
}

#[test]
fn store_migrate_copy_and_the_registry_commands_on_postgres() {
    let Some(cluster) = postgres_or_skip("store_migrate_copy_and_the_registry_commands…") else {
        return;
    };
    let url = cluster.create_database("team");
    let p = Pismo::new();
    let shipped = workspace_root().join("models");
    let shipped = shipped.to_str().unwrap();

    // Not migrated yet: a clear error that says what to run.
    let out = p.run(&["models", "list", "--store", &url]);
    out.expect_code(1);
    assert!(
        out.stderr.contains("has no pismo schema") && out.stderr.contains("pismo store migrate"),
        "{}",
        out.stderr
    );
    let out = p.run(&["store", "migrate", "--store", &url]);
    out.expect_code(0);
    assert!(
        out.stdout.contains("pismo schema v0 → v3"),
        "{}",
        out.stdout
    );
    let out = p.run(&["store", "migrate", "--store", &url]);
    assert!(out.stdout.contains("already current"), "{}", out.stdout);
    // Issue 28: `--json`, as docs/CLI.md promises for every command: one object.
    let out = p.run(&["store", "migrate", "--store", &url, "--json"]);
    out.expect_code(0);
    let v = out.json_lines().pop().expect("one JSON line");
    assert_eq!(v["schema"], v["schema_before"], "{v}");
    assert_eq!(v["migrated"], false, "{v}");
    assert!(!v["store"].as_str().unwrap().is_empty(), "{v}");

    // The shipped registry and its runs into the database.
    let shipped_runs = workspace_root().join("runs");
    let shipped_runs = shipped_runs.to_str().unwrap();
    let out = p.run(&[
        "store",
        "copy",
        "--from",
        shipped,
        "--from-runs",
        shipped_runs,
        "--to",
        &url,
        "--json",
    ]);
    out.expect_code(0);
    let report = &out.json_lines()[0];
    let shipped_ids: Vec<String> = p
        .run(&["models", "list", "--registry", shipped, "--json"])
        .json_lines()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    let copied: Vec<String> = report["copied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(copied, shipped_ids);
    assert_eq!(report["aliases_set"]["default"], shipped_default().as_str());
    let run_ids = |args: &[&str]| -> Vec<String> {
        let out = p.run(&[&["runs", "list", "--json"], args].concat());
        out.expect_code(0);
        out.json_lines()
            .iter()
            .map(|r| r["run_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let shipped_run_ids = run_ids(&["--runs", shipped_runs]);
    assert_eq!(
        report["runs"]["copied"].as_array().unwrap().len(),
        shipped_run_ids.len()
    );
    assert_eq!(run_ids(&["--store", &url]), shipped_run_ids);
    let newest = &shipped_run_ids[0];
    let show = |args: &[&str]| p.run(&[&["runs", "show", newest, "--json"], args].concat());
    assert_eq!(
        show(&["--store", &url]).stdout,
        show(&["--runs", shipped_runs]).stdout
    );

    // Every command reads it, with --store or $PISMO_STORE.
    let listed = p
        .command(&["models", "list", "--json"])
        .env("PISMO_STORE", &url)
        .output()
        .unwrap();
    assert!(listed.status.success());
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert_eq!(listed.lines().count(), shipped_ids.len(), "{listed}");
    assert!(
        listed.contains(&format!("\"location\":\"{url}#mnist@1\"")),
        "{listed}"
    );
    let sample = workspace_root().join("samples/7-seven.png");
    let sample = sample.to_str().unwrap();
    let from_db = p.run(&["predict", sample, "--store", &url, "--json"]);
    from_db.expect_code(0);
    let from_folder = p.run(&["predict", sample, "--registry", shipped, "--json"]);
    assert_eq!(from_db.stdout, from_folder.stdout);
    p.run(&["models", "alias", "mnist@3", "best", "--store", &url])
        .expect_code(0);
    let show = p.run(&["models", "show", "mnist@best", "--store", &url]);
    show.expect_code(0);
    assert!(show.stdout.contains("mnist@3") && show.stdout.contains(&format!("{url}#mnist@3")));
    let refused = p.run(&["models", "delete", "mnist@3", "--store", &url]);
    refused.expect_code(1);
    assert!(
        refused.stderr.contains("alias `best` points at it"),
        "{}",
        refused.stderr
    );

    // And back into fresh folders, byte for byte.
    let back = p.home.join("back");
    let back_runs = p.home.join("back-runs");
    let out = p.run(&[
        "store",
        "copy",
        "--from",
        &url,
        "--to",
        back.to_str().unwrap(),
        "--to-runs",
        back_runs.to_str().unwrap(),
    ]);
    out.expect_code(0);
    assert!(
        out.stdout
            .contains(&format!("{} runs copied", shipped_run_ids.len())),
        "{}",
        out.stdout
    );
    for id in &shipped_run_ids {
        for file in ["metrics.jsonl", "log.txt"] {
            let read = |dir: &std::path::Path| std::fs::read(dir.join(id).join(file)).unwrap();
            assert!(
                read(&back_runs) == read(std::path::Path::new(shipped_runs)),
                "{id}/{file} differs after the copy there and back"
            );
        }
    }
    let wrong = p.run(&[
        "store",
        "copy",
        "--from",
        &url,
        "--from-runs",
        shipped_runs,
        "--to",
        back.to_str().unwrap(),
    ]);
    wrong.expect_code(2);
    assert!(
        wrong.stderr.contains("a database keeps its runs itself"),
        "{}",
        wrong.stderr
    );
    for id in &shipped_ids {
        let (name, version) = id.split_once('@').unwrap();
        let file = format!("{name}.v{version}.pismo");
        assert_eq!(
            std::fs::read(back.join(&file)).unwrap(),
            std::fs::read(workspace_root().join("models").join(&file)).unwrap(),
            "{file}"
        );
    }

    // Usage and connection errors: exit 2 and 1, one clear line, no hang.
    let both = p.run(&["models", "list", "--store", &url, "--registry", shipped]);
    both.expect_code(2);
    assert!(both.stderr.contains("give one of them"), "{}", both.stderr);
    let nobody = p.run(&[
        "models",
        "list",
        "--store",
        "postgres://nobody:s3cret@127.0.0.1:9/none",
    ]);
    nobody.expect_code(1);
    assert!(
        nobody
            .stderr
            .contains("cannot connect to postgres://nobody:***@127.0.0.1:9/none")
            && !nobody.stderr.contains("s3cret"),
        "{}",
        nobody.stderr
    );
    let folder_migrate = p.run(&["store", "migrate", "--store", shipped]);
    folder_migrate.expect_code(2);
}

#[test]
fn two_serve_replicas_on_one_store_follow_a_new_default_at_once() {
    let Some(cluster) = postgres_or_skip("two_serve_replicas_on_one_store…") else {
        return;
    };
    let url = cluster.create_database("replicas");
    let p = Pismo::new();
    p.run(&["store", "migrate", "--store", &url]).expect_code(0);
    let shipped = workspace_root().join("models");
    let shipped_runs = workspace_root().join("runs");
    p.run(&[
        "store",
        "copy",
        "--from",
        shipped.to_str().unwrap(),
        "--from-runs",
        shipped_runs.to_str().unwrap(),
        "--to",
        &url,
    ])
    .expect_code(0);
    let one = p.serve("127.0.0.1:0", &["--store", &url]);
    let two = p.serve("127.0.0.1:0", &["--store", &url]);
    for replica in [&one, &two] {
        assert_eq!(default_model_of(replica.addr()), shipped_default());
        // The runs are the store's, on every replica (the Experiments view).
        let runs = request(
            replica.addr(),
            "GET /api/runs HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            b"",
        );
        assert!(runs.starts_with("HTTP/1.1 200"), "{runs}");
        assert!(runs.contains("20261203-145344-06ceb5"), "{runs}");
    }
    p.run(&["models", "alias", "mnist@3", "default", "--store", &url])
        .expect_code(0);
    // The first request to each replica after the command returned is answered by the new
    // default: nothing is cached across requests.
    for replica in [&one, &two] {
        assert_eq!(default_model_of(replica.addr()), "mnist@3");
    }
    // A change through one replica's API reaches the other as well.
    let body = r#"{"model":"mnist@2"}"#;
    let head = format!(
        "PUT /api/aliases/default HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let answer = request(one.addr(), &head, body.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(default_model_of(two.addr()), "mnist@2");
    // Each move is in the store's alias history, oldest first, after the copy's own.
    let history = p.run(&["models", "history", "--store", &url, "--json"]);
    history.expect_code(0);
    let moves: Vec<String> = history
        .json_lines()
        .iter()
        .filter(|c| c["alias"] == "default")
        .map(|c| c["model"].as_str().unwrap_or("-").to_owned())
        .collect();
    assert_eq!(moves, [shipped_default().as_str(), "mnist@3", "mnist@2"]);

    // The database goes away: the replicas answer 503 (try again, or elsewhere) with the
    // reason, and keep serving their other requests.
    cluster.stop();
    let answer = predict_sample(one.addr());
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("postgres://"), "{answer}");
    let ping = request(
        two.addr(),
        "GET /ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"",
    );
    assert!(ping.starts_with("HTTP/1.1 200"), "{ping}");
}

/// A training run kept in the database: live while its process trains, read as failed by
/// every reader once the process is killed with kill -9 (its connection, and the lock it
/// held on the run, are gone), and finished with its model when a training ends normally.
/// Nothing is written to a runs folder.
#[test]
fn a_training_run_lives_in_the_store_and_a_killed_one_reads_as_failed() {
    let Some(cluster) = postgres_or_skip("a_training_run_lives_in_the_store…") else {
        return;
    };
    let Some(mnist) = full_mnist() else {
        return;
    };
    let url = cluster.create_database("training");
    let p = Pismo::new().with_data(mnist);
    p.run(&["store", "migrate", "--store", &url]).expect_code(0);
    let list = || {
        let out = p.run(&["runs", "list", "--store", &url, "--json"]);
        out.expect_code(0);
        out.json_lines()
    };

    let mut child = p
        .command(&[
            "train",
            "--json",
            "--epochs",
            "200",
            "--hidden-size",
            "32",
            "--store",
            &url,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..2 {
        let line = lines.next().expect("an epoch line").unwrap();
        assert!(line.contains(r#""event":"epoch""#), "{line}");
    }
    let live = list();
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0]["status"], "running");
    let id = live[0]["run_id"].as_str().unwrap().to_owned();
    child.kill().unwrap(); // SIGKILL: nothing in the process runs after it
    child.wait().unwrap();
    let dead = list();
    assert_eq!(dead[0]["status"], "failed", "{dead:?}");
    assert!(
        dead[0]["error"]
            .as_str()
            .unwrap()
            .contains("without closing the run"),
        "{dead:?}"
    );
    let log = p.run(&["runs", "log", &id, "--store", &url]);
    log.expect_code(0);
    assert!(log.stdout.contains("epoch 1/200"), "{}", log.stdout);

    let out = p.run(&[
        "train",
        "--json",
        "--epochs",
        "1",
        "--hidden-size",
        "32",
        "--store",
        &url,
    ]);
    out.expect_code(0);
    let done = out.json_lines().pop().unwrap();
    let model = done["model"].as_str().unwrap();
    let shown = p.run(&[
        "runs",
        "show",
        done["run_id"].as_str().unwrap(),
        "--store",
        &url,
        "--json",
    ]);
    shown.expect_code(0);
    let shown = &shown.json_lines()[0];
    assert_eq!(shown["status"], "finished");
    assert_eq!(shown["model"], model);
    let models = p.run(&["models", "list", "--store", &url, "--json"]);
    assert!(
        models.stdout.contains(&format!("\"id\":\"{model}\"")),
        "{}",
        models.stdout
    );
    assert_eq!(list().len(), 2);
    assert!(
        !p.runs().exists() || std::fs::read_dir(p.runs()).unwrap().next().is_none(),
        "runs went to the folder too"
    );
}

#[test]
fn pismo_adapt_takes_its_base_from_the_store_and_registers_and_records_there() {
    let Some(cluster) = postgres_or_skip("pismo_adapt_takes_its_base_from_the_store…") else {
        return;
    };
    let Some(mnist) = full_mnist() else {
        return;
    };
    let url = cluster.create_database("adapting");
    let p = Pismo::new().with_data(mnist);
    p.run(&["store", "migrate", "--store", &url]).expect_code(0);
    let shipped = workspace_root().join("models");
    p.run(&[
        "store",
        "copy",
        "--from",
        shipped.to_str().unwrap(),
        "--to",
        &url,
    ])
    .expect_code(0);
    // One correction (the shipped sample 7), imported as the page would keep it.
    let sample = workspace_root().join("samples/7-seven.png");
    p.run(&[
        "data",
        "drawn",
        "import",
        "--label",
        "7",
        sample.to_str().unwrap(),
    ])
    .expect_code(0);
    let out = p.run(&[
        "adapt",
        "--model",
        "mnist-mcu-int8",
        "--name",
        "mine",
        "--alias",
        "mine-now",
        "--store",
        &url,
        "--json",
    ]);
    out.expect_code(0);
    let done = out.json_lines().pop().expect("a JSON line");
    assert_eq!(done["model"], "mine@1", "{done}");
    // In the database, not in a folder: the model, its alias and its run.
    assert!(
        !p.registry().join("mine.v1.pismo").exists(),
        "the model went to the registry folder"
    );
    let show = p.run(&["models", "show", "mine-now", "--store", &url, "--json"]);
    show.expect_code(0);
    assert!(show.stdout.contains("mnist-mcu-int8@5"), "{}", show.stdout);
    let runs = p.run(&["runs", "list", "--store", &url, "--json"]);
    runs.expect_code(0);
    let run = runs
        .json_lines()
        .into_iter()
        .find(|r| r["run_id"] == done["run_id"])
        .unwrap_or_else(|| panic!("the run is not in the store: {}", runs.stdout));
    assert_eq!(run["status"], "finished", "{run}");
    let log = p.run(&[
        "runs",
        "log",
        done["run_id"].as_str().unwrap(),
        "--store",
        &url,
    ]);
    assert!(
        log.stdout.contains("adapting mnist-mcu-int8@5"),
        "{}",
        log.stdout
    );
}
