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

use std::path::PathBuf;

use argh::FromArgs;
use pismo_core::mlp::{CLASSES, INPUT};
use pismo_digits::devsets;
use pismo_digits::mnist::{self, Dataset, Split};
use pismo_engine::model::AnyMlp;
use serde::Serialize;

use crate::calibrate::{self, Score};
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
    /// optdigits-cv, canvas-thick, canvas-thin, optdigits-train, semeion-train, or dev for
    /// every set never trained on
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

/// What one evaluation found.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Tally {
    /// `confusion[true][predicted]`.
    confusion: [[u64; CLASSES]; CLASSES],
    /// Sum of the cross-entropy of every image.
    loss: f64,
    /// Per image, in order: its ten probabilities and whether the arg-max was right (for
    /// `--calibrate`).
    scores: Vec<Score>,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        for (row, other) in self.confusion.iter_mut().zip(&other.confusion) {
            for (c, o) in row.iter_mut().zip(other) {
                *c += o;
            }
        }
        self.loss += other.loss;
        self.scores.extend_from_slice(&other.scores);
    }

    pub(crate) fn n(&self) -> u64 {
        self.confusion.iter().flatten().sum()
    }

    /// Summed cross-entropy.
    pub(crate) fn loss(&self) -> f64 {
        self.loss
    }

    pub(crate) fn correct(&self) -> u64 {
        (0..CLASSES).map(|i| self.confusion[i][i]).sum()
    }

    /// Per true digit: the fraction recognised, `None` for a digit with no images.
    fn recall(&self) -> [Option<f64>; CLASSES] {
        let mut out = [None; CLASSES];
        for (o, (i, row)) in out.iter_mut().zip(self.confusion.iter().enumerate()) {
            let total: u64 = row.iter().sum();
            if total > 0 {
                *o = Some(row[i] as f64 / total as f64);
            }
        }
        out
    }
}

/// Images between two moves of a progress bar.
const PROGRESS_EVERY: usize = 250;

/// Evaluates `mlp` on a slice of images, one thread, moving `progress` as it goes.
fn tally(mlp: &AnyMlp, images: &[[u8; INPUT]], labels: &[u8], progress: &Counter) -> Tally {
    let mut t = Tally::default();
    let mut x = [0.0f32; INPUT];
    for (k, (image, &label)) in images.iter().zip(labels).enumerate() {
        if k % PROGRESS_EVERY == PROGRESS_EVERY - 1 {
            progress.inc(PROGRESS_EVERY as u64);
        }
        for (v, &b) in x.iter_mut().zip(image) {
            *v = f32::from(b) / 255.0;
        }
        let z = mlp.logits(&x);
        let (mut best, mut max) = (0, f32::NEG_INFINITY);
        for (i, &v) in z.iter().enumerate() {
            if v > max {
                (best, max) = (i, v);
            }
        }
        let sum: f64 = z.iter().map(|&v| f64::from(v - max).exp()).sum();
        let label = usize::from(label).min(CLASSES - 1);
        t.loss += sum.ln() - f64::from(z[label] - max);
        t.confusion[label][best] += 1;
        let p = z.map(|v| (f64::from(v - max).exp() / sum) as f32);
        t.scores.push((p, best == label));
    }
    progress.inc((images.len() % PROGRESS_EVERY) as u64);
    t
}

/// Evaluates on `threads` threads (0 = all cores), moving `progress` by one per image.
pub(crate) fn tally_parallel(
    mlp: &AnyMlp,
    data: &Dataset,
    threads: usize,
    progress: &Counter,
) -> Tally {
    let threads = pismo_engine::threads_or_all(threads);
    let parts = pismo_engine::fan_out::map_shares(data.len(), threads, |share| {
        tally(
            mlp,
            &data.images[share.clone()],
            &data.labels[share],
            progress,
        )
    });
    let mut total = Tally::default();
    for part in &parts {
        total.add(part);
    }
    total
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
    let (id, mlp) = crate::load_model(&registry, args.model.as_deref())?;
    if !args.set.is_empty() {
        if pair.is_some() {
            return Err(CliError::usage(
                "--set and --images are alternatives: give one",
            ));
        }
        return run_sets(&args, &id.to_string(), &mlp);
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
    let progress = Counter::start(&format!("eval {id}"), data.len() as u64, false);
    let t = tally_parallel(&mlp, &data, args.threads, &progress);
    progress.clear();
    let n = t.n();
    let accuracy = t.correct() as f64 / n as f64;
    let loss = t.loss / n as f64;
    if args.json {
        return crate::out_json(&Report {
            model: id.to_string(),
            images: source,
            n,
            accuracy,
            loss,
            confusion: &t.confusion,
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
    for (digit, (row, recall)) in t.confusion.iter().zip(t.recall()).enumerate() {
        let mut cells = vec![digit.to_string()];
        cells.extend(row.iter().map(u64::to_string));
        cells.push(text::percent(recall));
        table.row(cells);
    }
    out.push_str(&table.render());
    crate::out(&out)
}

/// `pismo eval --set …`: one report per set (a table of them without `--json`).
fn run_sets(args: &Args, id: &str, mlp: &AnyMlp) -> Result<(), CliError> {
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
        let (data, what) = devsets::load(name, &mnist_dir, &corpora_dir)
            .map_err(|e| CliError::failed(e.to_string()))?;
        let progress = Counter::start(&format!("eval {id} on {name}"), data.len() as u64, false);
        let t = tally_parallel(mlp, &data, args.threads, &progress);
        progress.clear();
        let n = t.n();
        let accuracy = t.correct() as f64 / n.max(1) as f64;
        if args.json {
            out.push_str(
                &serde_json::to_string(&Report {
                    model: id.to_owned(),
                    images: format!("{name}: {what}; {}", devsets::writers(name)),
                    n,
                    accuracy,
                    loss: t.loss / n.max(1) as f64,
                    confusion: &t.confusion,
                    recall: t.recall(),
                })
                .map_err(|e| CliError::failed(e.to_string()))?,
            );
            out.push('\n');
            continue;
        }
        if args.calibrate {
            calibration.push((name, t.scores.clone()));
        }
        table.row(vec![
            name.to_owned(),
            devsets::writers(name).to_owned(),
            n.to_string(),
            text::percent(Some(accuracy)),
            commonest_errors(&t.confusion, 4),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_rows_by_true_label() {
        let mut t = Tally::default();
        t.confusion[3][3] = 8;
        t.confusion[3][5] = 2;
        t.confusion[7][7] = 10;
        assert_eq!((t.n(), t.correct()), (20, 18));
        let recall = t.recall();
        assert_eq!(recall[3], Some(0.8));
        assert_eq!(recall[7], Some(1.0));
        assert_eq!(recall[0], None);
    }
}
