//! The folder store: one folder of versioned model files plus an aliases file, the
//! file-based counterpart of MLflow's model registry and the default [`ModelStore`].
//!
//! ```text
//! <dir>/mnist.v1.pismo      model `mnist`, version 1 (bytes of `pismo_core::format`)
//! <dir>/mnist.v2.pismo
//! <dir>/aliases.json        {"default": "mnist@2", "best": "mnist@1"}
//! <dir>/aliases.history     one JSON line per alias change: {"unix":…,"alias":…,"model":…|null}
//! <dir>/aliases.lock        the registry's OS file lock (empty, never deleted)
//! <dir>/mnist.v3.deleted    (empty) version 3 of `mnist` existed and was deleted
//! ```
//!
//! Everything else in the folder (temp files start with `.`, foreign files) is ignored.
//!
//! Guarantees:
//! - A model file under its final name is complete and never rewritten. `insert` takes the
//!   registry lock, writes a unique temp file, fsyncs it and moves it to
//!   `<name>.v<version>.pismo` with a rename that refuses to replace (or a hard link); the
//!   move fails when that name exists, so even a writer that does not take the lock (an older
//!   pismo) is never clobbered: the loser retries with the next version
//!   (`pismo_files::atomic::create_new_atomic`). The temp file is removed in every case but a
//!   crash; [`FolderStore::open`]
//!   removes the temp files of writers that are dead (named by pid and start time, see
//!   `pismo_files::atomic`), never a live writer's.
//! - Versions of a name are never reused: deleting `NAME@V` leaves an empty marker
//!   `<name>.v<V>.deleted`, and the next version is one more than the highest model file or
//!   marker.
//! - `aliases.json` changes only under the registry lock (read-modify-write) and is replaced by
//!   rename, so readers see the old or the new file, never a partial one; the change is then
//!   appended to `aliases.history` under the same lock. `delete` holds the same lock, so no
//!   alias is left pointing at a model deleted through the registry. The lock is an OS file
//!   lock on `aliases.lock` (module `lock`): the OS drops it when its holder dies, so it never
//!   goes stale and is never broken by a waiter.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::lock::RegistryLock;
use super::store::{unix_secs, AliasChange, DeleteRefused, ModelStore, Stamp, StoredModel};
use super::{io_err, validate_alias, ModelId, RegistryError};
use pismo_files::atomic::{
    create_new_atomic, remove_dead_temps, replace_atomic, sync_dir, write_new_synced,
};

/// The aliases file inside the registry folder.
pub const ALIASES_FILE: &str = "aliases.json";
/// The alias changes, one JSON line each, appended under the lock.
pub const ALIAS_HISTORY_FILE: &str = "aliases.history";
/// Extension of the empty marker a deleted version leaves (`mnist.v3.deleted`).
pub(super) const DELETED_EXTENSION: &str = "deleted";
/// The lock file taken while the aliases change.
pub const LOCK_FILE: &str = "aliases.lock";

/// Give up registering after losing this many races for a version.
const MAX_REGISTER_ATTEMPTS: u32 = 10_000;

/// A registry folder. Cheap to create (one read of the folder, for dead writers' temp
/// files), and a missing folder is an empty registry (writes create it).
#[derive(Clone, Debug)]
pub struct FolderStore {
    dir: PathBuf,
}

impl FolderStore {
    /// The store in `dir`. Removes the temp files that writers killed while writing (kill -9,
    /// power loss) left in it; a live writer's temp file is kept (see `pismo_files::atomic`).
    pub fn open(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        remove_dead_temps(&dir);
        Self { dir }
    }

    /// The model files, sorted by name then version, without reading them.
    fn scan(&self) -> Result<Vec<(ModelId, PathBuf)>, RegistryError> {
        let read_dir = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("read registry folder", &self.dir, e)),
        };
        let mut found = Vec::new();
        for entry in read_dir {
            let entry = entry.map_err(|e| io_err("read registry folder", &self.dir, e))?;
            let Some(id) = entry.file_name().to_str().and_then(ModelId::from_file_name) else {
                continue;
            };
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            found.push((id, entry.path()));
        }
        found.sort();
        Ok(found)
    }

    /// One more than the highest version of `name`, of a model file or a deleted version's
    /// marker (one read of the folder).
    fn next_version(&self, name: &str) -> Result<u32, RegistryError> {
        let read_dir = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(1),
            Err(e) => return Err(io_err("read registry folder", &self.dir, e)),
        };
        let mut max = 0;
        for entry in read_dir {
            let entry = entry.map_err(|e| io_err("read registry folder", &self.dir, e))?;
            let Some(file) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let id = ModelId::from_file_name(&file)
                .or_else(|| ModelId::parse_file_name(&file, DELETED_EXTENSION));
            if let Some(id) = id.filter(|id| id.name == name) {
                max = max.max(id.version);
            }
        }
        max.checked_add(1).ok_or_else(|| RegistryError::Busy {
            location: self.location(),
            message: format!(
                "model `{name}` in {} has used up its version numbers",
                self.dir.display()
            ),
        })
    }

    fn path(&self, id: &ModelId) -> PathBuf {
        self.dir.join(id.file_name())
    }

    fn write_aliases(&self, aliases: &BTreeMap<String, ModelId>) -> Result<(), RegistryError> {
        let path = self.dir.join(ALIASES_FILE);
        let plain: BTreeMap<&str, String> = aliases
            .iter()
            .map(|(a, id)| (a.as_str(), id.to_string()))
            .collect();
        let mut text = serde_json::to_string_pretty(&plain).unwrap_or_else(|_| "{}".to_owned());
        text.push('\n');
        replace_atomic(&path, text.as_bytes()).map_err(|e| io_err("write", &path, e))
    }

    /// Appends one change to `aliases.history` (under the lock the caller holds).
    fn record(&self, alias: &str, model: Option<&ModelId>) -> Result<(), RegistryError> {
        let path = self.dir.join(ALIAS_HISTORY_FILE);
        let change = AliasChange {
            unix: unix_secs(SystemTime::now()),
            alias: alias.to_owned(),
            model: model.cloned(),
        };
        let mut line = serde_json::to_string(&change).map_err(|e| RegistryError::Store {
            location: self.location(),
            message: format!("cannot record the alias change: {e}"),
        })?;
        line.push('\n');
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_err("open", &path, e))?;
        file.write_all(line.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|e| io_err("append to", &path, e))
    }
}

fn modified(path: &Path) -> SystemTime {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(UNIX_EPOCH)
}

impl ModelStore for FolderStore {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    fn folder(&self) -> Option<&Path> {
        Some(&self.dir)
    }

    fn ids(&self) -> Result<Vec<ModelId>, RegistryError> {
        Ok(self.scan()?.into_iter().map(|(id, _)| id).collect())
    }

    fn insert(
        &self,
        name: &str,
        encode: &mut dyn FnMut(u32) -> Vec<u8>,
    ) -> Result<ModelId, RegistryError> {
        let _lock = RegistryLock::acquire(&self.dir)?;
        let mut version = self.next_version(name)?;
        for _ in 0..MAX_REGISTER_ATTEMPTS {
            let id = ModelId {
                name: name.to_owned(),
                version,
            };
            let dest = self.path(&id);
            let bytes = encode(version);
            if create_new_atomic(&dest, &bytes).map_err(|e| io_err("create", &dest, e))? {
                return Ok(id);
            }
            // Someone took this version: jump past everything that exists now.
            version = self.next_version(name)?.max(version.saturating_add(1));
        }
        Err(RegistryError::Busy {
            location: self.location(),
            message: format!(
                "gave up registering `{name}` in {} after {MAX_REGISTER_ATTEMPTS} attempts: other writers kept taking the next version",
                self.dir.display()
            ),
        })
    }

    fn import(&self, id: &ModelId, bytes: &[u8]) -> Result<bool, RegistryError> {
        let _lock = RegistryLock::acquire(&self.dir)?;
        if self.dir.join(id.deleted_file_name()).exists() {
            return Ok(false);
        }
        let dest = self.path(id);
        create_new_atomic(&dest, bytes).map_err(|e| io_err("create", &dest, e))
    }

    fn bytes(&self, id: &ModelId) -> Result<Option<Vec<u8>>, RegistryError> {
        let path = self.path(id);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &path, e)),
        }
    }

    fn stamp(&self, id: &ModelId) -> Result<Option<Stamp>, RegistryError> {
        let path = self.path(id);
        match fs::metadata(&path) {
            Ok(m) => Ok(Some(Stamp {
                size: m.len(),
                stored: m.modified().unwrap_or(UNIX_EPOCH),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &path, e)),
        }
    }

    fn models(&self) -> Result<Vec<StoredModel>, RegistryError> {
        let mut models = Vec::new();
        for (id, path) in self.scan()? {
            let bytes = match fs::read(&path) {
                Ok(bytes) => Ok(bytes),
                // Deleted between the scan and the read: it is not there any more.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => Err(format!("cannot read: {e}")),
            };
            models.push(StoredModel {
                id,
                location: path.display().to_string(),
                bytes,
                stored: modified(&path),
            });
        }
        Ok(models)
    }

    fn location_of(&self, id: &ModelId) -> String {
        self.path(id).display().to_string()
    }

    fn aliases(&self) -> Result<BTreeMap<String, ModelId>, RegistryError> {
        let path = self.dir.join(ALIASES_FILE);
        match fs::read(&path) {
            Ok(bytes) => parse_aliases(&path, &bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(io_err("read", &path, e)),
        }
    }

    fn set_alias(&self, alias: &str, id: &ModelId) -> Result<(), RegistryError> {
        let _lock = RegistryLock::acquire(&self.dir)?;
        if !self.path(id).is_file() {
            return Err(RegistryError::NotFound {
                reference: id.to_string(),
                message: format!(
                    "cannot point alias `{alias}` at {id}: no such model in {}",
                    self.dir.display()
                ),
            });
        }
        let mut aliases = self.aliases()?;
        aliases.insert(alias.to_owned(), id.clone());
        self.write_aliases(&aliases)?;
        self.record(alias, Some(id))
    }

    fn remove_alias(&self, alias: &str) -> Result<Option<ModelId>, RegistryError> {
        let _lock = RegistryLock::acquire(&self.dir)?;
        let mut aliases = self.aliases()?;
        let Some(old) = aliases.remove(alias) else {
            return Ok(None);
        };
        self.write_aliases(&aliases)?;
        self.record(alias, None)?;
        Ok(Some(old))
    }

    fn deleted(&self) -> Result<Vec<ModelId>, RegistryError> {
        let read_dir = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("read registry folder", &self.dir, e)),
        };
        let mut ids = Vec::new();
        for entry in read_dir {
            let entry = entry.map_err(|e| io_err("read registry folder", &self.dir, e))?;
            if let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|f| ModelId::parse_file_name(f, DELETED_EXTENSION))
            {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    fn import_deleted(&self, id: &ModelId) -> Result<bool, RegistryError> {
        let _lock = RegistryLock::acquire(&self.dir)?;
        if self.path(id).exists() {
            return Ok(false);
        }
        let marker = self.dir.join(id.deleted_file_name());
        match write_new_synced(&marker, b"") {
            Ok(()) => {
                sync_dir(&self.dir);
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io_err("create", &marker, e)),
        }
    }

    fn delete(&self, id: &ModelId) -> Result<Result<(), DeleteRefused>, RegistryError> {
        let path = self.path(id);
        let _lock = RegistryLock::acquire(&self.dir)?;
        let pointing: Vec<String> = self
            .aliases()?
            .into_iter()
            .filter(|(_, target)| target == id)
            .map(|(a, _)| a)
            .collect();
        if !pointing.is_empty() {
            return Ok(Err(DeleteRefused::Aliased(pointing)));
        }
        if path.is_file() {
            // The marker first: a crash between the two leaves the model and its marker,
            // never a reusable number.
            let marker = self.dir.join(id.deleted_file_name());
            write_new_synced(&marker, b"")
                .or_else(|e| {
                    if e.kind() == io::ErrorKind::AlreadyExists {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(|e| io_err("create", &marker, e))?;
        }
        match fs::remove_file(&path) {
            Ok(()) => {
                sync_dir(&self.dir);
                Ok(Ok(()))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Err(DeleteRefused::Missing)),
            Err(e) => Err(io_err("delete", &path, e)),
        }
    }

    fn alias_history(&self) -> Result<Vec<AliasChange>, RegistryError> {
        let path = self.dir.join(ALIAS_HISTORY_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("read", &path, e)),
        };
        let mut changes = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let change = parse_change(line).map_err(|detail| RegistryError::Store {
                location: self.location(),
                message: format!(
                    "corrupt alias history {} line {}: {detail}",
                    path.display(),
                    n + 1
                ),
            })?;
            changes.push(change);
        }
        Ok(changes)
    }
}

/// One line of `aliases.history` (the model's `NAME@V` is checked by `ModelId`'s parser).
fn parse_change(line: &str) -> Result<AliasChange, String> {
    let change: AliasChange = serde_json::from_str(line).map_err(|e| e.to_string())?;
    validate_alias(&change.alias).map_err(|e| e.to_string())?;
    Ok(change)
}

fn parse_aliases(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, ModelId>, RegistryError> {
    let corrupt = |detail: String| RegistryError::CorruptAliases {
        location: path.display().to_string(),
        detail,
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(BTreeMap::new());
    }
    let raw: BTreeMap<String, String> =
        serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    let mut aliases = BTreeMap::new();
    for (alias, target) in raw {
        if let Err(e) = validate_alias(&alias) {
            return Err(corrupt(e.to_string()));
        }
        let id: ModelId = target.parse().map_err(|_| {
            corrupt(format!(
                "alias `{alias}` points at `{target}`, which is not NAME@VERSION"
            ))
        })?;
        aliases.insert(alias, id);
    }
    Ok(aliases)
}
