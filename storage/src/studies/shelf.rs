//! Every study of one place, as `pismo serve` lists, starts and reads them: a folder of
//! journals ([`JournalShelf`], the default, `<runs>/studies`) or a database (crate
//! `pismo-store`). One study's own work goes through [`StudyStore`], which a shelf opens.

use std::fmt;
use std::path::PathBuf;
use std::time::UNIX_EPOCH;

use crate::studies::journal::{self, FileJournal, JournalEvent, StoreError, StudyStore};

/// Why a shelf did not make a study.
#[derive(Debug)]
pub enum CreateError {
    /// A study of that name has events already.
    Exists(String),
    /// Another process runs a study of that name.
    Busy(String),
    /// The shelf failed; the message names it.
    Failed(String),
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exists(m) | Self::Busy(m) | Self::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CreateError {}

/// Where a server's studies are kept. Names reach a shelf already checked.
pub trait StudyShelf: fmt::Debug + Send + Sync {
    /// Where the studies are, for messages.
    fn location(&self) -> String;
    /// Makes study `name` and opens it as its first worker.
    fn create(&self, name: &str) -> Result<Box<dyn StudyStore>, CreateError>;
    /// Every study's name and when it last changed (Unix milliseconds), in no order; a
    /// missing shelf has none.
    fn names(&self) -> Result<Vec<(String, u64)>, StoreError>;
    /// Study `name`'s events, or `None` when there is no such study.
    fn events(&self, name: &str) -> Result<Option<Vec<JournalEvent>>, StoreError>;
    /// The model of the study's best trial, once a trial kept one.
    fn best_model(&self, name: &str) -> Option<Vec<u8>>;
    /// Whether a process works on study `name` now.
    fn in_use(&self, name: &str) -> bool;
}

/// The studies in a folder: `NAME.jsonl` journals and `NAME.best.pismo` models.
#[derive(Clone, Debug)]
pub struct JournalShelf {
    dir: PathBuf,
}

impl JournalShelf {
    /// The studies in `dir` (made when the first study is).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

impl StudyShelf for JournalShelf {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    fn create(&self, name: &str) -> Result<Box<dyn StudyStore>, CreateError> {
        let journal = match FileJournal::open(&self.dir, name) {
            Ok(j) => j,
            Err(StoreError::Busy(_)) => {
                return Err(CreateError::Busy(format!(
                    "study {name} is running in another process (pismo tune); wait for it or stop it there"
                )))
            }
            Err(e) => return Err(CreateError::Failed(e.to_string())),
        };
        if !journal
            .is_empty()
            .map_err(|e| CreateError::Failed(e.to_string()))?
        {
            return Err(CreateError::Exists(format!(
                "study {name} exists: choose another name (`pismo tune --study {name} --resume` carries it on)"
            )));
        }
        Ok(Box::new(journal))
    }

    fn names(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::Io(self.dir.clone(), e)),
        };
        let mut names = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".jsonl"))
            else {
                continue;
            };
            if crate::registry::validate_name(name).is_err() {
                continue;
            }
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as u64);
            names.push((name.to_owned(), modified));
        }
        Ok(names)
    }

    fn events(&self, name: &str) -> Result<Option<Vec<JournalEvent>>, StoreError> {
        match journal::read_events(&self.dir, name) {
            Ok(events) => Ok(Some(events)),
            Err(StoreError::Io(_, e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn best_model(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(journal::best_file(&self.dir, name)).ok()
    }

    fn in_use(&self, name: &str) -> bool {
        journal::in_use(&self.dir, name)
    }
}
