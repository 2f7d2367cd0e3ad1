//! `pismo store`: make or upgrade a PostgreSQL store's schema, and copy a registry and its
//! run records between stores (folders into a team's database, or back). The work is in `pismo-store`; this
//! module opens what the flags name and prints.

use std::path::PathBuf;

use argh::FromArgs;
use pismo_storage::runs::Runs;
use pismo_store::copy::{copy, copy_runs, CopyReport, RunsCopyReport};
use pismo_store::postgres::migrate;

use crate::CliError;

/// Set up and fill a shared model store (PostgreSQL) for a team.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "store",
    example = "pismo store migrate --store postgres://ann@db.example/pismo\npismo store copy --from ./models --to postgres://ann@db.example/pismo\nPISMO_STORE=postgres://ann@db.example/pismo pismo models list",
    note = "A store is a PostgreSQL URL (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE) or a registry folder. Every command that takes --registry also takes --store, and $PISMO_STORE names the store when neither flag is given."
)]
pub struct Args {
    #[argh(subcommand)]
    command: Command,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum Command {
    Migrate(Migrate),
    Copy(Copy),
}

/// Create or upgrade pismo's tables in a PostgreSQL database (safe to run again, and by
/// several hosts at once).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "migrate")]
struct Migrate {
    /// the database: postgres://USER@HOST/DATABASE (default: $PISMO_STORE)
    #[argh(option)]
    store: Option<String>,
    /// print the result as one JSON object
    #[argh(switch)]
    json: bool,
}

/// Copy every model (same NAME@VERSION, same bytes), alias and run record (same id) of one
/// store into another; run it again to finish a copy that stopped.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "copy")]
struct Copy {
    /// the store to copy from: a registry folder or a PostgreSQL URL
    #[argh(option)]
    from: String,
    /// the store to copy into (a database must be migrated first)
    #[argh(option)]
    to: String,
    /// the run records of a folder --from (default: $PISMO_RUNS, else ./runs)
    #[argh(option)]
    from_runs: Option<PathBuf>,
    /// the run records of a folder --to (default: $PISMO_RUNS, else ./runs)
    #[argh(option)]
    to_runs: Option<PathBuf>,
    /// print the outcome as one JSON object
    #[argh(switch)]
    json: bool,
}

/// Runs `pismo store …`.
pub fn run(args: Args) -> Result<(), CliError> {
    match args.command {
        Command::Migrate(a) => run_migrate(&a),
        Command::Copy(a) => run_copy(&a),
    }
}

/// `pismo store migrate`.
fn run_migrate(a: &Migrate) -> Result<(), CliError> {
    let spec = pismo_store::store_spec(a.store.as_deref()).ok_or_else(|| {
        CliError::usage("which database? give --store postgres://… or set $PISMO_STORE")
    })?;
    if !pismo_store::is_database(&spec) {
        return Err(CliError::usage(format!(
            "`{spec}` is not a PostgreSQL URL (postgres://…): a registry folder needs no migration"
        )));
    }
    let (before, after) = migrate(&spec).map_err(CliError::failed)?;
    let location = pismo_store::postgres::redact(&spec);
    let text = if before == after {
        format!("{location}: pismo schema v{after}, already current")
    } else {
        format!("{location}: pismo schema v{before} → v{after}")
    };
    let value = serde_json::json!({
        "store": location, "schema_before": before, "schema": after,
        "migrated": before != after,
    });
    crate::out_result(a.json, &value, &text)
}

/// `pismo store copy`: the models, aliases and run records of one store into another.
fn run_copy(a: &Copy) -> Result<(), CliError> {
    let from = pismo_store::open_registry(&a.from).map_err(CliError::failed)?;
    let to = pismo_store::open_registry(&a.to).map_err(CliError::failed)?;
    if from.location() == to.location() {
        return Err(CliError::usage("--from and --to are the same store"));
    }
    let from_runs = side_runs(&a.from, &a.from_runs, "--from-runs")?;
    let to_runs = side_runs(&a.to, &a.to_runs, "--to-runs")?;
    let report = copy(&from, &to)?;
    // Two registry folders that share the default runs folder: nothing to copy.
    let runs_report = if from_runs.location() == to_runs.location() {
        RunsCopyReport::default()
    } else {
        copy_runs(&from_runs, &to_runs)?
    };
    for problem in &runs_report.unreadable {
        eprintln!("warning: not copied: {problem}");
    }
    let sides = Sides {
        from: from.location(),
        to: to.location(),
        from_runs: from_runs.location(),
        to_runs: to_runs.location(),
    };
    if a.json {
        return crate::out_json(&copy_json(&sides, &report, &runs_report));
    }
    for id in &report.deleted_in_target {
        eprintln!("warning: {id} was deleted in {}: not copied", sides.to);
    }
    for id in &runs_report.running {
        eprintln!("warning: run {id} is still training: not copied (copy again once it has ended)");
    }
    print_copy(&sides, &report, &runs_report)
}

/// Where a copy went from and to: the registries and the run records.
struct Sides {
    from: String,
    to: String,
    from_runs: String,
    to_runs: String,
}

/// `pismo store copy --json`'s object.
fn copy_json(sides: &Sides, report: &CopyReport, runs: &RunsCopyReport) -> serde_json::Value {
    let ids = |ids: &[pismo_storage::registry::ModelId]| -> Vec<String> {
        ids.iter().map(ToString::to_string).collect()
    };
    serde_json::json!({
        "from": sides.from,
        "to": sides.to,
        "copied": ids(&report.copied),
        "present": ids(&report.present),
        "deleted_in_target": ids(&report.deleted_in_target),
        "deleted": ids(&report.deleted),
        "aliases_set": report.aliases_set.iter()
            .map(|(alias, id)| (alias.clone(), id.to_string()))
            .collect::<std::collections::BTreeMap<_, _>>(),
        "runs": {
            "from": sides.from_runs,
            "to": sides.to_runs,
            "copied": runs.copied,
            "present": runs.present,
            "running": runs.running,
            "unreadable": runs.unreadable.len(),
        },
    })
}

/// `pismo store copy`'s two lines on a terminal: models and aliases, then runs.
fn print_copy(sides: &Sides, report: &CopyReport, runs: &RunsCopyReport) -> Result<(), CliError> {
    let aliases: Vec<String> = report
        .aliases_set
        .iter()
        .map(|(alias, id)| format!("{alias} → {id}"))
        .collect();
    crate::out_line(&format!(
        "{} → {}: {} models copied, {} already there{}",
        sides.from,
        sides.to,
        report.copied.len(),
        report.present.len(),
        if aliases.is_empty() {
            String::new()
        } else {
            format!("; aliases set: {}", aliases.join(", "))
        }
    ))?;
    crate::out_line(&format!(
        "{} → {}: {} runs copied, {} already there",
        sides.from_runs,
        sides.to_runs,
        runs.copied.len(),
        runs.present.len(),
    ))
}

/// The run records of one side of a copy: a database's own, or the runs folder beside a
/// registry folder (`flag`, else `$PISMO_RUNS`, else `./runs`).
fn side_runs(spec: &str, folder: &Option<PathBuf>, flag: &str) -> Result<Runs, CliError> {
    if pismo_store::is_database(spec) {
        if folder.is_some() {
            return Err(CliError::usage(format!(
                "{flag} names a runs folder for a registry folder; a database keeps its runs itself"
            )));
        }
        return pismo_store::open_runs(spec).map_err(CliError::failed);
    }
    Ok(Runs::open(folder.clone().unwrap_or_else(Runs::default_dir)))
}
