//! `pismo`, the command line: train, evaluate and use handwritten-digit models.
//!
//! This binary is glue. It parses flags (argh), calls the library crates (`pismo-digits`
//! for the data files, `pismo-training` for training and adapting, `pismo-storage` for the
//! registry and the run records, `pismo-engine` for inference, `pismo-window` for the
//! window; docs/ARCHITECTURE.md, "Map"), and prints the result. One module per command
//! area:
//!
//! - [`train`]: `pismo train`, a training session with live progress.
//! - [`adapt`]: `pismo adapt`, a model fine-tuned to the corrected drawings.
//! - [`tune`]: `pismo tune`, a hyperparameter study (TPE and successive halving).
//! - [`eval`]: `pismo eval`, accuracy and confusion matrix on labelled IDX images and the
//!   named dev sets; [`calibrate`]: its `--calibrate`, the "not sure" thresholds fitted and
//!   reported out of sample.
//! - [`predict`]: `pismo predict`, digits of PNG or IDX3 files of any size.
//! - [`models`]: `pismo models list|show|alias|unalias|delete|quantize|export`, the model
//!   registry.
//! - [`runs`]: `pismo runs list|show|log|export`, the run records.
//! - [`mlflow`]: `pismo runs export --mlflow` and `pismo train --mlflow` over `pismo-mlflow`
//!   (runs and models into an MLflow tracking server).
//! - [`data`]: `pismo data fetch|verify`, the MNIST files; `pismo data drawn list|export|import`,
//!   the corrected drawings.
//! - [`fetch`]: the download of `pismo data fetch` (mirrors, HTTPS, resuming, progress).
//! - [`http_client`]: the HTTP client settings of every outgoing request.
//! - [`places`]: the location options (`--registry`, `--store`, `--runs`, `--data`,
//!   `--drawn`, `--corpora`) turned into stores and folders.
//! - [`draw`]: `pismo draw`'s flags over `pismo-window`, the native window to draw digits
//!   and watch the prediction.
//! - [`serve`]: `pismo serve`, the HTTP API and MLflow scoring protocol (`pismo-http`).
//!
//! Contract with users and scripts (see `docs/ARCHITECTURE.md`, "CLI conventions"):
//! - Exit status 0 on success, 1 on an error, 2 on a usage error (unknown command or flag, a
//!   value of the wrong type or out of range, a malformed model reference). Every error is
//!   one line on stderr starting with `error: `; bad input never panics.
//! - Results go to stdout, progress and diagnostics to stderr. With `--json`, stdout holds
//!   one JSON object per line and nothing else.
//! - Locations: `--registry` / `--runs` / `--data`, else `PISMO_REGISTRY` / `PISMO_RUNS` /
//!   `PISMO_DATA`, else `./models`, `./runs`, `./data/mnist`.
//! - A closed stdout (`pismo predict *.png | head -1`) ends the command quietly with status 0.

mod adapt;
mod calibrate;
mod data;
mod draw;
mod eval;
mod fetch;
mod http_client;
mod interrupt;
mod mlflow;
mod models;
mod places;
mod predict;
mod progress;
mod runs;
mod serve;
mod store;
mod text;
mod train;
mod tune;

use std::fmt;
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use argh::{EarlyExit, FromArgs};
use pismo_digits::mnist::MnistError;
use pismo_engine::model::AnyMlp;
use pismo_storage::registry::{ModelId, Registry, RegistryError};
use pismo_storage::runs::RunsError;
use pismo_tuning::driver::TuneError;

/// pismo: handwritten-digit recognition with a hand-made MLP trained on MNIST.
#[derive(FromArgs, Debug)]
#[argh(
    example = "pismo data fetch\npismo train --epochs 10 --alias default\npismo adapt --name mine --alias default\npismo tune --budget 10m --alias best\npismo predict digit.png\npismo draw\npismo serve --addr 127.0.0.1:8501\npismo eval --json\npismo store migrate --store postgres://ann@db.example/pismo",
    note = "Folders: --registry, else $PISMO_REGISTRY, else ./models (or a shared store: --store postgres://…, else $PISMO_STORE; see `pismo store`); --runs, else $PISMO_RUNS, else ./runs; --data, else $PISMO_DATA, else ./data/mnist.\nModels: NAME, NAME@VERSION or NAME@ALIAS; none means the `default` alias, else the newest model.\nExit status: 0 success, 1 error, 2 usage error."
)]
struct Cli {
    /// print pismo's version and exit
    #[argh(switch, short = 'V')]
    version: bool,
    #[argh(subcommand)]
    command: Option<Command>,
}

// Parsed once per process: the size of the largest variant (train's many flags) costs
// nothing, and argh's subcommands cannot be boxed.
#[allow(clippy::large_enum_variant)]
#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum Command {
    Train(train::Args),
    Adapt(adapt::Args),
    Tune(tune::Args),
    Eval(eval::Args),
    Predict(predict::Args),
    Models(models::Args),
    Runs(runs::Args),
    Data(data::Args),
    Draw(draw::Args),
    Serve(serve::Args),
    Store(store::Args),
}

/// Why a command did not succeed, and so which exit status it ends with.
#[derive(Debug)]
pub enum CliError {
    /// Bad flags or values: the message is printed, exit status 2.
    Usage(String),
    /// The command failed: the message is printed, exit status 1.
    Failed(String),
    /// The command already printed its errors on stderr: exit status 1.
    Reported,
    /// Stdout was closed by the reader: stop quietly, exit status 0.
    Closed,
}

impl CliError {
    /// A usage error from anything printable.
    pub fn usage(msg: impl fmt::Display) -> Self {
        Self::Usage(msg.to_string())
    }

    /// A failure from anything printable.
    pub fn failed(msg: impl fmt::Display) -> Self {
        Self::Failed(msg.to_string())
    }
}

impl From<RegistryError> for CliError {
    fn from(e: RegistryError) -> Self {
        if e.is_invalid() {
            Self::Usage(e.to_string())
        } else {
            Self::Failed(e.to_string())
        }
    }
}

impl From<RunsError> for CliError {
    fn from(e: RunsError) -> Self {
        match e {
            RunsError::InvalidId { .. } => Self::Usage(e.to_string()),
            e => Self::Failed(e.to_string()),
        }
    }
}

impl From<MnistError> for CliError {
    fn from(e: MnistError) -> Self {
        Self::Failed(e.to_string())
    }
}

impl From<TuneError> for CliError {
    fn from(e: TuneError) -> Self {
        match e {
            TuneError::Registry(e) => e.into(),
            TuneError::Runs(e) => e.into(),
            e => Self::Failed(e.to_string()),
        }
    }
}

impl From<io::Error> for CliError {
    /// Only for writing to stdout: every other I/O goes through the core, whose errors name
    /// their files.
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Self::Closed
        } else {
            Self::Failed(format!("cannot write to stdout: {e}"))
        }
    }
}

/// Writes `text` to stdout and flushes (so JSON lines reach a pipe as they happen).
pub fn out(text: &str) -> Result<(), CliError> {
    let mut stdout = io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Writes `line` and a newline to stdout.
pub fn out_line(line: &str) -> Result<(), CliError> {
    out(&format!("{line}\n"))
}

/// Serialises `value` as one line of JSON on stdout.
pub fn out_json(value: &impl serde::Serialize) -> Result<(), CliError> {
    let line = serde_json::to_string(value).map_err(CliError::failed)?;
    out_line(&line)
}

/// Prints a command's result: with `--json` (`json`), `value` as one line of JSON, else the
/// line `text`.
pub fn out_result(json: bool, value: &impl serde::Serialize, text: &str) -> Result<(), CliError> {
    if json {
        out_json(value)
    } else {
        out_line(text)
    }
}

/// Loads and decodes the model `reference` means (see `Registry::resolve`).
pub fn load_model(
    registry: &Registry,
    reference: Option<&str>,
) -> Result<(ModelId, AnyMlp), CliError> {
    let loaded =
        registry.load_decoded(reference, |bytes| AnyMlp::decode(bytes).map(|(mlp, _)| mlp))?;
    Ok(loaded)
}

/// Every command word, for the "run `pismo … --help`" hint after a usage error.
const COMMAND_WORDS: [&str; 27] = [
    "train", "adapt", "tune", "eval", "predict", "models", "runs", "data", "draw", "serve",
    "store", "list", "show", "alias", "unalias", "history", "delete", "quantize", "log", "fetch",
    "verify", "drawn", "export", "import", "migrate", "copy", "help",
];

/// `-h` means `--help`, as in most command-line tools (argh knows only `--help` and the
/// `help` word): a `-h` standing alone before any `--` is rewritten. No command or option of
/// pismo has a short `-h` of its own.
fn short_help(args: &mut [&str]) {
    for arg in args.iter_mut() {
        match *arg {
            "--" => break,
            "-h" => *arg = "--help",
            _ => {}
        }
    }
}

/// `pismo models` for `["models", "show", "--json"]`: the command words the user typed.
fn command_path(args: &[&str]) -> String {
    let mut path = String::from("pismo");
    for arg in args.iter().take(3) {
        if !COMMAND_WORDS.contains(arg) || *arg == "help" {
            break;
        }
        path.push(' ');
        path.push_str(arg);
    }
    path
}

fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Train(args) => train::run(args),
        Command::Adapt(args) => adapt::run(args),
        Command::Tune(args) => tune::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Models(args) => models::run(args),
        Command::Runs(args) => runs::run(args),
        Command::Data(args) => data::run(args),
        Command::Draw(args) => draw::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Store(args) => store::run(args),
    }
}

fn main() -> ExitCode {
    let mut args = Vec::new();
    for arg in std::env::args_os().skip(1) {
        match arg.into_string() {
            Ok(arg) => args.push(arg),
            Err(bad) => {
                eprintln!(
                    "error: argument `{}` is not valid UTF-8",
                    Path::new(&bad).display()
                );
                return ExitCode::from(2);
            }
        }
    }
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    if args.first() == Some(&"predict") {
        for arg in &mut args[1..] {
            if *arg == "-" {
                *arg = predict::STDIN_ARG;
            }
        }
    }
    short_help(&mut args);
    let cli = match Cli::from_args(&["pismo"], &args) {
        Ok(cli) => cli,
        Err(EarlyExit { output, status }) => {
            if status.is_ok() {
                let mut help = format!("{}\n", output.trim_end());
                if command_path(&args) == "pismo train" {
                    help.push_str(&format!("\n{}", train::help_defaults()));
                }
                // A closed stdout (`pismo --help | head`) is not an error.
                let _ = out(&help);
                return ExitCode::SUCCESS;
            }
            let message = output.split_whitespace().collect::<Vec<_>>().join(" ");
            let mut chars = message.chars();
            let message = match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => "invalid arguments".to_owned(),
            };
            eprintln!(
                "error: {message} (run `{} --help` for usage)",
                command_path(&args)
            );
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        _ if cli.version => out_line(&format!("pismo {}", env!("CARGO_PKG_VERSION"))),
        Some(command) => run(command),
        None => Err(CliError::usage(
            "no command given (run `pismo --help` for the commands)",
        )),
    };
    match result {
        Ok(()) | Err(CliError::Closed) => ExitCode::SUCCESS,
        Err(CliError::Usage(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
        Err(CliError::Failed(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
        Err(CliError::Reported) => ExitCode::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_path_stops_at_the_first_non_command_word() {
        assert_eq!(
            command_path(&["models", "show", "--json"]),
            "pismo models show"
        );
        assert_eq!(command_path(&["train", "--epochs", "x"]), "pismo train");
        assert_eq!(command_path(&["frobnicate"]), "pismo");
        assert_eq!(command_path(&["help"]), "pismo");
    }

    #[test]
    fn issue28_a_lone_dash_h_is_help_up_to_a_double_dash() {
        let mut args = ["models", "-h", "--", "-h"];
        short_help(&mut args);
        assert_eq!(args, ["models", "--help", "--", "-h"]);
        let mut args = ["predict", "-hx.png"];
        short_help(&mut args);
        assert_eq!(args, ["predict", "-hx.png"]);
    }
}
