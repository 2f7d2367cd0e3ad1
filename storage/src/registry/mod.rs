//! The model registry: versioned models and aliases in a [`ModelStore`], the counterpart of
//! MLflow's model registry. [`Registry`] is the policy, the same over every store: the name
//! grammar, what a reference means, and refusing bytes that hold another model than their id.
//! Stores: the registry folder ([`FolderStore`], the default; its layout and guarantees are in
//! module `folder`) and PostgreSQL (crate `pismo-store`).
//!
//! Model names and aliases are 1–64 characters of `[a-z0-9_-]` starting with a letter or a
//! digit; an alias is not all digits (it would read as a version).
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
//! Guarantees, on top of the store's ([`store`]):
//! - Bytes are only ever used as the model their id says: [`Registry::read`],
//!   [`Registry::load`] and [`Registry::set_alias`] refuse bytes that hold another `NAME@V`
//!   ([`RegistryError::WrongModel`], a file renamed or copied by hand); [`Registry::list`]
//!   shows them with that error.
//! - Versions of a name count up from 1 and are never reused, so a run record or a log that
//!   names `NAME@V` never comes to mean another model.
//!
//! Modules: `id` (names, aliases, [`ModelId`] and file names), `reference` (what a reference
//! resolves to), [`store`] (the store interface), `folder` (the folder store), `lock` (the
//! folder's lock); the atomic-file helpers live in `pismo_files::atomic`, shared with the run records.

mod folder;
mod id;
mod lock;
mod reference;
pub mod store;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Serialize, Serializer};

pub use folder::{FolderStore, ALIASES_FILE, ALIAS_HISTORY_FILE, LOCK_FILE};
use id::{list_aliases, list_ids};
pub use id::{validate_alias, validate_name, ModelId};
use pismo_core::hyper::{Hyper, Metrics};
use store::{unix_secs, AliasChange, DeleteRefused, ModelStore, Stamp};

/// Extension of model files.
pub const EXTENSION: &str = "pismo";
/// The alias used when a reference names no version.
pub const DEFAULT_ALIAS: &str = "default";
/// Longest model name or alias.
pub const MAX_NAME_LEN: usize = 64;

/// At most this many ids are listed in a "have: …" part of an error.
const MAX_LISTED: usize = 20;

// ---------------------------------------------------------------------------------------------
// Errors

/// Why a registry operation failed. Every variant carries the store, path or reference that
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
    /// the store and lists what exists.
    NotFound {
        /// The reference (or id, or alias) that was asked for.
        reference: String,
        /// The whole message.
        message: String,
    },
    /// No reference was given and the registry holds no model.
    Empty {
        /// The store.
        location: String,
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
        location: String,
        /// What is wrong with it.
        detail: String,
    },
    /// Other writers kept the registry busy: the aliases lock stayed taken, or every version
    /// tried was taken by someone else.
    Busy {
        /// The lock file or the store.
        location: String,
        /// The whole message.
        message: String,
    },
    /// Stored bytes decode as another model than their id says (a file renamed or copied by
    /// hand); they are refused wherever they would be used.
    WrongModel {
        /// Where the bytes are.
        location: String,
        /// The model their id means.
        id: ModelId,
        /// The model they hold, `NAME@VERSION` as recorded inside them.
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
    /// The store cannot be reached: a database that refuses or drops the connection.
    /// Nothing was changed by the operation that failed; it can be tried again.
    Unavailable {
        /// The store.
        location: String,
        /// The whole message.
        message: String,
    },
    /// The store failed otherwise: a database error, stored bytes whose checksum does not
    /// match, a corrupt alias history. Nothing was changed by the operation that failed.
    Store {
        /// The store.
        location: String,
        /// The whole message.
        message: String,
    },
    /// The bytes of a model did not decode ([`Registry::load_decoded`]).
    Undecodable {
        /// Where the bytes are.
        location: String,
        /// The model.
        id: ModelId,
        /// Why they did not decode, as the decoder says.
        detail: String,
    },
}

impl RegistryError {
    /// True for errors that mean "no such model/alias" (an HTTP 404, not a 500).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. } | Self::Empty { .. })
    }

    /// True when the store cannot be reached (an HTTP 503: try again, or another replica).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
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
            Self::NotFound { message, .. }
            | Self::Busy { message, .. }
            | Self::Unavailable { message, .. }
            | Self::Store { message, .. } => f.write_str(message),
            Self::Empty { location } => write!(
                f,
                "registry {location} is empty: train one with `pismo train`"
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
            Self::CorruptAliases { location, detail } => write!(
                f,
                "corrupt aliases file {location}: {detail} (expected {{\"ALIAS\": \"NAME@VERSION\", …}}; fix or delete it)"
            ),
            Self::WrongModel {
                location,
                id,
                holds,
            } => write!(
                f,
                "model file {location} holds model {holds}, not {id} (renamed or copied by hand?): refusing it; move it out of the registry or give it back its own name"
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
            Self::Undecodable {
                location,
                id,
                detail,
            } => write!(f, "{location}: model {id}: {detail}"),
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
    /// Whether it deskews its inputs ([`pismo_core::deskew`]).
    pub deskew: bool,
    /// Input pixels with first-layer weights: 784, or fewer for a pruned int8 model.
    pub input_pixels: usize,
    /// Bits of a first-layer weight: 32 (f32), 8, or 7 (the firmware's paired kernel).
    pub first_layer_bits: u8,
    /// Weights and biases stored.
    pub params: usize,
}

impl OwnedMeta {
    /// Decodes the metadata of model file bytes and checks that they hold model `id`.
    pub fn decode(id: &ModelId, bytes: &[u8]) -> Result<Self, String> {
        let model = pismo_core::format::decode(bytes).map_err(|e| e.to_string())?;
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
            input_pixels: model.tensors.input_pixels(),
            first_layer_bits: model.tensors.first_layer_bits(),
            params: model.tensors.params(),
        })
    }
}

/// One stored model, as [`Registry::list`] shows it.
///
/// Serialised as `{"id":"mnist@2","name":"mnist","version":2,"location":…,"size":…,
/// "modified_unix":…,"aliases":[…],"meta":{…}|null,"error":null|"…"}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Name and version.
    pub id: ModelId,
    /// Where it is: the file, or `DATABASE#NAME@V`.
    pub location: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was stored (the file's modification time), Unix seconds (0 if unknown).
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
        st.serialize_field("location", &self.location)?;
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

/// A registry: the policy over a [`ModelStore`]. Cheap to clone (the store is shared).
#[derive(Clone, Debug)]
pub struct Registry {
    store: Arc<dyn ModelStore>,
}

impl Registry {
    /// The registry folder `dir` ([`FolderStore::open`]: removes the temp files of dead
    /// writers; a missing folder is an empty registry, and writes create it).
    pub fn open(dir: impl Into<PathBuf>) -> Self {
        Self::with_store(Arc::new(FolderStore::open(dir)))
    }

    /// The registry kept in `store`.
    pub fn with_store(store: Arc<dyn ModelStore>) -> Self {
        Self { store }
    }

    /// `$PISMO_REGISTRY` if set and not empty, else `./models`.
    pub fn default_dir() -> PathBuf {
        pismo_files::dirs::from_env("PISMO_REGISTRY", "./models")
    }

    /// Where the models are, for messages: the folder, or the database URL without password.
    pub fn location(&self) -> String {
        self.store.location()
    }

    /// The registry folder, when the store is one.
    pub fn folder(&self) -> Option<&Path> {
        self.store.folder()
    }

    /// Where model `id` is or would be, for messages. Fails if the name is invalid, so a
    /// hand-built id cannot point outside the folder.
    pub fn location_of(&self, id: &ModelId) -> Result<String, RegistryError> {
        validate_name(&id.name)?;
        Ok(self.store.location_of(id))
    }

    /// The ids of all stored models, sorted by name then version.
    pub fn ids(&self) -> Result<Vec<ModelId>, RegistryError> {
        self.store.ids()
    }

    /// Stores a new version of model `name` and returns its id.
    ///
    /// `encode(version)` gives the bytes for that version. If another writer takes the
    /// version first, `encode` is called again with a later version. Stored models are never
    /// replaced.
    pub fn register(
        &self,
        name: &str,
        encode: &mut dyn FnMut(u32) -> Vec<u8>,
    ) -> Result<ModelId, RegistryError> {
        validate_name(name)?;
        self.store.insert(name, encode)
    }

    /// Stores model file `bytes` as exactly `id` (copying a registry keeps every `NAME@V`);
    /// `false` when `id` is stored already or was deleted in this registry. Bytes that hold
    /// another model than `id` are refused, as [`Registry::read`] would.
    pub fn import(&self, id: &ModelId, bytes: &[u8]) -> Result<bool, RegistryError> {
        validate_name(&id.name)?;
        self.check_holds(id, bytes)?;
        self.store.import(id, bytes)
    }

    /// Every version deleted from this registry: numbers it never gives again.
    pub fn deleted(&self) -> Result<Vec<ModelId>, RegistryError> {
        self.store.deleted()
    }

    /// Records that `id` was deleted elsewhere (copying a registry), so that this registry
    /// never gives its number either; `false` when it is stored here or recorded already.
    pub fn import_deleted(&self, id: &ModelId) -> Result<bool, RegistryError> {
        validate_name(&id.name)?;
        self.store.import_deleted(id)
    }

    /// Every stored model with its size, aliases and metadata, sorted by name then version.
    /// Bytes that cannot be decoded are listed with the reason in [`Entry::meta`].
    pub fn list(&self) -> Result<Vec<Entry>, RegistryError> {
        let models = self.store.models()?;
        let aliases = self.aliases()?;
        let mut entries = Vec::with_capacity(models.len());
        for model in models {
            let (size, meta) = match &model.bytes {
                Ok(bytes) => (bytes.len() as u64, OwnedMeta::decode(&model.id, bytes)),
                Err(e) => (0, Err(e.clone())),
            };
            let mut names: Vec<String> = aliases
                .iter()
                .filter(|(_, target)| **target == model.id)
                .map(|(a, _)| a.clone())
                .collect();
            names.sort();
            entries.push(Entry {
                modified_unix: unix_secs(model.stored),
                id: model.id,
                location: model.location,
                size,
                aliases: names,
                meta,
            });
        }
        Ok(entries)
    }

    /// The bytes of model `id`.
    ///
    /// Refused with [`RegistryError::WrongModel`] when they decode as another model than `id`
    /// (a file renamed or copied by hand): an id always means the model it names. Bytes that
    /// do not decode at all are returned as they are; decoding them reports why.
    pub fn read(&self, id: &ModelId) -> Result<Vec<u8>, RegistryError> {
        validate_name(&id.name)?;
        let Some(bytes) = self.store.bytes(id)? else {
            return Err(self.no_such_model(id));
        };
        self.check_holds(id, &bytes)?;
        Ok(bytes)
    }

    /// Size and storage time of model `id` (to know when a decoded copy is stale).
    pub fn stamp(&self, id: &ModelId) -> Result<Stamp, RegistryError> {
        validate_name(&id.name)?;
        self.store.stamp(id)?.ok_or_else(|| self.no_such_model(id))
    }

    /// Resolves `reference` and reads that model's bytes.
    pub fn load(&self, reference: Option<&str>) -> Result<(ModelId, Vec<u8>), RegistryError> {
        let id = self.resolve(reference)?;
        let bytes = self.read(&id)?;
        Ok((id, bytes))
    }

    /// Resolves `reference`, reads that model's bytes and decodes them with `decode` (the
    /// registry keeps bytes; the caller knows the model type). Bytes that do not decode are
    /// [`RegistryError::Undecodable`], naming where they are.
    pub fn load_decoded<T, E: fmt::Display>(
        &self,
        reference: Option<&str>,
        decode: impl FnOnce(&[u8]) -> Result<T, E>,
    ) -> Result<(ModelId, T), RegistryError> {
        let (id, bytes) = self.load(reference)?;
        match decode(&bytes) {
            Ok(model) => Ok((id, model)),
            Err(e) => Err(RegistryError::Undecodable {
                location: self.location_of(&id).unwrap_or_default(),
                id,
                detail: e.to_string(),
            }),
        }
    }

    /// All aliases and their targets.
    pub fn aliases(&self) -> Result<BTreeMap<String, ModelId>, RegistryError> {
        self.store.aliases()
    }

    /// Every alias change, oldest first.
    pub fn alias_history(&self) -> Result<Vec<AliasChange>, RegistryError> {
        self.store.alias_history()
    }

    /// Points `alias` at model `id` (which must exist and hold `id`), replacing its old
    /// target.
    pub fn set_alias(&self, alias: &str, id: &ModelId) -> Result<(), RegistryError> {
        validate_alias(alias)?;
        validate_name(&id.name)?;
        let missing = || -> Result<RegistryError, RegistryError> {
            Ok(RegistryError::NotFound {
                reference: id.to_string(),
                message: format!(
                    "cannot point alias `{alias}` at {id}: no such model in {} (have: {})",
                    self.location(),
                    list_ids(&self.ids()?)
                ),
            })
        };
        match self.store.bytes(id)? {
            Some(bytes) => self.check_holds(id, &bytes)?,
            None => return Err(missing()?),
        }
        match self.store.set_alias(alias, id) {
            Err(e) if e.is_not_found() => Err(missing()?),
            other => other,
        }
    }

    /// Removes `alias` and returns the model it pointed at.
    pub fn remove_alias(&self, alias: &str) -> Result<ModelId, RegistryError> {
        validate_alias(alias)?;
        match self.store.remove_alias(alias)? {
            Some(old) => Ok(old),
            None => Err(RegistryError::NotFound {
                reference: alias.to_owned(),
                message: format!(
                    "no alias `{alias}` in {} (aliases: {})",
                    self.location(),
                    list_aliases(&self.aliases()?)
                ),
            }),
        }
    }

    /// Deletes model `id`; refuses while an alias points at it.
    pub fn delete(&self, id: &ModelId) -> Result<(), RegistryError> {
        validate_name(&id.name)?;
        match self.store.delete(id)? {
            Ok(()) => Ok(()),
            Err(DeleteRefused::Aliased(aliases)) => Err(RegistryError::InUse {
                id: id.clone(),
                aliases,
            }),
            Err(DeleteRefused::Missing) => Err(self.no_such_model(id)),
        }
    }

    /// "no model `id` in STORE (have: …)": the models there, or why they cannot be listed.
    fn no_such_model(&self, id: &ModelId) -> RegistryError {
        RegistryError::NotFound {
            reference: id.to_string(),
            message: format!(
                "no model {id} in {} (have: {})",
                self.location(),
                self.ids()
                    .map_or_else(|e| e.to_string(), |ids| list_ids(&ids))
            ),
        }
    }

    /// Refuses bytes that decode as another model than `id`.
    fn check_holds(&self, id: &ModelId, bytes: &[u8]) -> Result<(), RegistryError> {
        let Ok(model) = pismo_core::format::decode(bytes) else {
            return Ok(());
        };
        let meta = &model.meta;
        if meta.name == id.name && meta.version == id.version {
            return Ok(());
        }
        Err(RegistryError::WrongModel {
            location: self.store.location_of(id),
            id: id.clone(),
            holds: format!("{}@{}", meta.name, meta.version),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::fs;
    use std::time::{Duration, UNIX_EPOCH};

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
                    fs::write(reg.folder().unwrap().join("mnist.v2.pismo"), b"theirs").unwrap();
                }
                opaque(v)
            })
            .unwrap();
        assert_eq!(calls, [2, 3]);
        assert_eq!(got, id("mnist@3"));
        assert_eq!(reg.read(&id("mnist@2")).unwrap(), b"theirs");
        assert_eq!(reg.read(&id("mnist@3")).unwrap(), opaque(3));
        let leftovers: Vec<_> = fs::read_dir(reg.folder().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn load_decoded_names_the_file_whose_bytes_do_not_decode() {
        let (_tmp, reg) = registry_with("decode", &["mnist"]);
        let (got, len) = reg
            .load_decoded(Some("mnist"), |b| Ok::<_, String>(b.len()))
            .unwrap();
        assert_eq!((got, len), (id("mnist@1"), opaque(1).len()));
        let e = reg
            .load_decoded(Some("mnist"), |_| Err::<(), _>("bad magic"))
            .unwrap_err();
        let file = reg.folder().unwrap().join("mnist.v1.pismo");
        assert_eq!(
            e.to_string(),
            format!("{}: model mnist@1: bad magic", file.display())
        );
        assert!(!e.is_invalid() && !e.is_not_found(), "{e}");
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
                reg.folder().unwrap().display()
            )
        );
        let e = resolve(&reg, Some("mnist"));
        assert!(e.contains("no model `mnist`") && e.contains("empty"), "{e}");
    }

    #[test]
    fn resolve_follows_the_grammar() {
        let (_tmp, reg) = registry_with("grammar", &["mnist", "mnist", "mnist", "tiny", "tiny"]);
        let dir = reg.folder().unwrap().display().to_string();

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
                .open(reg.folder().unwrap().join(file))
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
        let meta = pismo_core::format::Meta {
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
        let mlp: Box<pismo_core::mlp::Mlp<16>> = bytemuck::zeroed_box();
        let mut buf = vec![0u8; pismo_core::format::encoded_len(&meta, &*mlp)];
        let n = pismo_core::format::encode(&meta, &*mlp, &mut buf).unwrap();
        buf.truncate(n);
        buf
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
        fs::write(
            reg.folder().unwrap().join("a.v9.pismo"),
            real_model("a", 1, 9_000),
        )
        .unwrap();

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
        fs::remove_file(reg.folder().unwrap().join("a.v9.pismo")).unwrap();
        fs::write(reg.folder().unwrap().join("a.v2.pismo"), b"corrupt").unwrap();
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
        let copy = reg.folder().unwrap().join("mnist.v2.pismo");
        fs::copy(reg.folder().unwrap().join("mnist-int8.v1.pismo"), &copy).unwrap();
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
            fs::write(reg.folder().unwrap().join(name), vec![0u8; 4096]).unwrap();
        }
        let reg = Registry::open(reg.folder().unwrap());
        for (name, kept) in &files {
            assert_eq!(reg.folder().unwrap().join(name).exists(), *kept, "{name}");
        }
        assert_eq!(reg.ids().unwrap(), [id("mnist@1")]);
        live.kill().unwrap();
        live.wait().unwrap();
    }

    #[test]
    fn dangling_aliases_are_reported() {
        let (_tmp, reg) = registry_with("dangling", &["mnist", "mnist"]);
        reg.set_alias("default", &id("mnist@2")).unwrap();
        fs::remove_file(reg.folder().unwrap().join("mnist.v2.pismo")).unwrap();
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
        let text = fs::read_to_string(reg.folder().unwrap().join(ALIASES_FILE)).unwrap();
        assert_eq!(text, "{\n  \"best\": \"mnist@2\"\n}\n");
        assert!(reg.folder().unwrap().join(LOCK_FILE).is_file());
    }

    #[test]
    fn a_deleted_version_number_is_never_given_again() {
        let (_tmp, reg) = registry_with("never-reused", &["mnist", "mnist", "mnist-int8"]);
        reg.delete(&id("mnist@2")).unwrap();
        assert!(reg.folder().unwrap().join("mnist.v2.deleted").is_file());
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
        let path = reg.folder().unwrap().join(ALIASES_FILE);
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
            fs::write(reg.folder().unwrap().join(foreign), b"x").unwrap();
        }
        fs::create_dir(reg.folder().unwrap().join("dir.v1.pismo")).unwrap();
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
