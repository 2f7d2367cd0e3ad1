//! The `pismo` command line, through the real binary: exit statuses, error lines, the JSON
//! output scripts rely on, and (when the full MNIST is present) train → list → eval → predict.
//!
//! Every command runs in a [`Pismo`] sandbox: `PISMO_REGISTRY`, `PISMO_RUNS` and `PISMO_DATA`
//! point into a temp folder, so nothing here reads or writes `./models` or `./runs`.

use pismo_core::hyper::Hyper;
use pismo_core::preprocess::{self, GreyImage};
use pismo_digits::image::decode_png;
use pismo_engine::model::AnyMlp;
use pismo_tests::{
    drawn_digit_png, full_mnist, idx3, t10k, test_data, train_tiny_model, workspace_root, Output,
    Pismo,
};
use serde_json::Value;

/// A sandbox whose registry holds `tiny@1` (trained on t10k) and its run.
fn with_tiny_model() -> Pismo {
    let p = Pismo::new();
    assert_eq!(train_tiny_model(&p.registry(), &p.runs()), "tiny@1");
    p
}

/// The one `error: …` line a failing command prints (other stderr lines are progress).
fn error_line(out: &Output) -> &str {
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "expected one error line: {}", out.stderr);
    errors[0]
}

fn probabilities(v: &Value) -> Vec<f64> {
    v["probabilities"]
        .as_array()
        .expect("probabilities array")
        .iter()
        .map(|p| p.as_f64().expect("a number"))
        .collect()
}

fn write(p: &Pismo, name: &str, bytes: &[u8]) -> String {
    std::fs::write(p.home.join(name), bytes).expect("write test file");
    name.to_owned()
}

#[test]
fn help_exits_0_and_lists_the_commands() {
    let p = Pismo::new();
    let out = p.run(&["--help"]);
    out.expect_code(0);
    for command in ["train", "eval", "predict", "models", "runs", "data"] {
        assert!(
            out.stdout.contains(command),
            "{command} missing:\n{}",
            out.stdout
        );
    }
    let out = p.run(&["train", "--help"]);
    out.expect_code(0);
    assert!(out.stdout.contains("--hidden-size") && out.stdout.contains("--learning-rate"));
    let default_hidden = format!("hidden_size {}", Hyper::DEFAULT.hidden_size);
    assert!(
        out.stdout.contains("Defaults:") && out.stdout.contains(&default_hidden),
        "{}",
        out.stdout
    );
}

#[test]
fn unknown_subcommands_and_flags_are_usage_errors() {
    let p = Pismo::new();
    for args in [
        &["frobnicate"][..],
        &[],
        &["models"],
        &["models", "list", "--bogus"],
        &["train", "--epochs", "many"],
    ] {
        let out = p.run(args);
        out.expect_code(2);
        let line = error_line(&out);
        assert!(line.contains("--help"), "no hint in: {line}");
    }
    assert!(!p.registry().exists() && !p.runs().exists());
}

#[test]
fn an_invalid_hyperparameter_is_a_usage_error_naming_the_field() {
    // The data folder is empty: the check must come before loading MNIST.
    let p = Pismo::new();
    for (flag, value, field) in [
        ("--hidden-size", "100", "hidden_size"),
        ("--dropout-rate", "1.5", "dropout_rate"),
        ("--momentum", "1", "momentum"),
        ("--batch-size", "0", "batch_size"),
    ] {
        let out = p.run(&["train", flag, value]);
        out.expect_code(2);
        let line = error_line(&out);
        assert!(
            line.contains(field) && line.contains(&format!("{flag} {value}")),
            "{line}"
        );
    }
    let out = p.run(&["train", "--name", "Not Valid"]);
    out.expect_code(2);
    assert!(error_line(&out).contains("Not Valid"));
    let out = p.run(&["train", "--average", "5000"]);
    out.expect_code(2);
    assert!(error_line(&out).contains("average"), "{}", out.stderr);
    assert!(!p.runs().exists(), "no run is recorded for a usage error");
}

#[test]
fn train_without_mnist_says_how_to_get_it() {
    let p = Pismo::new();
    let out = p.run(&["train", "--epochs", "1"]);
    out.expect_code(1);
    assert!(error_line(&out).contains("fetch-mnist"), "{}", out.stderr);
}

#[test]
fn data_verify_on_an_empty_folder_fails_and_mentions_fetch_mnist() {
    let p = Pismo::new();
    let out = p.run(&["data", "verify"]);
    out.expect_code(1);
    assert_eq!(
        out.stdout.lines().count(),
        4,
        "one line per file:\n{}",
        out.stdout
    );
    assert!(error_line(&out).contains("fetch-mnist"));

    // tests/data holds the real test split only: two files OK, two missing.
    let data = test_data();
    let out = p.run(&["data", "verify", "--data", data.to_str().unwrap()]);
    out.expect_code(1);
    let ok: Vec<&str> = out.stdout.lines().filter(|l| l.ends_with(" OK")).collect();
    assert_eq!(ok.len(), 2, "{}", out.stdout);
    assert!(ok.iter().all(|l| l.starts_with("t10k-")));
}

#[test]
fn predict_reports_a_missing_file_by_name_and_answers_the_others() {
    let p = with_tiny_model();
    let digit = write(&p, "seven.png", &drawn_digit_png(&t10k().images[0], 200));
    let out = p.run(&["predict", "no-such-file.png", &digit]);
    out.expect_code(1);
    assert!(
        error_line(&out).contains("no-such-file.png"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.starts_with("seven.png: "), "{}", out.stdout);
}

#[test]
fn predict_rejects_a_blank_image_and_still_answers_for_noise() {
    let p = with_tiny_model();
    let blank = write(&p, "blank.png", &{
        let white = vec![255u8; 200 * 200];
        pismo_digits::image::encode_png(&GreyImage::new(200, 200, &white).unwrap())
    });
    let out = p.run(&["predict", &blank]);
    out.expect_code(1);
    let line = error_line(&out);
    assert!(
        line.contains("blank.png") && line.contains("no ink"),
        "{line}"
    );
    assert!(out.stdout.is_empty());

    // Noise has ink: the model has no "not a digit" class, so it answers, and the answer
    // is a proper distribution. (The CLI does not pretend to know better than the model.)
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..200 * 200)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 56) as u8
        })
        .collect();
    let noisy = write(&p, "noise.png", &{
        pismo_digits::image::encode_png(&GreyImage::new(200, 200, &noise).unwrap())
    });
    let out = p.run(&["predict", "--json", &noisy]);
    out.expect_code(0);
    let lines = out.json_lines();
    assert_eq!(lines.len(), 1);
    let sum: f64 = probabilities(&lines[0]).iter().sum();
    assert!((sum - 1.0).abs() < 1e-3, "{sum}");
}

#[test]
fn predict_json_gives_one_line_per_image_with_ten_probabilities() {
    let p = with_tiny_model();
    let t = t10k();
    let idx = write(&p, "three.idx3", &idx3(&t.images[..3]));
    let png_bytes = drawn_digit_png(&t.images[1], 240);
    let png = write(&p, "drawn.png", &png_bytes);
    let out = p.run(&["predict", "--json", "--model", "tiny", &idx, &png]);
    out.expect_code(0);
    let lines = out.json_lines();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    for (line, (file, index)) in lines
        .iter()
        .zip([(&idx, 0), (&idx, 1), (&idx, 2), (&png, 0)])
    {
        assert_eq!(line["file"], file.as_str());
        assert_eq!(line["index"], index);
        let p = probabilities(line);
        assert_eq!(p.len(), 10);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-3, "{p:?}");
        let label = line["label"].as_u64().expect("label") as usize;
        assert!(
            p.iter().all(|&q| q <= p[label]),
            "label is not the most likely: {line}"
        );
    }

    // The CLI answers exactly what the library does for the same image.
    let registry = pismo_storage::registry::Registry::open(p.registry());
    let (_, bytes) = registry.load(Some("tiny@1")).unwrap();
    let (mlp, _) = AnyMlp::decode(&bytes).unwrap();
    let img = decode_png(&png_bytes).unwrap();
    let mut x = [0.0f32; 784];
    preprocess::to_input(&img.as_grey(), &mut x).unwrap();
    let expected = mlp.predict_proba(&x);
    for (got, want) in probabilities(&lines[3]).iter().zip(expected) {
        assert!((got - f64::from(want)).abs() < 1e-6, "{got} vs {want}");
    }
}

#[test]
fn predict_reads_a_png_from_standard_input_given_as_dash() {
    use std::io::Write;
    let p = with_tiny_model();
    let png = drawn_digit_png(&t10k().images[0], 200);
    let mut child = p
        .command(&["predict", "--json", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn pismo");
    child.stdin.take().unwrap().write_all(&png).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let line: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(line["file"], "-");
    assert_eq!(probabilities(&line).len(), 10);
}

#[test]
fn eval_json_reports_accuracy_and_a_confusion_matrix() {
    // PISMO_DATA = tests/data: the default data is its (real, digest-checked) test split.
    let p = with_tiny_model().with_data(test_data());
    let out = p.run(&["eval", "--json"]);
    out.expect_code(0);
    let lines = out.json_lines();
    assert_eq!(lines.len(), 1);
    let r = &lines[0];
    assert_eq!(r["model"], "tiny@1");
    assert_eq!(r["n"], 10_000);
    let confusion: Vec<Vec<u64>> = serde_json::from_value(r["confusion"].clone()).unwrap();
    assert_eq!(confusion.len(), 10);
    assert!(confusion.iter().all(|row| row.len() == 10));
    let total: u64 = confusion.iter().flatten().sum();
    let correct: u64 = (0..10).map(|i| confusion[i][i]).sum();
    assert_eq!(total, 10_000);
    let accuracy = r["accuracy"].as_f64().unwrap();
    assert!((accuracy - correct as f64 / 1e4).abs() < 1e-9);
    // Trained on these very images: anything that learned scores far above chance.
    assert!(accuracy > 0.8, "{accuracy}");

    // The same through --images/--labels, and the text form.
    let dir = test_data();
    let images = dir.join("t10k-images-idx3-ubyte.gz");
    let labels = dir.join("t10k-labels-idx1-ubyte.gz");
    let (images, labels) = (images.to_str().unwrap(), labels.to_str().unwrap());
    let out = p.run(&["eval", "--images", images, "--labels", labels]);
    out.expect_code(0);
    assert!(
        out.stdout.contains(&format!("{:.2} %", accuracy * 100.0)),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("recall"));

    let out = p.run(&["eval", "--images", images]);
    out.expect_code(2);
    assert!(error_line(&out).contains("--labels"));
}

#[test]
fn models_list_json_on_an_empty_registry_prints_nothing() {
    let p = Pismo::new();
    let out = p.run(&["models", "list", "--json"]);
    out.expect_code(0);
    assert_eq!(out.stdout, "");
    let out = p.run(&["models", "list"]);
    out.expect_code(0);
    assert!(out.stderr.contains("no models"), "{}", out.stderr);
}

#[test]
fn models_show_names_an_unknown_model_and_rejects_a_malformed_reference() {
    let p = with_tiny_model();
    let out = p.run(&["models", "show", "nosuch"]);
    out.expect_code(1);
    assert!(error_line(&out).contains("nosuch"));
    let out = p.run(&["models", "show", "tiny@7"]);
    out.expect_code(1);
    assert!(
        error_line(&out).contains("tiny@1"),
        "lists what exists: {}",
        out.stderr
    );
    let out = p.run(&["models", "show", "Tiny@"]);
    out.expect_code(2);
    assert!(error_line(&out).contains("Tiny@"));

    let out = p.run(&["models", "show", "tiny", "--json"]);
    out.expect_code(0);
    let shown = &out.json_lines()[0];
    assert_eq!(shown["id"], "tiny@1");
    assert_eq!(shown["meta"]["hidden_size"], 32);
    let out = p.run(&["models", "show", "tiny"]);
    out.expect_code(0);
    assert!(out.stdout.contains("hidden_size 32"), "{}", out.stdout);
}

#[test]
fn models_alias_unalias_and_delete_round_trip() {
    let p = with_tiny_model();
    p.run(&["models", "alias", "tiny", "best"]).expect_code(0);
    let listed = p.run(&["models", "list", "--json"]).json_lines();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["aliases"], serde_json::json!(["best"]));

    // Predicting through the alias works; deleting an aliased model is refused.
    let png = write(&p, "d.png", &drawn_digit_png(&t10k().images[0], 200));
    p.run(&["predict", "--model", "tiny@best", &png])
        .expect_code(0);
    let out = p.run(&["models", "delete", "tiny@1"]);
    out.expect_code(1);
    assert!(error_line(&out).contains("best"));
    // Delete wants an exact NAME@VERSION.
    p.run(&["models", "delete", "tiny"]).expect_code(2);

    p.run(&["models", "unalias", "best"]).expect_code(0);
    p.run(&["models", "unalias", "best"]).expect_code(1);
    p.run(&["models", "delete", "tiny@1"]).expect_code(0);
    assert_eq!(p.run(&["models", "list", "--json"]).stdout, "");
}

#[test]
fn runs_list_show_and_log_describe_a_session() {
    let p = with_tiny_model();
    let runs = p.run(&["runs", "list", "--json"]).json_lines();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run["status"], "finished");
    assert_eq!(run["model"], "tiny@1");
    assert_eq!(run["epochs_run"], 2);
    let id = run["run_id"].as_str().unwrap();

    let shown = &p.run(&["runs", "show", id, "--json"]).json_lines()[0];
    assert_eq!(shown["params"]["hidden_size"], 32);
    assert!(shown["metrics"].as_array().unwrap().len() >= 2 * 6);
    let out = p.run(&["runs", "show", id]);
    out.expect_code(0);
    assert!(out.stdout.contains("val acc") && out.stdout.contains("finished"));
    let out = p.run(&["runs", "log", id]);
    out.expect_code(0);
    assert!(out.stdout.contains("epoch 2/2"), "{}", out.stdout);

    p.run(&["runs", "show", "20000101-000000-000000"])
        .expect_code(1);
    p.run(&["runs", "show", "../etc"]).expect_code(2);
}

/// The whole path a user takes, on the real MNIST: needs `data/mnist` (CI fetches it).
#[test]
fn train_on_full_mnist_then_list_eval_and_predict_a_drawn_digit() {
    let Some(mnist) = full_mnist() else {
        return;
    };
    let p = Pismo::new().with_data(mnist);
    let out = p.run(&[
        "train",
        "--json",
        "--epochs",
        "1",
        "--hidden-size",
        "32",
        "--alias",
        "default",
    ]);
    out.expect_code(0);
    let events = out.json_lines();
    assert_eq!(events.len(), 2, "{}", out.stdout);
    assert_eq!(events[0]["event"], "epoch");
    assert_eq!(events[0]["epoch"], 1);
    let done = &events[1];
    assert_eq!(done["event"], "done");
    assert_eq!(done["model"], "mnist@1");
    let run_id = done["run_id"].as_str().unwrap();
    let test_accuracy = done["metrics"]["test_accuracy"].as_f64().unwrap();
    assert!(test_accuracy > 0.85, "{test_accuracy}");
    assert!(
        out.stderr.contains("epoch 1/1"),
        "progress on stderr: {}",
        out.stderr
    );

    let models = p.run(&["models", "list", "--json"]).json_lines();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0]["id"], "mnist@1");
    assert_eq!(models[0]["aliases"], serde_json::json!(["default"]));

    let runs = p.run(&["runs", "list", "--json"]).json_lines();
    assert_eq!(runs[0]["run_id"], run_id);
    assert_eq!(runs[0]["status"], "finished");
    assert_eq!(runs[0]["model"], "mnist@1");

    // eval on the test split gives the accuracy the trainer stored in the model.
    let report = &p.run(&["eval", "--json"]).json_lines()[0];
    assert_eq!(report["model"], "mnist@1");
    let accuracy = report["accuracy"].as_f64().unwrap();
    assert!(
        (accuracy - test_accuracy).abs() < 1e-4,
        "{accuracy} vs {test_accuracy}"
    );

    // A real test digit (a 7), drawn large and off-centre on a white canvas.
    let t = t10k();
    assert_eq!(t.labels[0], 7);
    let png = write(&p, "seven.png", &drawn_digit_png(&t.images[0], 200));
    let out = p.run(&["predict", "--json", &png]);
    out.expect_code(0);
    assert_eq!(out.json_lines()[0]["label"], 7, "{}", out.stdout);
    let out = p.run(&["predict", &png]);
    assert!(out.stdout.starts_with("seven.png: 7 ("), "{}", out.stdout);
}

/// Ctrl-C in a long `pismo train` keeps the work done: training stops, and the best weights
/// so far are evaluated and registered, as the web page's Stop does.
#[test]
fn ctrl_c_stops_training_and_registers_the_best_weights_so_far() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let Some(mnist) = full_mnist() else {
        return;
    };
    let p = Pismo::new().with_data(mnist);
    let mut child = p
        .command(&["train", "--json", "--epochs", "200", "--hidden-size", "32"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..2 {
        let line = lines.next().expect("an epoch line").unwrap();
        assert!(line.contains(r#""event":"epoch""#), "{line}");
    }
    // SIGINT, as Ctrl-C sends it, through the real `kill`.
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<Value> = lines
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("stopping"), "{stderr}");
    let done = rest.last().expect("a done line");
    assert_eq!(done["event"], "done", "{rest:?}");
    assert_eq!(done["model"], "mnist@1");
    assert_eq!(done["status"], "stopped");
    let epochs_run = done["metrics"]["epochs_run"].as_u64().unwrap();
    assert!((2..200).contains(&epochs_run), "{done}");
    let test_accuracy = done["metrics"]["test_accuracy"].as_f64().unwrap();
    assert!(test_accuracy > 0.9, "{done}");
    let runs = p.run(&["runs", "list", "--json"]).json_lines();
    assert_eq!(runs[0]["status"], "stopped");
    assert_eq!(runs[0]["model"], "mnist@1");
    // The registered model is the one the run reports.
    let report = &p
        .run(&["eval", "--model", "mnist@1", "--json"])
        .json_lines()[0];
    let accuracy = report["accuracy"].as_f64().unwrap();
    assert!((accuracy - test_accuracy).abs() < 1e-4, "{accuracy}");
}

/// The copies of the kernels this CPU runs (on x86-64 baseline SSE2, AVX2, AVX-512; aarch64
/// builds only the NEON one), narrowest first, to compare them under `PISMO_SIMD`; says
/// loudly when the CPU (or `PISMO_SIMD`) leaves some out.
fn kernel_levels(test: &str) -> Vec<pismo_engine::kernels::Level> {
    use pismo_engine::kernels::{level, Level};
    let widest = level();
    let levels: Vec<Level> = Level::BUILT
        .iter()
        .copied()
        .filter(|&l| l <= widest)
        .collect();
    if levels.len() < Level::BUILT.len() {
        eprintln!(
            "\n##########################################################################\n\
             SKIPPED IN PART: {test}: this CPU runs only {levels:?} of {:?} (or PISMO_SIMD\n\
             caps it), so the wider copies are not compared.\n\
             ##########################################################################\n",
            Level::BUILT
        );
    }
    levels
}

/// Every copy of the kernels this CPU runs trains the same model bit for bit: no fused
/// multiply-add, no reordered sums (`PISMO_SIMD` caps the copy). The run distorts and
/// deskews its digits, which each copy compiles with its own instruction set too.
#[test]
fn every_kernel_copy_trains_bit_identical_weights() {
    let Some(mnist) = full_mnist() else {
        return;
    };
    let levels = kernel_levels("every_kernel_copy_trains_bit_identical_weights");
    if levels.len() < 2 {
        return;
    }
    let args = [
        "train",
        "--hidden-size",
        "32",
        "--epochs",
        "1",
        "--val-size",
        "58000",
        "--augment",
        "--elastic",
        "2",
        "--deskew",
    ];
    let files: Vec<Vec<u8>> = levels
        .iter()
        .map(|l| {
            let p = Pismo::new().with_data(&mnist);
            let out = p
                .command(&args)
                .env("PISMO_SIMD", l.name())
                .output()
                .expect("run pismo");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{stderr}");
            assert!(
                stderr.contains(&format!("{} kernels", l.name())),
                "the header names the copy: {stderr}"
            );
            std::fs::read(p.registry().join("mnist.v1.pismo")).expect("model registered")
        })
        .collect();
    let baseline = pismo_core::format::decode(&files[0]).expect("model decodes");
    for (l, file) in levels.iter().zip(&files).skip(1) {
        let other = pismo_core::format::decode(file).expect("model decodes");
        assert!(
            baseline.tensors == other.tensors,
            "the {} copy changed the model",
            l.name()
        );
        assert_eq!(baseline.meta.metrics, other.meta.metrics);
    }
}

/// Every copy of the preprocessing (`preprocess::to_input`, compiled per instruction set like
/// the kernels) gives the same model input bit for bit, so the same answer to the last digit:
/// drawings shrunk (280x280, 700x700), a small one enlarged, a 28x28 one passed through.
#[test]
fn every_kernel_copy_preprocesses_drawings_to_the_same_bits() {
    let levels = kernel_levels("every_kernel_copy_preprocesses_drawings_to_the_same_bits");
    if levels.len() < 2 {
        return;
    }
    let p = Pismo::new();
    let t = t10k();
    let mut files: Vec<String> = std::fs::read_dir(workspace_root().join("samples"))
        .expect("samples/")
        .map(|e| e.expect("a sample").path().display().to_string())
        .collect();
    files.sort();
    let mut write = |name: &str, bytes: Vec<u8>| {
        let path = p.registry().with_file_name(name);
        std::fs::write(&path, bytes).expect("write a drawing");
        files.push(path.display().to_string());
    };
    for (i, side) in [(3, 280), (11, 700), (18, 140)] {
        write(
            &format!("drawn-{i}.png"),
            drawn_digit_png(&t.images[i], side),
        );
    }
    let small: Vec<u8> = (4..20)
        .flat_map(|y| t.images[0][y * 28 + 6..y * 28 + 22].to_vec())
        .collect();
    let small = GreyImage::new(16, 16, &small).expect("a 16x16 crop");
    write("small.png", pismo_digits::image::encode_png(&small));
    write("digits.idx3", idx3(&t.images[..50]));
    let models = workspace_root().join("models");
    let answers: Vec<String> = levels
        .iter()
        .map(|l| {
            let mut args = vec!["predict", "--json", "--model", "mnist@3", "--registry"];
            let models = models.to_str().expect("a UTF-8 path");
            args.push(models);
            args.extend(files.iter().map(String::as_str));
            let out = p
                .command(&args)
                .env("PISMO_SIMD", l.name())
                .output()
                .expect("run pismo predict");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{}: {stderr}", l.name());
            String::from_utf8(out.stdout).expect("UTF-8 JSON lines")
        })
        .collect();
    assert_eq!(answers[0].lines().count(), 10 + 4 + 50, "{}", answers[0]);
    for (l, answer) in levels.iter().zip(&answers).skip(1) {
        assert_eq!(
            &answers[0],
            answer,
            "the {} copy answered otherwise than {}",
            l.name(),
            levels[0].name()
        );
    }
}

/// `pismo train --members 2` is two networks trained apart (`--member 0` and `--member 1`,
/// each half as wide) and joined by `pismo models join`: the same weights, the same figures.
/// Member 0 is the plain run of the same seed, member 1 is another network.
#[test]
fn a_committee_is_its_members_trained_apart_and_joined() {
    let Some(mnist) = full_mnist() else {
        return;
    };
    let p = Pismo::new().with_data(&mnist);
    let common = [
        "--epochs",
        "1",
        "--val-size",
        "56000",
        "--augment",
        "--seed",
        "7",
    ];
    let train = |extra: &[&str]| {
        let args: Vec<&str> = ["train"]
            .iter()
            .chain(&common)
            .chain(extra)
            .copied()
            .collect();
        let out = p.run(&args);
        out.expect_code(0);
        out
    };
    let out = train(&[
        "--name",
        "committee",
        "--hidden-size",
        "64",
        "--members",
        "2",
    ]);
    for line in [
        "member 1/2: 784-32-10, seed 7",
        "member 2/2: 784-32-10, seed 8",
        "committee of 2 joined: 784-64-10",
    ] {
        assert!(out.stderr.contains(line), "{line} not in {}", out.stderr);
    }
    train(&["--name", "plain", "--hidden-size", "32"]);
    train(&["--name", "part", "--hidden-size", "32", "--member", "0"]);
    train(&["--name", "part", "--hidden-size", "32", "--member", "1"]);
    let out = p.run(&[
        "models", "join", "part@1", "part@2", "--name", "joined", "--json",
    ]);
    out.expect_code(0);
    let v = &out.json_lines()[0];
    assert_eq!(
        (v["model"].as_str(), v["hidden_size"].as_u64()),
        (Some("joined@1"), Some(64))
    );
    assert_eq!(v["members"], "part@1+part@2");
    let validation = &v["sets"]["validation"];
    assert_eq!(validation["members"].as_array().map(Vec::len), Some(2));

    let file = |name: &str| std::fs::read(p.registry().join(name)).expect("model registered");
    let (committee, joined) = (file("committee.v1.pismo"), file("joined.v1.pismo"));
    let (committee, joined) = (
        pismo_core::format::decode(&committee).unwrap(),
        pismo_core::format::decode(&joined).unwrap(),
    );
    assert!(committee.tensors == joined.tensors, "the same weights");
    assert_eq!(committee.meta.hyper.hidden_size, 64);
    let (c, j) = (committee.meta.metrics, joined.meta.metrics);
    assert_eq!(
        (c.val_accuracy, c.test_accuracy),
        (j.val_accuracy, j.test_accuracy)
    );
    assert!((validation["accuracy"].as_f64().unwrap() - f64::from(c.val_accuracy)).abs() < 1e-6);
    let (plain, first, second) = (
        file("plain.v1.pismo"),
        file("part.v1.pismo"),
        file("part.v2.pismo"),
    );
    fn tensors(b: &[u8]) -> pismo_core::format::Tensors<'_> {
        pismo_core::format::decode(b).unwrap().tensors
    }
    assert!(
        tensors(&plain) == tensors(&first),
        "member 0 is the plain run"
    );
    assert!(
        tensors(&first) != tensors(&second),
        "member 1 is another network"
    );

    // What cannot be joined or split is a usage error.
    let one = p.run(&["models", "join", "part@1", "--name", "x"]);
    one.expect_code(2);
    let odd = p.run(&["train", "--hidden-size", "64", "--members", "3"]);
    odd.expect_code(2);
    assert!(error_line(&odd).contains("members"), "{}", odd.stderr);
    let both = p.run(&[
        "train",
        "--members",
        "2",
        "--member",
        "1",
        "--hidden-size",
        "64",
    ]);
    both.expect_code(2);
    p.run(&["models", "quantize", "part@1"]).expect_code(0);
    let int8 = p.run(&["models", "join", "part@2", "part-int8@1", "--name", "x"]);
    int8.expect_code(2);
    assert!(error_line(&int8).contains("int8"), "{}", int8.stderr);
}

/// `pismo models quantize` registers an int8 child that `eval` and `predict` use like any
/// model. Needs the MNIST training images for calibration (CI fetches them).
#[test]
fn quantize_registers_an_int8_child_that_eval_uses() {
    let Some(mnist) = full_mnist() else {
        return;
    };
    let p = Pismo::new().with_data(&mnist);
    assert_eq!(train_tiny_model(&p.registry(), &p.runs()), "tiny@1");
    let out = p.run(&["models", "quantize", "tiny", "--json"]);
    out.expect_code(0);
    let v = &out.json_lines()[0];
    assert_eq!(v["model"], "tiny-int8@1");
    assert_eq!(v["parent"], "tiny@1");
    let (q, f) = (
        v["test_accuracy"].as_f64().unwrap(),
        v["parent_test_accuracy"].as_f64().unwrap(),
    );
    assert!(q > f - 0.01, "int8 {q} vs f32 {f}");
    let list = p.run(&["models", "list", "--json"]);
    let kinds: Vec<String> = list
        .json_lines()
        .iter()
        .map(|e| e["meta"]["kind"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(kinds.contains(&"int8".to_owned()), "{kinds:?}");
    let eval = p.run(&["eval", "--model", "tiny-int8", "--json"]);
    eval.expect_code(0);
    let acc = eval.json_lines()[0]["accuracy"].as_f64().unwrap();
    assert!((acc - q).abs() < 1e-4, "eval {acc} vs quantize {q}");
    // Quantizing an int8 model is refused with a clear error.
    let again = p.run(&["models", "quantize", "tiny-int8"]);
    again.expect_code(1);
    assert!(again.stderr.contains("already int8"), "{}", again.stderr);
}

/// `pismo models quantize --prune-rare N` keeps the first-layer rows of the pixels MNIST's
/// training digits ink: a smaller file (format version 3) that `models show` describes and
/// that reads MNIST test as the dense int8 copy does, give or take the rare digit inked
/// where training digits almost never are. Bad values are refused.
#[test]
fn quantize_prunes_the_pixels_training_digits_almost_never_ink() {
    let Some(mnist) = full_mnist() else {
        return;
    };
    let p = Pismo::new().with_data(&mnist);
    assert_eq!(train_tiny_model(&p.registry(), &p.runs()), "tiny@1");
    let dense = p.run(&["models", "quantize", "tiny", "--json"]);
    let dense = &dense.expect_code(0).json_lines()[0];
    assert_eq!(dense["kept_pixels"], 784);
    let out = p.run(&[
        "models",
        "quantize",
        "tiny",
        "--prune-rare",
        "100",
        "--json",
    ]);
    let v = &out.expect_code(0).json_lines()[0];
    assert_eq!(v["model"], "tiny-int8@2");
    let kept = v["kept_pixels"].as_u64().unwrap();
    assert!((500..700).contains(&kept), "{kept} pixels kept");
    // 32 bytes (one int8 row of the 32 units) per dropped pixel, less the 98-byte bitmap and
    // its length byte (the metadata's varints may differ by a few bytes).
    let saved = dense["bytes"].as_u64().unwrap() - v["bytes"].as_u64().unwrap();
    let rows = (784 - kept) * 32;
    assert!((rows - 99..rows).contains(&saved), "{saved} bytes saved");
    let file = std::fs::read(p.registry().join("tiny-int8.v2.pismo")).unwrap();
    assert_eq!(pismo_core::format::peek_version(&file), Ok(3));
    let (q, d) = (
        v["test_accuracy"].as_f64().unwrap(),
        dense["test_accuracy"].as_f64().unwrap(),
    );
    assert!((q - d).abs() <= 0.0005, "pruned {q} vs dense {d}");
    let show = p.run(&["models", "show", "tiny-int8@2"]);
    let pruned = format!("first layer pruned to {kept} of 784 pixels");
    assert!(
        show.expect_code(0).stdout.contains(&pruned),
        "{}",
        show.stdout
    );
    let eval = p.run(&["eval", "--model", "tiny-int8@2", "--json"]);
    let acc = eval.expect_code(0).json_lines()[0]["accuracy"]
        .as_f64()
        .unwrap();
    assert!((acc - q).abs() < 1e-4, "eval {acc} vs quantize {q}");
    for bad in ["-1", "many", ""] {
        let out = p.run(&["models", "quantize", "tiny", "--prune-rare", bad]);
        out.expect_code(2);
        assert!(out.stderr.contains("prune-rare"), "{bad}: {}", out.stderr);
    }
    // Every pixel dropped would leave a model that answers the same for every image.
    let out = p.run(&["models", "quantize", "tiny", "--prune-rare", "60000"]);
    out.expect_code(1);
    assert!(out.stderr.contains("every pixel"), "{}", out.stderr);
    let list = p.run(&["models", "list", "--json"]);
    assert_eq!(
        list.expect_code(0).json_lines().len(),
        3,
        "nothing registered"
    );
    // Pixels are kept two by two (2k, 2k+1), as the firmware's paired kernel reads them; a
    // 7-bit first layer is one it can turn into its flash image.
    assert_eq!(kept % 2, 0);
    let out = p.run(&[
        "models",
        "quantize",
        "tiny",
        "--prune-rare",
        "100",
        "--first-layer-bits",
        "7",
        "--json",
    ]);
    let seven = &out.expect_code(0).json_lines()[0];
    assert_eq!(seven["first_layer_bits"], 7);
    assert_eq!(seven["kept_pixels"], kept);
    let file = std::fs::read(p.registry().join("tiny-int8.v3.pismo")).unwrap();
    let mut image = vec![0u8; pismo_core::paired::image_len(&file).expect("pairable")];
    assert!(pismo_core::paired::write_image(&file, &mut image).is_ok());
    let show = p.run(&["models", "show", "tiny-int8@3"]);
    assert!(
        show.expect_code(0).stdout.contains("7-bit"),
        "{}",
        show.stdout
    );
    let eight = std::fs::read(p.registry().join("tiny-int8.v2.pismo")).unwrap();
    assert_eq!(
        pismo_core::paired::image_len(&eight),
        Err(pismo_core::paired::ImageError::NotSevenBit)
    );
    for bad in ["6", "16", "seven"] {
        let out = p.run(&["models", "quantize", "tiny", "--first-layer-bits", bad]);
        out.expect_code(2);
        assert!(
            out.stderr.contains("first-layer-bits"),
            "{bad}: {}",
            out.stderr
        );
    }
}

/// `pismo eval --set mnist-val`: the MNIST training images the model held out for
/// validation, rebuilt from the seed and size in its file, so a validation figure has a
/// command. The firmware's pruned model and its dense copy read it alike, and the count is
/// the one training recorded for their parent (`mnist-mcu@3`: 99.19 %).
#[test]
fn eval_measures_a_model_on_its_own_validation_split() {
    let Some(mnist) = full_mnist() else {
        return;
    };
    let p = Pismo::new().with_data(&mnist);
    let models = pismo_tests::workspace_root().join("models");
    let models = models.to_str().expect("utf-8 path");
    for model in [
        "mnist-mcu@3",
        "mnist-mcu-int8@3",
        "mnist-mcu-int8@4",
        "mnist-mcu-int8@5",
    ] {
        let out = p.run(&[
            "eval",
            "--registry",
            models,
            "--model",
            model,
            "--set",
            "mnist-val",
            "--json",
        ]);
        let v = &out.expect_code(0).json_lines()[0];
        assert_eq!(v["n"], 10_000, "{model}");
        let correct = (v["accuracy"].as_f64().unwrap() * 10_000.0).round();
        assert_eq!(correct, 9_919.0, "{model}");
        let images = v["images"].as_str().unwrap();
        assert!(
            images.contains("held out for validation (seed 42)"),
            "{images}"
        );
    }
}

#[test]
fn predict_says_not_sure_for_a_blend_of_two_digits() {
    let p = Pismo::new();
    let models = pismo_tests::workspace_root().join("models");
    let models = models.to_str().expect("utf-8 path");
    let (blend, [first, second]) = pismo_tests::ambiguous_blend();
    let t = t10k();
    // A clear 7 (t10k #0) and the blend, in one IDX file.
    let file = write(&p, "two.idx3", &idx3(&[t.images[0], blend]));
    // The blend was found with mnist@1: ask the same model.
    let model = ["--registry", models, "--model", "mnist@1"];
    let out = p.run(&[&["predict"][..], &model, &[&file]].concat());
    out.expect_code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("two.idx3#0: 7 ("), "{}", out.stdout);
    let unsure = format!("two.idx3#1: not sure: {first} or {second}? (");
    assert!(lines[1].starts_with(&unsure), "{}", out.stdout);

    let out = p.run(&[&["predict"][..], &model, &["--json", &file]].concat());
    out.expect_code(0);
    let lines = out.json_lines();
    assert_eq!(lines[0]["sure"], true);
    assert_eq!(lines[0]["candidates"], serde_json::json!([7]));
    assert_eq!(lines[1]["sure"], false);
    assert_eq!(lines[1]["candidates"], serde_json::json!([first, second]));
    assert_eq!(
        lines[1]["label"], first,
        "label stays the most likely digit"
    );
}

/// Labels as an IDX1 file.
fn idx1(labels: &[u8]) -> Vec<u8> {
    let mut out = pismo_core::idx::labels_header(labels.len() as u32).to_vec();
    out.extend_from_slice(labels);
    out
}

/// (image, label) pairs of an IDX pair, sorted, to compare sets of samples.
fn pairs(images: &std::path::Path, labels: &std::path::Path) -> Vec<(Vec<u8>, u8)> {
    let d = pismo_digits::mnist::load_pair(images, labels).expect("IDX pair");
    let mut v: Vec<(Vec<u8>, u8)> = d.images.iter().map(|i| i.to_vec()).zip(d.labels).collect();
    v.sort();
    v
}

#[test]
fn data_drawn_import_list_and_export_round_trip_through_idx() {
    let p = Pismo::new();
    let t = t10k();
    write(&p, "in-images", &idx3(&t.images[..6]));
    write(&p, "in-labels", &idx1(&t.labels[..6]));
    let out = p.run(&["data", "drawn", "list"]);
    out.expect_code(0);
    assert!(
        out.stdout.contains(": 0 corrected drawings"),
        "{}",
        out.stdout
    );

    let out = p.run(&[
        "data",
        "drawn",
        "import",
        "--images",
        "in-images",
        "--labels",
        "in-labels",
    ]);
    out.expect_code(0);
    assert!(
        out.stdout.starts_with("imported 6 drawings into "),
        "{}",
        out.stdout
    );

    // Text: the count, per digit, then one line per sample with its drawing's file.
    let out = p.run(&["data", "drawn", "list"]);
    out.expect_code(0);
    assert!(
        out.stdout.contains(": 6 corrected drawings"),
        "{}",
        out.stdout
    );
    let mut per = [0; 10];
    for &l in &t.labels[..6] {
        per[usize::from(l)] += 1;
    }
    let per: Vec<String> = per
        .iter()
        .enumerate()
        .map(|(d, n)| format!("{d}: {n}"))
        .collect();
    assert!(out.stdout.contains(&per.join("  ")), "{}", out.stdout);
    assert_eq!(out.stdout.matches("drawing.png").count(), 6);

    // JSON: one object per sample, its files on disk, the label in the folder's name.
    let out = p.run(&["data", "drawn", "list", "--json"]);
    out.expect_code(0);
    let lines = out.json_lines();
    assert_eq!(lines.len(), 6);
    let mut labels: Vec<u64> = Vec::new();
    for line in &lines {
        let label = line["label"].as_u64().expect("label");
        labels.push(label);
        assert!(line["id"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{label}-")));
        assert_eq!(
            (line["width"].as_u64(), line["height"].as_u64()),
            (Some(28), Some(28))
        );
        for file in ["drawing", "input"] {
            let path = std::path::Path::new(line[file].as_str().unwrap());
            assert!(path.starts_with(p.drawn()) && path.is_file(), "{line}");
        }
        assert!(line["created"].as_str().unwrap().ends_with('Z'));
    }
    labels.sort();
    let mut want: Vec<u64> = t.labels[..6].iter().map(|&l| u64::from(l)).collect();
    want.sort();
    assert_eq!(labels, want);

    // Export gives back the same (image, label) pairs: a 28x28 MNIST image is its own input.
    let out = p.run(&[
        "data",
        "drawn",
        "export",
        "--images",
        "out-images",
        "--labels",
        "out-labels",
    ]);
    out.expect_code(0);
    assert!(
        out.stdout.starts_with("exported 6 corrected drawings"),
        "{}",
        out.stdout
    );
    assert_eq!(
        pairs(&p.home.join("out-images"), &p.home.join("out-labels")),
        pairs(&p.home.join("in-images"), &p.home.join("in-labels"))
    );

    // --drawn picks another folder.
    let out = p.run(&["data", "drawn", "list", "--json", "--drawn", "elsewhere"]);
    out.expect_code(0);
    assert!(out.stdout.is_empty());
}

#[test]
fn data_drawn_errors_are_one_line_and_usage_errors_exit_2() {
    let p = Pismo::new();
    let t = t10k();
    let out = p.run(&["data", "drawn"]);
    out.expect_code(2);
    let out = p.run(&["data", "drawn", "export", "--images", "x"]);
    out.expect_code(2);
    let out = p.run(&[
        "data", "drawn", "import", "--images", "nope", "--labels", "nope",
    ]);
    out.expect_code(1);
    assert!(error_line(&out).contains("nope"), "{}", out.stderr);
    // A label that is not a digit: refused, nothing imported.
    write(&p, "images", &idx3(&t.images[..2]));
    write(&p, "labels", &idx1(&[3, 12]));
    let out = p.run(&[
        "data", "drawn", "import", "--images", "images", "--labels", "labels",
    ]);
    out.expect_code(1);
    let line = error_line(&out);
    assert!(line.contains("labels") && line.contains("12"), "{line}");
    // A blank image: refused by index, nothing imported.
    write(&p, "labels", &idx1(&[3, 4]));
    write(&p, "images", &idx3(&[t.images[0], [0; 784]]));
    let out = p.run(&[
        "data", "drawn", "import", "--images", "images", "--labels", "labels",
    ]);
    out.expect_code(1);
    assert!(
        error_line(&out).contains("image 1 has no ink"),
        "{}",
        out.stderr
    );
    assert!(!p.drawn().exists() || std::fs::read_dir(p.drawn()).unwrap().count() == 0);
}

#[test]
fn four_processes_importing_into_one_drawn_folder_keep_every_sample() {
    let p = Pismo::new();
    let t = t10k();
    write(&p, "images", &idx3(&t.images[..10]));
    write(&p, "labels", &idx1(&t.labels[..10]));
    let children: Vec<_> = (0..4)
        .map(|_| {
            p.command(&[
                "data", "drawn", "import", "--images", "images", "--labels", "labels",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start pismo")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().expect("wait").success());
    }
    let out = p.run(&["data", "drawn", "list", "--json"]);
    out.expect_code(0);
    let lines = out.json_lines();
    assert_eq!(lines.len(), 40);
    let mut ids: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40, "every sample has its own folder");
    let hidden = std::fs::read_dir(p.drawn())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    assert_eq!(hidden, 0, "no temporary folder left behind");
}

/// Issue 28: `--version` prints the version; `-h` is `--help`, at the top and for a
/// subcommand.
#[test]
fn issue28_version_and_dash_h() {
    let p = Pismo::new();
    for flag in ["--version", "-V"] {
        let out = p.run(&[flag]);
        out.expect_code(0);
        assert_eq!(
            out.stdout.trim(),
            format!("pismo {}", env!("CARGO_PKG_VERSION")),
            "{flag}"
        );
    }
    for args in [&["-h"][..], &["models", "alias", "-h"], &["train", "-h"]] {
        let short = p.run(args);
        short.expect_code(0);
        let long: Vec<&str> = args
            .iter()
            .map(|a| if *a == "-h" { "--help" } else { a })
            .collect();
        assert_eq!(short.stdout, p.run(&long).stdout, "{args:?}");
        assert!(short.stdout.starts_with("Usage: pismo"), "{}", short.stdout);
    }
    // No command at all is still a usage error that says where help is.
    let out = p.run(&[]);
    out.expect_code(2);
    assert!(error_line(&out).contains("--help"), "{}", out.stderr);
}

/// Issue 28: `models alias|unalias|export|delete` take `--json` like every other command
/// docs/CLI.md lists: the last line of stdout is one object describing what was done.
#[test]
fn issue28_models_alias_unalias_export_and_delete_print_json() {
    let p = with_tiny_model();
    let last = |args: &[&str]| -> Value {
        let out = p.run(args);
        out.expect_code(0);
        out.json_lines().pop().expect("a JSON line")
    };
    let v = last(&["models", "alias", "tiny", "best", "--json"]);
    assert_eq!(
        v,
        serde_json::json!({"alias": "best", "model": "tiny@1", "was": null})
    );
    let v = last(&["models", "alias", "tiny@1", "best", "--json"]);
    assert_eq!(v["was"], "tiny@1", "{v}");
    let v = last(&["models", "unalias", "best", "--json"]);
    assert_eq!(
        v,
        serde_json::json!({"alias": "best", "model": null, "was": "tiny@1"})
    );

    let onnx = p.home.join("tiny.onnx");
    let onnx = onnx.to_str().unwrap();
    let v = last(&[
        "models", "export", "tiny@1", "--format", "onnx", "-o", onnx, "--json",
    ]);
    assert_eq!(v["model"], "tiny@1", "{v}");
    assert_eq!(v["file"], onnx, "{v}");
    let size = std::fs::metadata(onnx).expect("the ONNX file").len();
    assert_eq!(v["bytes"].as_u64(), Some(size), "{v}");

    let v = last(&["models", "delete", "tiny@1", "--json"]);
    assert_eq!(v, serde_json::json!({"deleted": "tiny@1"}));
    // `runs export --json` is accepted too: here MLflow cannot be reached, an error (1),
    // not a usage error (2).
    let out = p.run(&["runs", "export", "--json", "--mlflow", "http://127.0.0.1:9"]);
    out.expect_code(1);
    assert!(
        error_line(&out).contains("cannot reach MLflow"),
        "{}",
        out.stderr
    );
}

/// Issue 28: `pismo train` prints its result once (on a terminal stderr and stdout meet:
/// the log's "test accuracy" and "registered" lines are not repeated there), and says
/// nothing about extra training data when there is none.
#[test]
fn issue28_train_prints_its_result_once_and_no_empty_extra_data_line() {
    let Some(mnist) = full_mnist() else {
        return;
    };
    let p = Pismo::new().with_data(mnist);
    let out = p.run(&[
        "train",
        "--epochs",
        "1",
        "--hidden-size",
        "16",
        "--alias",
        "a",
    ]);
    out.expect_code(0);
    let both = format!("{}{}", out.stderr, out.stdout);
    let count = |prefix: &str| both.lines().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(count("test accuracy"), 1, "{both}");
    assert_eq!(count("registered "), 1, "{both}");
    assert_eq!(count("alias a"), 1, "{both}");
    assert_eq!(count("extra training data"), 0, "{both}");
    // The run's log keeps them all.
    let run = p.run(&["runs", "list", "--json"]).json_lines()[0]["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let log = p.run(&["runs", "log", &run]).stdout;
    assert!(
        log.contains("test accuracy") && log.contains("registered mnist@1"),
        "{log}"
    );
}
