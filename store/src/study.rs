//! A tuning study in PostgreSQL, shared by `pismo tune` workers on any hosts (the
//! [`StudyStore`] of a study whose `--store` is a database).
//!
//! Tables (schema v2, made by `pismo store migrate`):
//!
//! ```text
//! pismo_studies      (name PK, best_model, best_accuracy, best_loss, best_serial, registered_serial)
//! pismo_study_events (seq PK, study, at, event)         the journal: one JSON event per row
//! pismo_trials       (study, trial PK, params, worker, lease_until, claims, ended)
//! ```
//!
//! How workers share a study:
//! - **Claims are leases.** A worker claims a trial by owning its `pismo_trials` row until
//!   `lease_until`; every event it appends for the trial and a renewal at least every
//!   quarter of the lease push `lease_until` on. A worker that dies (kill -9, a lost host)
//!   stops renewing; once its lease has run out another worker claims the trial with
//!   `SELECT … FOR UPDATE SKIP LOCKED` (two claimers never wait on or take the same row) and
//!   runs it again from the start.
//! - **New trial numbers** are given under a row lock on the study, so two workers never get
//!   one number, and never more than the trial limit: when every trial left is claimed by
//!   live workers, a worker is told to wait ([`Claim::Wait`]), since a claim may still
//!   expire.
//! - **A lost claim is refused.** Each event of a trial is appended in one transaction with
//!   the check that this worker still holds the trial: a worker whose lease ran out while it
//!   was merely slow learns it ([`StoreError::Lost`]) and drops the trial, so no trial is
//!   ended twice.
//! - **The best model** is one row's compare-and-set: a trial's model replaces the kept one
//!   only if it is better, whichever worker finishes first. The last worker out registers it,
//!   once per best model (`registered_serial`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use pismo_storage::studies::journal::{Claim, JournalEvent, Registration, StoreError, StudyStore};
use pismo_storage::studies::shelf::{CreateError, StudyShelf};
use postgres::{Client, GenericClient, NoTls};
use r2d2_postgres::r2d2::Pool;
use r2d2_postgres::PostgresConnectionManager;

use crate::postgres::{connect_current, connect_pool, describe, redact};

/// How long a claim lasts without news unless `--lease` says otherwise.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// Whether a worker starts a study or joins one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Join {
    /// Make the study: it must not exist.
    Create,
    /// Work on a study that exists (carry it on, or help the workers on it).
    Resume,
}

/// Why a shared study cannot be opened.
#[derive(Debug)]
pub enum OpenError {
    /// [`Join::Create`] of a study that exists.
    Exists(String),
    /// [`Join::Resume`] of a study that does not exist.
    Missing(String),
    /// The database failed, or its schema is not this pismo's.
    Store(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Exists(m) | OpenError::Missing(m) | OpenError::Store(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for OpenError {}

/// One worker's connection to a study in a PostgreSQL database.
pub struct PgStudy {
    location: String,
    study: String,
    worker: String,
    lease: Duration,
    client: Client,
    /// When this worker last pushed each of its trials' leases on.
    renewed: BTreeMap<u32, Instant>,
}

impl std::fmt::Debug for PgStudy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStudy")
            .field("location", &self.location)
            .field("worker", &self.worker)
            .finish_non_exhaustive()
    }
}

/// This process's name among a study's workers: host, process id and start time.
fn worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{host}:{}:{nanos:08x}", std::process::id())
}

impl PgStudy {
    /// Opens study `name` in the database `url` as a new worker whose claims last `lease`.
    pub fn open(url: &str, name: &str, join: Join, lease: Duration) -> Result<PgStudy, OpenError> {
        let location = redact(url);
        let (_, mut client) = connect_current(url).map_err(|e| OpenError::Store(e.message))?;
        let fail = |e: postgres::Error| {
            OpenError::Store(format!(
                "cannot open study `{name}` in {location}: {}",
                describe(&e)
            ))
        };
        match join {
            Join::Create => {
                let made = client
                    .execute(
                        "INSERT INTO pismo_studies (name) VALUES ($1) ON CONFLICT DO NOTHING",
                        &[&name],
                    )
                    .map_err(fail)?;
                // A study made by a worker that failed before its first event is reused.
                let mut empty = || -> Result<bool, postgres::Error> {
                    let events: i64 = client
                        .query_one(
                            "SELECT count(*) FROM pismo_study_events WHERE study = $1",
                            &[&name],
                        )?
                        .get(0);
                    Ok(events == 0)
                };
                if made == 0 && !empty().map_err(fail)? {
                    return Err(OpenError::Exists(format!(
                        "study `{name}` exists in {location}: add --resume to carry it on or to work on it beside its other workers, or choose another --study"
                    )));
                }
            }
            Join::Resume => {
                let found = client
                    .query("SELECT 1 FROM pismo_studies WHERE name = $1", &[&name])
                    .map_err(fail)?;
                if found.is_empty() {
                    return Err(OpenError::Missing(format!(
                        "no study `{name}` in {location} to resume"
                    )));
                }
            }
        }
        Ok(PgStudy {
            location,
            study: name.to_owned(),
            worker: worker_name(),
            lease,
            client,
            renewed: BTreeMap::new(),
        })
    }

    /// This worker's name, as `pismo_trials.worker` records it.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    fn fail(&self, action: &str, e: &postgres::Error) -> StoreError {
        StoreError::Shared(format!(
            "study `{}` in {}: cannot {action}: {}",
            self.study,
            self.location,
            describe(e)
        ))
    }

    fn lease_secs(&self) -> f64 {
        self.lease.as_secs_f64()
    }

    /// Claims a trial whose lease ran out (its worker died or gave it up), if there is one
    /// no other worker is claiming this instant.
    fn reclaim(&mut self) -> Result<Option<Claim>, postgres::Error> {
        let lease = self.lease_secs();
        let mut tx = self.client.transaction()?;
        let row = tx.query_opt(
            "SELECT trial, params FROM pismo_trials
              WHERE study = $1 AND NOT ended AND lease_until <= now()
              ORDER BY trial LIMIT 1
                FOR UPDATE SKIP LOCKED",
            &[&self.study],
        )?;
        let Some(row) = row else {
            return Ok(None);
        };
        let trial: i32 = row.get(0);
        let params: Option<String> = row.get(1);
        tx.execute(
            "UPDATE pismo_trials
                SET worker = $3, lease_until = now() + $4 * interval '1 second',
                    claims = claims + 1
              WHERE study = $1 AND trial = $2",
            &[&self.study, &trial, &self.worker, &lease],
        )?;
        tx.commit()?;
        let trial = trial as u32;
        // A trial whose worker died before it started has no settings yet: it is new.
        let values: Option<BTreeMap<String, f64>> =
            params.and_then(|p| serde_json::from_str(&p).ok());
        Ok(Some(match values {
            Some(values) => Claim::Rerun { trial, values },
            None => Claim::New { trial },
        }))
    }

    /// Gives out the next trial number, unless `limit` numbers are out: then waiting while
    /// live workers hold unfinished trials, done when every trial has ended.
    fn claim_new(&mut self, limit: Option<u32>) -> Result<Claim, postgres::Error> {
        let lease = self.lease_secs();
        let mut tx = self.client.transaction()?;
        // One claimer of a new number at a time, on any host.
        tx.execute(
            "SELECT 1 FROM pismo_studies WHERE name = $1 FOR UPDATE",
            &[&self.study],
        )?;
        let row = tx.query_one(
            "SELECT count(*), count(*) FILTER (WHERE NOT ended), coalesce(max(trial) + 1, 0)
               FROM pismo_trials WHERE study = $1",
            &[&self.study],
        )?;
        let (given, unfinished, next): (i64, i64, i32) = (row.get(0), row.get(1), row.get(2));
        if limit.is_some_and(|n| given >= i64::from(n)) {
            return Ok(if unfinished > 0 {
                Claim::Wait
            } else {
                Claim::Done
            });
        }
        tx.execute(
            "INSERT INTO pismo_trials (study, trial, worker, lease_until)
             VALUES ($1, $2, $3, now() + $4 * interval '1 second')",
            &[&self.study, &next, &self.worker, &lease],
        )?;
        tx.commit()?;
        Ok(Claim::New { trial: next as u32 })
    }

    /// Pushes this worker's lease on `trial` on, in `tx`; false if it no longer holds it.
    fn hold(
        tx: &mut postgres::Transaction<'_>,
        study: &str,
        worker: &str,
        trial: u32,
        lease: f64,
    ) -> Result<bool, postgres::Error> {
        let trial = trial as i32;
        let held = tx.execute(
            "UPDATE pismo_trials SET lease_until = now() + $4 * interval '1 second'
              WHERE study = $1 AND trial = $2 AND worker = $3 AND NOT ended",
            &[&study, &trial, &worker, &lease],
        )?;
        Ok(held == 1)
    }
}

/// The trial an event is about, if it is about one.
fn trial_of(event: &JournalEvent) -> Option<u32> {
    match event {
        JournalEvent::Study { .. } => None,
        JournalEvent::Started { trial, .. }
        | JournalEvent::Epoch { trial, .. }
        | JournalEvent::Ended { trial, .. } => Some(*trial),
    }
}

impl StudyStore for PgStudy {
    fn location(&self) -> String {
        format!("study `{}` in {}", self.study, self.location)
    }

    fn events(&mut self) -> Result<Vec<JournalEvent>, StoreError> {
        read_events(&mut self.client, &self.location, &self.study)
    }

    fn append(&mut self, event: &JournalEvent) -> Result<(), StoreError> {
        let text = serde_json::to_string(event).expect("events serialise");
        let (study, worker, lease) = (self.study.clone(), self.worker.clone(), self.lease_secs());
        let result = (|| -> Result<Result<(), StoreError>, postgres::Error> {
            let mut tx = self.client.transaction()?;
            if let Some(trial) = trial_of(event) {
                if !Self::hold(&mut tx, &study, &worker, trial, lease)? {
                    return Ok(Err(StoreError::Lost(trial)));
                }
                let t = trial as i32;
                match event {
                    JournalEvent::Started { values, .. } => {
                        let params = serde_json::to_string(values).expect("values serialise");
                        tx.execute(
                            "UPDATE pismo_trials SET params = $3 WHERE study = $1 AND trial = $2",
                            &[&study, &t, &params],
                        )?;
                    }
                    JournalEvent::Ended { .. } => {
                        tx.execute(
                            "UPDATE pismo_trials SET ended = true WHERE study = $1 AND trial = $2",
                            &[&study, &t],
                        )?;
                    }
                    _ => {}
                }
            }
            tx.execute(
                "INSERT INTO pismo_study_events (study, event) VALUES ($1, $2)",
                &[&study, &text],
            )?;
            tx.commit()?;
            Ok(Ok(()))
        })();
        match result {
            Ok(Ok(())) => {
                if let Some(trial) = trial_of(event) {
                    if matches!(event, JournalEvent::Ended { .. }) {
                        self.renewed.remove(&trial);
                    } else {
                        self.renewed.insert(trial, Instant::now());
                    }
                }
                Ok(())
            }
            Ok(Err(lost)) => Err(lost),
            Err(e) => Err(self.fail("append an event", &e)),
        }
    }

    fn claim(&mut self, limit: Option<u32>) -> Result<Claim, StoreError> {
        let claim = match self.reclaim() {
            Ok(Some(claim)) => claim,
            Ok(None) => self
                .claim_new(limit)
                .map_err(|e| self.fail("claim a trial", &e))?,
            Err(e) => return Err(self.fail("claim a trial", &e)),
        };
        if let Claim::Rerun { trial, .. } | Claim::New { trial } = claim {
            self.renewed.insert(trial, Instant::now());
        }
        Ok(claim)
    }

    fn renew(&mut self, trial: u32) -> Result<(), StoreError> {
        if self
            .renewed
            .get(&trial)
            .is_some_and(|at| at.elapsed() < self.lease / 4)
        {
            return Ok(());
        }
        let (study, worker, lease) = (self.study.clone(), self.worker.clone(), self.lease_secs());
        let held = self
            .client
            .transaction()
            .and_then(|mut tx| {
                let held = Self::hold(&mut tx, &study, &worker, trial, lease)?;
                tx.commit().map(|()| held)
            })
            .map_err(|e| self.fail("renew its claim on a trial", &e))?;
        if !held {
            return Err(StoreError::Lost(trial));
        }
        self.renewed.insert(trial, Instant::now());
        Ok(())
    }

    fn release(&mut self, trial: u32) -> Result<(), StoreError> {
        self.renewed.remove(&trial);
        let t = trial as i32;
        self.client
            .execute(
                "UPDATE pismo_trials SET lease_until = now() - interval '1 second'
                  WHERE study = $1 AND trial = $2 AND worker = $3 AND NOT ended",
                &[&self.study, &t, &self.worker],
            )
            .map(|_| ())
            .map_err(|e| self.fail("give up a trial", &e))
    }

    fn best_model(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        self.client
            .query_one(
                "SELECT best_model FROM pismo_studies WHERE name = $1",
                &[&self.study],
            )
            .map(|row| row.get(0))
            .map_err(|e| self.fail("read its best model", &e))
    }

    fn keep_best(
        &mut self,
        model: &[u8],
        val_accuracy: f64,
        val_loss: f64,
    ) -> Result<bool, StoreError> {
        self.client
            .execute(
                "UPDATE pismo_studies
                    SET best_model = $2, best_accuracy = $3, best_loss = $4,
                        best_serial = best_serial + 1
                  WHERE name = $1
                    AND (best_accuracy IS NULL OR $3 > best_accuracy
                         OR ($3 = best_accuracy AND $4 < best_loss))",
                &[&self.study, &model, &val_accuracy, &val_loss],
            )
            .map(|kept| kept == 1)
            .map_err(|e| self.fail("keep its best model", &e))
    }

    fn take_registration(&mut self) -> Result<Registration, StoreError> {
        let (study, worker) = (self.study.clone(), self.worker.clone());
        let answer = (|| -> Result<Registration, postgres::Error> {
            let mut tx = self.client.transaction()?;
            let row = tx.query_one(
                "SELECT best_model, best_serial, registered_serial FROM pismo_studies
                  WHERE name = $1 FOR UPDATE",
                &[&study],
            )?;
            let (model, best, registered): (Option<Vec<u8>>, i32, i32) =
                (row.get(0), row.get(1), row.get(2));
            let Some(model) = model else {
                return Ok(Registration::NoModel);
            };
            if registered == best {
                return Ok(Registration::AlreadyRegistered);
            }
            let others: i64 = tx
                .query_one(
                    "SELECT count(*) FROM pismo_trials
                      WHERE study = $1 AND NOT ended AND lease_until > now() AND worker <> $2",
                    &[&study, &worker],
                )?
                .get(0);
            if others > 0 {
                return Ok(Registration::OthersRunning);
            }
            tx.execute(
                "UPDATE pismo_studies SET registered_serial = best_serial WHERE name = $1",
                &[&study],
            )?;
            tx.commit()?;
            Ok(Registration::Register(model))
        })();
        answer.map_err(|e| self.fail("decide who registers its best model", &e))
    }
}

/// Every event of `study`, in order.
fn read_events(
    client: &mut impl GenericClient,
    location: &str,
    study: &str,
) -> Result<Vec<JournalEvent>, StoreError> {
    let rows = client
        .query(
            "SELECT seq, event FROM pismo_study_events WHERE study = $1 ORDER BY seq",
            &[&study],
        )
        .map_err(|e| {
            StoreError::Shared(format!(
                "study `{study}` in {location}: cannot read its events: {}",
                describe(&e)
            ))
        })?;
    rows.iter()
        .map(|row| {
            let seq: i64 = row.get(0);
            let text: String = row.get(1);
            serde_json::from_str(&text).map_err(|e| {
                StoreError::Shared(format!(
                    "study `{study}` in {location}: event {seq} is corrupt: {e}"
                ))
            })
        })
        .collect()
}

/// Every study in a PostgreSQL database, as `pismo serve` lists, starts and reads them.
/// A study started here is a shared study like any other: `pismo tune --store … --study
/// NAME --resume` workers on other hosts can join it.
pub struct PgShelf {
    url: String,
    location: String,
    pool: Pool<PostgresConnectionManager<NoTls>>,
}

impl std::fmt::Debug for PgShelf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgShelf")
            .field("location", &self.location)
            .finish()
    }
}

impl PgShelf {
    /// Connects to the database `url` and checks that its pismo schema is this pismo's.
    pub fn connect(url: &str) -> Result<Self, crate::StoreError> {
        let (_, pool) = connect_pool(url)?;
        Ok(Self {
            url: url.to_owned(),
            location: redact(url),
            pool,
        })
    }

    fn query_opt(
        &self,
        action: &str,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Option<postgres::Row>, StoreError> {
        let fail = |message: String| {
            StoreError::Shared(format!("cannot {action} in {}: {message}", self.location))
        };
        let mut client = self.pool.get().map_err(|e| fail(e.to_string()))?;
        client
            .query_opt(sql, params)
            .map_err(|e| fail(describe(&e)))
    }
}

impl StudyShelf for PgShelf {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn create(&self, name: &str) -> Result<Box<dyn StudyStore>, CreateError> {
        match PgStudy::open(&self.url, name, Join::Create, DEFAULT_LEASE) {
            Ok(study) => Ok(Box::new(study)),
            Err(OpenError::Exists(m)) => Err(CreateError::Exists(m)),
            Err(e) => Err(CreateError::Failed(e.to_string())),
        }
    }

    fn names(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let fail = |message: String| {
            StoreError::Shared(format!(
                "cannot list the studies in {}: {message}",
                self.location
            ))
        };
        let mut client = self.pool.get().map_err(|e| fail(e.to_string()))?;
        let rows = client
            .query(
                "SELECT s.name, (extract(epoch FROM coalesce(max(e.at), s.created_at)) * 1000)::bigint
                   FROM pismo_studies s LEFT JOIN pismo_study_events e ON e.study = s.name
                  GROUP BY s.name, s.created_at",
                &[],
            )
            .map_err(|e| fail(describe(&e)))?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), u64::try_from(r.get::<_, i64>(1)).unwrap_or(0)))
            .collect())
    }

    fn events(&self, name: &str) -> Result<Option<Vec<JournalEvent>>, StoreError> {
        let fail = |message: String| {
            StoreError::Shared(format!("study `{name}` in {}: {message}", self.location))
        };
        let mut client = self.pool.get().map_err(|e| fail(e.to_string()))?;
        let found = client
            .query_opt("SELECT 1 FROM pismo_studies WHERE name = $1", &[&name])
            .map_err(|e| fail(describe(&e)))?;
        match found {
            Some(_) => read_events(&mut *client, &self.location, name).map(Some),
            None => Ok(None),
        }
    }

    fn best_model(&self, name: &str) -> Option<Vec<u8>> {
        self.query_opt(
            "read a study's best model",
            "SELECT best_model FROM pismo_studies WHERE name = $1",
            &[&name],
        )
        .ok()
        .flatten()
        .and_then(|row| row.get(0))
    }

    /// A study is worked on while a worker holds a live lease on one of its trials.
    fn in_use(&self, name: &str) -> bool {
        self.query_opt(
            "read a study's trials",
            "SELECT 1 FROM pismo_trials
              WHERE study = $1 AND NOT ended AND lease_until > now() LIMIT 1",
            &[&name],
        )
        .is_ok_and(|row| row.is_some())
    }
}
