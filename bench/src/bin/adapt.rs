//! The writer-by-writer simulation of `pismo adapt` (bench/README.md, "Adapting to a hand").
//!
//! For each writer: their first `--first` digits are drawn on the 280x280 canvas with the
//! page's pen and shown to the base model; the ones it answers wrong or "not sure" are
//! corrected (saved as the page saves them); the base is adapted to those corrections as
//! `pismo adapt` adapts it; then the writer's remaining digits (the first `--rest` of them,
//! all by default) are scored by the base and by the adapted model. Writers:
//! - `unipen`: UNIPEN's dev writers (never trained on) with at least `--min-digits` digits;
//! - `synthetic`: simulated writers, each with one fixed set of style choices drawn with
//!   pismo's stroke generator, five of them with the idiosyncratic 9s, 7s and 4s of
//!   `synth::WRITER_GLYPHS` (never trained on);
//! - `synthetic-loose`: five writers with the same odd styles and a looser hand.
//!
//! Also reports the MNIST test accuracy of the base and of every adapted model (measured,
//! never used to choose), and the wall time of each adaptation.
//!
//! ```text
//! cargo run --release -p pismo-bench --bin adapt -- [--model REF] [--registry DIR]
//!     [--data DIR] [--datasets DIR] [--writers unipen,synthetic,synthetic-loose] [--first 50]
//!     [--min-digits 100] [--rest N] [--pen 18] [--steps N] [--lr X] [--per-batch N] [--elastic X]
//!     [--dropout X] [--anchor X] [--keep-within X] [--output-only] [--keep-right] [--no-test]
//!     [--json FILE]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use pismo_core::rng::{hash3, Rng};
use pismo_core::verdict::verdict;
use pismo_digits::devsets::{CANVAS_SIDE, THICK_PEN};
use pismo_digits::drawn;
use pismo_digits::mnist::{self, Dataset, Split};
use pismo_digits::pen::Canvas;
use pismo_digits::synth::{self, Glyph, Hand, GLYPHS, WRITER_GLYPHS};
use pismo_digits::unipen;
use pismo_engine::model::{calibration_images, AnyMlp};
use pismo_storage::registry::Registry;
use pismo_training::adapt::{AdaptRecipe, Adapter};
use pismo_training::trainer;

struct Options {
    model: String,
    registry: PathBuf,
    data: PathBuf,
    datasets: PathBuf,
    writers: Vec<String>,
    first: usize,
    min_digits: usize,
    rest: usize,
    pen: f32,
    recipe: AdaptRecipe,
    test: bool,
    json: Option<PathBuf>,
    keep_right: bool,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        model: "default".into(),
        registry: PathBuf::from("models"),
        data: mnist::default_dir(),
        datasets: PathBuf::from("datasets"),
        writers: vec!["unipen".into(), "synthetic".into()],
        first: 50,
        min_digits: 100,
        rest: usize::MAX,
        pen: THICK_PEN,
        recipe: AdaptRecipe::DEFAULT,
        test: true,
        json: None,
        keep_right: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let num = |v: String| v.parse::<f32>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--model" => o.model = value()?,
            "--registry" => o.registry = value()?.into(),
            "--data" => o.data = value()?.into(),
            "--datasets" => o.datasets = value()?.into(),
            "--writers" => o.writers = value()?.split(',').map(str::to_owned).collect(),
            "--first" => o.first = num(value()?)? as usize,
            "--min-digits" => o.min_digits = num(value()?)? as usize,
            "--rest" => o.rest = num(value()?)? as usize,
            "--pen" => o.pen = num(value()?)?,
            "--steps" => o.recipe.steps = num(value()?)? as u32,
            "--lr" => o.recipe.lr = num(value()?)?,
            "--per-batch" => o.recipe.corrections_per_batch = num(value()?)? as u32,
            "--elastic" => o.recipe.elastic = num(value()?)?,
            "--dropout" => o.recipe.dropout_rate = num(value()?)?,
            "--anchor" => o.recipe.anchor = num(value()?)?,
            "--keep-within" => o.recipe.keep_within = num(value()?)?,
            "--output-only" => o.recipe.output_only = true,
            "--no-test" => o.test = false,
            "--keep-right" => o.keep_right = true,
            "--json" => o.json = Some(value()?.into()),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(o)
}

/// One writer's digits, in the order written, as model inputs (MNIST bytes).
struct Writer {
    name: String,
    digits: Dataset,
}

/// The model input of a drawing, as the page saves a correction of it.
fn input_of(canvas: &Canvas) -> Option<[u8; 784]> {
    drawn::input_bytes(&canvas.as_grey()).ok()
}

fn unipen_writers(o: &Options) -> Result<Vec<Writer>, String> {
    let digits = unipen::load(&o.datasets).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (name, ds) in unipen::writers(&digits, unipen::Split::Dev) {
        if ds.len() < o.min_digits {
            continue;
        }
        let mut data = Dataset::default();
        for (i, d) in ds.iter().enumerate() {
            let mut rng = Rng::new(hash3(0x0051_3E11, i as u64, name.len() as u64));
            let height = 150.0 + 80.0 * rng.next_f32();
            if let Some(x) = input_of(&unipen::draw(&d.strokes, height, o.pen)) {
                data.images.push(x);
                data.labels.push(d.label);
            }
        }
        out.push(Writer {
            name: format!("unipen {name}"),
            digits: data,
        });
    }
    Ok(out)
}

/// Simulated writers: writer `w` picks one glyph per digit once (writers 0 to 4 one to three
/// of the idiosyncratic 9, 7 and 4 of [`WRITER_GLYPHS`]) and one hand (slant, width, size,
/// rotation), then writes 250 digits in random order with variations of that hand.
/// `synthetic-loose` writers 0 to 4 have the same odd styles but a looser hand: twice the
/// wobble, more slant and rotation from digit to digit, and the odd glyph only three times
/// in four (otherwise their usual one), as a real person is not a stamp.
fn synthetic_writers(o: &Options, loose: bool) -> Vec<Writer> {
    let odd = |name: &str| WRITER_GLYPHS.iter().find(|g| g.name.starts_with(name));
    let count = if loose { 5 } else { 10 };
    (0..count)
        .map(|w| {
            let mut rng = Rng::new(hash3(0x5171_7E55, w, u64::from(loose)));
            let usual: Vec<&Glyph> = (0..10u8)
                .map(|d| {
                    let of: Vec<&Glyph> = GLYPHS.iter().filter(|g| g.digit == d).collect();
                    of[rng.below(of.len())]
                })
                .collect();
            let mut style = usual.clone();
            let special: &[&str] = match w {
                0 => &["9 ", "7 "],
                1 => &["7 "],
                2 => &["4 ", "9 "],
                3 => &["4 ", "7 "],
                4 => &["9 ", "4 ", "7 "],
                _ => &[],
            };
            for s in special {
                let g = odd(s).expect("a writer glyph");
                style[usize::from(g.digit)] = g;
            }
            let (jitter, slant, rotation, odd_share) = if loose {
                (0.06, 0.14, 9.0, 0.75)
            } else {
                (0.03, 0.08, 5.0, 1.0)
            };
            let hand = Hand::sample(&mut rng, 0);
            let mut data = Dataset::default();
            for i in 0..250u64 {
                let digit = (hash3(0xD161_7000, w, i) % 10) as u8;
                let mut h = hand;
                h.jitter = jitter;
                h.slant = hand.slant + slant * rng.normal();
                h.aspect = if digit == 1 {
                    0.3
                } else {
                    hand.aspect.max(0.55)
                };
                h.rotation = hand.rotation + rotation * rng.normal();
                h.size = (0.55 + 0.25 * rng.next_f32()).min(0.85);
                h.pen = o.pen / (h.size * CANVAS_SIDE as f32);
                h.place = (0.5, 0.5);
                // (The strict writers draw nothing here, so they stay the writers measured
                // before the loose ones were added.)
                let glyph = if !loose || rng.next_f32() < odd_share {
                    style[usize::from(digit)]
                } else {
                    usual[usize::from(digit)]
                };
                let (strokes, pen) = synth::write(glyph, &h, CANVAS_SIDE as f32, &mut rng);
                let mut canvas = Canvas::new(CANVAS_SIDE, CANVAS_SIDE);
                for s in &strokes {
                    canvas.stroke(s, pen);
                }
                if let Some(x) = input_of(&canvas) {
                    data.images.push(x);
                    data.labels.push(digit);
                }
            }
            let kind = if loose {
                "synthetic-loose"
            } else {
                "synthetic"
            };
            let odd = if special.is_empty() { "" } else { " (odd)" };
            Writer {
                name: format!("{kind} {w}{odd}"),
                digits: data,
            }
        })
        .collect()
}

/// What happened to one writer.
struct Outcome {
    name: String,
    corrections: usize,
    scored: usize,
    before: usize,
    after: usize,
    val: Option<f64>,
    test: Option<f64>,
    seconds: f64,
}

fn main() {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let registry = Registry::open(o.registry.clone());
    let (id, bytes) = registry.load(Some(&o.model)).unwrap_or_else(|e| fail(&e));
    let (base, file) = AnyMlp::decode(&bytes).unwrap_or_else(|e| fail(&e));
    let train = mnist::load_split(&o.data, Split::Train).unwrap_or_else(|e| fail(&e));
    let test = mnist::load_split(&o.data, Split::Test).unwrap_or_else(|e| fail(&e));
    let hyper = file.meta.hyper;
    let (val, rehearsal) = trainer::split_sets(&train, hyper.val_size as usize, hyper.seed);
    let writers = writers(&o);
    let base_test = accuracy(&base, &test);
    let base_val = accuracy(&base, &val);
    eprintln!(
        "{id}: {} 784-{}-10, MNIST validation {:.2} %, test {:.2} %; recipe {:?}",
        base.kind(),
        base.hidden_size(),
        base_val * 100.0,
        base_test * 100.0,
        o.recipe
    );
    let adapter = Adapter {
        base: &base,
        rehearsal: &rehearsal,
        calibration: calibration_images(&train.images),
        recipe: o.recipe,
        seed: 1,
    };
    let mnist = Mnist {
        val: &val,
        test: &test,
    };
    println!(
        "{:<34} {:>5} {:>7} {:>9} {:>9} {:>7} {:>8} {:>6}",
        "writer", "corr", "scored", "before %", "after %", "val %", "test %", "s"
    );
    let outcomes: Vec<Outcome> = writers
        .iter()
        .map(|w| {
            let out = adapt_to(&o, &adapter, &mnist, w);
            print_row(&out);
            out
        })
        .collect();
    let base = (base_val, base_test);
    summary(&outcomes, base, "all writers", |_| true);
    summary(&outcomes, base, "unipen", |o| o.name.starts_with("unipen"));
    summary(&outcomes, base, "synthetic", |o| {
        o.name.starts_with("synthetic ")
    });
    summary(&outcomes, base, "synthetic-loose", |o| {
        o.name.starts_with("synthetic-loose")
    });
    if let Some(path) = &o.json {
        write_json(path, &o, &id.to_string(), base, &outcomes);
    }
}

/// The writers `--writers` asks for, in its order.
fn writers(o: &Options) -> Vec<Writer> {
    let mut writers = Vec::new();
    for kind in &o.writers {
        match kind.as_str() {
            "unipen" => writers.extend(unipen_writers(o).unwrap_or_else(|e| fail(&e))),
            "synthetic" => writers.extend(synthetic_writers(o, false)),
            "synthetic-loose" => writers.extend(synthetic_writers(o, true)),
            other => fail(&format!("unknown writers {other}")),
        }
    }
    writers
}

/// The share of `d` that `m` reads right.
fn accuracy(m: &AnyMlp, d: &Dataset) -> f64 {
    let (_, right) = m.evaluate(&d.images, &d.labels, 0);
    right as f64 / d.len().max(1) as f64
}

/// The MNIST sets an adapted model is measured on.
struct Mnist<'a> {
    val: &'a Dataset,
    test: &'a Dataset,
}

/// Of the writer's first `first` digits, the ones `base` reads wrong or is not sure of.
fn corrections_of(base: &AnyMlp, w: &Writer, first: usize) -> Dataset {
    let mut corrections = Dataset::default();
    for (x, &y) in w.digits.images[..first].iter().zip(&w.digits.labels) {
        let p = base.predict_proba(&x.map(|b| f32::from(b) / 255.0));
        let v = verdict(&p);
        if !v.is_sure() || v.digit() != usize::from(y) {
            corrections.images.push(*x);
            corrections.labels.push(y);
        }
    }
    corrections
}

/// Writer `w`'s corrections learnt by `adapter`, the rest of their digits scored before
/// and after, and the adapted model measured on MNIST.
fn adapt_to(o: &Options, adapter: &Adapter<'_>, mnist: &Mnist<'_>, w: &Writer) -> Outcome {
    let base = adapter.base;
    let first = o.first.min(w.digits.len() / 2);
    let mut corrections = corrections_of(base, w, first);
    // With --keep-right, the answers the writer let stand are learnt too (as the page
    // keeps them when the person opts in), once they corrected at least one.
    let corrected = corrections.len();
    if o.keep_right && corrected > 0 {
        corrections = Dataset {
            images: w.digits.images[..first].to_vec(),
            labels: w.digits.labels[..first].to_vec(),
        };
    }
    let end = first + o.rest.min(w.digits.len() - first);
    let rest = Dataset {
        images: w.digits.images[first..end].to_vec(),
        labels: w.digits.labels[first..end].to_vec(),
    };
    let (_, before) = base.evaluate(&rest.images, &rest.labels, 0);
    let started = Instant::now();
    let adapted = if corrections.is_empty() {
        None
    } else {
        Some(adapter.run(&corrections, mnist.val, 0, &|_, _| {}).model)
    };
    let seconds = started.elapsed().as_secs_f64();
    let model = adapted.as_ref().unwrap_or(base);
    let (_, after) = model.evaluate(&rest.images, &rest.labels, 0);
    Outcome {
        name: w.name.clone(),
        corrections: corrected,
        scored: rest.len(),
        before,
        after,
        val: adapted.as_ref().map(|m| accuracy(m, mnist.val)),
        test: (o.test && adapted.is_some()).then(|| accuracy(model, mnist.test)),
        seconds,
    }
}

/// One writer's line of the table.
fn print_row(out: &Outcome) {
    println!(
        "{:<34} {:>5} {:>7} {:>9.1} {:>9.1} {:>7} {:>8} {:>6.1}",
        out.name,
        out.corrections,
        out.scored,
        100.0 * out.before as f64 / out.scored as f64,
        100.0 * out.after as f64 / out.scored as f64,
        out.val
            .map_or_else(|| "-".into(), |v| format!("{:.2}", v * 100.0)),
        out.test
            .map_or_else(|| "-".into(), |t| format!("{:.2}", t * 100.0)),
        out.seconds
    );
}

/// `--json`: the base model `id`, its MNIST `(validation, test)` accuracy and every
/// writer's outcome.
fn write_json(
    path: &std::path::Path,
    o: &Options,
    id: &str,
    base: (f64, f64),
    outcomes: &[Outcome],
) {
    let (base_val, base_test) = base;
    let rows: Vec<serde_json::Value> = outcomes
        .iter()
        .map(|o| {
            serde_json::json!({"writer": o.name, "corrections": o.corrections,
                "scored": o.scored, "before": o.before, "after": o.after,
                "val_accuracy": o.val, "test_accuracy": o.test, "seconds": o.seconds})
        })
        .collect();
    let doc = serde_json::json!({"model": id, "recipe": o.recipe,
        "base_val_accuracy": base_val, "base_test_accuracy": base_test, "first": o.first, "pen": o.pen, "writers": rows});
    std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap_or_default())
        .unwrap_or_else(|e| fail(&e));
}

/// One line over the writers `keep` picks; `base` is the base's MNIST (validation, test).
fn summary(outcomes: &[Outcome], base: (f64, f64), what: &str, keep: impl Fn(&Outcome) -> bool) {
    let (base_val, base_test) = base;
    let kept: Vec<&Outcome> = outcomes.iter().filter(|o| keep(o)).collect();
    if kept.is_empty() {
        return;
    }
    let n: usize = kept.iter().map(|o| o.scored).sum();
    let before: usize = kept.iter().map(|o| o.before).sum();
    let after: usize = kept.iter().map(|o| o.after).sum();
    let worst = |f: fn(&Outcome) -> usize| {
        kept.iter()
            .map(|o| 100.0 * f(o) as f64 / o.scored as f64)
            .fold(f64::INFINITY, f64::min)
    };
    // The lowest of `xs` as a percentage, or "-" when none was measured (`--no-test`).
    let lowest = |xs: Vec<f64>| {
        xs.into_iter()
            .reduce(f64::min)
            .map_or_else(|| "-".to_owned(), |x| format!("{:.2}", 100.0 * x))
    };
    let worst_val = lowest(kept.iter().filter_map(|o| o.val).collect());
    let worst_test = lowest(kept.iter().filter_map(|o| o.test).collect());
    let slowest = kept.iter().map(|o| o.seconds).fold(0.0, f64::max);
    println!(
        "{what}: {} writers, remaining digits {:.2} % -> {:.2} %; worst writer {:.1} % -> {:.1} %; MNIST validation base {:.2} %, adapted worst {worst_val} %; test base {:.2} %, adapted worst {worst_test} %; slowest adaptation {slowest:.1} s",
        kept.len(),
        100.0 * before as f64 / n as f64,
        100.0 * after as f64 / n as f64,
        worst(|o| o.before),
        worst(|o| o.after),
        base_val * 100.0,
        base_test * 100.0,
    );
}

fn fail(e: &dyn std::fmt::Display) -> ! {
    eprintln!("error: {e}");
    std::process::exit(1)
}
