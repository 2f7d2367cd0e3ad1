//! The flat model registry: one folder of versioned model files plus an aliases file, the
//! file-based counterpart of MLflow's model registry.
//!
//! ```text
//! <dir>/mnist.v1.pismo      model `mnist`, version 1 (bytes of `crate::format`)
//! <dir>/mnist.v2.pismo
//! <dir>/aliases.json        {"default": "mnist@2", "best": "mnist@1"}
//! <dir>/aliases.lock        the registry's OS file lock (empty, never deleted)
//! <dir>/mnist.v3.deleted    (empty) version 3 of `mnist` existed and was deleted
//! ```
//!
//! Model names and aliases are 1–64 characters of `[a-z0-9_-]` starting with a letter or a
//! digit; an alias is not all digits (it would read as a version). Everything else in the
//! folder (temp files start with `.`, foreign files) is ignored.
//!
//! A model reference ([`Registry::resolve`]) is one of:
//!
//! | reference      | means                                                                 |
//! |----------------|-----------------------------------------------------------------------|
//! | (none)         | the `default` alias, else the newest created model                     |
//! | `NAME@7`       | version 7 of NAME                                                      |
//! | `NAME@ALIAS`   | the alias ALIAS, which must point at a version of NAME                 |
//! | `NAME`         | the version `default` points at if it is one of NAME's, else NAME's highest version; if there is no model NAME, the alias NAME |
//!
//! Guarantees:
//! - A model file under its final name is complete and never rewritten. [`Registry::register`]
//!   takes the registry lock, writes a unique temp file, fsyncs it and hard-links it to
//!   `<name>.v<version>.pismo`; linking fails when that name exists, so even a writer that
//!   does not take the lock (an older pismo) is never clobbered: the loser retries with the
//!   next version. The temp file is removed in every case but a crash; [`Registry::open`]
//!   removes the temp files of writers that are dead (named by pid and start time, see
//!   `host::atomic`), never a live writer's.
//! - A file is only ever used as the model its name says: [`Registry::read`],
//!   [`Registry::load`] and [`Registry::set_alias`] refuse a file that holds another
//!   `NAME@V` ([`RegistryError::WrongModel`]); [`Registry::list`] shows it with that error.
//! - Versions of a name count up from 1 and are never reused: deleting `NAME@V` leaves an
//!   empty marker `<name>.v<V>.deleted`, and the next version is one more than the highest
//!   model file or marker. A run record or a log that names `NAME@V` never comes to mean
//!   another model.
//! - `aliases.json` changes only under the registry lock (read-modify-write) and is replaced by
//!   rename, so readers see the old or the new file, never a partial one. [`Registry::delete`]
//!   holds the same lock, so no alias is left pointing at a model deleted through the registry.
//!   The lock is an OS file lock on `aliases.lock` (module `lock`): the OS
//!   drops it when its holder dies, so it never goes stale and is never broken by a waiter.
//!
//! Modules: `id` (names, aliases, [`ModelId`] and file names), `reference` (what a reference
//! resolves to), `lock` (the registry lock); the atomic-file helpers live in `host::atomic`,
//! shared with the run records.

mod id;
mod lock;
mod reference;

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Serialize, Serializer};

use crate::host::atomic::{
    link_no_clobber, remove_dead_temps, replace_atomic, sync_dir, unique_tmp_path, write_new_synced,
};
use crate::hyper::{Hyper, Metrics};
use id::{list_aliases, list_ids};
pub use id::{validate_alias, validate_name, ModelId};
use lock::RegistryLock;

/// Extension of model files.
pub const EXTENSION: &str = "pismo";
/// The aliases file inside the registry folder.
pub const ALIASES_FILE: &str = "aliases.json";
/// Extension of the empty marker a deleted version leaves (`mnist.v3.deleted`).
const DELETED_EXTENSION: &str = "deleted";
/// The lock file taken while the aliases change.
pub const LOCK_FILE: &str = "aliases.lock";
/// The alias used when a reference names no version.
pub const DEFAULT_ALIAS: &str = "default";
/// Longest model name or alias.
pub const MAX_NAME_LEN: usize = 64;

/// Give up registering after losing this many races for a version.
const MAX_REGISTER_ATTEMPTS: u32 = 10_000;
/// At most this many ids are listed in a "have: …" part of an error.
const MAX_LISTED: usize = 20;

// ---------------------------------------------------------------------------------------------
// Errors

/// Why a registry operation failed. Every variant carries the path or the reference that
/// failed, and `Display` gives one line a user can act on.
#[derive(Debug)]
#[non_exhaustive]
pub enum RegistryError {
    /// A model name, alias, model id or reference that breaks the grammar (a usage error).
    Invalid {
        /// What was checked: "model name", "alias", "model id", "model reference".
        kind: &'static str,
        /// The text as given.
        value: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The reference is well formed but names nothing in the registry. The message names
    /// the registry folder and lists what exists.
    NotFound {
        /// The reference (or id, or alias) that was asked for.
        reference: String,
        /// The whole message.
        message: String,
    },
    /// No reference was given and the registry holds no model.
    Empty {
        /// The registry folder.
        dir: PathBuf,
    },
    /// [`Registry::delete`] refused: aliases point at the model.
    InUse {
        /// The model that was to be deleted.
        id: ModelId,
        /// The aliases that point at it.
        aliases: Vec<String>,
    },
    /// `aliases.json` cannot be parsed.
    CorruptAliases {
        /// Its path.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// Other writers kept the registry busy: the aliases lock stayed taken, or every version
    /// tried was taken by someone else.
    Busy {
        /// The lock file or the registry folder.
        path: PathBuf,
        /// The whole message.
        message: String,
    },
    /// A model file decodes as another model than its name says (renamed or copied by
    /// hand); it is refused wherever it would be used.
    WrongModel {
        /// The file.
        path: PathBuf,
        /// The model its name means.
        id: ModelId,
        /// The model it holds, `NAME@VERSION` as recorded inside it.
        holds: String,
    },
    /// Something that is not a regular file (a directory, say) is where the registry's
    /// lock file belongs.
    NotALockFile {
        /// The lock file's path.
        path: PathBuf,
    },
    /// A file-system operation failed.
    Io {
        /// What was being done, as a verb phrase ("read", "create folder", …).
        action: &'static str,
        /// The file or folder it was done to.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

impl RegistryError {
    /// True for errors that mean "no such model/alias" (an HTTP 404, not a 500).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. } | Self::Empty { .. })
    }

    /// True for errors in what the caller asked for (an HTTP 400 / exit status 2 material).
    pub fn is_invalid(&self) -> bool {
        matches!(self, Self::Invalid { .. })
    }
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid {
                kind,
                value,
                reason,
            } => write!(f, "invalid {kind} `{value}`: {reason}"),
            Self::NotFound { message, .. } | Self::Busy { message, .. } => f.write_str(message),
            Self::Empty { dir } => write!(
                f,
                "registry {} is empty: train one with `pismo train`",
                dir.display()
            ),
            Self::InUse { id, aliases } => {
                let names: Vec<String> = aliases.iter().map(|a| format!("`{a}`")).collect();
                let (noun, verb) = if aliases.len() == 1 {
                    ("alias", "points")
                } else {
                    ("aliases", "point")
                };
                write!(
                    f,
                    "cannot delete {id}: {noun} {} {verb} at it; move or remove {} first",
                    names.join(", "),
                    if aliases.len() == 1 { "it" } else { "them" }
                )
            }
            Self::CorruptAliases { path, detail } => write!(
                f,
                "corrupt aliases file {}: {detail} (expected {{\"ALIAS\": \"NAME@VERSION\", …}}; fix or delete it)",
                path.display()
            ),
            Self::WrongModel { path, id, holds } => write!(
                f,
                "model file {} holds model {holds}, not {id} (renamed or copied by hand?): refusing it; move it out of the registry or give it back its own name",
                path.display()
            ),
            Self::NotALockFile { path } => write!(
                f,
                "cannot lock the registry: {} is a directory or another non-file; remove it (pismo creates the lock file itself)",
                path.display()
            ),
            Self::Io {
                action,
                path,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for RegistryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_err(action: &'static str, path: &Path, source: io::Error) -> RegistryError {
    RegistryError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------------------------------------
// Listing

/// The metadata of a model file that listings show (an owned copy of `format::Meta`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OwnedMeta {
    /// Hidden units.
    pub hidden_size: u32,
    /// Weights kind: `"f32"` or `"int8"`.
    pub kind: &'static str,
    /// Creation time, Unix seconds.
    pub created_unix: u64,
    /// The hyperparameters it was trained with.
    pub hyper: Hyper,
    /// Its final metrics.
    pub metrics: Metrics,
    /// The run that produced it (empty if none).
    pub run_id: String,
    /// Digest of the training data.
    pub dataset: String,
    /// The model it was derived from, e.g. the f32 model of an int8 one (empty if none).
    pub parent: String,
    /// Whether it deskews its inputs ([`crate::deskew`]).
    pub deskew: bool,
}

impl OwnedMeta {
    /// Decodes the metadata of model file bytes and checks that they hold model `id`.
    pub fn decode(id: &ModelId, bytes: &[u8]) -> Result<Self, String> {
        let model = crate::format::decode(bytes).map_err(|e| e.to_string())?;
        let meta = &model.meta;
        if meta.name != id.name || meta.version != id.version {
            return Err(format!(
                "file holds model {}@{}, not {id} (renamed by hand?)",
                meta.name, meta.version
            ));
        }
        Ok(Self {
            hidden_size: model.tensors.hidden_size(),
            kind: model.tensors.kind(),
            created_unix: meta.created_unix,
            hyper: meta.hyper,
            metrics: meta.metrics,
            run_id: meta.run_id.to_owned(),
            dataset: meta.dataset.to_owned(),
            parent: meta.parent.to_owned(),
            deskew: meta.deskew,
        })
    }
}

/// One model file, as [`Registry::list`] shows it.
///
/// Serialised as `{"id":"mnist@2","name":"mnist","version":2,"path":…,"size":…,
/// "modified_unix":…,"aliases":[…],"meta":{…}|null,"error":null|"…"}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Name and version.
    pub id: ModelId,
    /// The file.
    pub path: PathBuf,
    /// File size in bytes.
    pub size: u64,
    /// File modification time, Unix seconds (0 if unknown).
    pub modified_unix: u64,
    /// Aliases pointing at this version, sorted.
    pub aliases: Vec<String>,
    /// The file's metadata, or why it cannot be decoded (a corrupt file is listed, not fatal).
    pub meta: Result<OwnedMeta, String>,
}

impl Serialize for Entry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Entry", 9)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("name", &self.id.name)?;
        st.serialize_field("version", &self.id.version)?;
        st.serialize_field("path", &self.path.display().to_string())?;
        st.serialize_field("size", &self.size)?;
        st.serialize_field("modified_unix", &self.modified_unix)?;
        st.serialize_field("aliases", &self.aliases)?;
        st.serialize_field("meta", &self.meta.as_ref().ok())?;
        st.serialize_field("error", &self.meta.as_ref().err())?;
        st.end()
    }
}

// ---------------------------------------------------------------------------------------------
// The registry

/// A registry folder. Cheap to create (one read of the folder, for dead writers' temp
/// files), and a missing folder is an empty registry (writes create it).
#[derive(Clone, Debug)]
pub struct Registry {
    dir: PathBuf,
}

impl Registry {
    /// The registry in `dir`. Removes the temp files that writers killed while writing
    /// (kill -9, power loss) left in it; a live writer's temp file is kept (see
    /// `host::atomic`). Nothing else is read until an operation needs it.
    pub fn open(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        remove_dead_temps(&dir);
        Self { dir }
    }

    /// `$PISMO_REGISTRY` if set and not empty, else `./models`.
    pub fn default_dir() -> PathBuf {
        std::env::var_os("PISMO_REGISTRY")
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from("./models"), PathBuf::from)
    }

    /// The registry folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of model `id` (which may not exist). Fails if the name is invalid, so a
    /// hand-built id cannot point outside the folder.
    pub fn path_of(&self, id: &ModelId) -> Result<PathBuf, RegistryError> {
        validate_name(&id.name)?;
        Ok(self.dir.join(id.file_name()))
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

    /// The ids of all model files, sorted by name then version.
    pub fn ids(&self) -> Result<Vec<ModelId>, RegistryError> {
        Ok(self.scan()?.into_iter().map(|(id, _)| id).collect())
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
            path: self.dir.clone(),
            message: format!(
                "model `{name}` in {} has used up its version numbers",
                self.dir.display()
            ),
        })
    }

    /// Stores a new version of model `name` and returns its id.
    ///
    /// `encode(version)` gives the file's bytes for that version. If another writer takes
    /// the version first, `encode` is called again with a later version. Existing files are
    /// never replaced; see the module docs for how.
    pub fn register(
        &self,
        name: &str,
        encode: &mut dyn FnMut(u32) -> Vec<u8>,
    ) -> Result<ModelId, RegistryError> {
        validate_name(name)?;
        let _lock = RegistryLock::acquire(&self.dir)?;
        let mut version = self.next_version(name)?;
        for _ in 0..MAX_REGISTER_ATTEMPTS {
            let id = ModelId {
                name: name.to_owned(),
                version,
            };
            let dest = self.dir.join(id.file_name());
            let bytes = encode(version);
            let tmp = unique_tmp_path(&self.dir, &id.file_name());
            write_new_synced(&tmp, &bytes).map_err(|e| io_err("write", &tmp, e))?;
            let linked = link_no_clobber(&tmp, &dest);
            let _ = fs::remove_file(&tmp);
            match linked {
                Ok(true) => {
                    sync_dir(&self.dir);
                    return Ok(id);
                }
                Ok(false) => {
                    // Someone took this version: jump past everything that exists now.
                    version = self.next_version(name)?.max(version.saturating_add(1));
                }
                Err(e) => return Err(io_err("create", &dest, e)),
            }
        }
        Err(RegistryError::Busy {
            path: self.dir.clone(),
            message: format!(
                "gave up registering `{name}` in {} after {MAX_REGISTER_ATTEMPTS} attempts: other writers kept taking the next version",
                self.dir.display()
            ),
        })
    }

    /// Every model file with its size, aliases and metadata, sorted by name then version.
    /// A file that cannot be decoded is listed with the reason in [`Entry::meta`].
    pub fn list(&self) -> Result<Vec<Entry>, RegistryError> {
        let files = self.scan()?;
        let aliases = self.aliases()?;
        let mut entries = Vec::with_capacity(files.len());
        for (id, path) in files {
            let (size, modified_unix, meta) = match fs::read(&path) {
                Ok(bytes) => {
                    let meta = OwnedMeta::decode(&id, &bytes);
                    (bytes.len() as u64, modified_unix(&path), meta)
                }
                // Deleted between the scan and the read: it is not there any more.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => (0, modified_unix(&path), Err(format!("cannot read: {e}"))),
            };
            let mut names: Vec<String> = aliases
                .iter()
                .filter(|(_, target)| **target == id)
                .map(|(a, _)| a.clone())
                .collect();
            names.sort();
            entries.push(Entry {
                id,
                path,
                size,
                modified_unix,
                aliases: names,
                meta,
            });
        }
        Ok(entries)
    }

    /// The bytes of model `id`.
    ///
    /// Refused with [`RegistryError::WrongModel`] when the file decodes as another model than
    /// `id` (a file renamed or copied by hand): a file name always means the model it names.
    /// Bytes that do not decode at all are returned as they are; decoding them reports why.
    pub fn read(&self, id: &ModelId) -> Result<Vec<u8>, RegistryError> {
        let path = self.path_of(id)?;
        let bytes = fs::read(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                RegistryError::NotFound {
                    reference: id.to_string(),
                    message: format!(
                        "no model {id} in {} (have: {})",
                        self.dir.display(),
                        self.ids()
                            .map_or_else(|e| e.to_string(), |ids| list_ids(&ids))
                    ),
                }
            } else {
                io_err("read", &path, e)
            }
        })?;
        check_holds(id, &path, &bytes)?;
        Ok(bytes)
    }

    /// Resolves `reference` and reads that model's bytes.
    pub fn load(&self, reference: Option<&str>) -> Result<(ModelId, Vec<u8>), RegistryError> {
        let id = self.resolve(reference)?;
        let bytes = self.read(&id)?;
        Ok((id, bytes))
    }

    /// All aliases and their targets (empty without `aliases.json`).
    pub fn aliases(&self) -> Result<BTreeMap<String, ModelId>, RegistryError> {
        let path = self.dir.join(ALIASES_FILE);
        match fs::read(&path) {
            Ok(bytes) => parse_aliases(&path, &bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(io_err("read", &path, e)),
        }
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

    /// Points `alias` at model `id` (which must exist), replacing its old target.
    pub fn set_alias(&self, alias: &str, id: &ModelId) -> Result<(), RegistryError> {
        validate_alias(alias)?;
        let path = self.path_of(id)?;
        let _lock = RegistryLock::acquire(&self.dir)?;
        if !path.is_file() {
            return Err(RegistryError::NotFound {
                reference: id.to_string(),
                message: format!(
                    "cannot point alias `{alias}` at {id}: no such model in {} (have: {})",
                    self.dir.display(),
                    list_ids(&self.ids()?)
                ),
            });
        }
        self.read(id)?;
        let mut aliases = self.aliases()?;
        aliases.insert(alias.to_owned(), id.clone());
        self.write_aliases(&aliases)
    }

    /// Removes `alias` and returns the model it pointed at.
    pub fn remove_alias(&self, alias: &str) -> Result<ModelId, RegistryError> {
        validate_alias(alias)?;
        let _lock = RegistryLock::acquire(&self.dir)?;
        let mut aliases = self.aliases()?;
        let Some(old) = aliases.remove(alias) else {
            return Err(RegistryError::NotFound {
                reference: alias.to_owned(),
                message: format!(
                    "no alias `{alias}` in {} (aliases: {})",
                    self.dir.display(),
                    list_aliases(&aliases)
                ),
            });
        };
        self.write_aliases(&aliases)?;
        Ok(old)
    }

    /// Deletes model `id`; refuses while an alias points at it.
    pub fn delete(&self, id: &ModelId) -> Result<(), RegistryError> {
        let path = self.path_of(id)?;
        let _lock = RegistryLock::acquire(&self.dir)?;
        let pointing: Vec<String> = self
            .aliases()?
            .into_iter()
            .filter(|(_, target)| target == id)
            .map(|(a, _)| a)
            .collect();
        if !pointing.is_empty() {
            return Err(RegistryError::InUse {
                id: id.clone(),
                aliases: pointing,
            });
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
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(RegistryError::NotFound {
                reference: id.to_string(),
                message: format!(
                    "no model {id} in {} (have: {})",
                    self.dir.display(),
                    list_ids(&self.ids()?)
                ),
            }),
            Err(e) => Err(io_err("delete", &path, e)),
        }
    }
}

/// Refuses model file bytes that decode as another model than `id`.
fn check_holds(id: &ModelId, path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    let Ok(model) = crate::format::decode(bytes) else {
        return Ok(());
    };
    let meta = &model.meta;
    if meta.name == id.name && meta.version == id.version {
        return Ok(());
    }
    Err(RegistryError::WrongModel {
        path: path.to_path_buf(),
        id: id.clone(),
        holds: format!("{}@{}", meta.name, meta.version),
    })
}

fn modified_unix(path: &Path) -> u64 {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

fn parse_aliases(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, ModelId>, RegistryError> {
    let corrupt = |detail: String| RegistryError::CorruptAliases {
        path: path.to_path_buf(),
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;

    /// A fresh folder under the system temp dir, removed with its content on drop.
    pub(crate) fn temp_dir(tag: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("pismo-registry-{tag}-"))
            .tempdir()
            .unwrap()
    }

    fn id(s: &str) -> ModelId {
        s.parse().unwrap()
    }

    pub(crate) fn opaque(version: u32) -> Vec<u8> {
        format!("not a model, version {version}").into_bytes()
    }

    pub(crate) fn registry_with(tag: &str, models: &[&str]) -> (tempfile::TempDir, Registry) {
        let tmp = temp_dir(tag);
        let reg = Registry::open(tmp.path().join("models"));
        for name in models {
            reg.register(name, &mut opaque).unwrap();
        }
        (tmp, reg)
    }

    fn resolve(reg: &Registry, reference: Option<&str>) -> String {
        match reg.resolve(reference) {
            Ok(id) => id.to_string(),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn register_counts_versions_per_name_and_calls_encode_with_the_version() {
        let (_tmp, reg) = registry_with("versions", &["mnist", "mnist", "other", "mnist"]);
        assert_eq!(
            list_ids(&reg.ids().unwrap()),
            "mnist@1, mnist@2, mnist@3, other@1"
        );
        assert_eq!(reg.read(&id("mnist@2")).unwrap(), opaque(2));
        let e = reg.register("Bad Name", &mut opaque).unwrap_err();
        assert!(e.is_invalid(), "{e}");
    }

    #[test]
    fn register_skips_a_version_someone_else_took() {
        let (_tmp, reg) = registry_with("race", &["mnist"]);
        let mut calls = Vec::new();
        let got = reg
            .register("mnist", &mut |v| {
                calls.push(v);
                if calls.len() == 1 {
                    // Another writer publishes version 2 while we encode it.
                    fs::write(reg.dir().join("mnist.v2.pismo"), b"theirs").unwrap();
                }
                opaque(v)
            })
            .unwrap();
        assert_eq!(calls, [2, 3]);
        assert_eq!(got, id("mnist@3"));
        assert_eq!(reg.read(&id("mnist@2")).unwrap(), b"theirs");
        assert_eq!(reg.read(&id("mnist@3")).unwrap(), opaque(3));
        let leftovers: Vec<_> = fs::read_dir(reg.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn missing_folder_is_an_empty_registry() {
        let tmp = temp_dir("missing");
        let reg = Registry::open(tmp.path().join("nope"));
        assert!(reg.list().unwrap().is_empty());
        assert!(reg.aliases().unwrap().is_empty());
        let e = reg.resolve(None).unwrap_err();
        assert!(e.is_not_found());
        assert_eq!(
            e.to_string(),
            format!(
                "registry {} is empty: train one with `pismo train`",
                reg.dir().display()
            )
        );
        let e = resolve(&reg, Some("mnist"));
        assert!(e.contains("no model `mnist`") && e.contains("empty"), "{e}");
    }

    #[test]
    fn resolve_follows_the_grammar() {
        let (_tmp, reg) = registry_with("grammar", &["mnist", "mnist", "mnist", "tiny", "tiny"]);
        let dir = reg.dir().display().to_string();

        // No default alias: NAME is its highest version.
        assert_eq!(resolve(&reg, Some("mnist")), "mnist@3");
        assert_eq!(resolve(&reg, Some("mnist@2")), "mnist@2");

        reg.set_alias("default", &id("mnist@2")).unwrap();
        reg.set_alias("best", &id("tiny@1")).unwrap();
        assert_eq!(resolve(&reg, None), "mnist@2");
        // NAME: default's version when default points at NAME, else the highest.
        assert_eq!(resolve(&reg, Some("mnist")), "mnist@2");
        assert_eq!(resolve(&reg, Some("tiny")), "tiny@2");
        // NAME@ALIAS and a bare alias.
        assert_eq!(resolve(&reg, Some("tiny@best")), "tiny@1");
        assert_eq!(resolve(&reg, Some("best")), "tiny@1");
        assert_eq!(resolve(&reg, Some("mnist@default")), "mnist@2");

        assert_eq!(
            resolve(&reg, Some("foo")),
            format!(
                "error: no model or alias `foo` in {dir} (have: mnist@1, mnist@2, mnist@3, tiny@1, tiny@2; aliases: best → tiny@1, default → mnist@2)"
            )
        );
        assert_eq!(
            resolve(&reg, Some("foo@1")),
            format!(
                "error: no model `foo` in {dir} (have: mnist@1, mnist@2, mnist@3, tiny@1, tiny@2)"
            )
        );
        assert_eq!(
            resolve(&reg, Some("mnist@9")),
            format!("error: no version 9 of `mnist` in {dir} (have: mnist@1, mnist@2, mnist@3)")
        );
        assert_eq!(
            resolve(&reg, Some("mnist@best")),
            format!("error: alias `best` in {dir} points at tiny@1, not at a version of `mnist`")
        );
        assert!(resolve(&reg, Some("mnist@nope")).contains("no alias `nope`"));
        for bad in [
            "",
            "@1",
            "mnist@",
            "Mnist",
            "mnist@1@2",
            "../mnist",
            "mnist@-1",
        ] {
            let e = reg.resolve(Some(bad)).unwrap_err();
            assert!(e.is_invalid(), "{bad}: {e}");
            assert!(e.to_string().contains(&format!("`{bad}`")), "{e}");
        }
        assert!(reg.resolve(Some("mnist@0")).unwrap_err().is_invalid());
    }

    #[test]
    fn a_model_name_wins_over_an_alias_of_the_same_name() {
        let (_tmp, reg) = registry_with("shadow", &["a", "b", "b"]);
        reg.set_alias("b", &id("a@1")).unwrap();
        assert_eq!(resolve(&reg, Some("b")), "b@2");
        assert_eq!(resolve(&reg, Some("a@b")), "a@1");
    }

    #[test]
    fn without_default_the_newest_created_file_wins() {
        let (_tmp, reg) = registry_with("newest", &["zeta", "alpha", "alpha"]);
        let set_mtime = |file: &str, unix: u64| {
            let f = fs::File::options()
                .write(true)
                .open(reg.dir().join(file))
                .unwrap();
            f.set_modified(UNIX_EPOCH + Duration::from_secs(unix))
                .unwrap();
        };
        set_mtime("zeta.v1.pismo", 3_000);
        set_mtime("alpha.v1.pismo", 2_000);
        set_mtime("alpha.v2.pismo", 1_000);
        assert_eq!(resolve(&reg, None), "zeta@1");
        set_mtime("alpha.v1.pismo", 4_000);
        assert_eq!(resolve(&reg, None), "alpha@1");
    }

    /// A real (zero-weight) model file for `name@version`, created at `created_unix`.
    fn real_model(name: &str, version: u32, created_unix: u64) -> Vec<u8> {
        let meta = crate::format::Meta {
            name,
            version,
            created_unix,
            hyper: Hyper::DEFAULT,
            metrics: Metrics {
                epochs_run: 3,
                best_epoch: 2,
                train_loss: 0.5,
                val_loss: f32::NAN,
                val_accuracy: 0.9,
                test_accuracy: None,
            },
            run_id: "20261126-230501-abcdef",
            dataset: "sha256:0123",
            parent: "",
            deskew: false,
        };
        crate::host::model::AnyMlp::zeroed(16)
            .unwrap()
            .encode(&meta)
    }

    #[test]
    fn list_decodes_real_models_and_newest_uses_their_creation_time() {
        let tmp = temp_dir("real");
        let reg = Registry::open(tmp.path().join("models"));
        let created = [("b", 2_000), ("a", 3_000), ("a", 1_000)];
        for (name, at) in created {
            reg.register(name, &mut |v| real_model(name, v, at))
                .unwrap();
        }
        // A file copied under another version's name is listed with the mismatch.
        fs::write(reg.dir().join("a.v9.pismo"), real_model("a", 1, 9_000)).unwrap();

        let entries = reg.list().unwrap();
        let ids: Vec<String> = entries.iter().map(|e| e.id.to_string()).collect();
        assert_eq!(ids, ["a@1", "a@2", "a@9", "b@1"]);
        let meta = entries[0].meta.as_ref().unwrap();
        assert_eq!((meta.hidden_size, meta.kind), (16, "f32"));
        assert_eq!(meta.created_unix, 3_000);
        assert_eq!(meta.run_id, "20261126-230501-abcdef");
        assert_eq!(meta.hyper, Hyper::DEFAULT);
        let e = entries[2].meta.as_ref().unwrap_err();
        assert!(e.contains("holds model a@1, not a@9"), "{e}");
        let json = serde_json::to_value(&entries[0]).unwrap();
        assert_eq!(json["meta"]["hidden_size"], 16);
        assert!(json["meta"]["metrics"]["val_loss"].is_null());
        assert!(json["error"].is_null());

        // a@9 has the latest creation time but does not decode as a@9: a@1 is the newest.
        assert_eq!(resolve(&reg, None), "a@1");
        fs::remove_file(reg.dir().join("a.v9.pismo")).unwrap();
        fs::write(reg.dir().join("a.v2.pismo"), b"corrupt").unwrap();
        assert!(reg.list().unwrap()[1].meta.is_err());
        assert_eq!(resolve(&reg, None), "a@1");
    }

    /// Issue 11 row 9: `cp models/mnist-int8.v1.pismo reg/mnist.v2.pismo` was listed as
    /// corrupt but served by `predict` and accepted by `models alias`.
    #[test]
    fn issue11_row8_a_file_whose_name_disagrees_with_its_model_is_refused_everywhere() {
        let tmp = temp_dir("renamed");
        let reg = Registry::open(tmp.path().join("models"));
        reg.register("mnist", &mut |v| real_model("mnist", v, 1_000))
            .unwrap();
        reg.register("mnist-int8", &mut |v| real_model("mnist-int8", v, 2_000))
            .unwrap();
        let copy = reg.dir().join("mnist.v2.pismo");
        fs::copy(reg.dir().join("mnist-int8.v1.pismo"), &copy).unwrap();
        let check = |e: RegistryError| {
            let msg = e.to_string();
            assert!(msg.contains(&copy.display().to_string()), "{msg}");
            assert!(msg.contains("holds model mnist-int8@1"), "{msg}");
            assert!(!e.is_not_found() && !e.is_invalid(), "{msg}");
        };
        check(reg.read(&id("mnist@2")).unwrap_err());
        check(reg.load(Some("mnist@2")).unwrap_err());
        check(reg.load(Some("mnist")).unwrap_err());
        check(reg.set_alias("best", &id("mnist@2")).unwrap_err());
        assert!(reg.aliases().unwrap().is_empty());
        // The good files still load, and the list shows the bad one with the reason.
        assert_eq!(reg.load(Some("mnist@1")).unwrap().0, id("mnist@1"));
        reg.set_alias("best", &id("mnist@1")).unwrap();
        let listed = reg.list().unwrap();
        assert!(listed[1]
            .meta
            .as_ref()
            .unwrap_err()
            .contains("mnist-int8@1"));
    }

    /// Start time of process `pid` (field 22 of `/proc/PID/stat`), for the tests.
    pub(crate) fn proc_start(pid: u32) -> u64 {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let rest = stat.rsplit_once(") ").unwrap().1;
        rest.split_whitespace().nth(19).unwrap().parse().unwrap()
    }

    /// Issue 11 row 7: kill -9 at registration left `.NAME.vN.pismo.tmp-*` files forever.
    /// Temp files of a writer that is dead (a process started and killed here) go when the
    /// registry is opened; one of a live writer (a running `sleep`) stays.
    #[cfg(target_os = "linux")]
    #[test]
    fn issue11_row7_opening_the_registry_removes_temp_files_of_dead_writers() {
        let (_tmp, reg) = registry_with("dead-temps", &["mnist"]);
        let sleep = || {
            std::process::Command::new("sleep")
                .arg("60")
                .spawn()
                .unwrap()
        };
        let mut dead = sleep();
        let (dead_pid, dead_start) = (dead.id(), proc_start(dead.id()));
        let mut live = sleep();
        let (live_pid, live_start) = (live.id(), proc_start(live.id()));
        dead.kill().unwrap();
        dead.wait().unwrap();
        let files = [
            // Written by the dead writer: current and pre-fix (no start time) names.
            (
                format!(".mnist.v2.pismo.tmp-{dead_pid}-{dead_start}-0-17"),
                false,
            ),
            (
                format!(".aliases.json.tmp-{dead_pid}-{dead_start}-3-99"),
                false,
            ),
            (format!(".mnist.v3.pismo.tmp-{dead_pid}-1-42"), false),
            // The live writer's file, and a live pid whose start time says it is another
            // process that reused the pid (its writer is dead).
            (
                format!(".mnist.v4.pismo.tmp-{live_pid}-{live_start}-0-5"),
                true,
            ),
            (
                format!(".mnist.v5.pismo.tmp-{live_pid}-{}-0-5", live_start + 1),
                false,
            ),
            // Not temp files of pismo: left alone.
            (".mnist.v6.pismo.tmp-x-1-2-3".to_owned(), true),
            (".hidden".to_owned(), true),
        ];
        for (name, _) in &files {
            fs::write(reg.dir().join(name), vec![0u8; 4096]).unwrap();
        }
        let reg = Registry::open(reg.dir());
        for (name, kept) in &files {
            assert_eq!(reg.dir().join(name).exists(), *kept, "{name}");
        }
        assert_eq!(reg.ids().unwrap(), [id("mnist@1")]);
        live.kill().unwrap();
        live.wait().unwrap();
    }

    #[test]
    fn dangling_aliases_are_reported() {
        let (_tmp, reg) = registry_with("dangling", &["mnist", "mnist"]);
        reg.set_alias("default", &id("mnist@2")).unwrap();
        fs::remove_file(reg.dir().join("mnist.v2.pismo")).unwrap();
        let e = resolve(&reg, None);
        assert!(
            e.contains("alias `default` points at mnist@2, which is not in"),
            "{e}"
        );
        assert!(resolve(&reg, Some("mnist")).contains("alias `default`"));
        assert_eq!(resolve(&reg, Some("mnist@1")), "mnist@1");
    }

    #[test]
    fn aliases_set_move_remove_and_guard_delete() {
        let (_tmp, reg) = registry_with("aliases", &["mnist", "mnist"]);
        let e = reg.set_alias("best", &id("mnist@7")).unwrap_err();
        assert!(e.is_not_found() && e.to_string().contains("mnist@7"), "{e}");
        assert!(reg
            .set_alias("Best", &id("mnist@1"))
            .unwrap_err()
            .is_invalid());

        reg.set_alias("best", &id("mnist@1")).unwrap();
        reg.set_alias("prod", &id("mnist@1")).unwrap();
        let e = reg.delete(&id("mnist@1")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot delete mnist@1: aliases `best`, `prod` point at it; move or remove them first"
        );
        let listed = reg.list().unwrap();
        assert_eq!(listed[0].aliases, ["best", "prod"]);
        assert!(listed[1].aliases.is_empty());

        reg.set_alias("best", &id("mnist@2")).unwrap();
        assert_eq!(reg.remove_alias("prod").unwrap(), id("mnist@1"));
        assert!(reg.remove_alias("prod").unwrap_err().is_not_found());
        reg.delete(&id("mnist@1")).unwrap();
        assert!(reg.delete(&id("mnist@1")).unwrap_err().is_not_found());
        assert_eq!(
            reg.aliases().unwrap(),
            BTreeMap::from([("best".to_owned(), id("mnist@2"))])
        );
        let text = fs::read_to_string(reg.dir().join(ALIASES_FILE)).unwrap();
        assert_eq!(text, "{\n  \"best\": \"mnist@2\"\n}\n");
        assert!(reg.dir().join(LOCK_FILE).is_file());
    }

    #[test]
    fn a_deleted_version_number_is_never_given_again() {
        let (_tmp, reg) = registry_with("never-reused", &["mnist", "mnist", "mnist-int8"]);
        reg.delete(&id("mnist@2")).unwrap();
        assert!(reg.dir().join("mnist.v2.deleted").is_file());
        assert_eq!(reg.ids().unwrap(), [id("mnist@1"), id("mnist-int8@1")]);
        assert_eq!(reg.register("mnist", &mut opaque).unwrap(), id("mnist@3"));
        // Other names are not affected by the marker.
        assert_eq!(
            reg.register("mnist-int8", &mut opaque).unwrap(),
            id("mnist-int8@2")
        );
        // Deleting every version still does not free the numbers.
        reg.delete(&id("mnist@1")).unwrap();
        reg.delete(&id("mnist@3")).unwrap();
        assert_eq!(reg.register("mnist", &mut opaque).unwrap(), id("mnist@4"));
        assert_eq!(resolve(&reg, Some("mnist")), "mnist@4");
    }

    #[test]
    fn corrupt_aliases_file_is_a_clear_error() {
        let (_tmp, reg) = registry_with("corrupt-aliases", &["mnist"]);
        let path = reg.dir().join(ALIASES_FILE);
        for (text, expect) in [
            ("{\"default\": ", "EOF"),
            ("[1, 2]", "invalid type"),
            ("{\"default\": 3}", "invalid type"),
            ("{\"default\": \"mnist\"}", "not NAME@VERSION"),
            ("{\"Bad\": \"mnist@1\"}", "invalid alias `Bad`"),
        ] {
            fs::write(&path, text).unwrap();
            for e in [
                reg.aliases().unwrap_err(),
                reg.resolve(None).unwrap_err(),
                reg.list().unwrap_err(),
                reg.set_alias("x", &id("mnist@1")).unwrap_err(),
            ] {
                let msg = e.to_string();
                assert!(msg.starts_with("corrupt aliases file "), "{msg}");
                assert!(msg.contains(&path.display().to_string()), "{msg}");
                assert!(msg.contains(expect), "{text}: {msg}");
            }
        }
        fs::write(&path, "\n").unwrap();
        assert!(reg.aliases().unwrap().is_empty());
    }

    #[test]
    fn list_shows_corrupt_files_and_ignores_foreign_ones() {
        let (_tmp, reg) = registry_with("list", &["mnist", "mnist"]);
        for foreign in [
            "README.md",
            ".mnist.v3.pismo.tmp-1-2-3",
            "mnist.v07.pismo",
            "Upper.v1.pismo",
        ] {
            fs::write(reg.dir().join(foreign), b"x").unwrap();
        }
        fs::create_dir(reg.dir().join("dir.v1.pismo")).unwrap();
        let entries = reg.list().unwrap();
        let ids: Vec<String> = entries.iter().map(|e| e.id.to_string()).collect();
        assert_eq!(ids, ["mnist@1", "mnist@2"]);
        assert_eq!(entries[1].size, opaque(2).len() as u64);
        assert!(entries.iter().all(|e| e.meta.is_err()));
        let json = serde_json::to_value(&entries[0]).unwrap();
        assert_eq!(json["id"], "mnist@1");
        assert_eq!(json["version"], 1);
        assert!(json["meta"].is_null());
        assert!(json["error"].is_string());
    }

    #[test]
    fn read_rejects_names_that_leave_the_folder() {
        let (_tmp, reg) = registry_with("traversal", &["mnist"]);
        let evil = ModelId {
            name: "../../etc/passwd".into(),
            version: 1,
        };
        assert!(reg.read(&evil).unwrap_err().is_invalid());
        assert!(reg.delete(&evil).unwrap_err().is_invalid());
        assert!(reg.set_alias("x", &evil).unwrap_err().is_invalid());
        let e = reg.read(&id("mnist@5")).unwrap_err();
        assert!(
            e.is_not_found() && e.to_string().contains("have: mnist@1"),
            "{e}"
        );
        let (got, bytes) = reg.load(Some("mnist")).unwrap();
        assert_eq!((got, bytes), (id("mnist@1"), opaque(1)));
    }

    #[test]
    fn default_dir_reads_the_environment() {
        // Only checks the fallback shape; the variable is process-global, so it is not set here.
        if std::env::var_os("PISMO_REGISTRY").is_none() {
            assert_eq!(Registry::default_dir(), PathBuf::from("./models"));
        }
    }
}
