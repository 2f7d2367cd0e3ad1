//! `pismo draw`: a native window to draw a digit with the mouse and watch the prediction
//! change as you draw. The window is the crate `pismo-window`; here are its flags, the
//! stores and folders they resolve to, and its errors as exit statuses.
//!
//! All but the flags need the cargo feature `window` (default). Without it (the static
//! binary of the container image), `pismo draw` says so and exits with status 1.

use std::path::PathBuf;

use argh::FromArgs;

use crate::CliError;
#[cfg(feature = "window")]
use pismo_window::WindowError;

/// Largest accepted `--scale`.
const MAX_SCALE: u32 = 8;

/// Open a window to draw a digit with the mouse and see the model's answer live.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "draw",
    note = "Keys: mouse draws; Z undo; C, Backspace or right click clear; Tab / Shift+Tab next / previous model; S save the drawing as pismo-drawing-<time>.png; W then a digit 0-9: \"wrong? this is a …\", keeps the drawing with the right digit in the drawn folder (Esc cancels); L: learn from my corrections (adapts the model in use to the drawn folder's corrections in the background, as `pismo adapt` does, registers it as <name>-mine and switches to it); B: back to the model used before; Q or Esc quit.\nNeeds a display (X11 or Wayland); without one, use `pismo serve`."
)]
// Without the window the flags are still parsed (the same usage everywhere), then unused.
#[cfg_attr(not(feature = "window"), allow(dead_code))]
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
    /// folder of corrected drawings that W saves into (default: $PISMO_DRAWN, else
    /// ./data/drawn)
    #[argh(option)]
    drawn: Option<PathBuf>,
    /// run records folder for L's adaptations (default: the --store database, else
    /// $PISMO_RUNS, else ./runs)
    #[argh(option)]
    runs: Option<PathBuf>,
    /// MNIST folder L's adaptations rehearse and check on (default: $PISMO_DATA, else
    /// ./data/mnist)
    #[argh(option)]
    data: Option<PathBuf>,
    /// window size: 1 is 640x340 pixels (default 2)
    #[argh(option, default = "2")]
    scale: u32,
}

/// Runs `pismo draw`.
pub fn run(args: Args) -> Result<(), CliError> {
    if !(1..=MAX_SCALE).contains(&args.scale) {
        return Err(CliError::usage(format!(
            "--scale must be 1 to {MAX_SCALE}, not {}",
            args.scale
        )));
    }
    open_window(args)
}

/// Opens the window and runs it until it is closed.
#[cfg(feature = "window")]
fn open_window(args: Args) -> Result<(), CliError> {
    if !pismo_window::has_display() {
        return Err(CliError::failed(pismo_window::NO_DISPLAY));
    }
    let runs = crate::places::runs(&args.runs, &args.registry, &args.store)?;
    let setup = pismo_window::Setup {
        registry: crate::places::registry(&args.registry, &args.store)?,
        model: args.model,
        drawn: crate::places::drawn_store(&args.drawn),
        learning: pismo_window::learn::Setup {
            runs,
            data_dir: crate::places::data_dir(&args.data),
        },
        scale: args.scale,
    };
    pismo_window::open(setup, &mut std::io::stdout()).map_err(|e| match e {
        WindowError::Registry(e) => CliError::from(e),
        WindowError::Out(e) => CliError::from(e),
        e => CliError::failed(e),
    })
}

/// This binary has no window: says so.
#[cfg(not(feature = "window"))]
fn open_window(_args: Args) -> Result<(), CliError> {
    Err(CliError::failed(NO_WINDOW))
}

/// Why `pismo draw` cannot run in a binary built without the feature `window`.
#[cfg(not(feature = "window"))]
const NO_WINDOW: &str = "pismo draw is not available in this binary (built without the cargo \
     feature `window`, as in the container image); use `pismo serve` and its web page";
