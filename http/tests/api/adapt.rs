//! Adapting over the API: `POST /api/adapt` fine-tunes a real model on corrections kept with
//! `POST /api/drawn`, with the full MNIST rehearsed, in the background: 202, its events to a
//! `done` carrying the before/after figures, the adapted model registered. A second request
//! while it runs is 409; corrections that make it forget end in a failed `done` with the
//! figures (unless `force`); no corrections is 409, no MNIST 503, a bad body 400 naming the
//! field; the token rules are those of training.

use pismo_http::Options;
use pismo_tests::{t10k, workspace_root, TempDir};
use serde_json::{json, Value};

use super::{drawing_json, first_of, names, Fixture};

/// Keeps the first t10k drawing of each of `digits` as a correction with its own label.
fn correct(f: &Fixture, digits: &[u8]) {
    for &d in digits {
        let saved = f.post_json(
            "/api/drawn",
            &json!({ "label": d, "image": drawing_json(&first_of(d)) }),
        );
        assert_eq!(
            saved.status,
            201,
            "{}",
            String::from_utf8_lossy(&saved.body)
        );
    }
}

#[test]
fn adapt_runs_in_the_background_streams_its_progress_and_registers_the_adapted_model() {
    let Some(data_dir) = pismo_tests::full_mnist() else {
        return;
    };
    let drawn = TempDir::new("adapt-drawn");
    let f = Fixture::with_options(Options {
        data_dir,
        drawn_dir: drawn.join("drawn"),
        ..Options::default()
    });
    let about = f.get("/api/adapt").json();
    assert_eq!(about["corrections"]["total"], 0, "{about}");
    assert_eq!(about["data"]["available"], true, "{about}");
    assert_eq!(about["active"], json!([]));
    let msg = f
        .post_json("/api/adapt", &json!({ "model": "mnist@1" }))
        .expect_error(409);
    assert!(msg.contains("no corrections yet"), "{msg}");

    correct(&f, &[1, 4, 7, 9]);
    let about = f.get("/api/adapt").json();
    assert_eq!(about["corrections"]["total"], 4);
    assert_eq!(
        about["corrections"]["counts"],
        json!([0, 1, 0, 0, 1, 0, 0, 1, 0, 1])
    );

    let body = json!({ "model": "mnist@1", "aliases": ["mine"] });
    let started = f.post_json("/api/adapt", &body);
    assert_eq!(
        started.status,
        202,
        "{}",
        String::from_utf8_lossy(&started.body)
    );
    let run_id = started.json()["run_id"].as_str().unwrap().to_owned();
    assert_eq!(
        started.header("Location"),
        Some(format!("/api/runs/{run_id}").as_str())
    );
    assert_eq!(
        started.json()["events"],
        format!("/api/runs/{run_id}/events")
    );
    // One adaptation at a time: the second is refused while the first runs.
    let busy = f.post_json("/api/adapt", &body);
    let msg = busy.expect_error(409);
    assert!(msg.contains("already being adapted"), "{msg}");
    assert_eq!(busy.json()["active"], json!([run_id]));
    assert_eq!(f.get("/api/adapt").json()["active"], json!([run_id]));

    let (status, events) = f.events(&format!("/api/runs/{run_id}/events"), None);
    assert_eq!(status, 200);
    let lines: Vec<&str> = events
        .iter()
        .filter(|e| e.name == "log")
        .map(|e| e.data["line"].as_str().unwrap())
        .collect();
    assert!(lines[0].starts_with("adapting mnist@1"), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("registered mnist-mine@1")),
        "{lines:?}"
    );
    let progress: Vec<&Value> = events
        .iter()
        .filter(|e| e.name == "progress")
        .map(|e| &e.data)
        .collect();
    assert!(!progress.is_empty(), "{:?}", names(&events));
    for p in &progress {
        let (done, total) = (p["done"].as_u64().unwrap(), p["total"].as_u64().unwrap());
        assert!(total > 0 && done <= total, "{p}");
    }
    let done = events.last().unwrap();
    assert_eq!(done.name, "done", "{:?}", names(&events));
    assert_eq!(done.data["status"], "finished", "{}", done.data);
    assert_eq!(done.data["model"], "mnist-mine@1");
    assert_eq!(done.data["error"], Value::Null);
    let adapted = &done.data["adapted"];
    assert_eq!(adapted["base"], "mnist@1");
    assert_eq!(adapted["model"], "mnist-mine@1");
    assert_eq!(adapted["run_id"], run_id.as_str());
    assert_eq!(
        adapted["corrections"],
        json!([0, 1, 0, 0, 1, 0, 0, 1, 0, 1])
    );
    let cv = &adapted["cross_validation"];
    let folds = 4.min(pismo_training::adapt::MAX_FOLDS);
    assert_eq!(
        (cv["folds"].clone(), cv["n"].clone()),
        (json!(folds), json!(4))
    );
    assert!(cv["after"].as_u64().unwrap() <= 4, "{cv}");
    for key in ["base_val_accuracy", "val_accuracy"] {
        let a = adapted[key].as_f64().unwrap();
        assert!(a > 0.9 && a <= 1.0, "{key} {a}");
    }
    assert!(
        adapted["val_accuracy"].as_f64().unwrap()
            >= adapted["base_val_accuracy"].as_f64().unwrap() - 0.005
    );
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));

    // Registered with its alias, recorded as a finished run; the slot is free again.
    let models = f.get("/api/models").json();
    let entry = models
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "mnist-mine@1")
        .expect("mnist-mine@1 listed");
    assert_eq!(entry["aliases"], json!(["mine"]));
    assert_eq!(entry["meta"]["parent"], "mnist@1");
    let run = f.get(&format!("/api/runs/{run_id}")).json();
    assert_eq!(run["status"], "finished", "{run}");
    assert_eq!(run["model"], "mnist-mine@1");
    assert_eq!(f.get("/api/adapt").json()["active"], json!([]));
    let msg = f
        .request("POST", &format!("/api/runs/{run_id}/stop"), None, b"")
        .expect_error(409);
    assert!(msg.contains("adapts a model"), "{msg}");

    // Adapting the adapted model again gives a new version of the same name.
    let again = f.post_json("/api/adapt", &json!({ "model": "mine" }));
    assert_eq!(again.status, 202);
    let again_id = again.json()["run_id"].as_str().unwrap().to_owned();
    let (_, events) = f.events(&format!("/api/runs/{again_id}/events"), None);
    let done = events.last().unwrap();
    assert_eq!(done.data["model"], "mnist-mine@2", "{}", done.data);
    assert_eq!(done.data["adapted"]["base"], "mnist-mine@1");
}

#[test]
fn adapting_that_forgets_is_refused_with_its_figures_unless_forced() {
    let Some(data_dir) = pismo_tests::full_mnist() else {
        return;
    };
    let drawn = TempDir::new("adapt-drawn");
    let f = Fixture::with_options(Options {
        data_dir,
        drawn_dir: drawn.join("drawn"),
        ..Options::default()
    });
    // Sixty MNIST test ones "corrected" to 7: adapting to them unlearns ones.
    let test = t10k();
    let ones = test
        .images
        .iter()
        .zip(&test.labels)
        .filter(|(_, &l)| l == 1)
        .take(60);
    for (image, _) in ones {
        let saved = f.post_json(
            "/api/drawn",
            &json!({ "label": 7, "image": drawing_json(image) }),
        );
        assert_eq!(saved.status, 201);
    }
    let adapt = |body: Value| {
        let started = f.post_json("/api/adapt", &body);
        assert_eq!(
            started.status,
            202,
            "{}",
            String::from_utf8_lossy(&started.body)
        );
        let run_id = started.json()["run_id"].as_str().unwrap().to_owned();
        let (_, events) = f.events(&format!("/api/runs/{run_id}/events"), None);
        (run_id, events.last().unwrap().clone())
    };
    let (run_id, done) = adapt(json!({ "model": "mnist@1", "name": "bad" }));
    assert_eq!(done.name, "done");
    assert_eq!(done.data["status"], "failed", "{}", done.data);
    assert_eq!(done.data["model"], Value::Null);
    let error = done.data["error"].as_str().unwrap();
    assert!(
        error.starts_with("refused") && error.contains("\"force\": true"),
        "{error}"
    );
    let forgets = &done.data["forgets"];
    let (before, after) = (
        forgets["before"].as_f64().unwrap(),
        forgets["after"].as_f64().unwrap(),
    );
    assert!(after < before - 0.005, "{forgets}");
    assert_eq!(forgets["max"], 0.005);
    assert_eq!(
        f.get(&format!("/api/runs/{run_id}")).json()["status"],
        "failed"
    );
    assert!(!f.get("/api/models").body.windows(5).any(|w| w == b"bad@1"));

    let (_, done) = adapt(json!({ "model": "mnist@1", "name": "bad", "force": true }));
    assert_eq!(done.data["status"], "finished", "{}", done.data);
    assert_eq!(done.data["model"], "bad@1");
}

#[test]
fn adapt_requests_are_checked() {
    // No MNIST: every request here is refused before adapting starts.
    let drawn = TempDir::new("adapt-drawn");
    let f = Fixture::with_options(Options {
        data_dir: workspace_root().join("no-such-folder"),
        drawn_dir: drawn.join("drawn"),
        ..Options::default()
    });
    let msg = f.post_json("/api/adapt", &json!({})).expect_error(409);
    assert!(msg.contains("no corrections yet"), "{msg}");
    assert!(
        !msg.contains(&*drawn.join("drawn").to_string_lossy()),
        "no host folder: {msg}"
    );

    correct(&f, &[3]);
    let about = f.get("/api/adapt").json();
    assert_eq!(about["corrections"]["total"], 1);
    assert_eq!(about["data"]["available"], false);
    assert!(about["data"]["error"]
        .as_str()
        .unwrap()
        .contains("pismo data fetch"));
    let msg = f.post_json("/api/adapt", &json!({})).expect_error(503);
    assert!(msg.contains("pismo data fetch"), "{msg}");
    // A server given no fetch command says so, and what to run instead.
    let data = f.get("/api/data").json();
    assert_eq!(data["available"], false, "{data}");
    assert_eq!(
        data["fetch"],
        json!({ "possible": false, "running": false, "lines": [], "error": null })
    );
    let msg = f
        .request("POST", "/api/data/fetch", None, b"")
        .expect_error(501);
    assert!(msg.contains("pismo data fetch"), "{msg}");
    f.request("GET", "/api/data/fetch", None, b"")
        .expect_error(405);
    // The slot the refused request reserved is free again.
    assert_eq!(f.get("/api/adapt").json()["active"], json!([]));

    for (body, field) in [
        (json!({ "model": 1 }), "model"),
        (json!({ "name": "../x" }), "name"),
        (json!({ "aliases": ["42"] }), "aliases"),
        (json!({ "force": 1 }), "force"),
        (json!({ "hidden_size": 16 }), "hidden_size"),
    ] {
        let a = f.post_json("/api/adapt", &body);
        let msg = a.expect_error(400);
        assert_eq!(a.json()["field"], field, "{body}: {msg}");
    }
    let msg = f
        .post_json("/api/adapt", &json!({ "model": "nope@3" }))
        .expect_error(404);
    assert!(msg.contains("nope"), "{msg}");
    f.request("POST", "/api/adapt", Some("text/plain"), b"{}")
        .expect_error(415);
    let put = f.request("PUT", "/api/adapt", Some("application/json"), b"{}");
    put.expect_error(405);
    assert_eq!(put.header("Allow"), Some("GET, POST"));
}

#[test]
fn adapt_is_guarded_like_training() {
    let drawn = TempDir::new("adapt-drawn");
    let f = Fixture::with_options(Options {
        token: Some("s3cret".to_owned()),
        data_dir: workspace_root().join("no-such-folder"),
        drawn_dir: drawn.join("drawn"),
        ..Options::default()
    });
    assert_eq!(f.get("/api/adapt").json()["token_required"], true);
    let json = "application/json";
    let m = f
        .request_with("POST", "/api/adapt", "", json, "{}")
        .expect_error(401);
    assert!(m.contains("token"), "{m}");
    f.request_with(
        "POST",
        "/api/adapt",
        "Authorization: Bearer nope\r\n",
        json,
        "{}",
    )
    .expect_error(403);
    f.request_with(
        "POST",
        "/api/adapt",
        "Origin: http://evil.example\r\nAuthorization: Bearer s3cret\r\n",
        json,
        "{}",
    )
    .expect_error(403);
    // Fetching MNIST is guarded the same way.
    f.request_with("POST", "/api/data/fetch", "", json, "")
        .expect_error(401);
    f.request_with(
        "POST",
        "/api/data/fetch",
        "Authorization: Bearer s3cret\r\n",
        json,
        "",
    )
    .expect_error(501);
    // With the token the request gets as far as the missing corrections.
    f.request_with(
        "POST",
        "/api/adapt",
        "Authorization: Bearer s3cret\r\n",
        json,
        "{}",
    )
    .expect_error(409);
}
