//! Run records on every store: one suite, two backends. Each test runs on a runs folder and
//! on a real PostgreSQL database (a throwaway cluster of Debian's server,
//! `pismo_tests::postgres`) and asserts the same outcomes on both; what only a database can
//! do (a writer cut off on another connection, the shipped runs copied in and back) follows.
// A test reads as one script of steps; the 80-line limit (clippy.toml) is for the code.
#![allow(clippy::too_many_lines)]

use std::time::Duration;

use pismo_core::hyper::Hyper;
use pismo_storage::runs::{RunRecord, Runs, RunsError, Status, INTERRUPTED};
use pismo_store::copy::copy_runs;
use pismo_store::postgres::migrate;
use pismo_tests::postgres::{postgres_or_skip, PgCluster};
use pismo_tests::{workspace_root, TempDir};

/// Runs on one backend, kept alive with what they need.
struct Backend {
    name: &'static str,
    runs: Runs,
    _folder: Option<TempDir>,
}

/// A fresh, migrated database `db` on `cluster`.
fn database(cluster: &PgCluster, db: &str) -> String {
    let url = cluster.create_database(db);
    migrate(&url).expect("migrate");
    url
}

/// The same test on a fresh runs folder and on a fresh database; `None` when PostgreSQL is
/// missing and not required (the harness said SKIPPED).
fn backends(test: &str) -> Option<(PgCluster, String, Vec<Backend>)> {
    let cluster = postgres_or_skip(test)?;
    let url = database(&cluster, "runs");
    let folder = TempDir::new("runs-folder");
    let all = vec![
        Backend {
            name: "folder",
            runs: Runs::open(folder.join("runs")),
            _folder: Some(folder),
        },
        Backend {
            name: "postgres",
            runs: pismo_store::open_runs(&url).expect("open the database"),
            _folder: None,
        },
    ];
    Some((cluster, url, all))
}

#[test]
fn a_run_records_params_metrics_log_tags_and_model() {
    let Some((_cluster, _url, backends)) = backends("a_run_records_params_metrics_log…") else {
        return;
    };
    for b in backends {
        let runs = &b.runs;
        assert!(runs.list().unwrap().is_empty(), "{}", b.name);
        let params = Hyper {
            hidden_size: 64,
            ..Hyper::DEFAULT
        };
        let mut w = runs.create("mnist", &params, "sha256:abc").unwrap();
        let id = w.id().to_owned();
        assert_eq!(
            runs.info(&id).unwrap().status,
            Status::Running,
            "{}",
            b.name
        );
        w.log_line("epoch 1: loss 0.3");
        w.log_line("epoch 2: loss 0.25 – déjà vu");
        w.log_metric(1, "val_loss", 0.25);
        w.log_metric(1, "val_accuracy", 0.93);
        w.log_metric(2, "val_loss", f64::NAN);
        w.set_tag("study", "s1");
        w.set_model(&"mnist@4".parse().unwrap());
        assert_eq!(runs.info(&id).unwrap().model.as_deref(), Some("mnist@4"));
        w.try_finish(Status::Finished, None).unwrap();

        let rec = runs.get(&id).unwrap();
        assert_eq!(rec.info.run_id, id);
        assert_eq!(
            (
                rec.info.name.as_str(),
                rec.info.status,
                rec.info.dataset.as_str()
            ),
            ("mnist", Status::Finished, "sha256:abc"),
            "{}",
            b.name
        );
        assert_eq!(rec.info.params, params);
        assert_eq!(rec.info.tags.get("study").map(String::as_str), Some("s1"));
        assert!(rec.info.end_unix_ms.unwrap() >= rec.info.start_unix_ms);
        let names: Vec<(u32, &str)> = rec
            .metrics
            .iter()
            .map(|m| (m.step, m.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [(1, "val_loss"), (1, "val_accuracy"), (2, "val_loss")],
            "{}",
            b.name
        );
        assert_eq!(rec.metrics[0].value, 0.25);
        assert!(rec.metrics[2].value.is_nan(), "{}", b.name);
        assert_eq!(
            runs.log(&id).unwrap(),
            "epoch 1: loss 0.3\nepoch 2: loss 0.25 – déjà vu\n",
            "{}",
            b.name
        );
        // A run that has ended can be pointed at a model registered for it afterwards.
        runs.set_model(&id, &"mnist@5".parse().unwrap()).unwrap();
        let info = runs.info(&id).unwrap();
        assert_eq!(info.model.as_deref(), Some("mnist@5"));
        assert_eq!(info.status, Status::Finished, "{}", b.name);

        // No such run, and ids that are not ids, on every read.
        assert!(runs
            .get("20000101-000000-000000")
            .unwrap_err()
            .is_not_found());
        assert!(runs
            .log("20000101-000000-000000")
            .unwrap_err()
            .is_not_found());
        assert!(runs.metrics("nope").unwrap_err().is_not_found());
        assert!(runs
            .set_model("nope", &"a@1".parse().unwrap())
            .unwrap_err()
            .is_not_found());
        for bad in ["..", "../x", "a b", "x'; DROP TABLE pismo_runs; --"] {
            assert!(
                matches!(runs.get(bad), Err(RunsError::InvalidId { .. })),
                "{}: {bad}",
                b.name
            );
        }
    }
}

#[test]
fn runs_list_newest_first_and_a_dropped_writer_marks_its_run_interrupted() {
    let Some((_cluster, _url, backends)) = backends("runs_list_newest_first…") else {
        return;
    };
    for b in backends {
        let runs = &b.runs;
        let mut ids = Vec::new();
        for name in ["a", "b", "c"] {
            let w = runs.create(name, &Hyper::DEFAULT, "").unwrap();
            ids.push(w.id().to_owned());
            w.finish(Status::Finished, None);
            std::thread::sleep(Duration::from_millis(3));
        }
        let dropped = runs.create("d", &Hyper::DEFAULT, "").unwrap();
        let dropped_id = dropped.id().to_owned();
        drop(dropped);
        let runs2 = runs.clone();
        let panicked = std::thread::spawn(move || {
            let mut w = runs2.create("e", &Hyper::DEFAULT, "").unwrap();
            w.log_line("about to fail");
            panic!("training blew up in run {}", w.id());
        })
        .join();
        assert!(panicked.is_err());

        let listed = runs.list().unwrap();
        let names: Vec<&str> = listed.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["e", "d", "c", "b", "a"], "{}", b.name);
        let info = runs.info(&dropped_id).unwrap();
        assert_eq!(info.status, Status::Failed, "{}", b.name);
        assert_eq!(info.error.as_deref(), Some(INTERRUPTED));
        assert_eq!(listed[0].status, Status::Failed, "{}", b.name);
    }
}

/// Many writers at once, in threads: every run gets an id of its own and keeps its own
/// metrics.
#[test]
fn writers_in_many_threads_keep_their_runs_apart() {
    let Some((_cluster, _url, backends)) = backends("writers_in_many_threads…") else {
        return;
    };
    for b in backends {
        let ids: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..6u32)
                .map(|t| {
                    let runs = &b.runs;
                    s.spawn(move || {
                        let mut w = runs.create(&format!("t{t}"), &Hyper::DEFAULT, "").unwrap();
                        for step in 1..=5 {
                            w.log_metric(step, "val_loss", f64::from(t * 10 + step));
                        }
                        let id = w.id().to_owned();
                        w.try_finish(Status::Finished, None).unwrap();
                        id
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), 6, "{}", b.name);
        for id in &ids {
            let rec = b.runs.get(id).unwrap();
            let t: u32 = rec.info.name[1..].parse().unwrap();
            let values: Vec<f64> = rec.metrics.iter().map(|m| m.value).collect();
            let expected: Vec<f64> = (1..=5).map(|s| f64::from(t * 10 + s)).collect();
            assert_eq!(values, expected, "{}", b.name);
        }
    }
}

/// A writer whose connection to the database is cut (its process killed, its host gone)
/// cannot end its run; readers on any host see the run failed, ended at its last record.
#[test]
fn a_run_whose_writer_lost_the_database_reads_as_failed() {
    let Some(cluster) = postgres_or_skip("a_run_whose_writer_lost_the_database…") else {
        return;
    };
    let url = database(&cluster, "cut");
    let runs = pismo_store::open_runs(&url).unwrap();
    let mut w = runs.create("mnist", &Hyper::DEFAULT, "d").unwrap();
    let id = w.id().to_owned();
    w.log_metric(1, "val_loss", 0.5);
    w.log_line("epoch 1");
    assert_eq!(runs.info(&id).unwrap().status, Status::Running);

    // The writer's session is ended by the server, as a dead host's would time out.
    let ended = cluster.psql(
        "cut",
        &[],
        "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory';",
    );
    assert_eq!(ended.trim(), "1", "one writer held one run");
    std::thread::sleep(Duration::from_millis(300));
    let info = runs.info(&id).unwrap();
    assert_eq!(info.status, Status::Failed);
    assert!(
        info.error
            .as_deref()
            .unwrap()
            .contains("without closing the run"),
        "{info:?}"
    );
    let end = info.end_unix_ms.unwrap();
    assert!(end >= info.start_unix_ms);
    assert_eq!(runs.list().unwrap()[0].status, Status::Failed);

    // The writer learns it at its next record, and its training goes on to the end.
    w.log_metric(2, "val_loss", 0.4);
    let e = w
        .try_finish(Status::Finished, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains(&id) && e.contains("postgres://"), "{e}");
    assert_eq!(runs.info(&id).unwrap().status, Status::Failed);
}

/// The shipped runs folder into a database and back into a fresh folder: every record,
/// metric and log line as it was; copying again finds everything there.
#[test]
fn the_shipped_runs_copy_into_postgres_and_back_unchanged() {
    let Some(cluster) = postgres_or_skip("the_shipped_runs_copy…") else {
        return;
    };
    let url = database(&cluster, "copy");
    let shipped_dir = workspace_root().join("runs");
    let shipped = Runs::open(&shipped_dir);
    let db = pismo_store::open_runs(&url).unwrap();
    let report = copy_runs(&shipped, &db).unwrap();
    let mut ids: Vec<String> = shipped
        .list()
        .unwrap()
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert!(ids.len() >= 5, "the shipped runs: {ids:?}");
    assert!(report.unreadable.is_empty() && report.running.is_empty());
    let mut copied = report.copied.clone();
    copied.sort();
    ids.sort();
    assert_eq!(copied, ids);
    let again = copy_runs(&shipped, &db).unwrap();
    assert!(again.copied.is_empty());
    assert_eq!(again.present.len(), ids.len());

    let back_dir = TempDir::new("runs-back");
    let back = Runs::open(back_dir.join("runs"));
    copy_runs(&db, &back).unwrap();
    for id in &ids {
        let original: RunRecord = shipped.get(id).unwrap();
        assert_eq!(db.get(id).unwrap(), original, "{id} in the database");
        assert_eq!(back.get(id).unwrap(), original, "{id} back in a folder");
        for file in ["metrics.jsonl", "log.txt"] {
            let read = |dir: &std::path::Path| std::fs::read_to_string(dir.join(id).join(file));
            let (copied, shipped) = (
                read(&back_dir.join("runs")).unwrap(),
                read(&shipped_dir).unwrap(),
            );
            let differ = copied.lines().zip(shipped.lines()).find(|(a, b)| a != b);
            assert_eq!(differ, None, "{id}/{file}: the first line that differs");
            assert_eq!(copied.len(), shipped.len(), "{id}/{file}");
        }
    }
}

/// A team's database made by the pismo before run records (schema v2, its models and a
/// study in it) is upgraded by `migrate` in place: the models stay, and runs can be kept.
#[test]
fn a_schema_v2_database_upgrades_to_keep_runs() {
    let Some(cluster) = postgres_or_skip("a_schema_v2_database_upgrades…") else {
        return;
    };
    let url = database(&cluster, "upgrade");
    let registry = pismo_store::open_registry(&url).unwrap();
    let id = registry
        .register("mnist", &mut |_| {
            std::fs::read(workspace_root().join("models/mnist.v1.pismo")).unwrap()
        })
        .unwrap();
    // Back to what v2 made: without the run tables, and recorded as v2.
    cluster.psql(
        "upgrade",
        &[],
        "DROP TABLE pismo_run_log, pismo_run_metrics, pismo_runs; UPDATE pismo_schema SET version = 2;",
    );
    let e = pismo_store::open_runs(&url).unwrap_err().to_string();
    assert!(
        e.contains("schema v2") && e.contains("pismo store migrate"),
        "{e}"
    );
    assert_eq!(migrate(&url).unwrap(), (2, 3));
    let runs = pismo_store::open_runs(&url).unwrap();
    let w = runs.create("mnist", &Hyper::DEFAULT, "d").unwrap();
    let run = w.id().to_owned();
    w.finish(Status::Finished, None);
    assert_eq!(runs.info(&run).unwrap().status, Status::Finished);
    let registry = pismo_store::open_registry(&url).unwrap();
    assert_eq!(registry.ids().unwrap(), [id]);
}
