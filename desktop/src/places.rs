//! Where a command keeps things: the one place that turns the location options commands
//! declare (`--registry`, `--store`, `--runs`, `--data`, `--drawn`, `--corpora`) into the
//! stores and folders they name.
//!
//! argh has no flattening of a shared options struct, so each command declares the options
//! it takes as plain fields (with the help texts the test below keeps identical), and hands
//! their values to these functions: a command never decides a default location itself.
//! Order for every folder: the flag, else its environment variable (an empty one counts as
//! unset: [`pismo_files::dirs`]), else the folder relative to the working directory.

use std::path::PathBuf;

use pismo_digits::drawn::DrawnStore;
use pismo_digits::{corpora, drawn, mnist};
use pismo_storage::registry::Registry;
use pismo_storage::runs::Runs;

use crate::CliError;

/// The registry: `--registry` or `--store` (giving both is a usage error), else
/// `$PISMO_STORE`, else `$PISMO_REGISTRY`, else `./models`. A store is a PostgreSQL URL or a
/// registry folder ([`pismo_store::open_registry`]).
pub fn registry(folder: &Option<PathBuf>, store: &Option<String>) -> Result<Registry, CliError> {
    if store.is_some() && folder.is_some() {
        return Err(CliError::usage(
            "--store and --registry both say where the models are: give one of them",
        ));
    }
    if let Some(dir) = folder {
        return Ok(Registry::open(dir.clone()));
    }
    match pismo_store::store_spec(store.as_deref()) {
        Some(spec) => pismo_store::open_registry(&spec).map_err(CliError::failed),
        None => Ok(Registry::open(Registry::default_dir())),
    }
}

/// The database the store names (`--store`, else `$PISMO_STORE`), unless `--registry` names a
/// registry folder: where runs and studies are kept with the models.
pub fn store_database(registry: &Option<PathBuf>, store: &Option<String>) -> Option<String> {
    registry
        .is_none()
        .then(|| pismo_store::store_spec(store.as_deref()))
        .flatten()
        .filter(|spec| pismo_store::is_database(spec))
}

/// Where run records are kept: the folder `--runs`; else, unless `--registry` names a
/// registry folder, the database of the store (`--store`, else `$PISMO_STORE`) when it
/// names one; else the folder `$PISMO_RUNS`, else `./runs`.
pub fn runs(
    folder: &Option<PathBuf>,
    registry: &Option<PathBuf>,
    store: &Option<String>,
) -> Result<Runs, CliError> {
    if let Some(dir) = folder {
        return Ok(Runs::open(dir.clone()));
    }
    match store_database(registry, store) {
        Some(url) => pismo_store::open_runs(&url).map_err(CliError::failed),
        None => Ok(Runs::open(Runs::default_dir())),
    }
}

/// The MNIST folder: `--data`, else `PISMO_DATA`, else `./data/mnist`.
pub fn data_dir(flag: &Option<PathBuf>) -> PathBuf {
    flag.clone().unwrap_or_else(mnist::default_dir)
}

/// The folder of corrected drawings: `--drawn`, else `PISMO_DRAWN`, else `./data/drawn`.
pub fn drawn_dir(flag: &Option<PathBuf>) -> PathBuf {
    flag.clone().unwrap_or_else(drawn::default_dir)
}

/// The store of corrected drawings in [`drawn_dir`].
pub fn drawn_store(flag: &Option<PathBuf>) -> DrawnStore {
    DrawnStore::open(drawn_dir(flag))
}

/// The shipped corpora: `--corpora`, else `PISMO_DATASETS`, else `./datasets`.
pub fn corpora_dir(flag: &Option<PathBuf>) -> PathBuf {
    flag.clone().unwrap_or_else(corpora::default_dir)
}

#[cfg(test)]
mod tests {
    use argh::FromArgs;

    /// The default each location option's help must state: what the functions above do.
    const DEFAULTS: [(&str, &str); 6] = [
        ("--registry", "(default: $PISMO_REGISTRY, else ./models)"),
        ("--store", "(default: $PISMO_STORE)"),
        (
            "--runs",
            "(default: the --store database, else $PISMO_RUNS, else ./runs)",
        ),
        ("--data", "(default: $PISMO_DATA, else ./data/mnist)"),
        ("--drawn", "(default: $PISMO_DRAWN, else ./data/drawn)"),
        ("--corpora", "(default: $PISMO_DATASETS, else ./datasets)"),
    ];

    /// `pismo <path> --help`.
    fn help(path: &[&str]) -> String {
        let args: Vec<&str> = path.iter().copied().chain(["--help"]).collect();
        match crate::Cli::from_args(&["pismo"], &args) {
            Err(exit) if exit.status.is_ok() => exit.output,
            _ => panic!("no help for {path:?}"),
        }
    }

    /// The command words listed under "Commands:" in `help`.
    fn subcommands(help: &str) -> Vec<String> {
        help.lines()
            .skip_while(|l| *l != "Commands:")
            .skip(1)
            .take_while(|l| !l.is_empty())
            .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect()
    }

    /// Each option of `help` with its whole help text on one line.
    fn options(help: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let lines = help.lines().skip_while(|l| *l != "Options:").skip(1);
        for line in lines.take_while(|l| !l.is_empty()) {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.first() {
                Some(w) if line.starts_with("  --") => {
                    out.push((w.trim_end_matches(',').into(), words[1..].join(" ")))
                }
                _ => {
                    if let Some((_, text)) = out.last_mut() {
                        text.push(' ');
                        text.push_str(&words.join(" "));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn every_location_option_states_the_default_it_gets() {
        let mut todo = vec![Vec::<String>::new()];
        let mut checked = 0;
        while let Some(path) = todo.pop() {
            let words: Vec<&str> = path.iter().map(String::as_str).collect();
            let text = help(&words);
            for sub in subcommands(&text) {
                todo.push(path.iter().cloned().chain([sub]).collect());
            }
            for (option, help) in options(&text) {
                if let Some((_, default)) = DEFAULTS.iter().find(|(o, _)| *o == option) {
                    assert!(
                        help.ends_with(default),
                        "pismo {} {option}: `{help}` should end with `{default}`",
                        words.join(" ")
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 40, "only {checked} location options found");
    }
}
