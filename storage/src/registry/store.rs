//! The model store interface: where a registry's model bytes, version numbers and aliases
//! live. [`super::Registry`] is the policy over it (name grammar, references, refusing a
//! file that holds another model, messages); a store only keeps bytes and makes each change
//! atomic against other writers, in other threads, processes or hosts.
//!
//! Two stores exist: the registry folder ([`super::folder::FolderStore`], the default) and a
//! PostgreSQL database (crate `pismo-store`, outside the core so that no database client is
//! linked into it).
//!
//! What every store guarantees:
//! - [`ModelStore::insert`] gives each model name its versions from 1 up, never the same
//!   number twice, not even after [`ModelStore::delete`]; a model is stored whole or not at all.
//! - An alias only ever points at a stored model: [`ModelStore::set_alias`] fails when the
//!   model is not there, and [`ModelStore::delete`] refuses a model an alias points at; both
//!   are checked and done in one step.
//! - Every alias change is recorded in [`ModelStore::alias_history`], oldest first.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{ModelId, RegistryError};

/// One stored model as a store lists it.
#[derive(Clone, Debug)]
pub struct StoredModel {
    /// Name and version.
    pub id: ModelId,
    /// Where it is, for people: a file path or `DATABASE#NAME@V`.
    pub location: String,
    /// Its bytes, or why they cannot be read (listed, not fatal).
    pub bytes: Result<Vec<u8>, String>,
    /// When it was stored (the file's modification time in a folder).
    pub stored: SystemTime,
}

/// What identifies the stored bytes of a model cheaply: a model decoded from a store is
/// decoded again only when its stamp changes (a folder's file replaced by hand).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Size in bytes.
    pub size: u64,
    /// When it was stored.
    pub stored: SystemTime,
}

/// Why [`ModelStore::delete`] did not delete.
#[derive(Debug)]
pub enum DeleteRefused {
    /// No such model.
    Missing,
    /// These aliases point at it.
    Aliased(Vec<String>),
}

/// One alias change: `model` is the new target, `None` when the alias was removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasChange {
    /// When, Unix seconds.
    pub unix: u64,
    /// The alias.
    pub alias: String,
    /// Its new target (`NAME@V`), or `None`: removed.
    pub model: Option<ModelId>,
}

/// Where a registry keeps its models and aliases. Names and aliases reach a store already
/// checked against the grammar ([`super::validate_name`], [`super::validate_alias`]).
pub trait ModelStore: fmt::Debug + Send + Sync {
    /// Where the store is, for messages: a folder path or a database URL without password.
    fn location(&self) -> String;

    /// The registry folder, for a folder store.
    fn folder(&self) -> Option<&Path> {
        None
    }

    /// Every stored model's id, sorted by name then version.
    fn ids(&self) -> Result<Vec<ModelId>, RegistryError>;

    /// Stores a new version of `name` and returns its id. `encode(version)` gives the bytes
    /// for that version; a store may call it again with a later version when another writer
    /// took the first.
    fn insert(
        &self,
        name: &str,
        encode: &mut dyn FnMut(u32) -> Vec<u8>,
    ) -> Result<ModelId, RegistryError>;

    /// Stores `bytes` as exactly `id`, so that copying between stores keeps every `NAME@V`;
    /// `false` when `id` is stored already or was deleted here. Later versions of the name
    /// come after it.
    fn import(&self, id: &ModelId, bytes: &[u8]) -> Result<bool, RegistryError>;

    /// The bytes of `id`, `None` if there is no such model.
    fn bytes(&self, id: &ModelId) -> Result<Option<Vec<u8>>, RegistryError>;

    /// Size and storage time of `id`, `None` if there is no such model.
    fn stamp(&self, id: &ModelId) -> Result<Option<Stamp>, RegistryError>;

    /// Every stored model with its bytes, sorted by name then version.
    fn models(&self) -> Result<Vec<StoredModel>, RegistryError>;

    /// Where `id` is or would be, for messages.
    fn location_of(&self, id: &ModelId) -> String;

    /// All aliases and their targets.
    fn aliases(&self) -> Result<BTreeMap<String, ModelId>, RegistryError>;

    /// Points `alias` at `id` if `id` is stored (else [`RegistryError::NotFound`]).
    fn set_alias(&self, alias: &str, id: &ModelId) -> Result<(), RegistryError>;

    /// Removes `alias`; returns its old target, `None` if there was no such alias.
    fn remove_alias(&self, alias: &str) -> Result<Option<ModelId>, RegistryError>;

    /// Deletes `id` unless an alias points at it; its version number is never given again.
    fn delete(&self, id: &ModelId) -> Result<Result<(), DeleteRefused>, RegistryError>;

    /// Every version deleted here (sorted by name then version): numbers never given again.
    fn deleted(&self) -> Result<Vec<ModelId>, RegistryError>;

    /// Records that `id` was deleted in another store, so that its number is never given
    /// here either; `false` when `id` is stored here or recorded as deleted already.
    fn import_deleted(&self, id: &ModelId) -> Result<bool, RegistryError>;

    /// Every alias change, oldest first.
    fn alias_history(&self) -> Result<Vec<AliasChange>, RegistryError>;
}

/// `t` as whole seconds since the Unix epoch (0 before it): how stores and listings give times.
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
