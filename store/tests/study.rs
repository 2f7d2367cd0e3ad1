//! A tuning study's store on every backend: one suite, two backends. Each test runs on a
//! study journal folder and on a real PostgreSQL database (a throwaway cluster,
//! `pismo_tests::postgres`) and asserts the same outcomes on both; what only a shared store
//! does (two workers, leases that run out) follows on the database alone.

use std::collections::BTreeMap;
use std::time::Duration;

use pismo_storage::studies::journal::{
    Claim, FileJournal, JournalEvent, Registration, Replay, StoreError, StudyStore, TrialState,
};
use pismo_store::postgres::migrate;
use pismo_store::study::{Join, OpenError, PgStudy};
use pismo_tests::postgres::{postgres_or_skip, PgCluster};
use pismo_tests::TempDir;

/// Opens study `name` as a worker: a journal in a folder, or a study in a database.
enum Backend {
    Folder(TempDir),
    Postgres { _cluster: PgCluster, url: String },
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Folder(_) => "folder",
            Backend::Postgres { .. } => "postgres",
        }
    }

    fn open(&self, study: &str, join: Join, lease: Duration) -> Box<dyn StudyStore> {
        match self {
            Backend::Folder(dir) => Box::new(FileJournal::open(dir.path(), study).unwrap()),
            Backend::Postgres { url, .. } => {
                Box::new(PgStudy::open(url, study, join, lease).unwrap())
            }
        }
    }
}

/// A cluster with a fresh migrated database, and its URL; `None` when PostgreSQL is missing
/// and not required (the harness said SKIPPED).
fn database(test: &str) -> Option<(PgCluster, String)> {
    let cluster = postgres_or_skip(test)?;
    let url = cluster.create_database("studies");
    migrate(&url).expect("migrate");
    Some((cluster, url))
}

/// A fresh folder and a fresh migrated database (`None` as [`database`]).
fn backends(test: &str) -> Option<Vec<Backend>> {
    let (cluster, url) = database(test)?;
    Some(vec![
        Backend::Folder(TempDir::new("study-folder")),
        Backend::Postgres {
            _cluster: cluster,
            url,
        },
    ])
}

fn values(lr: f64) -> BTreeMap<String, f64> {
    BTreeMap::from([("initial_lr".to_owned(), lr)])
}

fn started(trial: u32, lr: f64) -> JournalEvent {
    JournalEvent::Started {
        trial,
        values: values(lr),
        run_id: format!("run-{trial}"),
    }
}

fn ended(trial: u32, score: f64) -> JournalEvent {
    JournalEvent::Ended {
        trial,
        state: TrialState::Complete,
        score: Some(score),
        epochs: 2,
        elapsed: 1.0,
    }
}

const LEASE: Duration = Duration::from_secs(60);

#[test]
fn claims_give_new_numbers_up_to_the_limit_and_events_read_back_in_order() {
    let Some(all) = backends("claims_give_new_numbers_up_to_the_limit_…") else {
        return;
    };
    for backend in &all {
        let name = backend.name();
        let mut store = backend.open("s", Join::Create, LEASE);
        assert_eq!(
            store.claim(Some(2)).unwrap(),
            Claim::New { trial: 0 },
            "{name}"
        );
        assert_eq!(
            store.claim(Some(2)).unwrap(),
            Claim::New { trial: 1 },
            "{name}"
        );
        store.append(&started(0, 0.1)).unwrap();
        store.append(&started(1, 0.2)).unwrap();
        store.append(&ended(1, 0.9)).unwrap();
        store.append(&ended(0, 0.8)).unwrap();
        assert_eq!(store.claim(Some(2)).unwrap(), Claim::Done, "{name}");
        assert_eq!(
            store.claim(Some(3)).unwrap(),
            Claim::New { trial: 2 },
            "{name}"
        );
        let replay = Replay::of(&store.events().unwrap());
        let order: Vec<u32> = replay.finished.iter().map(|t| t.trial).collect();
        assert_eq!(order, vec![1, 0], "{name}: the order they ended in");
        assert_eq!(replay.open.len(), 0, "{name}");
    }
}

#[test]
fn an_unfinished_trial_is_run_again_with_its_settings_by_the_next_session() {
    let Some(all) = backends("an_unfinished_trial_is_run_again_…") else {
        return;
    };
    for backend in &all {
        let name = backend.name();
        {
            let mut store = backend.open("u", Join::Create, LEASE);
            assert_eq!(store.claim(None).unwrap(), Claim::New { trial: 0 });
            store.append(&started(0, 0.05)).unwrap();
            // The study stops here: the trial is given up, unfinished.
            store.release(0).unwrap();
        }
        let mut store = backend.open("u", Join::Resume, LEASE);
        assert_eq!(
            store.claim(None).unwrap(),
            Claim::Rerun {
                trial: 0,
                values: values(0.05)
            },
            "{name}"
        );
        assert_eq!(
            store.claim(None).unwrap(),
            Claim::New { trial: 1 },
            "{name}"
        );
    }
}

#[test]
fn the_best_model_is_kept_and_handed_over_for_registration() {
    let Some(all) = backends("the_best_model_is_kept_and_handed_over_for_registration") else {
        return;
    };
    for backend in &all {
        let name = backend.name();
        let mut store = backend.open("b", Join::Create, LEASE);
        assert_eq!(store.best_model().unwrap(), None, "{name}");
        assert_eq!(store.take_registration().unwrap(), Registration::NoModel);
        assert!(store.keep_best(b"first", 0.90, 0.30).unwrap(), "{name}");
        assert_eq!(store.best_model().unwrap().as_deref(), Some(&b"first"[..]));
        assert_eq!(
            store.take_registration().unwrap(),
            Registration::Register(b"first".to_vec()),
            "{name}"
        );
    }
}

#[test]
fn a_shared_study_keeps_the_better_model_whichever_worker_comes_last() {
    let Some((_cluster, url)) = database("a_shared_study_keeps_the_better_model_…") else {
        return;
    };
    let url = url.as_str();
    let mut a = PgStudy::open(url, "best", Join::Create, LEASE).unwrap();
    let mut b = PgStudy::open(url, "best", Join::Resume, LEASE).unwrap();
    assert!(a.keep_best(b"good", 0.95, 0.20).unwrap());
    assert!(
        !b.keep_best(b"worse", 0.94, 0.10).unwrap(),
        "lower accuracy"
    );
    assert!(
        !b.keep_best(b"tie", 0.95, 0.25).unwrap(),
        "same accuracy, higher loss"
    );
    assert!(b.keep_best(b"tie-better", 0.95, 0.15).unwrap());
    assert_eq!(a.best_model().unwrap().as_deref(), Some(&b"tie-better"[..]));

    // While b holds a live claim, a may not register; once b's trial ended, one of them may,
    // once.
    assert_eq!(b.claim(None).unwrap(), Claim::New { trial: 0 });
    assert_eq!(a.take_registration().unwrap(), Registration::OthersRunning);
    b.append(&started(0, 0.1)).unwrap();
    b.append(&ended(0, 0.95)).unwrap();
    assert_eq!(
        a.take_registration().unwrap(),
        Registration::Register(b"tie-better".to_vec())
    );
    assert_eq!(
        b.take_registration().unwrap(),
        Registration::AlreadyRegistered
    );
    // A better model later is registered again.
    assert!(a.keep_best(b"best", 0.97, 0.1).unwrap());
    assert_eq!(
        b.take_registration().unwrap(),
        Registration::Register(b"best".to_vec())
    );

    // Making a study that exists is refused; resuming one that does not, too.
    b.append(&JournalEvent::Study {
        seed: 1,
        space: serde_json::json!({}),
        min_epochs: 1,
        eta: 3,
        max_epochs: 2,
        base: None,
    })
    .unwrap();
    assert!(matches!(
        PgStudy::open(url, "best", Join::Create, LEASE),
        Err(OpenError::Exists(_))
    ));
    assert!(matches!(
        PgStudy::open(url, "none", Join::Resume, LEASE),
        Err(OpenError::Missing(_))
    ));
}

#[test]
fn a_lease_that_runs_out_passes_the_trial_to_another_worker_and_the_first_learns_it() {
    let Some((_cluster, url)) = database("a_lease_that_runs_out_passes_the_trial_…") else {
        return;
    };
    let url = url.as_str();
    let short = Duration::from_secs(1);
    let mut slow = PgStudy::open(url, "lease", Join::Create, short).unwrap();
    let mut other = PgStudy::open(url, "lease", Join::Resume, short).unwrap();
    assert_eq!(slow.claim(Some(1)).unwrap(), Claim::New { trial: 0 });
    slow.append(&started(0, 0.3)).unwrap();
    // The limit is reached, but the trial is not over: wait.
    assert_eq!(other.claim(Some(1)).unwrap(), Claim::Wait);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        other.claim(Some(1)).unwrap(),
        Claim::Rerun {
            trial: 0,
            values: values(0.3)
        }
    );
    // The slow worker's next word about the trial is refused: it no longer holds it.
    assert!(matches!(slow.renew(0), Err(StoreError::Lost(0))));
    assert!(matches!(
        slow.append(&ended(0, 0.5)),
        Err(StoreError::Lost(0))
    ));
    other.append(&started(0, 0.3)).unwrap();
    other.append(&ended(0, 0.6)).unwrap();
    assert_eq!(other.claim(Some(1)).unwrap(), Claim::Done);
    let replay = Replay::of(&other.events().unwrap());
    assert_eq!(replay.finished.len(), 1);
    assert_eq!(replay.finished[0].score, Some(0.6));
}
