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
        let invalid = |reason: String| RegistryError::Invalid {
            kind: "model reference",
            value: reference.to_owned(),
            reason,
        };
        let dir = self.location();
        let (name, tail) = match reference.split_once('@') {
            Some((name, tail)) => (name, Some(tail)),
            None => (reference, None),
        };
        if name.is_empty() {
            return Err(invalid(
                "expected NAME, NAME@VERSION or NAME@ALIAS".to_owned(),
            ));
        }
        if let Some(reason) = name_problem(name) {
            return Err(invalid(format!("`{name}`: {reason}")));
        }
        let of_name: Vec<&ModelId> = ids.iter().filter(|id| id.name == name).collect();
        let no_model = || RegistryError::NotFound {
            reference: reference.to_owned(),
            message: format!("no model `{name}` in {dir} (have: {})", list_ids(ids)),
        };
        match tail {
            Some("") => Err(invalid(
                "nothing after `@`: expected a version number or an alias".to_owned(),
            )),
            Some(tail) if tail.bytes().all(|b| b.is_ascii_digit()) => {
                let version = parse_version(tail)
                    .ok_or_else(|| invalid("versions are whole numbers from 1".to_owned()))?;
                if of_name.is_empty() {
                    return Err(no_model());
                }
                of_name
                    .iter()
                    .find(|id| id.version == version)
                    .map(|id| (*id).clone())
                    .ok_or_else(|| RegistryError::NotFound {
                        reference: reference.to_owned(),
                        message: format!(
                            "no version {version} of `{name}` in {dir} (have: {})",
                            list_ids(of_name.iter().copied())
                        ),
                    })
            }
            Some(alias) => {
                if let Some(reason) = name_problem(alias) {
                    return Err(invalid(format!("alias `{alias}`: {reason}")));
                }
                let target = aliases.get(alias).ok_or_else(|| RegistryError::NotFound {
                    reference: reference.to_owned(),
                    message: format!(
                        "no alias `{alias}` in {dir} (aliases: {})",
                        list_aliases(aliases)
                    ),
                })?;
                if target.name != name {
                    return Err(RegistryError::NotFound {
                        reference: reference.to_owned(),
                        message: format!(
                            "alias `{alias}` in {dir} points at {target}, not at a version of `{name}`"
                        ),
                    });
                }
                self.existing(alias, target, ids)
            }
            None if !of_name.is_empty() => match aliases.get(DEFAULT_ALIAS) {
                Some(target) if target.name == name => self.existing(DEFAULT_ALIAS, target, ids),
                _ => Ok(of_name[of_name.len() - 1].clone()),
            },
            None => match aliases.get(name) {
                Some(target) => self.existing(name, target, ids),
                None if ids.is_empty() && aliases.is_empty() => Err(RegistryError::NotFound {
                    reference: reference.to_owned(),
                    message: format!(
                        "no model `{name}`: registry {dir} is empty: train one with `pismo train`"
                    ),
                }),
                None => Err(RegistryError::NotFound {
                    reference: reference.to_owned(),
                    message: format!(
                        "no model or alias `{name}` in {dir} (have: {}; aliases: {})",
                        list_ids(ids),
                        list_aliases(aliases)
                    ),
                }),
            },
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
