//! `pismo models export --format onnx`: the exported file, run by the real onnxruntime (pip,
//! pinned in `tests/onnx/requirements.txt`) on the 10000 MNIST test images, gives the
//! probabilities `pismo predict` gives (issue 28: within 1e-4; measured within 4e-6), for
//! the shipped default model (int8, deskewing: the graph is integer and deskews), the
//! shipped `mnist@3` (f32, deskewing) and a freshly trained model (f32, no deskewing); a
//! drawing preprocessed as pismo preprocesses it gives, through the graph, what `pismo
//! serve` answers for it; onnxruntime-web in headless Chromium runs the file as the snippet
//! of `docs/OPERATIONS.md` does (with the other browser tests' `PISMO_REQUIRE_BROWSER`);
//! and every refusal is a clear error.
//!
//! Python comes from `PISMO_PYTHON` (a venv with the pinned packages; `.ci/run` makes one in
//! `target/venv-onnx`). Without it the onnxruntime test prints SKIPPED and passes, unless
//! `PISMO_REQUIRE_ONNX=1` (CI sets it): then it fails and says what is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pismo_core::mlp::{CLASSES, INPUT};
use pismo_core::preprocess::{self, GreyImage};
use pismo_digits::image::decode_png;
use pismo_engine::model::AnyMlp;
use pismo_storage::registry::Registry;
use pismo_tests::{drawn_digit_png, idx3, t10k, train_tiny_model, workspace_root, Pismo};
use serde_json::Value;

use crate::serve::request;
use crate::web::{browser_dir, copy_dir, missing_tools, skip};

/// Test images compared: the whole MNIST test split.
const IMAGES: usize = 10_000;
/// Drawings sent to `pismo serve`.
const DRAWINGS: usize = 20;
/// Images run in Chromium, one session.run each.
const BROWSER_IMAGES: usize = 200;
/// Largest difference allowed between a probability of pismo and of onnxruntime.
const TOLERANCE: f32 = 1e-5;

/// The Python of `PISMO_PYTHON`, or `None` after a SKIPPED banner (a panic when
/// `PISMO_REQUIRE_ONNX=1`).
fn python() -> Option<PathBuf> {
    let python = std::env::var_os("PISMO_PYTHON").filter(|p| !p.is_empty());
    let missing = match &python {
        None => "PISMO_PYTHON is not set (a Python with tests/onnx/requirements.txt installed)"
            .to_owned(),
        Some(p) if !Path::new(p).exists() => {
            format!("PISMO_PYTHON={} does not exist", Path::new(p).display())
        }
        Some(p) => return Some(PathBuf::from(p)),
    };
    let required = std::env::var("PISMO_REQUIRE_ONNX").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "PISMO_REQUIRE_ONNX=1 but the onnxruntime test cannot run: {missing}"
    );
    eprintln!(
        "\n##########################################################################\n\
         SKIPPED: the ONNX export test in onnxruntime (tests/e2e/onnx.rs):\n  {missing}\n\
         ##########################################################################\n"
    );
    None
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn exported_models_give_pismos_probabilities_in_onnxruntime() {
    let Some(python) = python() else { return };
    let p = Pismo::new();
    copy_dir(&workspace_root().join("models"), &p.registry());
    assert_eq!(train_tiny_model(&p.registry(), &p.runs()), "tiny@1");
    let data = t10k();
    let images = &data.images[..IMAGES];
    let idx = p.home.join("test.idx3");
    std::fs::write(&idx, idx3(images)).unwrap();
    // The graph's input is the image as pismo preprocesses it: for MNIST, b / 255.
    let inputs: Vec<[f32; INPUT]> = images.iter().map(preprocessed).collect();
    for (reference, id, kind, deskews) in [
        ("default", "mnist-int8@6", "int8", true),
        // Pruned, 7-bit: the graph takes every pixel's row, a dropped pixel's as zeros.
        ("mnist-mcu-int8", "mnist-mcu-int8@5", "int8", true),
        ("mnist@3", "mnist@3", "f32", true),
        ("tiny", "tiny@1", "f32", false),
    ] {
        let onnx = p.home.join(format!("{id}.onnx"));
        let onnx_arg = onnx.to_str().unwrap();
        let out = p.run(&[
            "models", "export", reference, "--format", "onnx", "-o", onnx_arg,
        ]);
        out.expect_code(0);
        assert!(out.stdout.contains(id), "{}", out.stdout);

        let (model, _) =
            AnyMlp::decode(&Registry::open(p.registry()).load(Some(id)).unwrap().1).unwrap();
        assert_eq!((model.kind(), model.deskew()), (kind, deskews), "{id}");
        let (info, onnx_p, onnx_z) = onnxruntime(&python, &onnx, &inputs, p.home.path());
        assert_eq!(
            info["inputs"],
            serde_json::json!([["input", "tensor(float)", ["N", 784]]])
        );
        assert_eq!(
            info["outputs"],
            serde_json::json!([
                ["probabilities", "tensor(float)", ["N", 10]],
                ["logits", "tensor(float)", ["N", 10]]
            ])
        );
        assert_eq!(info["producer"], "pismo");
        assert_eq!(info["metadata"]["pismo.model"], id);
        assert_eq!(info["metadata"]["pismo.deskew"], deskews.to_string());
        assert_eq!(info["metadata"]["pismo.kind"], kind);

        // pismo's own answer, through the command line on the same images.
        let idx_arg = idx.to_str().unwrap();
        let predicted = p
            .run(&["predict", "--json", "--model", id, idx_arg])
            .expect_code(0)
            .json_lines();
        assert_eq!(predicted.len(), IMAGES);
        let (mut worst, mut agree, mut right) = (0.0f32, 0, 0);
        for (i, line) in predicted.iter().enumerate() {
            let ours: Vec<f32> = line["probabilities"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            let theirs = &onnx_p[i * CLASSES..(i + 1) * CLASSES];
            for (a, b) in ours.iter().zip(theirs) {
                worst = worst.max((a - b).abs());
            }
            let label = line["label"].as_u64().unwrap() as usize;
            agree += usize::from(pismo_core::mlp::argmax(theirs) == label);
            right += usize::from(label == usize::from(data.labels[i]));
            // The logits output is the library's logits (deskewing as the model does): for an
            // int8 model to the bit (the graph computes pismo's integer path operation for
            // operation), for an f32 one up to the order of summation.
            let z = model.logits(&inputs[i]);
            let theirs = &onnx_z[i * CLASSES..(i + 1) * CLASSES];
            if kind == "int8" {
                assert_eq!(z.as_slice(), theirs, "{id} image {i}");
            }
            for (a, b) in z.iter().zip(theirs) {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + a.abs()),
                    "{id} image {i}: {a} vs {b}"
                );
            }
        }
        println!(
            "{id}: largest difference {worst:e} over {IMAGES} images, argmax agrees on {agree}, \
             {right} right (onnxruntime {})",
            info["onnxruntime"]
        );
        assert!(worst <= TOLERANCE, "{id}: probabilities differ by {worst}");
        assert_eq!(agree, IMAGES, "{id}");
        // Real models, not a degenerate graph that happens to agree.
        assert!(right >= IMAGES * 8 / 10, "{id}: {right} of {IMAGES}");
    }
}

/// Drawings (MNIST test digits drawn large on a white canvas) sent to `pismo serve`, and the
/// same PNGs preprocessed as pismo preprocesses them (`preprocess::to_input`, what
/// `docs/OPERATIONS.md` asks of a caller with a drawing) through the exported default model
/// (int8, deskewing in the graph): the server's probabilities.
#[test]
fn a_preprocessed_drawing_through_the_graph_gives_the_servers_answer() {
    let Some(python) = python() else { return };
    let p = Pismo::new();
    copy_dir(&workspace_root().join("models"), &p.registry());
    let onnx = p.home.join("default.onnx");
    p.run(&[
        "models",
        "export",
        "default",
        "--format",
        "onnx",
        "-o",
        onnx.to_str().unwrap(),
    ])
    .expect_code(0);
    let server = p.serve("127.0.0.1:0", &[]);
    let data = t10k();
    let (mut inputs, mut served) = (Vec::new(), Vec::new());
    for im in &data.images[..DRAWINGS] {
        let png = drawn_digit_png(im, 200);
        let head = format!(
            "POST /api/predict HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Content-Type: image/png\r\nContent-Length: {}\r\n\r\n",
            png.len()
        );
        let response = request(server.addr(), &head, &png);
        let (status, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
        assert!(status.starts_with("HTTP/1.1 200"), "{response}");
        let reply: Value = serde_json::from_str(body).expect("a JSON body");
        assert_eq!(reply["model"], "mnist-int8@6");
        let values = reply["probabilities"]
            .as_array()
            .unwrap_or_else(|| panic!("probabilities: {body}"));
        served.extend(values.iter().map(|v| v.as_f64().unwrap() as f32));
        let grey = decode_png(&png).expect("the drawing decodes");
        let mut x = [0.0f32; INPUT];
        preprocess::to_input(&grey.as_grey(), &mut x).expect("the drawing has ink");
        inputs.push(x);
    }
    let (_, probabilities, _) = onnxruntime(&python, &onnx, &inputs, p.home.path());
    let worst = served
        .iter()
        .zip(&probabilities)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("served drawings: largest difference {worst:e} over {DRAWINGS} drawings");
    assert!(worst <= TOLERANCE, "probabilities differ by {worst}");
}

/// The browser snippet of `docs/OPERATIONS.md`: the exported `mnist@2` (its example; it reads
/// its input as preprocessed) run by onnxruntime-web in headless Chromium, one `[1, 784]` tensor
/// per image (`tests/browser/onnx.mjs`), gives `pismo predict`'s probabilities. Needs what the
/// other browser tests need plus onnxruntime-web (`npm ci` in tests/browser).
#[test]
fn the_exported_model_runs_in_chromium_with_onnxruntime_web() {
    const TEST: &str = "the ONNX export in onnxruntime-web (tests/e2e/onnx.rs)";
    let mut missing = missing_tools();
    let ort_web = browser_dir().join("node_modules").join("onnxruntime-web");
    if !ort_web.is_dir() {
        missing.push(format!(
            "{} (run `npm ci` in tests/browser)",
            ort_web.display()
        ));
    }
    if !missing.is_empty() {
        skip(TEST, &missing);
        return;
    }
    let p = Pismo::new();
    copy_dir(&workspace_root().join("models"), &p.registry());
    let onnx = p.home.join("mnist2.onnx");
    p.run(&[
        "models",
        "export",
        "mnist@2",
        "--format",
        "onnx",
        "-o",
        onnx.to_str().unwrap(),
    ])
    .expect_code(0);
    let data = t10k();
    let images = &data.images[..BROWSER_IMAGES];
    let inputs: Vec<[f32; INPUT]> = images.iter().map(preprocessed).collect();
    let inputs_path = p.home.join("inputs.f32");
    write_f32s(&inputs_path, &inputs);
    let out = Command::new("node")
        .arg(browser_dir().join("onnx.mjs"))
        .args([&onnx, &inputs_path])
        .current_dir(browser_dir())
        .stdin(Stdio::null())
        .output()
        .expect("run node tests/browser/onnx.mjs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tests/browser/onnx.mjs: {stderr}");
    let reply: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    let in_browser = reply["probabilities"].as_array().expect("probabilities");
    assert_eq!(in_browser.len(), BROWSER_IMAGES);

    let idx = p.home.join("test.idx3");
    std::fs::write(&idx, idx3(images)).unwrap();
    let predicted = p
        .run(&[
            "predict",
            "--json",
            "--model",
            "mnist@2",
            idx.to_str().unwrap(),
        ])
        .expect_code(0)
        .json_lines();
    let mut worst = 0.0f32;
    for (ours, theirs) in predicted.iter().zip(in_browser) {
        let (ours, theirs) = (
            ours["probabilities"].as_array().unwrap(),
            theirs.as_array().unwrap(),
        );
        assert_eq!(theirs.len(), CLASSES);
        for (a, b) in ours.iter().zip(theirs) {
            worst = worst.max((a.as_f64().unwrap() as f32 - b.as_f64().unwrap() as f32).abs());
        }
    }
    println!(
        "onnxruntime-web in Chromium: largest difference {worst:e} over {BROWSER_IMAGES} images"
    );
    assert!(worst <= TOLERANCE, "probabilities differ by {worst}");
}

/// `rows` as little-endian float32, one after the other.
fn write_f32s(path: &Path, rows: &[[f32; INPUT]]) {
    let bytes: Vec<u8> = rows
        .as_flattened()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(path, bytes).unwrap();
}

/// Runs `tests/onnx/run.py`: the file checked by `onnx.checker` and run by onnxruntime on
/// `inputs`; returns what it says of the graph, and the probabilities and logits, flat.
fn onnxruntime(
    python: &Path,
    onnx: &Path,
    inputs: &[[f32; INPUT]],
    dir: &Path,
) -> (Value, Vec<f32>, Vec<f32>) {
    let inputs_path = dir.join("inputs.f32");
    let bytes: Vec<u8> = inputs
        .as_flattened()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(&inputs_path, bytes).unwrap();
    let run = Command::new(python)
        .arg(workspace_root().join("tests/onnx/run.py"))
        .args([onnx, &inputs_path, dir])
        .output()
        .expect("run PISMO_PYTHON");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "tests/onnx/run.py on {}: {stderr}",
        onnx.display()
    );
    let info: Value = serde_json::from_slice(&run.stdout).expect("one JSON line");
    let read = |name: &str| f32s(&std::fs::read(dir.join(name)).unwrap());
    let (probabilities, logits) = (read("probabilities.f32"), read("logits.f32"));
    assert_eq!(probabilities.len(), inputs.len() * CLASSES);
    assert_eq!(logits.len(), inputs.len() * CLASSES);
    (info, probabilities, logits)
}

/// A 28x28 image as `pismo predict` preprocesses it (before any deskewing).
fn preprocessed(image: &[u8; INPUT]) -> [f32; INPUT] {
    let mut x = [0.0f32; INPUT];
    preprocess::to_input(&GreyImage::new(28, 28, image).unwrap(), &mut x).unwrap();
    x
}

#[test]
fn export_refuses_clearly() {
    let p = Pismo::new();
    copy_dir(&workspace_root().join("models"), &p.registry());
    let file = p.home.join("out.onnx");
    let file_arg = file.to_str().unwrap();
    let error = |args: &[&str], code: i32| {
        let out = p.run(args);
        out.expect_code(code);
        assert_eq!(out.stdout, "");
        assert!(!file.exists(), "nothing written after {args:?}");
        let line = out.stderr.lines().last().unwrap_or_default().to_owned();
        assert!(line.starts_with("error: "), "{}", out.stderr);
        line
    };
    // An unknown format: a usage error naming the formats there are.
    let line = error(
        &[
            "models", "export", "mnist@3", "--format", "tflite", "-o", file_arg,
        ],
        2,
    );
    assert!(line.contains("`tflite`") && line.contains("onnx"), "{line}");
    // An unknown model: names what the registry has.
    let line = error(
        &[
            "models", "export", "nosuch", "--format", "onnx", "-o", file_arg,
        ],
        1,
    );
    assert!(
        line.contains("nosuch") && line.contains("mnist@3"),
        "{line}"
    );
    // An output that cannot be written: a folder that does not exist, and a folder.
    let missing = p.home.join("no/such/folder/m.onnx");
    let line = error(
        &[
            "models",
            "export",
            "mnist@3",
            "--format",
            "onnx",
            "-o",
            missing.to_str().unwrap(),
        ],
        1,
    );
    assert!(
        line.contains("cannot write") && line.contains("no/such/folder"),
        "{line}"
    );
    let dir = p.home.path().to_str().unwrap();
    let line = error(
        &["models", "export", "mnist@3", "--format", "onnx", "-o", dir],
        1,
    );
    assert!(line.contains("cannot write"), "{line}");
    // No format given: a usage error.
    error(&["models", "export", "mnist@3", "-o", file_arg], 2);
}
