//! `pismo serve`: the HTTP API and MLflow scoring protocol of `pismo-http`, on
//! 127.0.0.1:8501 by default. The work lives in `pismo-http`; this module resolves the
//! folders, starts the server, prints its URL and blocks.

use std::path::PathBuf;

use argh::FromArgs;

use crate::CliError;

/// Serve predictions, models and runs over HTTP (JSON API and MLflow's /invocations).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "serve")]
pub struct Args {
    /// address to listen on (default: 127.0.0.1:8501; port 0 picks a free port)
    #[argh(option, default = "String::from(\"127.0.0.1:8501\")")]
    addr: String,
    /// model registry folder (default: $PISMO_REGISTRY, else ./models)
    #[argh(option)]
    registry: Option<PathBuf>,
    /// run records folder (default: $PISMO_RUNS, else ./runs)
    #[argh(option)]
    runs: Option<PathBuf>,
}

/// Runs `pismo serve` until the process is stopped.
pub fn run(args: Args) -> Result<(), CliError> {
    let registry = crate::registry(&args.registry);
    let runs = crate::runs(&args.runs);
    let server = pismo_http::Server::start(
        &args.addr,
        registry.dir(),
        runs.dir(),
        pismo_http::Options::default(),
    )
    .map_err(CliError::failed)?;
    eprintln!(
        "registry {}, runs {}",
        registry.dir().display(),
        runs.dir().display()
    );
    crate::out_line(&server.url())?;
    server.wait();
    Ok(())
}
