//! Run records in PostgreSQL: the runs of every `pismo train`, `pismo tune` trial and
//! training started from the page, on every host that names the database, in one place that
//! `pismo runs`, every `pismo serve` replica and `pismo runs export` read.
//!
//! Tables (schema v3, [`crate::postgres::migrate`]):
//!
//! ```text
//! pismo_runs        (run_id PK, serial UNIQUE, status, start_unix_ms, info)  info: RunInfo as JSON
//! pismo_run_metrics (seq PK, run_id, step, name, value, logged_ms)
//! pismo_run_log     (seq PK, run_id, at, text)         text: one line with its newline
//! ```
//!
//! Guarantees, beside those of every run store ([`pismo_storage::runs::store`]):
//! - A run is created, and imported, in one transaction; its id is its primary key, so two
//!   writers never share one.
//! - A writer holds a session advisory lock on its run's serial for as long as its
//!   connection lives (taken in the transaction that creates the run, so no reader sees the
//!   run without it). A run still `running` whose lock nobody holds lost its writer (process
//!   killed, host gone, connection cut) and is read as `failed`, ended at its last metric or
//!   log line; this holds across hosts, where a process id would mean nothing.
//! - Each writer has a connection of its own; readers share a small pool.

use pismo_storage::runs::store::{RunSink, RunStore};
use pismo_storage::runs::{Metric, RunInfo, RunRecord, RunsError, Status};
use postgres::types::ToSql;
use postgres::{Client, NoTls, Row};
use r2d2_postgres::r2d2::{Pool, PooledConnection};
use r2d2_postgres::PostgresConnectionManager;

use crate::postgres::{connect_pool, describe, redact};
use crate::StoreError;

/// The first key of the advisory locks writers hold on their runs ("pism"); the second is
/// the run's serial.
const LOCK_SPACE: i32 = 0x7069_736d;

/// The runs in a PostgreSQL database.
pub struct PgRuns {
    location: String,
    config: postgres::Config,
    pool: Pool<PostgresConnectionManager<NoTls>>,
}

impl std::fmt::Debug for PgRuns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRuns")
            .field("location", &self.location)
            .finish()
    }
}

/// `run` in the words of a message: `DATABASE#RUN`.
fn run_location(location: &str, id: &str) -> String {
    format!("{location}#{id}")
}

/// The text the log table keeps: PostgreSQL's text cannot hold NUL.
fn storable(text: &str) -> String {
    text.replace('\0', "\u{fffd}")
}

fn fail(location: &str, action: &str, e: &postgres::Error) -> RunsError {
    RunsError::Store {
        location: location.to_owned(),
        message: format!("cannot {action} in {location}: {}", describe(e)),
    }
}

fn to_json(location: &str, info: &RunInfo) -> Result<String, RunsError> {
    serde_json::to_string(info).map_err(|e| RunsError::Corrupt {
        location: run_location(location, &info.run_id),
        detail: e.to_string(),
    })
}

fn start_ms(info: &RunInfo) -> i64 {
    i64::try_from(info.start_unix_ms).unwrap_or(i64::MAX)
}

fn insert_run(
    client: &mut impl postgres::GenericClient,
    json: &str,
    info: &RunInfo,
) -> Result<Option<i32>, postgres::Error> {
    let row = client.query_opt(
        "INSERT INTO pismo_runs (run_id, status, start_unix_ms, info) VALUES ($1, $2, $3, $4)
         ON CONFLICT (run_id) DO NOTHING RETURNING serial",
        &[&info.run_id, &info.status.as_str(), &start_ms(info), &json],
    )?;
    Ok(row.map(|r| r.get(0)))
}

fn insert_metric(
    client: &mut impl postgres::GenericClient,
    id: &str,
    m: &Metric,
) -> Result<(), postgres::Error> {
    let params: [&(dyn ToSql + Sync); 5] = [
        &id,
        &i64::from(m.step),
        &m.name,
        &m.value,
        &i64::try_from(m.timestamp).unwrap_or(i64::MAX),
    ];
    client.execute(
        "INSERT INTO pismo_run_metrics (run_id, step, name, value, logged_ms)
         VALUES ($1, $2, $3, $4, $5)",
        &params,
    )?;
    Ok(())
}

fn insert_log(
    client: &mut impl postgres::GenericClient,
    id: &str,
    text: &str,
) -> Result<(), postgres::Error> {
    client.execute(
        "INSERT INTO pismo_run_log (run_id, text) VALUES ($1, $2)",
        &[&id, &storable(text)],
    )?;
    Ok(())
}

impl PgRuns {
    /// Connects to the database `url` and checks that its pismo schema is this pismo's.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let (config, pool) = connect_pool(url)?;
        Ok(Self {
            location: redact(url),
            pool,
            config,
        })
    }

    fn client(&self) -> Result<PooledConnection<PostgresConnectionManager<NoTls>>, RunsError> {
        self.pool.get().map_err(|e| RunsError::Store {
            location: self.location.clone(),
            message: format!("cannot connect to {}: {e}", self.location),
        })
    }

    fn fail(&self, action: &str, e: &postgres::Error) -> RunsError {
        fail(&self.location, action, e)
    }

    /// A run's record from its row: `run_id, info, orphaned, last_ms`.
    fn read_row(&self, row: &Row) -> Result<RunInfo, RunsError> {
        let id: String = row.get(0);
        let json: String = row.get(1);
        let mut info: RunInfo = serde_json::from_str(&json).map_err(|e| RunsError::Corrupt {
            location: run_location(&self.location, &id),
            detail: e.to_string(),
        })?;
        if info.run_id != id {
            return Err(RunsError::Corrupt {
                location: run_location(&self.location, &id),
                detail: format!("it records run `{}`", info.run_id),
            });
        }
        if row.get::<_, bool>(2) {
            let last: Option<i64> = row.get(3);
            info.status = Status::Failed;
            info.error = Some(
                "the training process ended without closing the run (killed, crashed or cut off from the database)"
                    .to_owned(),
            );
            info.end_unix_ms = Some(
                last.and_then(|ms| u64::try_from(ms).ok())
                    .unwrap_or(info.start_unix_ms)
                    .max(info.start_unix_ms),
            );
        }
        Ok(info)
    }

    fn not_found(&self, id: &str) -> RunsError {
        RunsError::NotFound {
            id: id.to_owned(),
            location: self.location.clone(),
        }
    }

    /// Fails with "no such run" unless run `id` exists.
    fn check_exists(&self, client: &mut Client, id: &str) -> Result<(), RunsError> {
        let found = client
            .query_opt("SELECT 1 FROM pismo_runs WHERE run_id = $1", &[&id])
            .map_err(|e| self.fail(&format!("read run {id}"), &e))?;
        match found {
            Some(_) => Ok(()),
            None => Err(self.not_found(id)),
        }
    }
}

/// The runs with whether each lost its writer, and then its last sign of life (Unix ms).
const SELECT_RUNS: &str = "
SELECT r.run_id, r.info, o.orphaned,
       CASE WHEN o.orphaned THEN greatest(
           (SELECT max(m.logged_ms) FROM pismo_run_metrics m WHERE m.run_id = r.run_id),
           (SELECT (extract(epoch FROM max(g.at)) * 1000)::bigint
              FROM pismo_run_log g WHERE g.run_id = r.run_id))
       END
FROM pismo_runs r
CROSS JOIN LATERAL (
    SELECT r.status = 'running' AND NOT EXISTS (
        SELECT 1 FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.classid = $1::int4::oid AND l.objid = r.serial::oid
    ) AS orphaned
) o";

impl RunStore for PgRuns {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn create(&self, info: &RunInfo) -> Result<Option<Box<dyn RunSink>>, RunsError> {
        let json = to_json(&self.location, info)?;
        let action = format!("create run {}", info.run_id);
        // A connection of the writer's own: its advisory lock lives as long as it does.
        let mut client = self
            .config
            .connect(NoTls)
            .map_err(|e| self.fail(&action, &e))?;
        let mut tx = client.transaction().map_err(|e| self.fail(&action, &e))?;
        let Some(serial) = insert_run(&mut tx, &json, info).map_err(|e| self.fail(&action, &e))?
        else {
            return Ok(None);
        };
        tx.execute("SELECT pg_advisory_lock($1, $2)", &[&LOCK_SPACE, &serial])
            .map_err(|e| self.fail(&action, &e))?;
        tx.commit().map_err(|e| self.fail(&action, &e))?;
        Ok(Some(Box::new(PgSink {
            location: self.location.clone(),
            id: info.run_id.clone(),
            client,
        })))
    }

    fn list(&self) -> Result<(Vec<RunInfo>, Vec<RunsError>), RunsError> {
        let rows = self
            .client()?
            .query(SELECT_RUNS, &[&LOCK_SPACE])
            .map_err(|e| self.fail("list the runs", &e))?;
        let mut runs = Vec::with_capacity(rows.len());
        let mut problems = Vec::new();
        for row in &rows {
            match self.read_row(row) {
                Ok(info) => runs.push(info),
                Err(e) => problems.push(e),
            }
        }
        Ok((runs, problems))
    }

    fn info(&self, id: &str) -> Result<RunInfo, RunsError> {
        let row = self
            .client()?
            .query_opt(
                &format!("{SELECT_RUNS} WHERE r.run_id = $2"),
                &[&LOCK_SPACE, &id],
            )
            .map_err(|e| self.fail(&format!("read run {id}"), &e))?;
        match row {
            Some(row) => self.read_row(&row),
            None => Err(self.not_found(id)),
        }
    }

    fn metrics(&self, id: &str) -> Result<Vec<Metric>, RunsError> {
        let mut client = self.client()?;
        let action = format!("read the metrics of run {id}");
        let rows = client
            .query(
                "SELECT step, name, value, logged_ms FROM pismo_run_metrics
                 WHERE run_id = $1 ORDER BY seq",
                &[&id],
            )
            .map_err(|e| self.fail(&action, &e))?;
        if rows.is_empty() {
            self.check_exists(&mut client, id)?;
        }
        Ok(rows
            .iter()
            .map(|r| Metric {
                step: u32::try_from(r.get::<_, i64>(0)).unwrap_or(u32::MAX),
                name: r.get(1),
                value: r.get(2),
                timestamp: u64::try_from(r.get::<_, i64>(3)).unwrap_or(0),
            })
            .collect())
    }

    fn log(&self, id: &str) -> Result<String, RunsError> {
        let mut client = self.client()?;
        let row = client
            .query_one(
                "SELECT string_agg(text, '' ORDER BY seq) FROM pismo_run_log WHERE run_id = $1",
                &[&id],
            )
            .map_err(|e| self.fail(&format!("read the log of run {id}"), &e))?;
        match row.get::<_, Option<String>>(0) {
            Some(log) => Ok(log),
            None => self.check_exists(&mut client, id).map(|()| String::new()),
        }
    }

    fn set_model(&self, id: &str, model: &str) -> Result<(), RunsError> {
        let mut client = self.client()?;
        let action = format!("record the model of run {id}");
        let mut tx = client.transaction().map_err(|e| self.fail(&action, &e))?;
        let row = tx
            .query_opt(
                "SELECT info FROM pismo_runs WHERE run_id = $1 FOR UPDATE",
                &[&id],
            )
            .map_err(|e| self.fail(&action, &e))?
            .ok_or_else(|| self.not_found(id))?;
        let mut info: RunInfo =
            serde_json::from_str(row.get::<_, &str>(0)).map_err(|e| RunsError::Corrupt {
                location: run_location(&self.location, id),
                detail: e.to_string(),
            })?;
        info.model = Some(model.to_owned());
        let json = to_json(&self.location, &info)?;
        tx.execute(
            "UPDATE pismo_runs SET info = $2 WHERE run_id = $1",
            &[&id, &json],
        )
        .map_err(|e| self.fail(&action, &e))?;
        tx.commit().map_err(|e| self.fail(&action, &e))
    }

    fn import(&self, run: &RunRecord, log: &str) -> Result<bool, RunsError> {
        let id = &run.info.run_id;
        let json = to_json(&self.location, &run.info)?;
        let action = format!("store run {id}");
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(|e| self.fail(&action, &e))?;
        let stored = (|| {
            if insert_run(&mut tx, &json, &run.info)?.is_none() {
                return Ok(false);
            }
            for m in &run.metrics {
                insert_metric(&mut tx, id, m)?;
            }
            for line in log.split_inclusive('\n') {
                insert_log(&mut tx, id, line)?;
            }
            Ok(true)
        })()
        .map_err(|e| self.fail(&action, &e))?;
        tx.commit().map_err(|e| self.fail(&action, &e))?;
        Ok(stored)
    }
}

/// One run's writer: a connection of its own, which holds the run's advisory lock.
struct PgSink {
    location: String,
    id: String,
    client: Client,
}

impl std::fmt::Debug for PgSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSink")
            .field("location", &self.location)
            .field("id", &self.id)
            .finish()
    }
}

impl PgSink {
    fn fail(&self, action: &str, e: &postgres::Error) -> RunsError {
        fail(&self.location, &format!("{action} of run {}", self.id), e)
    }
}

impl RunSink for PgSink {
    fn write_info(&mut self, info: &RunInfo) -> Result<(), RunsError> {
        let json = to_json(&self.location, info)?;
        self.client
            .execute(
                "UPDATE pismo_runs SET info = $2, status = $3 WHERE run_id = $1",
                &[&self.id, &json, &info.status.as_str()],
            )
            .map(drop)
            .map_err(|e| self.fail("write the record", &e))
    }

    fn append_metric(&mut self, metric: &Metric) -> Result<(), RunsError> {
        insert_metric(&mut self.client, &self.id, metric)
            .map_err(|e| self.fail("append a metric", &e))
    }

    fn append_log(&mut self, line: &str) -> Result<(), RunsError> {
        insert_log(&mut self.client, &self.id, &format!("{line}\n"))
            .map_err(|e| self.fail("append to the log", &e))
    }
}
