//! # pismo-window
//!
//! `pismo draw`: a native window to draw a digit with the mouse and watch the prediction
//! change as you draw, correct it (W), learn from the corrections (L) and switch models
//! (Tab, B).
//!
//! - [`app`]: the state (strokes, canvas, models, prediction), no window system; tested.
//! - [`render`]: one frame drawn with tiny-skia, converted to minifb's pixels; tested.
//! - [`font`]: the embedded 5x7 bitmap font the frame's text uses.
//! - [`learn`]: learning from the corrections (L) on a background thread.
//! - `styles` (tests): the styles set drawn through the app state.
//! - [`window`]: the minifb loop: mouse and keys in, frames out, only when something changed.
//! - [`error`]: why the window did not open, or stopped.
//!
//! A shell calls [`open`] with a [`Setup`]: the registry, the drawn store and the folders it
//! resolved from its flags. The window reads no flag; it writes the paths of what it saves
//! to the writer it is given, and what L and B did to stderr.
//!
//! Depends on the core, `pismo-engine` (the models, the preprocessing), `pismo-digits` (the
//! drawn store, PNG), `pismo-storage` (the registry, the run records), `pismo-training`
//! (the adaptation L runs) and `pismo-files` (time stamps), and on minifb and tiny-skia. It
//! may not depend on the `pismo` binary, the HTTP server or tuning: nothing below a shell
//! calls up into one.
pub mod app;
pub mod error;
pub mod font;
pub mod learn;
pub mod render;
#[cfg(test)]
mod styles;
pub mod window;

use std::io::Write;

use pismo_digits::drawn::DrawnStore;
use pismo_storage::registry::Registry;

pub use error::WindowError;
pub use window::{has_display, NO_DISPLAY};

/// What the window opens with, resolved by the shell.
#[derive(Debug)]
pub struct Setup {
    /// The registry Tab cycles through and L registers into.
    pub registry: Registry,
    /// The model to open, a reference as `Registry::resolve` reads it (`None`: the
    /// `default` alias, else the newest model).
    pub model: Option<String>,
    /// Where W keeps the corrected drawings.
    pub drawn: DrawnStore,
    /// Where L records its runs and reads MNIST.
    pub learning: learn::Setup,
    /// Window size: 1 is [`render::WIDTH`]x[`render::HEIGHT`] pixels.
    pub scale: u32,
}

/// Opens the window and runs it until it is closed; the paths of saved drawings go to `out`.
/// The caller has checked [`has_display`].
pub fn open(setup: Setup, out: &mut dyn Write) -> Result<(), WindowError> {
    let app = app::App::new(setup.registry, setup.model.as_deref())?
        .with_drawn(setup.drawn)
        .with_learning(setup.learning);
    window::run(app, setup.scale, out)
}
