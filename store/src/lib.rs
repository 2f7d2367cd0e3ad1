//! pismo's stores beyond the folders: the PostgreSQL side of `pismo-storage`'s interfaces,
//! kept in a crate of its own so that no database client is linked into the libraries.
//!
//! - [`open_registry`]: a registry from a store spec: `postgres://…` (or `postgresql://…`)
//!   is a PostgreSQL database, anything else a registry folder.
//! - [`postgres`]: the PostgreSQL model store ([`postgres::PgStore`]) and its versioned
//!   schema ([`postgres::migrate`]).
//! - [`open_runs`]: run records from a store spec, in the same way; [`runs::PgRuns`] keeps
//!   them in PostgreSQL.
//! - [`copy`]: every model, alias and run of one store into another (`pismo store copy`).
//! - [`study`]: a tuning study in PostgreSQL that `pismo tune` workers on many hosts share.
//!
//! The specs `--store` and `$PISMO_STORE` take are read here: [`store_spec`].
//!
//! Depends on the core and `pismo-storage` only (the interfaces it implements). It may not
//! depend on training, tuning or the shells: they reach PostgreSQL through those interfaces,
//! and only the binary links this crate.

pub mod copy;
pub mod postgres;
pub mod runs;
pub mod study;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use pismo_storage::registry::Registry;
use pismo_storage::runs::Runs;

/// The environment variable naming the store when no `--store` is given.
pub const STORE_ENV: &str = "PISMO_STORE";

/// Why a store cannot be opened or migrated.
#[derive(Debug)]
pub struct StoreError {
    /// The whole message; it names the store (a database URL without password).
    pub message: String,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {}

/// True when `spec` names a PostgreSQL database.
pub fn is_database(spec: &str) -> bool {
    spec.starts_with("postgres://") || spec.starts_with("postgresql://")
}

/// The store a command uses: `flag` (`--store`), else `$PISMO_STORE` if set and not empty.
pub fn store_spec(flag: Option<&str>) -> Option<String> {
    flag.map(str::to_owned).or_else(|| {
        std::env::var(STORE_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty())
    })
}

/// The run records `spec` names: a PostgreSQL database (its schema must be current) or a
/// runs folder.
pub fn open_runs(spec: &str) -> Result<Runs, StoreError> {
    if is_database(spec) {
        Ok(Runs::with_store(Arc::new(runs::PgRuns::connect(spec)?)))
    } else {
        check_folder_spec(spec)?;
        Ok(Runs::open(PathBuf::from(spec)))
    }
}

/// Refuses a spec with a scheme other than PostgreSQL's (a folder path has none).
fn check_folder_spec(spec: &str) -> Result<(), StoreError> {
    if spec.contains("://") {
        return Err(StoreError {
            message: format!(
                "unknown store `{}`: give a folder or postgres://USER@HOST[:PORT]/DATABASE",
                postgres::redact(spec)
            ),
        });
    }
    Ok(())
}

/// The registry `spec` names: a PostgreSQL database (its schema must be current: `pismo
/// store migrate`) or a registry folder.
pub fn open_registry(spec: &str) -> Result<Registry, StoreError> {
    if is_database(spec) {
        let store = postgres::PgStore::connect(spec)?;
        Ok(Registry::with_store(Arc::new(store)))
    } else {
        check_folder_spec(spec)?;
        Ok(Registry::open(PathBuf::from(spec)))
    }
}
