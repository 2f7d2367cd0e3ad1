//! Model references (`NAME`, `NAME@7`, `NAME@ALIAS`, none) and what they resolve to; the
//! grammar is in the [module docs](super).

use std::collections::BTreeMap;

use super::id::{list_aliases, list_ids, name_problem, parse_version};
use super::{ModelId, Registry, RegistryError, DEFAULT_ALIAS};

impl Registry {
    /// The model a reference means; see the grammar in the module docs.
    pub fn resolve(&self, reference: Option<&str>) -> Result<ModelId, RegistryError> {
        let ids = self.ids()?;
        let aliases = self.aliases()?;
        match reference {
            None => match aliases.get(DEFAULT_ALIAS) {
                Some(target) => self.existing(DEFAULT_ALIAS, target, &ids),
                None => self.newest(),
            },
            Some(reference) => self.resolve_reference(reference, &ids, &aliases),
        }
    }

    fn resolve_reference(
        &self,
        reference: &str,
        ids: &[ModelId],
        aliases: &BTreeMap<String, ModelId>,
    ) -> Result<ModelId, RegistryError> {
        let (name, tail) = match reference.split_once('@') {
            Some((name, tail)) => (name, Some(tail)),
            None => (reference, None),
        };
        let lookup = Lookup {
            registry: self,
            reference,
            name,
            ids,
            aliases,
        };
        if name.is_empty() {
            return Err(lookup.invalid("expected NAME, NAME@VERSION or NAME@ALIAS".to_owned()));
        }
        if let Some(reason) = name_problem(name) {
            return Err(lookup.invalid(format!("`{name}`: {reason}")));
        }
        match tail {
            Some("") => Err(lookup
                .invalid("nothing after `@`: expected a version number or an alias".to_owned())),
            Some(tail) if tail.bytes().all(|b| b.is_ascii_digit()) => lookup.version(tail),
            Some(alias) => lookup.alias_of_name(alias),
            None => lookup.bare_name(),
        }
    }

    /// `target` if it exists, else an error saying alias `alias` dangles.
    fn existing(
        &self,
        alias: &str,
        target: &ModelId,
        ids: &[ModelId],
    ) -> Result<ModelId, RegistryError> {
        if ids.contains(target) {
            return Ok(target.clone());
        }
        Err(RegistryError::NotFound {
            reference: alias.to_owned(),
            message: format!(
                "alias `{alias}` points at {target}, which is not in {} (have: {})",
                self.location(),
                list_ids(ids)
            ),
        })
    }

    /// The newest created model: highest `created_unix`, then storage time, then id. Models
    /// whose metadata decodes win over corrupt ones.
    pub(super) fn newest(&self) -> Result<ModelId, RegistryError> {
        let entries = self.list()?;
        entries
            .into_iter()
            .max_by_key(|e| {
                let created = e.meta.as_ref().map_or(e.modified_unix, |m| m.created_unix);
                (e.meta.is_ok(), created, e.modified_unix, e.id.clone())
            })
            .map(|e| e.id)
            .ok_or_else(|| RegistryError::Empty {
                location: self.location(),
            })
    }
}

/// One reference being resolved: `NAME` and what follows its `@`, against the registry's
/// models and aliases.
struct Lookup<'a> {
    registry: &'a Registry,
    reference: &'a str,
    name: &'a str,
    ids: &'a [ModelId],
    aliases: &'a BTreeMap<String, ModelId>,
}

impl Lookup<'_> {
    fn invalid(&self, reason: String) -> RegistryError {
        RegistryError::Invalid {
            kind: "model reference",
            value: self.reference.to_owned(),
            reason,
        }
    }

    fn not_found(&self, message: String) -> RegistryError {
        RegistryError::NotFound {
            reference: self.reference.to_owned(),
            message,
        }
    }

    /// The versions of `NAME`, oldest first.
    fn of_name(&self) -> Vec<&ModelId> {
        self.ids.iter().filter(|id| id.name == self.name).collect()
    }

    fn no_model(&self) -> RegistryError {
        let (name, dir) = (self.name, self.registry.location());
        self.not_found(format!(
            "no model `{name}` in {dir} (have: {})",
            list_ids(self.ids)
        ))
    }

    /// `NAME@VERSION`.
    fn version(&self, tail: &str) -> Result<ModelId, RegistryError> {
        let version = parse_version(tail)
            .ok_or_else(|| self.invalid("versions are whole numbers from 1".to_owned()))?;
        let of_name = self.of_name();
        if of_name.is_empty() {
            return Err(self.no_model());
        }
        of_name
            .iter()
            .find(|id| id.version == version)
            .map(|id| (*id).clone())
            .ok_or_else(|| {
                self.not_found(format!(
                    "no version {version} of `{}` in {} (have: {})",
                    self.name,
                    self.registry.location(),
                    list_ids(of_name.iter().copied())
                ))
            })
    }

    /// `NAME@ALIAS`: the alias must point at a version of `NAME`.
    fn alias_of_name(&self, alias: &str) -> Result<ModelId, RegistryError> {
        if let Some(reason) = name_problem(alias) {
            return Err(self.invalid(format!("alias `{alias}`: {reason}")));
        }
        let dir = self.registry.location();
        let target = self.aliases.get(alias).ok_or_else(|| {
            self.not_found(format!(
                "no alias `{alias}` in {dir} (aliases: {})",
                list_aliases(self.aliases)
            ))
        })?;
        if target.name != self.name {
            return Err(self.not_found(format!(
                "alias `{alias}` in {dir} points at {target}, not at a version of `{}`",
                self.name
            )));
        }
        self.registry.existing(alias, target, self.ids)
    }

    /// `NAME` alone: the version `default` points at if it is one of `NAME`'s, else the
    /// newest version; with no model of that name, an alias called `NAME`.
    fn bare_name(&self) -> Result<ModelId, RegistryError> {
        let (name, dir) = (self.name, self.registry.location());
        let of_name = self.of_name();
        if let Some(newest) = of_name.last() {
            return match self.aliases.get(DEFAULT_ALIAS) {
                Some(target) if target.name == name => {
                    self.registry.existing(DEFAULT_ALIAS, target, self.ids)
                }
                _ => Ok((*newest).clone()),
            };
        }
        match self.aliases.get(name) {
            Some(target) => self.registry.existing(name, target, self.ids),
            None if self.ids.is_empty() && self.aliases.is_empty() => Err(self.not_found(format!(
                "no model `{name}`: registry {dir} is empty: train one with `pismo train`"
            ))),
            None => Err(self.not_found(format!(
                "no model or alias `{name}` in {dir} (have: {}; aliases: {})",
                list_ids(self.ids),
                list_aliases(self.aliases)
            ))),
        }
    }
}
