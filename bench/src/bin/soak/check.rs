//! The registry before and after: every model file decodes in full (metadata and weights,
//! through `AnyMlp::decode`, as `pismo models show` and the server read them), every alias
//! points at a model that exists, and the set of models is the one before plus what the
//! training runs registered. Files that are none of the registry's own (model files, the
//! aliases file, its lock and history, deletion markers) are listed; the check after the soak
//! reports those that were not there before (a writer's temp file left behind).

use std::collections::BTreeSet;
use std::path::Path;

use pismo_engine::model::AnyMlp;
use pismo_storage::registry::{Registry, ALIASES_FILE, ALIAS_HISTORY_FILE, LOCK_FILE};

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// `NAME@V` of every model file.
    pub models: BTreeSet<String>,
    /// `NAME@V: why` of every file that does not decode.
    pub corrupt: Vec<String>,
    /// `alias → NAME@V` of every alias whose model is missing.
    pub dangling: Vec<String>,
    pub aliases: usize,
    /// Other files in the folder.
    pub stray: Vec<String>,
}

pub fn snapshot(dir: &Path) -> Result<Snapshot, String> {
    // Listed before `Registry::open`, which removes dead writers' temp files.
    let mut stray = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let name = e.map_err(|e| e.to_string())?.file_name();
        let name = name.to_string_lossy();
        let known = name == ALIASES_FILE
            || name == LOCK_FILE
            || name == ALIAS_HISTORY_FILE
            || name == "README.md"
            || (!name.starts_with('.') && (name.ends_with(".pismo") || name.ends_with(".deleted")));
        if !known {
            stray.push(name.into_owned());
        }
    }
    let registry = Registry::open(dir);
    let entries = registry.list().map_err(|e| e.to_string())?;
    let mut s = Snapshot {
        stray,
        ..Snapshot::default()
    };
    for e in &entries {
        let id = e.id.to_string();
        let decoded = e.meta.clone().and_then(|_| {
            let bytes = registry.read(&e.id).map_err(|e| e.to_string())?;
            AnyMlp::decode(&bytes)
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        if let Err(why) = decoded {
            s.corrupt.push(format!("{id}: {why}"));
        }
        s.models.insert(id);
    }
    let aliases = registry.aliases().map_err(|e| e.to_string())?;
    s.aliases = aliases.len();
    for (alias, target) in &aliases {
        if !s.models.contains(&target.to_string()) {
            s.dangling.push(format!("{alias} → {target}"));
        }
    }
    Ok(s)
}
