//! The dev sets share no image with anything a model may be trained on: the corpora's
//! training parts, MNIST's training file and the default model's recipe (which needs the
//! trainer, so the check lives here rather than beside the dev sets).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use pismo_digits::corpora;
use pismo_digits::devsets::{load, DEV};
use pismo_digits::mnist::{self, Split};
use pismo_training::recipe::Recipe;
use pismo_training::trainer;
use sha2::{Digest, Sha256};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The full MNIST (training files too): `$PISMO_DATA`, else the workspace's `data/mnist`.
/// `None`, with a line saying so, when it is not there (a fresh clone); a panic instead
/// when `PISMO_REQUIRE_MNIST` is set, as CI sets it.
fn full_mnist() -> Option<PathBuf> {
    let dir = std::env::var_os("PISMO_DATA")
        .map_or_else(|| workspace().join("data/mnist"), PathBuf::from);
    if mnist::load_split(&dir, Split::Train).is_ok() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("PISMO_REQUIRE_MNIST").is_none(),
        "PISMO_REQUIRE_MNIST is set but {} has no MNIST training files",
        dir.display()
    );
    eprintln!(
        "SKIPPED (the MNIST training split): no full MNIST in {} (run scripts/fetch-mnist)",
        dir.display()
    );
    None
}

fn hash(image: &[u8; pismo_core::mlp::INPUT]) -> [u8; 32] {
    Sha256::digest(image).into()
}

/// The recipe recorded in the log of the run behind the default model (`mnist@6`, whose
/// int8 copy is `mnist-int8@6`; models/README.md).
fn default_model_recipe() -> Recipe {
    let log = std::fs::read_to_string(workspace().join("runs/20261207-143740-0820ab/log.txt"))
        .expect("the default model's run is shipped");
    let line = log
        .lines()
        .find_map(|l| l.strip_prefix("recipe "))
        .expect("the log records the recipe");
    serde_json::from_str(line).expect("the recorded recipe parses")
}

#[test]
fn devsets_have_every_digit_and_no_image_of_a_training_part() {
    let corpora_dir = workspace().join("datasets");
    let test_dir = workspace().join("tests/data");
    let mnist_dir = full_mnist();

    // Every image a model may be trained on, by the SHA-256 of its 28x28 bytes.
    let mut trained: HashSet<[u8; 32]> = HashSet::new();
    let mut parts = corpora::trainable();
    // The corpora the default's recipe names are among its images below, when MNIST is
    // there: made once, not twice.
    let recipe = default_model_recipe();
    let in_recipe = |name: &str| mnist_dir.is_some() && recipe.corpora.iter().any(|c| c == name);
    for name in corpora::trainable().into_iter().filter(|n| !in_recipe(n)) {
        let data = corpora::training_set(name, &corpora_dir).unwrap().unwrap();
        trained.extend(data.images.iter().map(hash));
    }
    if let Some(dir) = &mnist_dir {
        // The whole training file: the validation split is never trained on, but the
        // check is the stricter for it. Then the default model's recipe, made as its run
        // made it (redrawn digits come from the training split).
        let train = mnist::load_split(dir, Split::Train).unwrap();
        trained.extend(train.images.iter().map(hash));
        let (_, train_idx) = trainer::validation_split(train.len(), 10_000, 42);
        let (extra, recipe_parts) = recipe
            .build(
                &train,
                &train_idx,
                trainer::member_seed(42, 0),
                &corpora_dir,
            )
            .unwrap();
        trained.extend(extra.images.iter().map(hash));
        assert!(recipe_parts.iter().any(|p| p.name == "redrawn"));
        parts.extend(["MNIST train", "the default model's recipe"]);
    }

    for name in DEV {
        let (data, _) = load(
            name,
            mnist_dir.as_deref().unwrap_or(&test_dir),
            &corpora_dir,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut per_digit = [0usize; 10];
        for &label in &data.labels {
            per_digit[usize::from(label)] += 1;
        }
        // Every digit present, none below half or above twice its fair share.
        let fair = data.len() / 10;
        assert!(
            per_digit.iter().all(|&n| 2 * n >= fair && n <= 2 * fair),
            "{name}: {per_digit:?}"
        );
        let seen: Vec<usize> = (0..data.len())
            .filter(|&i| trained.contains(&hash(&data.images[i])))
            .collect();
        assert!(
            seen.is_empty(),
            "{name}: images {seen:?} are in a training part ({})",
            parts.join(", ")
        );
    }
}
