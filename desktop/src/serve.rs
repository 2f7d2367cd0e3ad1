//! `pismo serve`: the web page, the HTTP API and MLflow's scoring protocol of `pismo-http`,
//! on 127.0.0.1:8501 by default. The work lives in `pismo-http`; this module resolves the
//! folders and the token, starts the server, prints its URL and blocks.

use std::io::Read;
use std::net::ToSocketAddrs;
use std::path::PathBuf;

use argh::FromArgs;

use crate::CliError;

/// Serve the web page, predictions, models, runs and training over HTTP (JSON API and
/// MLflow's /invocations).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "serve")]
pub struct Args {
    /// address to listen on (default: 127.0.0.1:8501; port 0 picks a free port)
    #[argh(option, default = "String::from(\"127.0.0.1:8501\")")]
    addr: String,
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
    /// MNIST folder for training from the page (default: $PISMO_DATA, else ./data/mnist)
    #[argh(option)]
    data: Option<PathBuf>,
    /// folder of corrected drawings that the page saves (default: $PISMO_DRAWN, else
    /// ./data/drawn)
    #[argh(option)]
    drawn: Option<PathBuf>,
    /// token that training and registry changes need (default: $PISMO_TOKEN; on a
    /// non-loopback address without one, a random token is made and printed; a token
    /// given is never printed)
    #[argh(option)]
    token: Option<String>,
    /// where the page's "Fetch MNIST" downloads from, before the built-in mirrors (as
    /// `pismo data fetch --mirror`); repeatable
    #[argh(option)]
    mirror: Vec<String>,
    /// training runs at once; more requests get 409 (default: 1)
    #[argh(option, default = "1")]
    max_training: usize,
}

/// Runs `pismo serve` until the process is stopped.
pub fn run(args: Args) -> Result<(), CliError> {
    let registry = crate::places::registry(&args.registry, &args.store)?;
    let runs = crate::places::runs(&args.runs, &args.registry, &args.store)?;
    // Studies started from the page: in the store's database, shared with `pismo tune`
    // workers, or journals beside the runs.
    let studies = match crate::places::store_database(&args.registry, &args.store) {
        Some(url) => Some(std::sync::Arc::new(
            pismo_store::study::PgShelf::connect(&url).map_err(CliError::failed)?,
        )
            as std::sync::Arc<dyn pismo_storage::studies::shelf::StudyShelf>),
        None => None,
    };
    if args.max_training == 0 {
        return Err(CliError::usage("--max-training must be at least 1"));
    }
    let mut token = args
        .token
        .clone()
        .or_else(|| std::env::var("PISMO_TOKEN").ok().filter(|t| !t.is_empty()));
    let made = token.is_none() && !is_loopback(&args.addr);
    if made {
        token = Some(random_token().map_err(CliError::failed)?);
    }
    for url in &args.mirror {
        crate::fetch::Mirror::parse(url).map_err(CliError::Usage)?;
    }
    let data_dir = crate::places::data_dir(&args.data);
    let options = pismo_http::Options {
        fetch: fetch_command(&data_dir, &args.mirror),
        data_dir,
        max_training: args.max_training,
        token: token.clone(),
        drawn_dir: crate::places::drawn_store(&args.drawn).dir().to_path_buf(),
        studies,
        ..pismo_http::Options::default()
    };
    let data_dir = options.data_dir.clone();
    let drawn_dir = options.drawn_dir.clone();
    let location = registry.location();
    let runs_location = runs.location();
    let server =
        pismo_http::Server::start(&args.addr, registry, runs, options).map_err(CliError::failed)?;
    eprintln!(
        "registry {location}, runs {runs_location}, MNIST {}, corrected drawings {}",
        data_dir.display(),
        drawn_dir.display()
    );
    // Only a token made here is printed: one the user gave is theirs to keep out of logs.
    match &token {
        Some(token) if made => eprintln!(
            "training and registry changes need the token made for this run: open {}/?token={token}",
            server.url()
        ),
        Some(_) => eprintln!(
            "training and registry changes need the token given ({}): open {}/?token=TOKEN",
            if args.token.is_some() {
                "--token"
            } else {
                "$PISMO_TOKEN"
            },
            server.url()
        ),
        None => {}
    }
    crate::out_line(&server.url())?;
    server.wait();
    Ok(())
}

/// `pismo data fetch --data DIR [--mirror URL]...` of this very binary, for the page's
/// "Fetch MNIST"; `None` (the page then says what to run) if the binary cannot be found.
fn fetch_command(
    data_dir: &std::path::Path,
    mirrors: &[String],
) -> Option<pismo_http::FetchCommand> {
    let program = std::env::current_exe()
        .map_err(|e| eprintln!("note: the page cannot fetch MNIST (this program's path: {e})"))
        .ok()?;
    let mut args: Vec<std::ffi::OsString> = vec![
        "data".into(),
        "fetch".into(),
        "--data".into(),
        data_dir.into(),
    ];
    for url in mirrors {
        args.extend(["--mirror".into(), url.into()]);
    }
    Some(pismo_http::FetchCommand { program, args })
}

/// Whether every address `addr` names is a loopback one (an address that does not resolve
/// is left to the server to report).
fn is_loopback(addr: &str) -> bool {
    match addr.to_socket_addrs() {
        Ok(mut addrs) => addrs.all(|a| a.ip().is_loopback()),
        Err(_) => true,
    }
}

/// 128 random bits from the operating system, as hex.
fn random_token() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| {
            format!("cannot make a token (read /dev/urandom: {e}); give one with --token")
        })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
