//! `pismo-bench`: timing probes of pismo's inference paths, for the harness in `bench/run`.
//!
//! Training is timed through the real CLI (`pismo train --json`); what the CLI cannot time
//! without its own overhead (loading a model per call, printing) is measured here, in one
//! process, through the same library calls the shells use. Each subcommand prints one JSON
//! object on stdout.
//!
//! ```text
//! pismo-bench predict --model FILE [--data DIR] [--iters N] [--drawing-iters N]
//!                     [--batch-reps N] [--threads N]
//! pismo-bench infer --model FILE --count N [--data DIR]
//! pismo-bench serve-data --model FILE --out DIR [--data DIR] [--count N]
//! ```
//!
//! `serve-data` writes the request bodies and weights of the serving benchmark
//! (`bench/serve-load`, see [`serve_data`]); the load generator is the `loadgen` binary.
//!
//! `predict` measures, with the model file's weights:
//! - `single_us`: one `AnyMlp::predict_proba` on a 784-float input (a t10k digit / 255);
//! - `drawing_us`: a 280x280 grey drawing (a t10k digit enlarged 7x, dark ink on white
//!   paper, off-centre; built once) through `preprocess::to_input` and `predict_proba`;
//! - `batch_*`: `AnyMlp::evaluate` (`pismo_engine::eval::evaluate` for f32 models) over the 10000 t10k images (bytes in, loss and
//!   correct count out) on `--threads` threads (0 = every core).
//!
//! Its JSON also names the kernel copy that ran (`kernels`: `baseline`, `avx2`, `avx512` or
//! `neon`, see `pismo_engine::kernels::level`) and the `PISMO_SIMD` cap it ran under.
//!
//! Latencies are the median over blocks of calls of the block time / calls per block, after a
//! warm-up; the minimum is reported too. `black_box` keeps the compiler from hoisting or
//! dropping the work. Exit status: 0 success, 1 error, 2 usage error.

use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use pismo_core::mlp::{argmax, INPUT};
use pismo_core::preprocess::GreyImage;
use pismo_digits::mnist::{self, Split};
use pismo_engine::kernels;
use pismo_engine::model::AnyMlp;

mod serve_data;

/// Side of the simulated drawing canvas, as the web page's.
pub(crate) const CANVAS: usize = 280;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("predict") => match PredictArgs::parse(&args[1..]) {
            Ok(a) => match predict(&a) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            },
            Err(e) => usage(&e),
        },
        Some("infer") => match infer(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => usage(&e),
        },
        Some("serve-data") => match serve_data::run(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        Some("-h" | "--help" | "help") => {
            println!("{}", USAGE);
            ExitCode::SUCCESS
        }
        Some(other) => usage(&format!("unknown subcommand `{other}`")),
        None => usage("missing subcommand"),
    }
}

const USAGE: &str = "usage: pismo-bench predict --model FILE [--data DIR] [--iters N] \
                     [--drawing-iters N] [--batch-reps N] [--threads N]\n       \
                     pismo-bench infer --model FILE --count N [--data DIR]\n       \
                     pismo-bench serve-data --model FILE --out DIR [--data DIR] [--count N]";

/// `infer`: loads the model and the t10k images, then runs exactly `count` single-image
/// inferences (`AnyMlp::logits`, f32 or int8) and prints the number of right answers. Made
/// to run under `valgrind --tool=callgrind` twice (`--count 0` and `--count N`): the
/// difference of the instruction counts is the cost of N inferences (`bench/callgrind`).
fn infer(args: &[String]) -> Result<(), String> {
    let (mut model, mut count, mut data) = (None, None, mnist::default_dir());
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--model" => model = Some(PathBuf::from(value)),
            "--count" => {
                count = Some(
                    value
                        .parse::<usize>()
                        .map_err(|e| format!("--count: {e}"))?,
                )
            }
            "--data" => data = PathBuf::from(value),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let model = model.ok_or("--model is required")?;
    let count = count.ok_or("--count is required")?;
    let (m, test) = model_and_test(&model, &data)?;
    let inputs: Vec<[f32; INPUT]> = test
        .images
        .iter()
        .map(|im| std::array::from_fn(|i| f32::from(im[i]) / 255.0))
        .collect();
    let mut right = 0usize;
    for j in 0..count {
        let k = j % inputs.len();
        let z = m.logits(black_box(&inputs[k]));
        right += usize::from(argmax(&z) == usize::from(test.labels[k]));
    }
    println!("{{\"bench\":\"infer\",\"kind\":\"{}\",\"hidden_size\":{},\"count\":{count},\"right\":{right}}}", m.kind(), m.hidden_size());
    Ok(())
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("error: {msg}\n{USAGE}");
    ExitCode::from(2)
}

/// Flags of `predict`.
#[derive(Debug)]
struct PredictArgs {
    model: PathBuf,
    data: PathBuf,
    iters: usize,
    drawing_iters: usize,
    batch_reps: usize,
    threads: usize,
}

impl PredictArgs {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut a = PredictArgs {
            model: PathBuf::new(),
            data: mnist::default_dir(),
            iters: 20_000,
            drawing_iters: 4_000,
            batch_reps: 30,
            threads: 0,
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let number = || {
                value
                    .parse::<usize>()
                    .map_err(|_| format!("{flag}: expected a number, got `{value}`"))
            };
            match flag.as_str() {
                "--model" => a.model = PathBuf::from(value),
                "--data" => a.data = PathBuf::from(value),
                "--iters" => a.iters = number()?.max(1),
                "--drawing-iters" => a.drawing_iters = number()?.max(1),
                "--batch-reps" => a.batch_reps = number()?.max(1),
                "--threads" => a.threads = number()?,
                _ => return Err(format!("unknown flag `{flag}`")),
            }
        }
        if a.model.as_os_str().is_empty() {
            return Err("--model FILE is required".into());
        }
        if a.threads == 0 {
            a.threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        }
        Ok(a)
    }
}

/// Median and minimum seconds per call.
#[derive(Debug, Clone, Copy)]
struct Timing {
    median: f64,
    min: f64,
}

/// Runs `f` `calls` times after `calls / 10` warm-up calls, in blocks of `block` calls, and
/// returns the median and minimum of (block time / block).
fn time_per_call(calls: usize, block: usize, mut f: impl FnMut()) -> Timing {
    for _ in 0..(calls / 10).max(block) {
        f();
    }
    let blocks = calls.div_ceil(block).max(1);
    let mut per_call: Vec<f64> = (0..blocks)
        .map(|_| {
            let t0 = Instant::now();
            for _ in 0..block {
                f();
            }
            t0.elapsed().as_secs_f64() / block as f64
        })
        .collect();
    per_call.sort_by(f64::total_cmp);
    Timing {
        median: per_call[per_call.len() / 2],
        min: per_call[0],
    }
}

/// A 280x280 drawing of `digit`: enlarged 7x (196 px, nearest neighbour), placed off-centre,
/// dark ink on white paper, as a canvas export looks.
pub(crate) fn drawing_of(digit: &[u8; INPUT]) -> Vec<u8> {
    const SCALE: usize = 7;
    const X0: usize = 50;
    const Y0: usize = 30;
    let mut canvas = vec![255u8; CANVAS * CANVAS];
    for y in 0..28 * SCALE {
        for x in 0..28 * SCALE {
            canvas[(Y0 + y) * CANVAS + X0 + x] = 255 - digit[(y / SCALE) * 28 + x / SCALE];
        }
    }
    canvas
}

/// The model file at `model` and the MNIST test split in `data`, or a message naming what
/// could not be read.
pub(crate) fn model_and_test(
    model: &std::path::Path,
    data: &std::path::Path,
) -> Result<(AnyMlp, mnist::Dataset), String> {
    let bytes =
        std::fs::read(model).map_err(|e| format!("cannot read {}: {e}", model.display()))?;
    let (m, _) = AnyMlp::decode(&bytes).map_err(|e| format!("{}: {e}", model.display()))?;
    let test = mnist::load_split(data, Split::Test).map_err(|e| e.to_string())?;
    Ok((m, test))
}

fn predict(a: &PredictArgs) -> Result<(), String> {
    let (mlp, test) = model_and_test(&a.model, &a.data)?;
    let digit = &test.images[0];
    let expected = test.labels[0];

    // (a) Inference only, on one 784-float input.
    let mut x = [0.0f32; INPUT];
    for (o, &p) in x.iter_mut().zip(digit.iter()) {
        *o = f32::from(p) / 255.0;
    }
    let single_label = argmax(&mlp.predict_proba(&x));
    let single = time_per_call(a.iters, 100, || {
        black_box(mlp.predict_proba(black_box(&x)));
    });

    // (b) A 280x280 drawing through preprocessing and inference.
    let canvas = drawing_of(digit);
    let mut input = [0.0f32; INPUT];
    let img = GreyImage::new(CANVAS, CANVAS, &canvas).map_err(|e| e.to_string())?;
    kernels::to_input(&img, &mut input).map_err(|e| e.to_string())?;
    let drawing_label = argmax(&mlp.predict_proba(&input));
    let mut failed = None;
    let drawing = time_per_call(a.drawing_iters, 10, || {
        let img = GreyImage::new(CANVAS, CANVAS, black_box(&canvas));
        match img.and_then(|img| kernels::to_input(&img, &mut input)) {
            Ok(_) => {
                black_box(mlp.predict_proba(black_box(&input)));
            }
            Err(e) => failed = Some(e.to_string()),
        }
    });
    if let Some(e) = failed {
        return Err(format!("preprocessing the drawing failed: {e}"));
    }

    // (c) Batch prediction over the test set, on every thread asked for.
    let mut correct = 0;
    let batch = time_per_call(a.batch_reps, 1, || {
        let (_, c) = mlp.evaluate(black_box(&test.images), &test.labels, a.threads);
        correct = black_box(c);
    });
    let n = test.len();

    let line = serde_json::json!({
        "bench": "predict",
        "model": a.model.display().to_string(),
        "hidden_size": mlp.hidden_size(),
        "threads": a.threads,
        "kernels": pismo_engine::kernels::level().name(),
        "pismo_simd": std::env::var("PISMO_SIMD").ok(),
        "single_us": single.median * 1e6,
        "single_us_min": single.min * 1e6,
        "single_iters": a.iters,
        "single_label": single_label,
        "drawing_us": drawing.median * 1e6,
        "drawing_us_min": drawing.min * 1e6,
        "drawing_iters": a.drawing_iters,
        "drawing_side": CANVAS,
        "drawing_label": drawing_label,
        "expected_label": expected,
        "batch_images": n,
        "batch_seconds": batch.median,
        "batch_seconds_min": batch.min,
        "batch_images_per_s": n as f64 / batch.median,
        "batch_reps": a.batch_reps,
        "batch_accuracy": correct as f64 / n as f64,
    });
    println!("{line}");
    Ok(())
}
