//! Studies over the API: `POST /api/tune` runs a real study on the full MNIST (tiny trials),
//! its events stream, its state is the journal's replay (also for a study another process
//! holds), its best model is registered once by `use`; bad requests are 400s naming the
//! field, a second study is 409, and the token rules are those of training.

use std::time::{Duration, Instant};

use pismo_http::{Options, Server};
use pismo_storage::registry::Registry;
use pismo_storage::runs::Runs;
use pismo_storage::studies::journal::{FileJournal, JournalEvent, StudyStore};
use pismo_tests::workspace_root;
use serde_json::{json, Value};

use super::{first_of, names, Client, Fixture};
use pismo_tests::drawn_digit_png;

/// Small networks, a learning rate and a batch size to choose.
fn tiny_space() -> Value {
    json!({"hidden_size": {"choice": [16, 32]}, "initial_lr": {"log": [0.02, 0.3]},
           "batch_size": {"choice": [32, 64]}})
}

/// A study of `trials` tiny trials: 2 epochs on the 10 000 images 50 000 held out leave.
fn tiny_study(name: &str, trials: u32) -> Value {
    json!({"study": name, "trials": trials, "epochs": 2, "val_size": 50000,
           "space": tiny_space()})
}

/// Polls the study's state until `ready` holds of it (at most 2 minutes).
fn wait_state(f: &Fixture, study: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let state = f.get(&format!("/api/studies/{study}")).json();
        if ready(&state) {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "the study never got there: {state}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn start_requests_are_checked_and_name_the_field() {
    let f = Fixture::new();
    let about = f.get("/api/tune").json();
    assert_eq!(about["defaults"]["epochs"], 8);
    assert!(about["space"]["initial_lr"]["log"].is_array(), "{about}");
    assert!(about["limits"]["max_parallel"].as_u64().unwrap() >= 1);
    assert_eq!(about["active"], Value::Null);
    let cores = about["limits"]["max_parallel"].as_u64().unwrap();
    for (body, field) in [
        (json!({"trials": 0}), "trials"),
        (json!({"trials": "3"}), "trials"),
        (json!({"trials": 2.5}), "trials"),
        (json!({"trials": 100_000}), "trials"),
        (json!({"budget": 0.5}), "budget"),
        (json!({"budget": "10m"}), "budget"),
        (json!({"trials": 2, "parallel": 0}), "parallel"),
        (json!({"trials": 2, "parallel": cores + 1}), "parallel"),
        (json!({"trials": 2, "epochs": 0}), "epochs"),
        (json!({"trials": 2, "val_size": 0}), "val_size"),
        (json!({"trials": 2, "val_size": 60000}), "val_size"),
        (json!({"trials": 2, "study": "No Spaces"}), "study"),
        (json!({"trials": 2, "study": 7}), "study"),
        (json!({"trials": 2, "space": [1]}), "space"),
        (
            json!({"trials": 2, "space": {"initial_lr": {"log": [0.3, 0.01]}}}),
            "space",
        ),
        (
            json!({"trials": 2, "space": {"colour": {"choice": [1, 2]}}}),
            "space",
        ),
        (json!({"trials": 2, "bogus": 1}), "bogus"),
    ] {
        let answer = f.post_json("/api/tune", &body);
        let message = answer.expect_error(400);
        assert_eq!(answer.json()["field"], field, "{body}: {message}");
    }
    let message = f.post_json("/api/tune", &json!({})).expect_error(400);
    assert!(
        message.contains("trials") && message.contains("budget"),
        "{message}"
    );
    f.post_json("/api/tune", &json!([1])).expect_error(400);
    f.request("POST", "/api/tune", Some("application/json"), b"{")
        .expect_error(400);
    // A study needs no data to be refused, and none was started.
    assert_eq!(f.get("/api/studies").json(), json!([]));

    // Unknown and impossible studies.
    f.get("/api/studies/nope").expect_error(404);
    f.get("/api/studies/Bad%20Name").expect_error(400);
    f.post_json("/api/studies/nope/stop", &json!({}))
        .expect_error(404);
    f.post_json("/api/studies/nope/use", &json!({}))
        .expect_error(404);
    f.request("DELETE", "/api/tune", None, b"")
        .expect_error(405);
    f.request("GET", "/api/studies/nope/use", None, b"")
        .expect_error(405);
}

#[test]
fn a_study_runs_streams_its_events_and_its_best_model_is_used_once() {
    let Some(f) = Fixture::with_mnist() else {
        return;
    };
    assert_eq!(f.get("/api/tune").json()["data"]["available"], true);
    let started = f.post_json("/api/tune", &tiny_study("apitune", 3));
    assert_eq!(
        started.status,
        202,
        "{}",
        String::from_utf8_lossy(&started.body)
    );
    assert_eq!(started.json()["study"], "apitune");
    assert_eq!(started.header("Location"), Some("/api/studies/apitune"));
    // One study at a time.
    let busy = f.post_json("/api/tune", &tiny_study("other", 2));
    let message = busy.expect_error(409);
    assert!(message.contains("apitune"), "{message}");
    assert_eq!(busy.json()["active"], "apitune");
    assert_eq!(f.get("/api/tune").json()["active"], "apitune");

    let (status, events) = f.events("/api/studies/apitune/events", None);
    assert_eq!(status, 200);
    let count = |name: &str| events.iter().filter(|e| e.name == name).count();
    assert_eq!(count("begin"), 1, "{:?}", names(&events));
    assert_eq!(count("trial_started"), 3, "{:?}", names(&events));
    assert_eq!(count("trial_ended"), 3, "{:?}", names(&events));
    assert!(count("epoch") >= 3, "{:?}", names(&events));
    assert!(count("best") >= 1, "{:?}", names(&events));
    let done = events.last().unwrap();
    assert_eq!(done.name, "done");
    assert_eq!(done.data["status"], "finished", "{:?}", done.data);
    assert_eq!(done.data["trials"], 3);
    let best_accuracy = done.data["best"]["val_accuracy"].as_f64().unwrap();
    assert!(best_accuracy > 0.5, "{best_accuracy}");
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));

    // The state: every trial ended with its curve, the best over time rises to the best.
    let state = f.get("/api/studies/apitune").json();
    assert_eq!(state["running"], false);
    assert_eq!(state["settings"]["max_epochs"], 2);
    let space = &state["settings"]["space"];
    assert_eq!(space["initial_lr"]["log"], json!([0.02, 0.3]), "{space}");
    let sizes: Vec<f64> = space["hidden_size"]["choice"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(sizes, [16.0, 32.0], "{space}");
    let trials = state["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 3, "{state}");
    for t in trials {
        let s = t["state"].as_str().unwrap();
        assert!(s == "complete" || s == "pruned", "{t}");
        let curve = t["curve"].as_array().unwrap();
        assert_eq!(curve.len() as u64, t["epochs"].as_u64().unwrap(), "{t}");
        let hidden = t["values"]["hidden_size"].as_f64().unwrap();
        assert!(hidden == 16.0 || hidden == 32.0, "{t}");
    }
    let over_time = state["best_so_far"].as_array().unwrap();
    assert!(!over_time.is_empty());
    assert!(over_time
        .windows(2)
        .all(|w| w[0][1].as_f64() < w[1][1].as_f64() && w[0][0].as_f64() <= w[1][0].as_f64()));
    assert_eq!(
        over_time.last().unwrap()[1].as_f64().unwrap(),
        best_accuracy
    );
    assert_eq!(
        state["best"]["val_accuracy"].as_f64().unwrap(),
        best_accuracy
    );
    assert_eq!(state["model"], Value::Null);
    let listed = f.get("/api/studies").json();
    assert_eq!(listed[0]["study"], "apitune");
    assert_eq!(listed[0]["trials"], 3);
    assert_eq!(listed[0]["running"], false);

    // An ended study cannot be stopped, nor started again under its name.
    f.post_json("/api/studies/apitune/stop", &json!({}))
        .expect_error(409);
    let again = f.post_json("/api/tune", &tiny_study("apitune", 1));
    assert!(again.expect_error(409).contains("exists"));
    assert_eq!(again.json()["field"], "study");

    // "Use best": registered once, under the trials' name, recorded in the best trial's run.
    let used = f.post_json("/api/studies/apitune/use", &json!({}));
    assert_eq!(used.status, 201, "{}", String::from_utf8_lossy(&used.body));
    assert_eq!(used.json()["model"], "apitune@1");
    assert_eq!(used.json()["registered"], true);
    let reused = f.post_json("/api/studies/apitune/use", &json!({}));
    assert_eq!(reused.status, 200);
    assert_eq!(reused.json()["model"], "apitune@1");
    assert_eq!(reused.json()["registered"], false);
    let run_id = state["best"]["run_id"].as_str().unwrap();
    assert_eq!(
        f.get(&format!("/api/runs/{run_id}")).json()["model"],
        "apitune@1"
    );
    assert_eq!(f.get("/api/studies/apitune").json()["model"], "apitune@1");
    let png = drawn_digit_png(&first_of(0), 140);
    let p = f.request(
        "POST",
        "/api/predict?model=apitune@1",
        Some("image/png"),
        &png,
    );
    assert_eq!(p.status, 200);
    assert_eq!(p.json()["model"], "apitune@1");

    // Another server on the same folders rebuilds the study from its journal and replays
    // the journal's events.
    let other = Server::start(
        "127.0.0.1:0",
        Registry::open(f.dir.join("models")),
        Runs::open(f.dir.join("runs")),
        Options::default(),
    )
    .unwrap();
    let mut c = Client::new(&other.addr().to_string());
    let theirs = c.request("GET", "/api/studies/apitune", None, b"").json();
    assert_eq!(theirs["trials"], state["trials"]);
    assert_eq!(theirs["best_so_far"], state["best_so_far"]);
    let (_, replay) =
        Client::new(&other.addr().to_string()).events("/api/studies/apitune/events", None);
    assert_eq!(replay.first().unwrap().name, "study");
    assert_eq!(replay.iter().filter(|e| e.name == "trial_ended").count(), 3);
    assert_eq!(replay.last().unwrap().data["status"], "ended");
}

#[test]
fn a_study_stops_on_request_and_one_held_elsewhere_is_left_alone() {
    let Some(f) = Fixture::with_mnist() else {
        return;
    };
    let mut long = tiny_study("stopme", 50);
    long["epochs"] = json!(20);
    assert_eq!(f.post_json("/api/tune", &long).status, 202);
    wait_state(&f, "stopme", |s| {
        s["trials"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["state"] == "running"))
    });
    let stop = f.post_json("/api/studies/stopme/stop", &json!({}));
    assert_eq!(stop.status, 202);
    let (_, events) = f.events("/api/studies/stopme/events", None);
    let done = events.last().unwrap();
    assert_eq!(done.data["status"], "stopped", "{:?}", done.data);
    assert!(
        events.iter().any(|e| e.name == "trial_stopped"),
        "{:?}",
        names(&events)
    );
    let state = f.get("/api/studies/stopme").json();
    assert_eq!(state["running"], false);
    let stopped: Vec<&Value> = state["trials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["state"] == "stopped")
        .collect();
    assert_eq!(stopped.len(), 1, "{state}");
    // The slot is free once `done` is out.
    assert_eq!(f.get("/api/tune").json()["active"], Value::Null);

    // A study whose journal another process holds (as `pismo tune` does): shown as running,
    // neither started nor stopped here.
    let studies = f.dir.join("runs").join("studies");
    let mut held = FileJournal::open(&studies, "elsewhere").unwrap();
    held.append(&JournalEvent::Started {
        trial: 0,
        values: [("initial_lr".to_owned(), 0.05)].into(),
        run_id: "run-x".to_owned(),
    })
    .unwrap();
    let state = f.get("/api/studies/elsewhere").json();
    assert_eq!(state["running"], true);
    assert_eq!(state["here"], false);
    assert_eq!(state["trials"][0]["state"], "running");
    let refused = f.post_json("/api/tune", &tiny_study("elsewhere", 1));
    assert!(refused.expect_error(409).contains("another process"));
    let refused = f.post_json("/api/studies/elsewhere/stop", &json!({}));
    assert!(refused.expect_error(409).contains("another process"));
    drop(held);
    let state = f.get("/api/studies/elsewhere").json();
    assert_eq!(state["running"], false);
    assert_eq!(state["trials"][0]["state"], "stopped");
}

#[test]
fn a_token_guards_studies_as_it_guards_training() {
    let f = Fixture::with_options(Options {
        token: Some("s3cret".to_owned()),
        data_dir: workspace_root().join("no-such-folder"),
        ..Options::default()
    });
    let about = f.get("/api/tune").json();
    assert_eq!(about["token_required"], true);
    assert_eq!(about["data"]["available"], false);
    let json = "application/json";
    let body = r#"{"trials": 2}"#;
    let m = f
        .request_with("POST", "/api/tune", "", json, body)
        .expect_error(401);
    assert!(m.contains("token"), "{m}");
    f.request_with(
        "POST",
        "/api/tune",
        "Authorization: Bearer nope\r\n",
        json,
        body,
    )
    .expect_error(403);
    f.request_with("POST", "/api/studies/x/stop", "", json, "")
        .expect_error(401);
    f.request_with("POST", "/api/studies/x/use", "", json, "")
        .expect_error(401);
    // With the token: a bad request is still a 400, a good one gets as far as the missing
    // data.
    let token = "Authorization: Bearer s3cret\r\n";
    f.request_with("POST", "/api/tune", token, json, r#"{"trials": 0}"#)
        .expect_error(400);
    f.request_with("POST", "/api/tune", token, json, body)
        .expect_error(503);
    // The failed start left the slot free.
    assert_eq!(f.get("/api/tune").json()["active"], Value::Null);
    // A browser on another site is refused even with the token.
    f.request_with(
        "POST",
        "/api/tune",
        &format!("Origin: http://evil.example\r\n{token}"),
        json,
        body,
    )
    .expect_error(403);
    // Reading needs no token.
    assert_eq!(f.get("/api/studies").status, 200);
}
