//! The PostgreSQL model store: a team's registry in one database, shared by every `pismo`
//! command and every `pismo serve` replica that names it.
//!
//! Schema (version [`SCHEMA_VERSION`], made and upgraded by [`migrate`], `pismo store
//! migrate`):
//!
//! ```text
//! pismo_schema         (version)                             one row: the schema's version
//! pismo_model_names    (name PK, last_version)               the highest version ever given
//! pismo_models         (name, version PK, bytes, sha256, stored_at)
//! pismo_deleted_models (name, version PK, deleted_at)       versions deleted: never stored again
//! pismo_aliases        (alias PK, name, version → pismo_models)
//! pismo_alias_history  (seq PK, at, alias, name, version)    name NULL: the alias was removed
//! ```
//!
//! and, since v2, the tables of tuning studies that workers share ([`crate::study`]); since
//! v3, run records ([`crate::runs`]).
//!
//! Guarantees (each change is one transaction, so a command that loses its connection
//! half-way changes nothing):
//! - Version numbers: `insert` bumps `pismo_model_names.last_version` with `INSERT … ON
//!   CONFLICT DO UPDATE … RETURNING`, which row-locks the name until the model row is
//!   committed: two writers of one name on any hosts get consecutive versions, and a deleted
//!   version's number is never given again (the counter only grows).
//! - Aliases: `pismo_aliases` references `pismo_models`, so an alias can only point at a
//!   stored model and a model an alias points at cannot be deleted, whatever the
//!   interleaving; every change is appended to `pismo_alias_history` in the same transaction.
//! - Bytes: each model's SHA-256 is stored beside it and checked on every read; bytes that
//!   changed in the database are an error, never a model.
//! - Replicas: nothing is cached here, so every `pismo serve` replica resolves `default`
//!   against the database on each request and follows an alias change at its next request.
//!
//! Connections come from a small pool (r2d2): a connection that broke is dropped and the
//! next operation opens a new one. The queries of every request (ids, aliases, stamp) are
//! sent unprepared with their parameter types (`query_typed`): one round trip each instead
//! of a prepare and an execute (what it changed, measured with `bench/store-load`:
//! bench/README.md, "After the fix").

use std::collections::BTreeMap;
use std::time::Duration;

use pismo_storage::registry::store::{
    unix_secs, AliasChange, DeleteRefused, ModelStore, Stamp, StoredModel,
};
use pismo_storage::registry::{ModelId, RegistryError};
use postgres::error::SqlState;
use postgres::types::Type;
use postgres::{Client, NoTls};
use r2d2_postgres::r2d2::{Pool, PooledConnection};
use r2d2_postgres::PostgresConnectionManager;
use sha2::{Digest, Sha256};

use crate::StoreError;

/// The schema version this pismo reads and writes.
pub const SCHEMA_VERSION: i32 = 3;

/// The schema's migrations: entry `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    r"
CREATE TABLE pismo_model_names (
    name text PRIMARY KEY,
    last_version integer NOT NULL CHECK (last_version >= 1)
);
CREATE TABLE pismo_models (
    name text NOT NULL REFERENCES pismo_model_names (name),
    version integer NOT NULL CHECK (version >= 1),
    bytes bytea NOT NULL,
    sha256 bytea NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);
CREATE TABLE pismo_deleted_models (
    name text NOT NULL REFERENCES pismo_model_names (name),
    version integer NOT NULL,
    deleted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);
CREATE TABLE pismo_aliases (
    alias text PRIMARY KEY,
    name text NOT NULL,
    version integer NOT NULL,
    FOREIGN KEY (name, version) REFERENCES pismo_models (name, version)
);
CREATE TABLE pismo_alias_history (
    seq bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    alias text NOT NULL,
    name text,
    version integer
);
",
    // v2: tuning studies shared by workers (`crate::study`).
    r"
CREATE TABLE pismo_studies (
    name text PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    best_model bytea,
    best_accuracy float8,
    best_loss float8,
    best_serial integer NOT NULL DEFAULT 0,
    registered_serial integer NOT NULL DEFAULT 0
);
CREATE TABLE pismo_study_events (
    seq bigserial PRIMARY KEY,
    study text NOT NULL REFERENCES pismo_studies (name),
    at timestamptz NOT NULL DEFAULT now(),
    event text NOT NULL
);
CREATE INDEX pismo_study_events_by_study ON pismo_study_events (study, seq);
CREATE TABLE pismo_trials (
    study text NOT NULL REFERENCES pismo_studies (name),
    trial integer NOT NULL CHECK (trial >= 0),
    params text,
    worker text NOT NULL,
    lease_until timestamptz NOT NULL,
    claims integer NOT NULL DEFAULT 1,
    ended boolean NOT NULL DEFAULT false,
    PRIMARY KEY (study, trial)
);
",
    // v3: run records (`crate::runs`).
    r"
CREATE TABLE pismo_runs (
    run_id text PRIMARY KEY,
    serial integer GENERATED ALWAYS AS IDENTITY UNIQUE,
    status text NOT NULL,
    start_unix_ms bigint NOT NULL,
    info text NOT NULL
);
CREATE TABLE pismo_run_metrics (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id text NOT NULL REFERENCES pismo_runs (run_id),
    step bigint NOT NULL,
    name text NOT NULL,
    value float8 NOT NULL,
    logged_ms bigint NOT NULL
);
CREATE INDEX pismo_run_metrics_by_run ON pismo_run_metrics (run_id, seq);
CREATE TABLE pismo_run_log (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id text NOT NULL REFERENCES pismo_runs (run_id),
    at timestamptz NOT NULL DEFAULT now(),
    text text NOT NULL
);
CREATE INDEX pismo_run_log_by_run ON pismo_run_log (run_id, seq);
",
];

/// Connections the pool keeps at most (one per busy server thread).
const POOL_SIZE: u32 = 8;
/// How long opening a connection may take before the command fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `url` with its password replaced by `***`, for messages and listings.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn config(url: &str) -> Result<postgres::Config, StoreError> {
    let mut config: postgres::Config = url.parse().map_err(|e| StoreError {
        message: format!("invalid PostgreSQL URL `{}`: {e}", redact(url)),
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("pismo");
    }
    Ok(config)
}

/// Why a database operation failed, in one line: PostgreSQL's own message when it gave one.
pub(crate) fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None if e.is_closed() => "the connection to the database was lost".to_owned(),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

/// Makes or upgrades the pismo schema in the database `url`; returns the versions before
/// and after. Safe to run by several processes at once: the first takes a table lock and
/// the others then find the schema current.
pub fn migrate(url: &str) -> Result<(i32, i32), StoreError> {
    let location = redact(url);
    let fail = |action: &str, e: postgres::Error| StoreError {
        message: format!("cannot {action} in {location}: {}", describe(&e)),
    };
    let mut client = config(url)?
        .connect(NoTls)
        .map_err(|e| fail("connect", e))?;
    let mut tx = client
        .transaction()
        .map_err(|e| fail("begin the migration", e))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS pismo_schema (version integer NOT NULL);
         LOCK TABLE pismo_schema IN ACCESS EXCLUSIVE MODE;",
    )
    .map_err(|e| fail("create the schema table", e))?;
    let rows = tx
        .query("SELECT version FROM pismo_schema", &[])
        .map_err(|e| fail("read the schema version", e))?;
    let before: i32 = rows.first().map_or(0, |r| r.get(0));
    if before > SCHEMA_VERSION {
        return Err(StoreError {
            message: format!(
                "{location} has pismo schema v{before}, newer than this pismo's v{SCHEMA_VERSION}: use a newer pismo"
            ),
        });
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(before as usize) {
        tx.batch_execute(sql)
            .map_err(|e| fail(&format!("migrate from schema v{from}"), e))?;
    }
    tx.execute("DELETE FROM pismo_schema", &[])
        .and_then(|_| {
            tx.execute(
                "INSERT INTO pismo_schema (version) VALUES ($1)",
                &[&SCHEMA_VERSION],
            )
        })
        .map_err(|e| fail("record the schema version", e))?;
    tx.commit().map_err(|e| fail("commit the migration", e))?;
    Ok((before, SCHEMA_VERSION))
}

/// The schema version of the database `client` is connected to (0: no pismo schema).
fn schema_version(client: &mut Client) -> Result<i32, postgres::Error> {
    match client.query("SELECT version FROM pismo_schema", &[]) {
        Ok(rows) => Ok(rows.first().map_or(0, |r| r.get(0))),
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => Ok(0),
        Err(e) => Err(e),
    }
}

/// A connection to the database `url` whose pismo schema is this pismo's, and the settings
/// it was made with; a schema that is missing, older or newer is refused with what to do.
/// The connection is opened directly, not through a pool, which would retry a refused
/// connection until its timeout: a wrong host or port fails at once, with the server's or
/// the OS's own reason.
pub(crate) fn connect_current(url: &str) -> Result<(postgres::Config, Client), StoreError> {
    let location = redact(url);
    let config = config(url)?;
    let mut client = config.connect(NoTls).map_err(|e| StoreError {
        message: format!("cannot connect to {location}: {}", describe(&e)),
    })?;
    let version = schema_version(&mut client).map_err(|e| StoreError {
        message: format!(
            "cannot read the schema version of {location}: {}",
            describe(&e)
        ),
    })?;
    let migrate_hint = format!("run `pismo store migrate --store {location}`");
    let problem = match version {
        0 => format!("{location} has no pismo schema: {migrate_hint}"),
        v if v < SCHEMA_VERSION => format!(
            "{location} has pismo schema v{v}, older than this pismo's v{SCHEMA_VERSION}: {migrate_hint}"
        ),
        v if v > SCHEMA_VERSION => format!(
            "{location} has pismo schema v{v}, newer than this pismo's v{SCHEMA_VERSION}: use a newer pismo"
        ),
        _ => return Ok((config, client)),
    };
    Err(StoreError { message: problem })
}

/// [`connect_current`], then a pool of connections with the same settings (the checked
/// connection is not kept: the pool opens its own as they are needed).
pub(crate) fn connect_pool(
    url: &str,
) -> Result<(postgres::Config, Pool<PostgresConnectionManager<NoTls>>), StoreError> {
    let (config, client) = connect_current(url)?;
    drop(client);
    let pool = pool(config.clone());
    Ok((config, pool))
}

/// A pool of connections made with `config`, for the threads of a server.
fn pool(config: postgres::Config) -> Pool<PostgresConnectionManager<NoTls>> {
    let manager = PostgresConnectionManager::new(config, NoTls);
    Pool::builder()
        .max_size(POOL_SIZE)
        .min_idle(Some(0))
        .connection_timeout(CONNECT_TIMEOUT)
        // No test query at every checkout (a round trip per request): a broken connection
        // is still dropped by the pool (`has_broken`) and its failing query reports it.
        .test_on_check_out(false)
        .build_unchecked(manager)
}

/// Whether `e` means the connection is gone: SQLSTATE class 08 (connection exception) or
/// 57P (the server shuts down or ends this session), or no answer from the server at all.
pub(crate) fn is_connection_lost(e: &postgres::Error) -> bool {
    let sqlstate = e.code().map(SqlState::code).unwrap_or("");
    e.is_closed()
        || sqlstate.starts_with("08")
        || sqlstate.starts_with("57P")
        || (e.as_db_error().is_none() && e.code().is_none())
}

/// A registry in a PostgreSQL database (see the module docs).
pub struct PgStore {
    location: String,
    pool: Pool<PostgresConnectionManager<NoTls>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("location", &self.location)
            .finish()
    }
}

impl PgStore {
    /// Connects to the database `url` and checks that its pismo schema is this pismo's.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let (_, pool) = connect_pool(url)?;
        Ok(Self {
            location: redact(url),
            pool,
        })
    }

    fn client(&self) -> Result<PooledConnection<PostgresConnectionManager<NoTls>>, RegistryError> {
        self.pool.get().map_err(|e| RegistryError::Unavailable {
            location: self.location.clone(),
            message: format!("cannot connect to {}: {e}", self.location),
        })
    }

    fn fail(&self, action: &str, e: &postgres::Error) -> RegistryError {
        let location = self.location.clone();
        let message = format!("cannot {action} in {}: {}", self.location, describe(e));
        if is_connection_lost(e) {
            RegistryError::Unavailable { location, message }
        } else {
            RegistryError::Store { location, message }
        }
    }

    /// Checks stored bytes against their stored SHA-256.
    fn checked(&self, id: &ModelId, bytes: Vec<u8>, sha256: &[u8]) -> Result<Vec<u8>, String> {
        if Sha256::digest(&bytes).as_slice() == sha256 {
            Ok(bytes)
        } else {
            Err(format!(
                "model {id} in {} is corrupt: its bytes do not match their SHA-256",
                self.location
            ))
        }
    }

    fn model_id(name: String, version: i32) -> ModelId {
        ModelId {
            name,
            version: version.max(0) as u32,
        }
    }
}

/// Stores `bytes` as `name`, `version` with their SHA-256, in the caller's transaction.
fn store_model(
    tx: &mut postgres::Transaction<'_>,
    name: &str,
    version: i32,
    bytes: &[u8],
) -> Result<(), postgres::Error> {
    let sha256 = Sha256::digest(bytes).to_vec();
    tx.execute(
        "INSERT INTO pismo_models (name, version, bytes, sha256) VALUES ($1, $2, $3, $4)",
        &[&name, &version, &bytes, &sha256],
    )
    .map(|_| ())
}

/// Makes sure `name` never gives `version` again: its row in `pismo_model_names`, made if
/// new, counts at least that far. The row stays locked against other writers of the name
/// until the caller's transaction ends.
fn keep_number(
    tx: &mut postgres::Transaction<'_>,
    name: &str,
    version: i32,
) -> Result<(), postgres::Error> {
    tx.execute(
        "INSERT INTO pismo_model_names (name, last_version) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET last_version = greatest(pismo_model_names.last_version, $2)",
        &[&name, &version],
    )
    .map(|_| ())
}

fn version_param(id: &ModelId) -> i32 {
    i32::try_from(id.version).unwrap_or(i32::MAX)
}

impl ModelStore for PgStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn ids(&self) -> Result<Vec<ModelId>, RegistryError> {
        let rows = self
            .client()?
            .query_typed(
                "SELECT name, version FROM pismo_models ORDER BY name, version",
                &[],
            )
            .map_err(|e| self.fail("list the models", &e))?;
        Ok(rows
            .into_iter()
            .map(|r| Self::model_id(r.get(0), r.get(1)))
            .collect())
    }

    fn insert(
        &self,
        name: &str,
        encode: &mut dyn FnMut(u32) -> Vec<u8>,
    ) -> Result<ModelId, RegistryError> {
        let mut client = self.client()?;
        let fail = |e: postgres::Error| self.fail(&format!("register `{name}`"), &e);
        let mut tx = client.transaction().map_err(fail)?;
        let version: i32 = tx
            .query_one(
                "INSERT INTO pismo_model_names (name, last_version) VALUES ($1, 1)
                 ON CONFLICT (name) DO UPDATE SET last_version = pismo_model_names.last_version + 1
                 RETURNING last_version",
                &[&name],
            )
            .map_err(fail)?
            .get(0);
        let id = Self::model_id(name.to_owned(), version);
        store_model(&mut tx, name, version, &encode(id.version)).map_err(fail)?;
        tx.commit().map_err(fail)?;
        Ok(id)
    }

    fn import(&self, id: &ModelId, bytes: &[u8]) -> Result<bool, RegistryError> {
        let mut client = self.client()?;
        let fail = |e: postgres::Error| self.fail(&format!("store {id}"), &e);
        let version = version_param(id);
        let mut tx = client.transaction().map_err(fail)?;
        keep_number(&mut tx, &id.name, version).map_err(fail)?;
        let taken = tx
            .query_opt(
                "SELECT 1 FROM pismo_models WHERE name = $1 AND version = $2
                 UNION ALL
                 SELECT 1 FROM pismo_deleted_models WHERE name = $1 AND version = $2",
                &[&id.name, &version],
            )
            .map_err(fail)?
            .is_some();
        if taken {
            return Ok(false);
        }
        store_model(&mut tx, &id.name, version, bytes).map_err(fail)?;
        tx.commit().map_err(fail)?;
        Ok(true)
    }

    fn bytes(&self, id: &ModelId) -> Result<Option<Vec<u8>>, RegistryError> {
        let row = self
            .client()?
            .query_opt(
                "SELECT bytes, sha256 FROM pismo_models WHERE name = $1 AND version = $2",
                &[&id.name, &version_param(id)],
            )
            .map_err(|e| self.fail(&format!("read {id}"), &e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let sha256: Vec<u8> = row.get(1);
        self.checked(id, row.get(0), &sha256)
            .map(Some)
            .map_err(|message| RegistryError::Store {
                location: self.location.clone(),
                message,
            })
    }

    fn stamp(&self, id: &ModelId) -> Result<Option<Stamp>, RegistryError> {
        let row = self
            .client()?
            .query_typed_opt(
                "SELECT octet_length(bytes), stored_at FROM pismo_models WHERE name = $1 AND version = $2",
                &[(&id.name, Type::TEXT), (&version_param(id), Type::INT4)],
            )
            .map_err(|e| self.fail(&format!("read {id}"), &e))?;
        Ok(row.map(|r| Stamp {
            size: r.get::<_, i32>(0).max(0) as u64,
            stored: r.get(1),
        }))
    }

    fn models(&self) -> Result<Vec<StoredModel>, RegistryError> {
        let rows = self
            .client()?
            .query(
                "SELECT name, version, bytes, sha256, stored_at FROM pismo_models ORDER BY name, version",
                &[],
            )
            .map_err(|e| self.fail("list the models", &e))?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let id = Self::model_id(r.get(0), r.get(1));
                let sha256: Vec<u8> = r.get(3);
                StoredModel {
                    location: self.location_of(&id),
                    bytes: self.checked(&id, r.get(2), &sha256),
                    stored: r.get(4),
                    id,
                }
            })
            .collect())
    }

    fn location_of(&self, id: &ModelId) -> String {
        format!("{}#{id}", self.location)
    }

    fn aliases(&self) -> Result<BTreeMap<String, ModelId>, RegistryError> {
        let rows = self
            .client()?
            .query_typed("SELECT alias, name, version FROM pismo_aliases", &[])
            .map_err(|e| self.fail("read the aliases", &e))?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get(0), Self::model_id(r.get(1), r.get(2))))
            .collect())
    }

    fn set_alias(&self, alias: &str, id: &ModelId) -> Result<(), RegistryError> {
        let mut client = self.client()?;
        let fail = |e: postgres::Error| {
            if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) {
                RegistryError::NotFound {
                    reference: id.to_string(),
                    message: format!(
                        "cannot point alias `{alias}` at {id}: no such model in {}",
                        self.location
                    ),
                }
            } else {
                self.fail(&format!("point alias `{alias}` at {id}"), &e)
            }
        };
        let version = version_param(id);
        let mut tx = client.transaction().map_err(fail)?;
        tx.execute(
            "INSERT INTO pismo_aliases (alias, name, version) VALUES ($1, $2, $3)
             ON CONFLICT (alias) DO UPDATE SET name = EXCLUDED.name, version = EXCLUDED.version",
            &[&alias, &id.name, &version],
        )
        .map_err(fail)?;
        tx.execute(
            "INSERT INTO pismo_alias_history (alias, name, version) VALUES ($1, $2, $3)",
            &[&alias, &id.name, &version],
        )
        .map_err(fail)?;
        tx.commit().map_err(fail)
    }

    fn remove_alias(&self, alias: &str) -> Result<Option<ModelId>, RegistryError> {
        let mut client = self.client()?;
        let fail = |e: postgres::Error| self.fail(&format!("remove alias `{alias}`"), &e);
        let mut tx = client.transaction().map_err(fail)?;
        let old = tx
            .query_opt(
                "DELETE FROM pismo_aliases WHERE alias = $1 RETURNING name, version",
                &[&alias],
            )
            .map_err(fail)?;
        let Some(old) = old else {
            return Ok(None);
        };
        tx.execute(
            "INSERT INTO pismo_alias_history (alias, name, version) VALUES ($1, NULL, NULL)",
            &[&alias],
        )
        .map_err(fail)?;
        tx.commit().map_err(fail)?;
        Ok(Some(Self::model_id(old.get(0), old.get(1))))
    }

    fn deleted(&self) -> Result<Vec<ModelId>, RegistryError> {
        let rows = self
            .client()?
            .query(
                "SELECT name, version FROM pismo_deleted_models ORDER BY name, version",
                &[],
            )
            .map_err(|e| self.fail("list the deleted models", &e))?;
        Ok(rows
            .iter()
            .map(|r| Self::model_id(r.get(0), r.get(1)))
            .collect())
    }

    fn import_deleted(&self, id: &ModelId) -> Result<bool, RegistryError> {
        let mut client = self.client()?;
        let fail = |e: postgres::Error| self.fail(&format!("record {id} as deleted"), &e);
        let version = version_param(id);
        let mut tx = client.transaction().map_err(fail)?;
        keep_number(&mut tx, &id.name, version).map_err(fail)?;
        let stored = tx
            .query_opt(
                "SELECT 1 FROM pismo_models WHERE name = $1 AND version = $2",
                &[&id.name, &version],
            )
            .map_err(fail)?
            .is_some();
        if stored {
            return Ok(false);
        }
        let recorded = tx
            .execute(
                "INSERT INTO pismo_deleted_models (name, version) VALUES ($1, $2)
                 ON CONFLICT DO NOTHING",
                &[&id.name, &version],
            )
            .map_err(fail)?;
        tx.commit().map_err(fail)?;
        Ok(recorded == 1)
    }

    fn delete(&self, id: &ModelId) -> Result<Result<(), DeleteRefused>, RegistryError> {
        let mut client = self.client()?;
        let fail = |e: postgres::Error| self.fail(&format!("delete {id}"), &e);
        let version = version_param(id);
        let mut tx = client.transaction().map_err(fail)?;
        // Lock the model row first: an alias set meanwhile waits for this transaction and
        // then fails its foreign key.
        let found = tx
            .query_opt(
                "SELECT 1 FROM pismo_models WHERE name = $1 AND version = $2 FOR UPDATE",
                &[&id.name, &version],
            )
            .map_err(fail)?;
        if found.is_none() {
            return Ok(Err(DeleteRefused::Missing));
        }
        let aliases: Vec<String> = tx
            .query(
                "SELECT alias FROM pismo_aliases WHERE name = $1 AND version = $2 ORDER BY alias",
                &[&id.name, &version],
            )
            .map_err(fail)?
            .into_iter()
            .map(|r| r.get(0))
            .collect();
        if !aliases.is_empty() {
            return Ok(Err(DeleteRefused::Aliased(aliases)));
        }
        tx.execute(
            "DELETE FROM pismo_models WHERE name = $1 AND version = $2",
            &[&id.name, &version],
        )
        .map_err(fail)?;
        tx.execute(
            "INSERT INTO pismo_deleted_models (name, version) VALUES ($1, $2)",
            &[&id.name, &version],
        )
        .map_err(fail)?;
        tx.commit().map_err(fail)?;
        Ok(Ok(()))
    }

    fn alias_history(&self) -> Result<Vec<AliasChange>, RegistryError> {
        let rows = self
            .client()?
            .query(
                "SELECT at, alias, name, version FROM pismo_alias_history ORDER BY seq",
                &[],
            )
            .map_err(|e| self.fail("read the alias history", &e))?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let name: Option<String> = r.get(2);
                let version: Option<i32> = r.get(3);
                AliasChange {
                    unix: unix_secs(r.get(0)),
                    alias: r.get(1),
                    model: name.zip(version).map(|(n, v)| Self::model_id(n, v)),
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://ann:s3cret@db.example:5432/pismo"),
            "postgres://ann:***@db.example:5432/pismo"
        );
        assert_eq!(
            redact("postgres://ann@db.example/pismo?sslmode=disable"),
            "postgres://ann@db.example/pismo?sslmode=disable"
        );
        assert_eq!(redact("postgresql://db/x"), "postgresql://db/x");
    }
}
