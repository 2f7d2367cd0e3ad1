//! A whole adaptation, as `pismo adapt` and the web page start it: read the corrections,
//! load the base model and MNIST, open a run record, fine-tune ([`super::Adapter`]), check
//! that nothing was forgotten, register the result with its run, and close the run.
//!
//! Guarantees:
//! - **Nothing is registered from bad input.** A missing corrections folder, an empty one,
//!   or a correction that cannot be read is an error before any run is opened.
//! - **It does not forget.** The fine-tuned weights and the base are both scored on the
//!   base's own MNIST validation split (never trained on, by the base or by adapting); if
//!   the fine-tuned weights are more than [`MAX_FORGETTING`] behind, the run fails with
//!   [`AdaptError::Forgets`] and nothing is registered, unless the request says `force`.
//!   This also stops a batch of mislabelled corrections. What is registered is the base
//!   moved as far toward those weights as keeps validation within
//!   [`super::AdaptRecipe::keep_within`] ([`super::Adapter::run`]).
//! - **One at a time per corrections folder**: an OS file lock ([`ADAPTING_LOCK`]) in the
//!   folder; a second adaptation of it, from any process, is [`AdaptError::Busy`].
//! - **It is recorded like training**: the run holds the base, the corrections per digit,
//!   the recipe, the time and the before/after figures; the model file names its parent.

use std::fmt;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::{AdaptRecipe, Adaptation, Adapter, CrossValidation};
use crate::session::{register, ModelMeta};
use crate::trainer;
use pismo_core::format::FormatError;
use pismo_core::hyper::Metrics;
use pismo_digits::drawn::{DrawnError, DrawnStore};
use pismo_digits::mnist::{self, Dataset, MnistError, Split, TRAIN_DIGEST};
use pismo_engine::model::{AnyMlp, CALIBRATION_IMAGES};
use pismo_storage::registry::{self, ModelId, Registry, RegistryError};
use pismo_storage::runs::{RunWriter, Runs, RunsError, Status};

/// Largest drop of MNIST validation accuracy (a fraction: 0.005 is 0.5 points) an adapted
/// model may show against its base before it is refused.
pub const MAX_FORGETTING: f64 = 0.005;

/// What to adapt, to what, and where the result goes.
#[derive(Clone, Debug)]
pub struct AdaptRequest {
    /// The base model's reference (`None`: the `default` alias, else the newest model).
    pub base: Option<String>,
    /// Name to register the adapted model under.
    pub name: String,
    /// Aliases to point at it.
    pub aliases: Vec<String>,
    /// The folder of corrected drawings.
    pub drawn_dir: PathBuf,
    /// The MNIST folder (rehearsal, calibration and the forgetting check).
    pub data_dir: PathBuf,
    /// Threads (0: all cores).
    pub threads: usize,
    /// Register even if the adapted model forgot more than [`MAX_FORGETTING`].
    pub force: bool,
    /// How to fine-tune.
    pub recipe: AdaptRecipe,
    /// Seed of every random choice.
    pub seed: u64,
}

/// Progress of an adaptation.
#[derive(Debug)]
pub enum AdaptEvent<'a> {
    /// The run record exists.
    Started {
        /// Its id.
        run_id: &'a str,
    },
    /// A line of the run's log.
    Line(&'a str),
    /// Fine-tuning steps done, of all.
    Steps {
        /// Done.
        done: u32,
        /// All (the final model's and every fold's).
        total: u32,
    },
}

/// The end of an adaptation that registered a model.
#[derive(Clone, Debug, Serialize)]
pub struct Adapted {
    /// The run record.
    pub run_id: String,
    /// The base model.
    pub base: String,
    /// The registered model.
    pub model: String,
    /// Corrections used, per digit.
    pub corrections: [usize; 10],
    /// On the corrections, cross-validated.
    pub cross_validation: CrossValidation,
    /// MNIST validation accuracy of the base, 0..1.
    pub base_val_accuracy: f64,
    /// MNIST validation accuracy of the adapted model, 0..1.
    pub val_accuracy: f64,
    /// MNIST validation images scored.
    pub val_images: usize,
    /// How far the model moved from the base toward its fine-tuned weights (1: all the way;
    /// less when that kept MNIST validation nearer the base's, see `Adapter::run`).
    pub blend: f32,
    /// MNIST test accuracy of the base and the adapted model (measured, never used to
    /// decide anything), if the test split is there.
    pub base_test_accuracy: Option<f64>,
    /// See `base_test_accuracy`.
    pub test_accuracy: Option<f64>,
    /// Wall time of the whole adaptation, seconds.
    pub seconds: f64,
}

/// Why an adaptation did not register a model.
#[derive(Debug)]
#[non_exhaustive]
pub enum AdaptError {
    /// The corrections folder does not exist.
    NoFolder(PathBuf),
    /// The corrections folder holds no corrections.
    NoCorrections(PathBuf),
    /// A correction could not be read.
    Drawn(DrawnError),
    /// MNIST could not be loaded.
    Data(MnistError),
    /// The base model could not be loaded, or the result registered.
    Registry(RegistryError),
    /// The base model's file is damaged.
    Model {
        /// The model.
        id: String,
        /// What is wrong.
        error: FormatError,
    },
    /// The run record could not be written.
    Runs(RunsError),
    /// Another adaptation of the same corrections is running (in this process or another:
    /// `pismo adapt`, the window, the page).
    Busy(PathBuf),
    /// The corrections folder's adapting lock could not be taken.
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The adapted model forgot too much: MNIST validation accuracy fell from `before` to
    /// `after`.
    Forgets {
        /// The run that measured it.
        run_id: String,
        /// Base accuracy, 0..1.
        before: f64,
        /// Adapted accuracy, 0..1.
        after: f64,
    },
}

impl AdaptError {
    /// Whether the request itself is wrong (a bad name, alias or model reference).
    pub fn is_invalid_request(&self) -> bool {
        matches!(self, AdaptError::Registry(e) if e.is_invalid())
    }
}

impl fmt::Display for AdaptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdaptError::NoFolder(dir) => write!(
                f,
                "no corrections folder {}: correct some drawings first (\"Wrong? This is a …\" \
                 in `pismo draw` or the web page) or import them with `pismo data drawn import`",
                dir.display()
            ),
            AdaptError::NoCorrections(dir) => write!(
                f,
                "{} holds no corrections: there is nothing to adapt to",
                dir.display()
            ),
            AdaptError::Drawn(e) => write!(f, "cannot read the corrections: {e}"),
            AdaptError::Data(e) => write!(
                f,
                "{e} (adapting rehearses MNIST and checks the result on its validation split; \
                 `pismo data fetch` gets it)"
            ),
            AdaptError::Registry(e) => e.fmt(f),
            AdaptError::Model { id, error } => write!(f, "model {id}: {error}"),
            AdaptError::Runs(e) => e.fmt(f),
            AdaptError::Busy(dir) => write!(
                f,
                "another adaptation of the corrections in {} is running (`pismo adapt`, the \
                 window or the page): wait for it to end, then try again",
                dir.display()
            ),
            AdaptError::Lock { path, error } => {
                write!(f, "cannot lock {}: {error}", path.display())
            }
            AdaptError::Forgets {
                run_id,
                before,
                after,
            } => write!(
                f,
                "refused: the adapted model reads MNIST validation digits {:.2} % right, the \
                 base {:.2} % (more than {:.1} points lost; run {run_id}). Check the \
                 corrections' labels, or pass --force to register it anyway",
                after * 100.0,
                before * 100.0,
                MAX_FORGETTING * 100.0
            ),
        }
    }
}

impl std::error::Error for AdaptError {}

/// The corrections in `dir`, checked: an error if the folder is missing, empty or damaged.
pub fn load_corrections(dir: &Path) -> Result<Dataset, AdaptError> {
    if !dir.is_dir() {
        return Err(AdaptError::NoFolder(dir.to_path_buf()));
    }
    let data = DrawnStore::open(dir).load().map_err(AdaptError::Drawn)?;
    if data.is_empty() {
        return Err(AdaptError::NoCorrections(dir.to_path_buf()));
    }
    Ok(data)
}

/// The lock file in a corrections folder that one adaptation of them holds at a time.
pub const ADAPTING_LOCK: &str = ".adapting.lock";

/// Takes the adapting lock of the corrections in `dir`, without waiting: an OS file lock,
/// held until the file is dropped and released however its holder ends (kill -9 included).
/// Two adaptations of the same corrections never run interleaved, whoever started them.
fn lock_corrections(dir: &Path) -> Result<std::fs::File, AdaptError> {
    let path = dir.join(ADAPTING_LOCK);
    let lock_error = |error| AdaptError::Lock {
        path: path.clone(),
        error,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(lock_error)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(AdaptError::Busy(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => Err(lock_error(e)),
    }
}

/// Runs a whole adaptation (see the module doc), loading MNIST from `req.data_dir`.
pub fn run(
    req: &AdaptRequest,
    registry: &Registry,
    runs: &Runs,
    on_event: &mut dyn FnMut(AdaptEvent<'_>) -> ControlFlow<()>,
) -> Result<Adapted, AdaptError> {
    check_request(req)?;
    load_corrections(&req.drawn_dir)?;
    let train = mnist::load_split(&req.data_dir, Split::Train).map_err(AdaptError::Data)?;
    let test = mnist::load_split(&req.data_dir, Split::Test).ok();
    run_with_data(req, &train, test.as_ref(), registry, runs, on_event)
}

/// The name and aliases of `req`, checked.
pub fn check_request(req: &AdaptRequest) -> Result<(), AdaptError> {
    registry::validate_name(&req.name).map_err(AdaptError::Registry)?;
    for alias in &req.aliases {
        registry::validate_alias(alias).map_err(AdaptError::Registry)?;
    }
    Ok(())
}

/// Runs a whole adaptation on MNIST already loaded (`train`: the whole training file, whose
/// validation split the base's seed picks; `test`: the test split, measured only).
pub fn run_with_data(
    req: &AdaptRequest,
    train: &Dataset,
    test: Option<&Dataset>,
    registry: &Registry,
    runs: &Runs,
    on_event: &mut dyn FnMut(AdaptEvent<'_>) -> ControlFlow<()>,
) -> Result<Adapted, AdaptError> {
    let started = Instant::now();
    check_request(req)?;
    let corrections = load_corrections(&req.drawn_dir)?;
    let _lock = lock_corrections(&req.drawn_dir)?;
    let (base_id, bytes) = registry
        .load(req.base.as_deref())
        .map_err(AdaptError::Registry)?;
    let (base, file) = AnyMlp::decode(&bytes).map_err(|error| AdaptError::Model {
        id: base_id.to_string(),
        error,
    })?;
    let hyper = file.meta.hyper;
    let (val, rehearsal) = trainer::split_sets(train, hyper.val_size as usize, hyper.seed);
    let calibration = &train.images[..CALIBRATION_IMAGES.min(train.len())];

    let mut run = runs
        .create(&req.name, &hyper, TRAIN_DIGEST)
        .map_err(AdaptError::Runs)?;
    let run_id = run.id().to_owned();
    let mut counts = [0usize; 10];
    for &l in &corrections.labels {
        counts[usize::from(l)] += 1;
    }
    let per_digit = counts
        .iter()
        .enumerate()
        .filter(|(_, &c)| c > 0)
        .map(|(d, c)| format!("{d}:{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    run.set_tag("adapted_from", &base_id.to_string());
    run.set_tag("corrections", &corrections.len().to_string());
    run.set_tag("corrections_per_digit", &per_digit);
    let _ = on_event(AdaptEvent::Started { run_id: &run_id });
    say(
        &mut run,
        on_event,
        &format!(
            "adapting {base_id} ({} 784-{}-10{}) to {} corrections from {} (per digit {per_digit})",
            base.kind(),
            base.hidden_size(),
            if base.deskew() {
                ", deskewed inputs"
            } else {
                ""
            },
            corrections.len(),
            req.drawn_dir.display()
        ),
    );
    say(
        &mut run,
        on_event,
        &format!(
            "{}{}",
            crate::session::RECIPE_LINE,
            serde_json::to_string(&req.recipe).unwrap_or_default()
        ),
    );
    let adapter = Adapter {
        base: &base,
        rehearsal: &rehearsal,
        calibration,
        recipe: req.recipe,
        seed: req.seed,
    };
    // The workers count their steps; this thread reports them (the caller's callback
    // need not be shareable between threads).
    let done = std::sync::atomic::AtomicU32::new(0);
    let total = adapter.total_steps(corrections.len());
    let adaptation = std::thread::scope(|s| {
        let job = s.spawn(|| {
            adapter.run(&corrections, &val, req.threads, &|d, _| {
                done.fetch_max(d, std::sync::atomic::Ordering::Relaxed);
            })
        });
        while !job.is_finished() {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let done = done.load(std::sync::atomic::Ordering::Relaxed);
            let _ = on_event(AdaptEvent::Steps { done, total });
        }
        job.join().expect("the adapting thread panicked")
    });
    let threads = req.threads;
    let accuracy = |m: &AnyMlp, d: &Dataset| {
        let (_, right) = m.evaluate(&d.images, &d.labels, threads);
        right as f64 / d.len().max(1) as f64
    };
    let Adaptation {
        model: adapted,
        cross_validation: cv,
        blend,
        val_before: base_val,
        val_after,
        val_loss,
        tuned_val,
    } = adaptation;
    let cv_line = if cv.folds == 0 {
        "corrections: too few to cross-validate (2 or more are needed)".to_owned()
    } else {
        format!(
            "corrections, {} folds (each scored by a model adapted on the others): base {}/{}, adapted {}/{}",
            cv.folds, cv.before, cv.n, cv.after, cv.n
        )
    };
    say(&mut run, on_event, &cv_line);
    say(
        &mut run,
        on_event,
        &format!(
            "MNIST validation ({} images, never trained on): base {:.2} %, adapted {:.2} %{}",
            val.len(),
            base_val * 100.0,
            val_after * 100.0,
            if blend < 1.0 {
                format!(
                    " (fine-tuned fully {:.2} %; {:.0} % of the way from the base to the \
                     fine-tuned weights, the most that kept validation within {:.1} points)",
                    tuned_val * 100.0,
                    blend * 100.0,
                    req.recipe.keep_within * 100.0
                )
            } else {
                String::new()
            }
        ),
    );
    let (base_test, test_after) = match test {
        Some(t) => (Some(accuracy(&base, t)), Some(accuracy(&adapted, t))),
        None => (None, None),
    };
    if let (Some(b), Some(a)) = (base_test, test_after) {
        say(
            &mut run,
            on_event,
            &format!(
                "MNIST test (measured only, decides nothing): base {:.2} %, adapted {:.2} %",
                b * 100.0,
                a * 100.0
            ),
        );
    }
    run.log_metric(1, "base_val_accuracy", base_val);
    run.log_metric(1, "val_accuracy", val_after);
    run.log_metric(1, "blend", f64::from(blend));
    if cv.folds > 0 {
        run.log_metric(1, "corrections_cv_before", cv.before as f64 / cv.n as f64);
        run.log_metric(1, "corrections_cv_after", cv.after as f64 / cv.n as f64);
    }
    if let (Some(b), Some(a)) = (base_test, test_after) {
        run.log_metric(1, "base_test_accuracy", b);
        run.log_metric(1, "test_accuracy", a);
    }
    // Judged on the fine-tuned weights, not the blend: corrections that only a blend nearer
    // the base can live with (mislabelled ones, say) are refused all the same.
    if tuned_val < base_val - MAX_FORGETTING {
        if req.force {
            say(
                &mut run,
                on_event,
                "the adapted model forgot more than the limit; registered anyway (--force)",
            );
        } else {
            let err = AdaptError::Forgets {
                run_id: run_id.clone(),
                before: base_val,
                after: tuned_val,
            };
            let msg = err.to_string();
            say(&mut run, on_event, &format!("error: {msg}"));
            run.finish(Status::Failed, Some(&msg));
            return Err(err);
        }
    }
    let metrics = Metrics {
        epochs_run: 1,
        best_epoch: 1,
        // Fine-tuning has no training loss of an epoch to report.
        train_loss: f32::NAN,
        val_loss: val_loss as f32,
        val_accuracy: val_after as f32,
        test_accuracy: test_after.map(|a| a as f32),
    };
    let parent = base_id.to_string();
    let registered = register(
        registry,
        &adapted,
        &ModelMeta {
            name: &req.name,
            hyper,
            metrics,
            run_id: &run_id,
            dataset: TRAIN_DIGEST,
            parent: &parent,
        },
    )
    .and_then(|(id, size)| {
        for alias in &req.aliases {
            registry.set_alias(alias, &id)?;
        }
        Ok((id, size))
    });
    let (id, size): (ModelId, usize) = match registered {
        Ok(done) => done,
        Err(e) => {
            let msg = e.to_string();
            say(&mut run, on_event, &format!("error: {msg}"));
            run.finish(Status::Failed, Some(&msg));
            return Err(AdaptError::Registry(e));
        }
    };
    run.set_model(&id);
    say(
        &mut run,
        on_event,
        &format!("registered {id} ({size} bytes)"),
    );
    for alias in &req.aliases {
        say(&mut run, on_event, &format!("alias {alias} -> {id}"));
    }
    let seconds = started.elapsed().as_secs_f64();
    run.log_metric(1, "seconds", seconds);
    say(&mut run, on_event, &format!("adapted in {seconds:.1} s"));
    run.finish(Status::Finished, None);
    Ok(Adapted {
        run_id,
        base: parent,
        model: id.to_string(),
        corrections: counts,
        cross_validation: cv,
        base_val_accuracy: base_val,
        val_accuracy: val_after,
        val_images: val.len(),
        blend,
        base_test_accuracy: base_test,
        test_accuracy: test_after,
        seconds,
    })
}

/// Writes `line` to the run's log and reports it.
fn say(
    run: &mut RunWriter,
    on_event: &mut dyn FnMut(AdaptEvent<'_>) -> ControlFlow<()>,
    line: &str,
) {
    run.log_line(line);
    let _ = on_event(AdaptEvent::Line(line));
}
