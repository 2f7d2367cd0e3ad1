//! `pismo predict`: the digit in each image of PNG or IDX3 files (raw or gzip), or of a PNG
//! on standard input (`-`).
//!
//! Every image goes through `pismo_core::preprocess::to_input`, the pipeline every shell
//! uses: a 28x28 image is taken as MNIST-like (only its polarity is normalised), any other
//! size is a drawing or scan and is cropped, scaled and centred as MNIST was. A file that
//! cannot be read, or an image with no ink, is reported on stderr (naming the file and the
//! image's index) and skipped; the others are still answered, and the exit status is 1 if
//! anything was skipped.
//!
//! When the model is unsure (`pismo_core::verdict`: a low top probability or a small lead
//! over the second), the answer says so: `not sure: 3 or 9?`, and `--json` has
//! `"sure": false` and both `candidates`.

use std::io::Read;
use std::path::{Path, PathBuf};

use argh::FromArgs;
use pismo_core::mlp::{CLASSES, INPUT};
use pismo_core::preprocess;
use pismo_core::verdict::{ranked, verdict, Verdict};
use pismo_digits::image::{self, OwnedGrey};
use pismo_engine::kernels;
use pismo_engine::model::AnyMlp;
use serde::Serialize;

use crate::CliError;

/// Recognise the digit in each image of PNG or IDX3 files (any image size; `-` reads a PNG
/// from standard input).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "predict")]
pub struct Args {
    /// model: NAME, NAME@VERSION or NAME@ALIAS (default: the `default` alias, else the
    /// newest model)
    #[argh(option)]
    model: Option<String>,
    /// model registry folder (default: $PISMO_REGISTRY, else ./models)
    #[argh(option)]
    registry: Option<PathBuf>,
    /// model store in place of the registry folder, e.g. postgres://USER@HOST/DATABASE
    /// (default: $PISMO_STORE)
    #[argh(option)]
    store: Option<String>,
    /// print one JSON object per image on stdout
    #[argh(switch)]
    json: bool,
    /// PNG or IDX3 files (raw or .gz), or - for standard input
    #[argh(positional)]
    files: Vec<String>,
}

/// The `--json` line of one image.
#[derive(Serialize)]
struct Prediction<'a> {
    file: &'a str,
    index: usize,
    model: &'a str,
    label: usize,
    probabilities: &'a [f32; CLASSES],
    /// Whether the model is sure (`pismo_core::verdict`).
    sure: bool,
    /// The digit when sure; the two most likely, most likely first, when not.
    candidates: &'static [usize],
}

/// What `main` passes instead of a `-` argument of `pismo predict`: argh takes `-` for a
/// flag, and this cannot be typed by accident (it starts with a control character).
pub const STDIN_ARG: &str = "\u{1}stdin";

/// Reads the images of `file` (`-` is standard input).
pub(crate) fn read(file: &str) -> Result<Vec<OwnedGrey>, String> {
    if file == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .take(image::MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("standard input: {e}"))?;
        if bytes.len() as u64 > image::MAX_FILE_BYTES {
            return Err(format!(
                "standard input: more than {} MiB",
                image::MAX_FILE_BYTES >> 20
            ));
        }
        return image::decode_image_file(&bytes).map_err(|e| format!("standard input: {e}"));
    }
    image::read_image_file(Path::new(file)).map_err(|e| match e.kind() {
        image::ImageError::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
            format!("{file}: no such file")
        }
        _ => e.to_string(),
    })
}

/// The probabilities of one image: the core preprocessing, then the model.
pub(crate) fn probabilities(
    mlp: &AnyMlp,
    img: &OwnedGrey,
) -> Result<[f32; CLASSES], preprocess::PreprocessError> {
    let mut x = [0.0f32; INPUT];
    kernels::to_input(&img.as_grey(), &mut x)?;
    Ok(mlp.predict_proba(&x))
}

/// The text answer for one image: `7 (99.2 %)   next: 1 0.5 %, 2 0.1 %`, or when unsure
/// `not sure: 3 or 9? (48.1 % / 40.2 %)   next: 5 3.0 %, 8 2.0 %`.
pub(crate) fn answer(p: &[f32; CLASSES], order: &[usize; CLASSES], v: &Verdict) -> String {
    let pct = |d: usize| format!("{:.1} %", p[d] * 100.0);
    let shown = v.candidates().len();
    let others: Vec<String> = order[shown..shown + 2]
        .iter()
        .map(|&d| format!("{d} {}", pct(d)))
        .collect();
    let head = match *v {
        Verdict::Sure { digit, .. } => format!("{digit} ({})", pct(digit)),
        Verdict::Unsure { first, second, .. } => {
            format!("{v} ({} / {})", pct(first), pct(second))
        }
    };
    format!("{head}   next: {}", others.join(", "))
}

/// Runs `pismo predict`.
pub fn run(args: Args) -> Result<(), CliError> {
    if args.files.is_empty() {
        return Err(CliError::usage(
            "no FILE given: pass one or more PNG or IDX3 files, or - for standard input",
        ));
    }
    let registry = crate::places::registry(&args.registry, &args.store)?;
    let (id, mlp) = crate::load_model(&registry, args.model.as_deref())?;
    let model = id.to_string();
    if !args.json {
        eprintln!("model {model}");
    }
    let mut failed = 0usize;
    for file in &args.files {
        let file = if file == STDIN_ARG {
            "-"
        } else {
            file.as_str()
        };
        let images = match read(file) {
            Ok(images) => images,
            Err(msg) => {
                eprintln!("error: {msg}");
                failed += 1;
                continue;
            }
        };
        let many = images.len() > 1;
        for (index, img) in images.iter().enumerate() {
            let name = if many {
                format!("{file}#{index}")
            } else {
                file.to_owned()
            };
            let p = match probabilities(&mlp, img) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {name}: {e}");
                    failed += 1;
                    continue;
                }
            };
            let order = ranked(&p);
            let v = verdict(&p);
            if args.json {
                crate::out_json(&Prediction {
                    file,
                    index,
                    model: &model,
                    label: order[0],
                    probabilities: &p,
                    sure: v.is_sure(),
                    candidates: v.candidates(),
                })?;
            } else {
                crate::out_line(&format!("{name}: {}", answer(&p, &order, &v)))?;
            }
        }
    }
    if failed > 0 {
        return Err(CliError::Reported);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsure_answer_names_both_digits() {
        let mut p = [0.01; CLASSES];
        p[3] = 0.48;
        p[9] = 0.40;
        p[5] = 0.04;
        let text = answer(&p, &ranked(&p), &verdict(&p));
        assert_eq!(
            text,
            "not sure: 3 or 9? (48.0 % / 40.0 %)   next: 5 4.0 %, 0 1.0 %"
        );
        let mut p = [0.0; CLASSES];
        p[7] = 0.99;
        p[1] = 0.01;
        let text = answer(&p, &ranked(&p), &verdict(&p));
        assert_eq!(text, "7 (99.0 %)   next: 1 1.0 %, 0 0.0 %");
    }

    #[test]
    fn a_missing_file_is_named_in_the_error() {
        let msg = read("no/such/file.png").unwrap_err();
        assert!(msg.starts_with("no/such/file.png: "), "{msg}");
    }
}
