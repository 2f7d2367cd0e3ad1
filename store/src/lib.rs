//! pismo's stores beyond the registry folder, kept out of `pismo-core` so that no database
//! client is linked into the core.
//!
//! - [`open_registry`]: a registry from a store spec: `postgres://…` (or `postgresql://…`)
//!   is a PostgreSQL database, anything else a registry folder.
//! - [`postgres`]: the PostgreSQL model store ([`postgres::PgStore`]) and its versioned
//!   schema ([`postgres::migrate`]).
//! - [`copy`]: every model and alias of one registry into another (`pismo store copy`).
//! - [`study`]: a tuning study in PostgreSQL that `pismo tune` workers on many hosts share.
//!
//! The specs `--store` and `$PISMO_STORE` take are read here: [`store_spec`].

pub mod copy;
pub mod postgres;
pub mod study;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use pismo_core::host::registry::Registry;

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

/// The registry `spec` names: a PostgreSQL database (its schema must be current: `pismo
/// store migrate`) or a registry folder.
pub fn open_registry(spec: &str) -> Result<Registry, StoreError> {
    if is_database(spec) {
        let store = postgres::PgStore::connect(spec)?;
        Ok(Registry::with_store(Arc::new(store)))
    } else if spec.contains("://") {
        Err(StoreError {
            message: format!(
                "unknown store `{}`: give a registry folder or postgres://USER@HOST[:PORT]/DATABASE",
                postgres::redact(spec)
            ),
        })
    } else {
        Ok(Registry::open(PathBuf::from(spec)))
    }
}
