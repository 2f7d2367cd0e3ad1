//! `pismo store copy`: every model and alias of one registry into another, keeping each
//! `NAME@V`, and every run record with its id, so a team can move its folders into
//! PostgreSQL and back.
//!
//! Each model is copied in one step of the target store (whole or not at all), so a copy
//! that stops half-way is finished by running it again: models already there with the same
//! bytes are skipped. A model whose `NAME@V` is in the target with other bytes stops the copy
//! with an error naming it (two registries that gave one number to different models cannot
//! be merged by copying). Aliases are copied after the models, so none points at a model the
//! target lacks; each copied alias change is recorded in the target's alias history.
//! Versions deleted in the source are recorded as deleted in the target, so that a number
//! the source never gives again (a run may name its model) is not given there either.
//!
//! Runs ([`copy_runs`]) are copied whole (record, metrics, log) in one step each, under their
//! own ids; a run the target has already is left as it is there. A run still training is
//! not copied (its record is not final yet): copy again once it has ended.

use pismo_storage::registry::{ModelId, Registry, RegistryError};
use pismo_storage::runs::{RunRecord, Runs, RunsError, Status};

/// What a copy did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Models stored in the target.
    pub copied: Vec<ModelId>,
    /// Models the target held already, with the same bytes.
    pub present: Vec<ModelId>,
    /// Models not copied because that version was deleted in the target.
    pub deleted_in_target: Vec<ModelId>,
    /// Versions deleted in the source and now recorded as deleted in the target, so that
    /// their numbers are never given there.
    pub deleted: Vec<ModelId>,
    /// Aliases set in the target (those that pointed elsewhere or did not exist).
    pub aliases_set: Vec<(String, ModelId)>,
}

/// Copies every model and alias of `from` into `to`.
pub fn copy(from: &Registry, to: &Registry) -> Result<CopyReport, RegistryError> {
    let mut report = CopyReport::default();
    for id in from.ids()? {
        let bytes = from.read(&id)?;
        if to.import(&id, &bytes)? {
            report.copied.push(id);
            continue;
        }
        match to.read(&id) {
            Ok(theirs) if theirs == bytes => report.present.push(id),
            Ok(_) => {
                return Err(RegistryError::Store {
                    location: to.location(),
                    message: format!(
                        "{id} is in {} with other bytes than in {}: refusing to copy over it",
                        to.location(),
                        from.location()
                    ),
                })
            }
            Err(e) if e.is_not_found() => report.deleted_in_target.push(id),
            Err(e) => return Err(e),
        }
    }
    // Deleted versions: their numbers are never given in the target either.
    for id in from.deleted()? {
        if to.import_deleted(&id)? {
            report.deleted.push(id);
        }
    }
    let theirs = to.aliases()?;
    for (alias, id) in from.aliases()? {
        if theirs.get(&alias) == Some(&id) {
            continue;
        }
        match to.set_alias(&alias, &id) {
            Ok(()) => report.aliases_set.push((alias, id)),
            // The alias's model was deleted in the target: it stays as the target has it.
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}

/// What a copy of runs did.
#[derive(Debug, Default)]
pub struct RunsCopyReport {
    /// Runs stored in the target.
    pub copied: Vec<String>,
    /// Runs the target held already.
    pub present: Vec<String>,
    /// Runs still training, not copied.
    pub running: Vec<String>,
    /// Runs that could not be read in the source (not copied).
    pub unreadable: Vec<RunsError>,
}

/// Copies every run of `from` into `to`.
pub fn copy_runs(from: &Runs, to: &Runs) -> Result<RunsCopyReport, RunsError> {
    let (infos, unreadable) = from.list_with_problems()?;
    let mut report = RunsCopyReport {
        unreadable,
        ..RunsCopyReport::default()
    };
    // Oldest first, so a copy that stops half-way has copied a prefix of the history.
    for info in infos.iter().rev() {
        let id = info.run_id.clone();
        if info.status == Status::Running {
            report.running.push(id);
            continue;
        }
        // The record as listed: read once.
        let record = match from.metrics(&id) {
            Ok(metrics) => RunRecord {
                info: info.clone(),
                metrics,
            },
            Err(e) => {
                report.unreadable.push(e);
                continue;
            }
        };
        let log = from.log(&id)?;
        if to.import(&record, &log)? {
            report.copied.push(id);
        } else {
            report.present.push(id);
        }
    }
    Ok(report)
}
