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
use pismo_core::hyper::{Hyper, Metrics};
use pismo_digits::drawn::{DrawnError, DrawnStore};
use pismo_digits::mnist::{self, Dataset, MnistError, Split, TRAIN_DIGEST};
use pismo_engine::model::{calibration_images, AnyMlp};
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

impl Adapted {
    /// One line saying what an adaptation did: the models, the corrections before and after
    /// (cross-validated), MNIST validation before and after, the time and the run. `pismo adapt`
    /// prints it; the window shows it.
    pub fn summary(&self) -> String {
        let cv = self.cross_validation;
        let corrections = if cv.folds == 0 {
            "too few corrections to cross-validate".to_owned()
        } else {
            format!(
                "{}/{} corrections right before, {}/{} after (cross-validated, {} folds)",
                cv.before, cv.n, cv.after, cv.n, cv.folds
            )
        };
        format!(
            "adapted {} -> {}: {corrections}; MNIST validation {:.2} % -> {:.2} %; {:.1} s (run {})",
            self.base,
            self.model,
            self.base_val_accuracy * 100.0,
            self.val_accuracy * 100.0,
            self.seconds,
            self.run_id
        )
    }
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
///
/// In steps: check the request and the corrections and take their lock, load the base,
/// open the run ([`start_run`]), fine-tune while reporting progress ([`adapt_reporting`]),
/// record the figures ([`say_figures`], [`log_figures`]), refuse a model that forgets
/// ([`check_forgetting`]), register it ([`register_adapted`]) and close the run
/// ([`close_run`]). Every failure after the run is opened closes it as failed ([`fail`]).
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
    let (base_id, base, hyper) = load_base(req, registry)?;
    let (val, rehearsal) = trainer::split_sets(train, hyper.val_size as usize, hyper.seed);
    let calibration = calibration_images(&train.images);

    let mut run = runs
        .create(&req.name, &hyper, TRAIN_DIGEST)
        .map_err(AdaptError::Runs)?;
    let run_id = run.id().to_owned();
    let counts = per_digit(&corrections.labels);
    start_run(
        &mut run,
        req,
        &base_id,
        &base,
        &corrections,
        &counts,
        on_event,
    );
    let adapter = Adapter {
        base: &base,
        rehearsal: &rehearsal,
        calibration,
        recipe: req.recipe,
        seed: req.seed,
    };
    let adaptation = adapt_reporting(&adapter, &corrections, &val, req.threads, on_event);
    say_figures(&mut run, req, &adaptation, val.len(), on_event);
    let (base_test, test_after) = test_figures(&base, &adaptation.model, test, req.threads);
    log_figures(&mut run, &adaptation, base_test, test_after, on_event);
    if let Err(e) = check_forgetting(&mut run, req, &run_id, &adaptation, on_event) {
        return Err(fail(run, on_event, e));
    }
    let parent = base_id.to_string();
    let meta = ModelMeta {
        name: &req.name,
        hyper,
        metrics: adapted_metrics(&adaptation, test_after),
        run_id: &run_id,
        dataset: TRAIN_DIGEST,
        parent: &parent,
    };
    let (id, size) = match register_adapted(registry, req, &adaptation.model, &meta) {
        Ok(done) => done,
        Err(e) => return Err(fail(run, on_event, AdaptError::Registry(e))),
    };
    let seconds = close_run(run, req, &id, size, started, on_event);
    Ok(Adapted {
        run_id,
        base: parent,
        model: id.to_string(),
        corrections: counts,
        cross_validation: adaptation.cross_validation,
        base_val_accuracy: adaptation.val_before,
        val_accuracy: adaptation.val_after,
        val_images: val.len(),
        blend: adaptation.blend,
        base_test_accuracy: base_test,
        test_accuracy: test_after,
        seconds,
    })
}

/// The base model of `req` from the registry: its id, the model and the hyperparameters
/// it was trained with (whose seed picks the validation split).
fn load_base(
    req: &AdaptRequest,
    registry: &Registry,
) -> Result<(ModelId, AnyMlp, Hyper), AdaptError> {
    let (base_id, bytes) = registry
        .load(req.base.as_deref())
        .map_err(AdaptError::Registry)?;
    let (base, file) = AnyMlp::decode(&bytes).map_err(|error| AdaptError::Model {
        id: base_id.to_string(),
        error,
    })?;
    Ok((base_id, base, file.meta.hyper))
}

/// Corrections per digit.
fn per_digit(labels: &[u8]) -> [usize; 10] {
    let mut counts = [0usize; 10];
    for &l in labels {
        counts[usize::from(l)] += 1;
    }
    counts
}

/// Tags the new run (base, corrections), reports [`AdaptEvent::Started`], then logs what
/// is adapted to what and the recipe.
fn start_run(
    run: &mut RunWriter,
    req: &AdaptRequest,
    base_id: &ModelId,
    base: &AnyMlp,
    corrections: &Dataset,
    counts: &[usize; 10],
    on_event: &mut dyn FnMut(AdaptEvent<'_>) -> ControlFlow<()>,
) {
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
    let run_id = run.id().to_owned();
    let _ = on_event(AdaptEvent::Started { run_id: &run_id });
    say(
        run,
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
        run,
        on_event,
        &format!(
            "{}{}",
            crate::session::RECIPE_LINE,
            serde_json::to_string(&req.recipe).unwrap_or_default()
        ),
    );
}

/// Runs `adapter` on a worker thread while this one reports its steps every 100 ms as
/// [`AdaptEvent::Steps`] (the caller's callback need not be shareable between threads).
fn adapt_reporting(
    adapter: &Adapter<'_>,
    corrections: &Dataset,
    val: &Dataset,
    threads: usize,
    on_event: &mut dyn FnMut(AdaptEvent<'_>) -> ControlFlow<()>,
) -> Adaptation {
    let done = std::sync::atomic::AtomicU32::new(0);
    let total = adapter.total_steps(corrections.len());
    std::thread::scope(|s| {
        let job = s.spawn(|| {
            adapter.run(corrections, val, threads, &|d, _| {
                done.fetch_max(d, std::sync::atomic::Ordering::Relaxed);
            })
        });
        while !job.is_finished() {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let done = done.load(std::sync::atomic::Ordering::Relaxed);
            let _ = on_event(AdaptEvent::Steps { done, total });
        }
        job.join().expect("the adapting thread panicked")
    })
}

/// Logs the cross-validation on the corrections and MNIST validation (of `val_images`
/// images), before and after.
fn say_figures(
    run: &mut RunWriter,
    req: &AdaptRequest,
    a: &Adaptation,
    val_images: usize,
    on_event: &mut dyn FnMut(AdaptEvent<'_>) -> ControlFlow<()>,
) {
    let cv = &a.cross_validation;
    let cv_line = if cv.folds == 0 {
        "corrections: too few to cross-validate (2 or more are needed)".to_owned()
    } else {
        format!(
            "corrections, {} folds (each scored by a model adapted on the others): base {}/{}, adapted {}/{}",
            cv.folds, cv.before, cv.n, cv.after, cv.n
        )
    };
    say(run, on_event, &cv_line);
    say(
        run,
        on_event,
        &format!(
            "MNIST validation ({} images, never trained on): base {:.2} %, adapted {:.2} %{}",
            val_images,
            a.val_before * 100.0,
            a.val_after * 100.0,
            if a.blend < 1.0 {
                format!(
                    " (fine-tuned fully {:.2} %; {:.0} % of the way from the base to the \
                     fine-tuned weights, the most that kept validation within {:.1} points)",
                    a.tuned_val * 100.0,
                    a.blend * 100.0,
                    req.recipe.keep_within * 100.0
                )
            } else {
                String::new()
            }
        ),
    );
}

/// MNIST test accuracy (0..1) of the base and the adapted model, when there is a test set.
fn test_figures(
    base: &AnyMlp,
    adapted: &AnyMlp,
    test: Option<&Dataset>,
    threads: usize,
) -> (Option<f64>, Option<f64>) {
    let accuracy = |m: &AnyMlp, d: &Dataset| {
        let (_, right) = m.evaluate(&d.images, &d.labels, threads);
        right as f64 / d.len().max(1) as f64
    };
    match test {
        Some(t) => (Some(accuracy(base, t)), Some(accuracy(adapted, t))),
        None => (None, None),
    }
}

/// The metrics the adapted model's file records: one "epoch", the adapted model's
/// validation figures and its test accuracy.
fn adapted_metrics(a: &Adaptation, test_after: Option<f64>) -> Metrics {
    Metrics {
        epochs_run: 1,
        best_epoch: 1,
        // Fine-tuning has no training loss of an epoch to report.
        train_loss: f32::NAN,
        val_loss: a.val_loss as f32,
        val_accuracy: a.val_after as f32,
        test_accuracy: test_after.map(|a| a as f32),
    }
}

/// Logs the MNIST test accuracies (base, adapted) when measured, then records every
/// figure as a metric of the run.
fn log_figures(
    run: &mut RunWriter,
    a: &Adaptation,
    base_test: Option<f64>,
    test_after: Option<f64>,
    on_event: &mut dyn FnMut(AdaptEvent<'_>) -> ControlFlow<()>,
) {
    if let (Some(b), Some(a)) = (base_test, test_after) {
        say(
            run,
            on_event,
            &format!(
                "MNIST test (measured only, decides nothing): base {:.2} %, adapted {:.2} %",
                b * 100.0,
                a * 100.0
            ),
        );
    }
    let cv = &a.cross_validation;
    run.log_metric(1, "base_val_accuracy", a.val_before);
    run.log_metric(1, "val_accuracy", a.val_after);
    run.log_metric(1, "blend", f64::from(a.blend));
    if cv.folds > 0 {
        run.log_metric(1, "corrections_cv_before", cv.before as f64 / cv.n as f64);
        run.log_metric(1, "corrections_cv_after", cv.after as f64 / cv.n as f64);
    }
    if let (Some(b), Some(a)) = (base_test, test_after) {
        run.log_metric(1, "base_test_accuracy", b);
        run.log_metric(1, "test_accuracy", a);
    }
}

/// [`AdaptError::Forgets`] if the fine-tuned weights lost more
/// than [`MAX_FORGETTING`] of MNIST validation, unless `req.force` (then a line says so).
/// Judged on the fine-tuned weights, not the blend: corrections that only a blend nearer
/// the base can live with (mislabelled ones, say) are refused all the same.
fn check_forgetting(
    run: &mut RunWriter,
    req: &AdaptRequest,
    run_id: &str,
    a: &Adaptation,
    on_event: &mut dyn FnMut(AdaptEvent<'_>) -> ControlFlow<()>,
) -> Result<(), AdaptError> {
    if a.tuned_val >= a.val_before - MAX_FORGETTING {
        return Ok(());
    }
    if req.force {
        say(
            run,
            on_event,
            "the adapted model forgot more than the limit; registered anyway (--force)",
        );
        return Ok(());
    }
    Err(AdaptError::Forgets {
        run_id: run_id.to_owned(),
        before: a.val_before,
        after: a.tuned_val,
    })
}

/// Logs `err` and closes the run as failed with its text; returns `err`.
fn fail(
    mut run: RunWriter,
    on_event: &mut dyn FnMut(AdaptEvent<'_>) -> ControlFlow<()>,
    err: AdaptError,
) -> AdaptError {
    let msg = err.to_string();
    say(&mut run, on_event, &format!("error: {msg}"));
    run.finish(Status::Failed, Some(&msg));
    err
}

/// Registers `model` with `meta` and points `req.aliases` at it: its id and file size.
fn register_adapted(
    registry: &Registry,
    req: &AdaptRequest,
    model: &AnyMlp,
    meta: &ModelMeta<'_>,
) -> Result<(ModelId, usize), RegistryError> {
    register(registry, model, meta).and_then(|(id, size)| {
        for alias in &req.aliases {
            registry.set_alias(alias, &id)?;
        }
        Ok((id, size))
    })
}

/// Records the registered model `id` (`size` bytes) and its aliases in the run, logs the
/// time since `started`, and closes the run as finished: the seconds taken.
fn close_run(
    mut run: RunWriter,
    req: &AdaptRequest,
    id: &ModelId,
    size: usize,
    started: Instant,
    on_event: &mut dyn FnMut(AdaptEvent<'_>) -> ControlFlow<()>,
) -> f64 {
    run.set_model(id);
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
    seconds
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
