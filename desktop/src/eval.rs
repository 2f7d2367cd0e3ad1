//! `pismo eval`: a registered model's accuracy, mean loss and confusion matrix on labelled
//! IDX images: the MNIST test split of the data folder by default, or any `--images` /
//! `--labels` pair (raw or gzip), or named sets (`--set`, see
//! `pismo_digits::devsets`, which says whose writing each is): scans and drawings,
//! preprocessed as `pismo predict` would. `--calibrate` fits the "not sure" thresholds on
//! half of each set and reports them on the other half ([`crate::calibrate`]).
//!
//! The images are MNIST-format 28x28 already, so each is fed to the model as its bytes / 255,
//! exactly as the trainer measured the test accuracy stored in the model (no drawing
//! preprocessing: that is for drawings and scans, see `pismo predict`).

use std::path::{Path, PathBuf};

use argh::FromArgs;
use pismo_core::hyper::Hyper;
use pismo_core::mlp::CLASSES;
use pismo_digits::devsets;
use pismo_digits::mnist::{self, Dataset, Split};
use pismo_engine::model::AnyMlp;
use pismo_engine::tally::{Score, Tally};
use pismo_training::trainer::validation_set;
use serde::Serialize;

use crate::calibrate;
use crate::progress::Counter;
use crate::{text, CliError};

/// Measure a model's accuracy on labelled images (default: the MNIST test split).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "eval")]
pub struct Args {
    /// model: NAME, NAME@VERSION or NAME@ALIAS (default: the `default` alias, else the
    /// newest model)
    #[argh(option)]
    model: Option<String>,
    /// IDX3 image file, raw or .gz (needs --labels)
    #[argh(option)]
    images: Option<PathBuf>,
    /// IDX1 label file, raw or .gz (needs --images)
    #[argh(option)]
    labels: Option<PathBuf>,
    /// MNIST folder whose test split is used without --images (default: $PISMO_DATA, else
    /// ./data/mnist)
    #[argh(option)]
    data: Option<PathBuf>,
    /// model registry folder (default: $PISMO_REGISTRY, else ./models)
    #[argh(option)]
    registry: Option<PathBuf>,
    /// model store in place of the registry folder, e.g. postgres://USER@HOST/DATABASE
    /// (default: $PISMO_STORE)
    #[argh(option)]
    store: Option<String>,
    /// a named set instead of --images (repeatable): mnist-test, unipen-dev, semeion-dev,
    /// optdigits-cv, canvas-thick, canvas-thin, optdigits-train, semeion-train, mnist-val
    /// (the MNIST training images the model held out for validation), or dev for every set
    /// never trained on
    #[argh(option)]
    set: Vec<String>,
    /// folder of the shipped corpora (default: $PISMO_DATASETS, else ./datasets)
    #[argh(option)]
    corpora: Option<PathBuf>,
    /// with --set: fit the "not sure" thresholds (top probability, lead over the runner-up)
    /// on half of each set's answers and report them on the other half
    #[argh(switch)]
    calibrate: bool,
    /// print one JSON object on stdout (one per set)
    #[argh(switch)]
    json: bool,
    /// threads; 0 = all cores (default 0)
    #[argh(option, default = "0")]
    threads: usize,
}

/// `mlp`'s [`Tally`] of `data` on `threads` threads (0: all cores), under a progress bar
/// labelled `label` that is cleared once it is done.
fn tally_under_bar(label: &str, mlp: &AnyMlp, data: &Dataset, threads: usize) -> Tally {
    let progress = Counter::start(label, data.len() as u64, false);
    let t = Tally::of(mlp, &data.images, &data.labels, threads, &|n| {
        progress.inc(n)
    });
    progress.clear();
    t
}

/// The `--json` line.
#[derive(Serialize)]
struct Report<'a> {
    model: String,
    images: String,
    n: u64,
    accuracy: f64,
    loss: f64,
    confusion: &'a [[u64; CLASSES]; CLASSES],
    recall: [Option<f64>; CLASSES],
}

/// Runs `pismo eval`.
pub fn run(args: Args) -> Result<(), CliError> {
    let pair = match (args.images.clone(), args.labels.clone()) {
        (Some(images), Some(labels)) => Some((images, labels)),
        (None, None) => None,
        (Some(_), None) => return Err(CliError::usage("--images needs --labels")),
        (None, Some(_)) => return Err(CliError::usage("--labels needs --images")),
    };
    let registry = crate::places::registry(&args.registry, &args.store)?;
    // The hyperparameters say which MNIST training images the model held out (`mnist-val`).
    let (id, (mlp, hyper)) = registry.load_decoded(args.model.as_deref(), |bytes| {
        AnyMlp::decode(bytes).map(|(mlp, file)| (mlp, file.meta.hyper))
    })?;
    if !args.set.is_empty() {
        if pair.is_some() {
            return Err(CliError::usage(
                "--set and --images are alternatives: give one",
            ));
        }
        return run_sets(&args, &id.to_string(), &mlp, &hyper);
    }
    let (data, source) = match pair {
        Some((images, labels)) => (
            mnist::load_pair(&images, &labels)?,
            format!("{} + {}", images.display(), labels.display()),
        ),
        None => {
            let dir = crate::places::data_dir(&args.data);
            let data = mnist::load_split(&dir, Split::Test)?;
            (data, format!("MNIST test split in {}", dir.display()))
        }
    };
    if data.is_empty() {
        return Err(CliError::failed(format!("{source}: no images")));
    }
    let t = tally_under_bar(&format!("eval {id}"), &mlp, &data, args.threads);
    let n = t.n();
    let accuracy = t.accuracy();
    let loss = t.mean_loss();
    if args.json {
        return crate::out_json(&Report {
            model: id.to_string(),
            images: source,
            n,
            accuracy,
            loss,
            confusion: t.confusion(),
            recall: t.recall(),
        });
    }
    let mut out = format!(
        "model     {id} (hidden {})\nimages    {n} ({source})\naccuracy  {}  ({} wrong)\nloss      {}\n\n",
        mlp.hidden_size(),
        text::percent(Some(accuracy)),
        n - t.correct(),
        text::number(Some(loss), 4),
    );
    out.push_str("confusion matrix: rows = true digit, columns = predicted\n");
    let mut header = vec!["true"];
    let digits: Vec<String> = (0..CLASSES).map(|d| d.to_string()).collect();
    header.extend(digits.iter().map(String::as_str));
    header.push("recall");
    let mut table = text::Table::new(&header, &(1..=CLASSES + 1).collect::<Vec<_>>());
    for (digit, (row, recall)) in t.confusion().iter().zip(t.recall()).enumerate() {
        let mut cells = vec![digit.to_string()];
        cells.extend(row.iter().map(u64::to_string));
        cells.push(text::percent(recall));
        table.row(cells);
    }
    out.push_str(&table.render());
    crate::out(&out)
}

/// `pismo eval --set …`: one report per set (a table of them without `--json`).
fn run_sets(args: &Args, id: &str, mlp: &AnyMlp, hyper: &Hyper) -> Result<(), CliError> {
    let names = set_names(&args.set)?;
    let mnist_dir = crate::places::data_dir(&args.data);
    let corpora_dir = crate::places::corpora_dir(&args.corpora);
    let mut table = text::Table::new(
        &[
            "set",
            "whose writing",
            "images",
            "accuracy",
            "most common errors (true→read ×n)",
        ],
        &[2, 3],
    );
    let mut out = String::new();
    let mut calibration: Vec<(&str, Vec<Score>)> = Vec::new();
    for name in names {
        let (data, what) = if name == devsets::MNIST_VAL {
            mnist_validation(id, hyper, &mnist_dir)?
        } else {
            devsets::load(name, &mnist_dir, &corpora_dir)
                .map_err(|e| CliError::failed(e.to_string()))?
        };
        let t = tally_under_bar(&format!("eval {id} on {name}"), mlp, &data, args.threads);
        let n = t.n();
        let accuracy = t.accuracy();
        if args.json {
            out.push_str(
                &serde_json::to_string(&Report {
                    model: id.to_owned(),
                    images: format!("{name}: {what}; {}", devsets::writers(name)),
                    n,
                    accuracy,
                    loss: t.mean_loss(),
                    confusion: t.confusion(),
                    recall: t.recall(),
                })
                .map_err(|e| CliError::failed(e.to_string()))?,
            );
            out.push('\n');
            continue;
        }
        if args.calibrate {
            calibration.push((name, t.scores().to_vec()));
        }
        table.row(vec![
            name.to_owned(),
            devsets::writers(name).to_owned(),
            n.to_string(),
            text::percent(Some(accuracy)),
            commonest_errors(t.confusion(), 4),
        ]);
    }
    if args.json {
        print!("{out}");
        return Ok(());
    }
    let mut text = format!(
        "model {id} (hidden {})\n{}",
        mlp.hidden_size(),
        table.render()
    );
    if args.calibrate {
        text.push_str(&calibrate::report(&calibration));
    }
    crate::out(&text)
}

/// The MNIST training images model `id` held out for validation: its own seeded split
/// (`val_size` and `seed` of its `hyper`, as training made it), never trained on by it.
fn mnist_validation(
    id: &str,
    hyper: &Hyper,
    mnist_dir: &Path,
) -> Result<(Dataset, String), CliError> {
    let Hyper { val_size, seed, .. } = *hyper;
    if val_size == 0 {
        return Err(CliError::failed(format!(
            "model {id} held out no validation images (val_size 0): it has no {}",
            devsets::MNIST_VAL
        )));
    }
    let train = mnist::load_split(mnist_dir, Split::Train)?;
    let held_out = validation_set(&train, val_size as usize, seed);
    let what = format!(
        "the {} MNIST training images {id} held out for validation (seed {seed}), never trained on",
        held_out.len()
    );
    Ok((held_out, what))
}

/// The sets `--set` names, `dev` standing for every dev set; a usage error for an unknown one.
fn set_names(asked: &[String]) -> Result<Vec<&str>, CliError> {
    let mut names: Vec<&str> = Vec::new();
    for name in asked {
        if name == "dev" {
            names.extend(devsets::DEV);
        } else if devsets::NAMES.contains(&name.as_str()) {
            names.push(name);
        } else {
            return Err(CliError::usage(format!(
                "no set `{name}` (have: {}, or dev)",
                devsets::NAMES.join(", ")
            )));
        }
    }
    Ok(names)
}

/// The `most` commonest errors of a confusion matrix, most frequent first (ties: the
/// larger true digit, then the larger answer), as `true→read ×count`.
fn commonest_errors(confusion: &[[u64; CLASSES]; CLASSES], most: usize) -> String {
    let mut errors: Vec<(u64, usize, usize)> = Vec::new();
    for (truth, row) in confusion.iter().enumerate() {
        for (read, &count) in row.iter().enumerate() {
            if read != truth && count > 0 {
                errors.push((count, truth, read));
            }
        }
    }
    errors.sort_by(|a, b| b.cmp(a));
    errors
        .iter()
        .take(most)
        .map(|(c, t, r)| format!("{t}→{r} ×{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}
