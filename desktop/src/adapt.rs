//! `pismo adapt`: fine-tune a registered model to the corrected drawings of one person
//! (`pismo_training::adapt::session`), record the run and register the result.
//!
//! Flags are checked before anything loads. Progress goes to stderr (a bar on a terminal,
//! and the run's log lines); the result to stdout: a short summary, or with `--json` one
//! object whose `"model"` is the registered `NAME@V`.

use std::ops::ControlFlow;
use std::path::PathBuf;

use argh::FromArgs;
use pismo_storage::registry::{validate_alias, validate_name};
use pismo_training::adapt::session::{self, AdaptError, AdaptEvent, AdaptRequest};
use pismo_training::adapt::AdaptRecipe;

use crate::progress::Counter;
use crate::CliError;

/// Fine-tune a model to the corrected drawings and register the result.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "adapt",
    example = "pismo adapt --name mine --alias default\npismo adapt --model mnist-mcu-int8 --drawn data/drawn --name mcu-mine --json",
    note = "The base is fine-tuned from its own weights on the corrections, with MNIST training digits rehearsed so it does not forget. Before registering, the result and the base are scored on the base's MNIST validation split: more than 0.5 points lost is refused unless --force. An int8 base gives an int8 result."
)]
pub struct Args {
    /// the model to start from (default: the `default` alias)
    #[argh(option)]
    model: Option<String>,
    /// folder of corrected drawings (default: $PISMO_DRAWN, else ./data/drawn)
    #[argh(option)]
    drawn: Option<PathBuf>,
    /// name to register the adapted model under
    #[argh(option)]
    name: String,
    /// alias to point at the adapted model, e.g. default (repeatable)
    #[argh(option)]
    alias: Vec<String>,
    /// register the model even if it forgot more than 0.5 points of MNIST validation
    #[argh(switch)]
    force: bool,
    /// seed of every random choice (default 1)
    #[argh(option, default = "1")]
    seed: u64,
    /// threads; 0 = all cores (default 0)
    #[argh(option, default = "0")]
    threads: usize,
    /// MNIST folder (default: $PISMO_DATA, else ./data/mnist)
    #[argh(option)]
    data: Option<PathBuf>,
    /// model registry folder (default: $PISMO_REGISTRY, else ./models)
    #[argh(option)]
    registry: Option<PathBuf>,
    /// model store in place of the registry folder, e.g. postgres://USER@HOST/DATABASE
    /// (default: $PISMO_STORE)
    #[argh(option)]
    store: Option<String>,
    /// run records folder (default: the --store database, else $PISMO_RUNS, else ./runs)
    #[argh(option)]
    runs: Option<PathBuf>,
    /// print the result as one JSON object on stdout
    #[argh(switch)]
    json: bool,
    /// no progress or log lines on stderr
    #[argh(switch)]
    quiet: bool,
}

/// Runs `pismo adapt`.
pub fn run(args: Args) -> Result<(), CliError> {
    validate_name(&args.name)?;
    for alias in &args.alias {
        validate_alias(alias)?;
    }
    let registry = crate::places::registry(&args.registry, &args.store)?;
    let runs = crate::places::runs(&args.runs, &args.registry, &args.store)?;
    let request = AdaptRequest {
        base: args.model.clone(),
        name: args.name.clone(),
        aliases: args.alias.clone(),
        drawn_dir: crate::places::drawn_dir(&args.drawn),
        data_dir: crate::places::data_dir(&args.data),
        threads: args.threads,
        force: args.force,
        recipe: AdaptRecipe::DEFAULT,
        seed: args.seed,
    };
    let mut bar: Option<Counter> = None;
    let quiet = args.quiet;
    let mut on_event = |event: AdaptEvent<'_>| {
        match event {
            AdaptEvent::Started { run_id } if !quiet => eprintln!("run {run_id}"),
            AdaptEvent::Line(line) if !quiet => {
                if let Some(b) = bar.take() {
                    b.clear();
                }
                eprintln!("{line}");
            }
            AdaptEvent::Steps { done, total } if !quiet => {
                let b =
                    bar.get_or_insert_with(|| Counter::start("adapting", u64::from(total), false));
                b.set_position(u64::from(done));
            }
            _ => {}
        }
        ControlFlow::Continue(())
    };
    let adapted = session::run(&request, &registry, &runs, &mut on_event);
    if let Some(b) = bar.take() {
        b.clear();
    }
    let adapted = adapted.map_err(|e| match e {
        e if e.is_invalid_request() => CliError::usage(e.to_string()),
        AdaptError::Registry(e) => CliError::from(e),
        e => CliError::failed(e.to_string()),
    })?;
    if args.json {
        return crate::out_json(&adapted);
    }
    crate::out_line(&adapted.summary())
}
