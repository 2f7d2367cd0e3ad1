//! Model names, aliases and ids (`NAME@VERSION`), and the file names that hold them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::folder::DELETED_EXTENSION;
use super::{RegistryError, EXTENSION, MAX_LISTED, MAX_NAME_LEN};

/// Why `s` is not a valid model name or alias, or `None` if it is one.
pub(super) fn name_problem(s: &str) -> Option<&'static str> {
    let Some(first) = s.bytes().next() else {
        return Some("empty");
    };
    if s.len() > MAX_NAME_LEN {
        return Some("longer than 64 characters");
    }
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return Some("must start with a lowercase letter or a digit");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Some("only lowercase letters a-z, digits, `_` and `-` are allowed");
    }
    None
}

fn check(kind: &'static str, s: &str, problem: Option<&'static str>) -> Result<(), RegistryError> {
    match problem {
        None => Ok(()),
        Some(reason) => Err(RegistryError::Invalid {
            kind,
            value: s.to_owned(),
            reason: reason.to_owned(),
        }),
    }
}

/// Checks a model name: 1–64 characters of `[a-z0-9_-]`, starting with a letter or a digit.
pub fn validate_name(name: &str) -> Result<(), RegistryError> {
    check("model name", name, name_problem(name))
}

/// Checks an alias: like a model name, and not all digits (`NAME@3` is a version).
pub fn validate_alias(alias: &str) -> Result<(), RegistryError> {
    let problem = if !alias.is_empty() && alias.bytes().all(|b| b.is_ascii_digit()) {
        Some("an alias of only digits would read as a version number")
    } else {
        name_problem(alias)
    };
    check("alias", alias, problem)
}

/// Parses a version: ASCII digits only (no sign), at least 1.
pub(super) fn parse_version(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&v| v >= 1)
}

/// One version of one model: `name@version`. Ordered by name, then version.
/// Serialised (serde) as the string `"name@version"`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelId {
    /// The model's name.
    pub name: String,
    /// Its version, from 1.
    pub version: u32,
}

impl ModelId {
    /// A checked id.
    pub fn new(name: &str, version: u32) -> Result<Self, RegistryError> {
        validate_name(name)?;
        if version == 0 {
            return Err(RegistryError::Invalid {
                kind: "model id",
                value: format!("{name}@0"),
                reason: "versions start at 1".to_owned(),
            });
        }
        Ok(Self {
            name: name.to_owned(),
            version,
        })
    }

    /// The file name in the registry folder: `<name>.v<version>.pismo`.
    pub fn file_name(&self) -> String {
        format!("{}.v{}.{EXTENSION}", self.name, self.version)
    }

    /// The empty marker a deleted version leaves: `<name>.v<version>.deleted`.
    pub(super) fn deleted_file_name(&self) -> String {
        format!("{}.v{}.{DELETED_EXTENSION}", self.name, self.version)
    }

    /// The id of a registry file name, if it is one (canonical form only: `mnist.v03.pismo`
    /// is not a model file).
    pub fn from_file_name(file: &str) -> Option<Self> {
        Self::parse_file_name(file, EXTENSION)
    }

    /// `<name>.v<version>.<extension>` in canonical form.
    pub(super) fn parse_file_name(file: &str, extension: &str) -> Option<Self> {
        let stem = file.strip_suffix(extension)?.strip_suffix('.')?;
        let (name, version) = stem.split_once('.')?;
        let version = version.strip_prefix('v')?;
        if name_problem(name).is_some() || version.starts_with('0') {
            return None;
        }
        Some(Self {
            name: name.to_owned(),
            version: parse_version(version)?,
        })
    }
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

impl FromStr for ModelId {
    type Err = RegistryError;

    /// Parses `NAME@VERSION` (an exact id, not a reference: no aliases).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: String| RegistryError::Invalid {
            kind: "model id",
            value: s.to_owned(),
            reason,
        };
        let (name, version) = s
            .split_once('@')
            .ok_or_else(|| invalid("expected NAME@VERSION, e.g. mnist@3".to_owned()))?;
        if let Some(reason) = name_problem(name) {
            return Err(invalid(format!("model name: {reason}")));
        }
        let version = parse_version(version)
            .ok_or_else(|| invalid("the version must be a whole number from 1".to_owned()))?;
        Ok(Self {
            name: name.to_owned(),
            version,
        })
    }
}

impl Serialize for ModelId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ModelId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// "mnist@1, mnist@2" (at most [`MAX_LISTED`], then a count), or "none".
pub(super) fn list_ids<'a>(ids: impl IntoIterator<Item = &'a ModelId>) -> String {
    let all: Vec<String> = ids.into_iter().map(ToString::to_string).collect();
    if all.is_empty() {
        return "none".to_owned();
    }
    let mut out = all[..all.len().min(MAX_LISTED)].join(", ");
    if all.len() > MAX_LISTED {
        out.push_str(&format!(", … ({} more)", all.len() - MAX_LISTED));
    }
    out
}

/// "default → mnist@2, best → mnist@1", or "none".
pub(super) fn list_aliases(aliases: &BTreeMap<String, ModelId>) -> String {
    if aliases.is_empty() {
        return "none".to_owned();
    }
    let all: Vec<String> = aliases
        .iter()
        .map(|(a, id)| format!("{a} → {id}"))
        .collect();
    all.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ModelId {
        s.parse().unwrap()
    }

    #[test]
    fn names_follow_the_charset() {
        for good in ["mnist", "a", "0", "m_1-b", &"x".repeat(64)] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Mnist",
            "-a",
            "_a",
            "a.b",
            "a/b",
            "..",
            "a@b",
            "é",
            &"x".repeat(65),
        ] {
            let e = validate_name(bad).unwrap_err();
            assert!(e.is_invalid(), "{bad}");
            assert!(e.to_string().contains(&format!("`{bad}`")), "{e}");
        }
        assert!(validate_alias("best").is_ok());
        let e = validate_alias("42").unwrap_err().to_string();
        assert!(e.contains("version"), "{e}");
    }

    #[test]
    fn model_id_parses_and_prints() {
        let m = id("mnist@12");
        assert_eq!(
            m,
            ModelId {
                name: "mnist".into(),
                version: 12
            }
        );
        assert_eq!(m.to_string(), "mnist@12");
        assert_eq!(m.file_name(), "mnist.v12.pismo");
        assert_eq!(ModelId::from_file_name("mnist.v12.pismo"), Some(m.clone()));
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"mnist@12\"");
        assert_eq!(serde_json::from_str::<ModelId>("\"mnist@12\"").unwrap(), m);
        for bad in [
            "mnist",
            "mnist@",
            "@3",
            "mnist@0",
            "mnist@+3",
            "mnist@-1",
            "mnist@x",
            "Mnist@1",
            "mnist@99999999999",
            "../x@1",
        ] {
            assert!(bad.parse::<ModelId>().is_err(), "{bad}");
        }
        for not_model in [
            "mnist.v0.pismo",
            "mnist.v01.pismo",
            "mnist.v1.pismo.tmp",
            ".mnist.v1.pismo.tmp-1-2-3",
            "mnist.pismo",
            "mnist.v1x.pismo",
            "a.b.v1.pismo",
            ".v1.pismo",
            "aliases.json",
        ] {
            assert_eq!(ModelId::from_file_name(not_model), None, "{not_model}");
        }
        assert!(ModelId::new("ok", 0).is_err());
    }
}
