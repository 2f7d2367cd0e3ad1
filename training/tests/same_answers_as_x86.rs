//! The shipped default model answers the same on every architecture: its probabilities for
//! the first [`IMAGES`] real MNIST test images (`tests/data`), through the path `pismo
//! predict` takes (`preprocess::to_input`, then `AnyMlp::predict_proba`: deskew, the kernels,
//! softmax), were recorded on x86-64 in `tests/fixtures/x86-probabilities.json`. Any other
//! build must match each probability within [`TOLERANCE`] and pick the same digit. CI runs
//! this on x86-64 and under qemu-aarch64 (docs/OPERATIONS.md and docs/ARCHITECTURE.md, "ARM").
//!
//! Record it again (on x86-64 only, and only when the default model changes) with
//! `PISMO_WRITE_X86_FIXTURE=1 cargo test -p pismo-training --test same_answers_as_x86`.

use std::path::{Path, PathBuf};

use pismo_core::mlp::{argmax, CLASSES, INPUT};
use pismo_core::preprocess::{to_input, GreyImage};
use pismo_digits::mnist::{self, Split};
use pismo_engine::model::AnyMlp;
use pismo_files::atomic::replace_atomic;
use pismo_storage::registry::Registry;
use serde::{Deserialize, Serialize};

/// Test images compared (the first ones of MNIST's test split).
const IMAGES: usize = 500;

/// Largest allowed difference of one probability from x86-64's. The math is IEEE single
/// precision in a fixed order with no fused multiply-add and the same `libm` everywhere, so
/// the answers are expected to be bit-identical; the tolerance leaves room for a target whose
/// `libm` functions round differently in the last place.
const TOLERANCE: f32 = 1e-5;

/// `tests/fixtures/x86-probabilities.json`.
#[derive(Serialize, Deserialize)]
struct Recorded {
    /// The model, as its registry names it (`NAME@VERSION`).
    model: String,
    /// Which images.
    images: String,
    /// Where the answers were computed.
    recorded_on: String,
    /// The probabilities of each image, in order.
    probabilities: Vec<[f32; CLASSES]>,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/x86-probabilities.json")
}

/// This build's probabilities of the first [`IMAGES`] test images under `model`.
fn probabilities(model: &AnyMlp) -> Vec<[f32; CLASSES]> {
    let data = mnist::load_split(&workspace().join("tests/data"), Split::Test)
        .expect("tests/data holds MNIST t10k");
    data.images[..IMAGES]
        .iter()
        .map(|image| {
            let grey = GreyImage::new(28, 28, image).expect("a 28 × 28 image");
            let mut x = [0.0f32; INPUT];
            to_input(&grey, &mut x).expect("an MNIST digit preprocesses");
            model.predict_proba(&x)
        })
        .collect()
}

fn load(registry: &Registry, reference: Option<&str>) -> (String, AnyMlp) {
    let (id, bytes) = registry.load(reference).expect("shipped model");
    let (model, _) = AnyMlp::decode(&bytes).expect("shipped model decodes");
    (id.to_string(), model)
}

/// Records the default model's answers on this x86-64 machine.
fn write_fixture(registry: &Registry) {
    if !cfg!(target_arch = "x86_64") {
        panic!("the fixture holds x86-64's answers: record it on x86-64");
    }
    let (id, model) = load(registry, None);
    let recorded = Recorded {
        model: id,
        images: format!("the first {IMAGES} of MNIST's test split (tests/data)"),
        recorded_on: std::env::consts::ARCH.to_owned(),
        probabilities: probabilities(&model),
    };
    let mut text = serde_json::to_string(&recorded).expect("JSON");
    text.push('\n');
    replace_atomic(&fixture(), text.as_bytes()).expect("write the fixture");
}

#[test]
fn the_default_model_gives_x86_answers_within_tolerance() {
    let registry = Registry::open(workspace().join("models"));
    if std::env::var_os("PISMO_WRITE_X86_FIXTURE").is_some() {
        write_fixture(&registry);
    }
    let recorded: Recorded =
        serde_json::from_slice(&std::fs::read(fixture()).expect("fixture present"))
            .expect("fixture is the recorded answers");
    let (_, model) = load(&registry, Some(&recorded.model));
    let expected = &recorded.probabilities;
    assert_eq!(expected.len(), IMAGES);

    let got = probabilities(&model);
    let mut worst = (0.0f32, 0usize);
    let mut identical = 0;
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert_eq!(
            argmax(g),
            argmax(e),
            "image {i}: another digit than on x86-64 ({g:?} against {e:?})"
        );
        for (a, b) in g.iter().zip(e) {
            let d = (a - b).abs();
            assert!(
                d <= TOLERANCE,
                "image {i}: a probability {d:e} away from x86-64's ({g:?} against {e:?})"
            );
            if d > worst.0 {
                worst = (d, i);
            }
        }
        identical += usize::from(g == e);
    }
    eprintln!(
        "{} on {}: {identical} of {IMAGES} images bit-identical to x86-64, largest difference {:e} (image {})",
        recorded.model,
        std::env::consts::ARCH,
        worst.0,
        worst.1
    );
}
