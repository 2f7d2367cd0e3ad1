//! The registry's behaviour on every store: one suite, two backends. Each test runs on a
//! registry folder and on a real PostgreSQL database (a throwaway cluster of Debian's server,
//! `pismo_tests::postgres`), and asserts the same outcomes on both; a few checks that only
//! a database can fail (its schema, lost connections, bytes changed in place) follow.

use std::collections::BTreeSet;
use std::sync::Arc;

use pismo_storage::registry::{ModelId, Registry, RegistryError};
use pismo_store::copy::copy;
use pismo_store::postgres::{migrate, PgStore, SCHEMA_VERSION};
use pismo_tests::postgres::{postgres_or_skip, PgCluster};
use pismo_tests::{workspace_root, TempDir};

/// A registry on one backend, kept alive with what it needs.
struct Backend {
    name: &'static str,
    registry: Registry,
    _folder: Option<TempDir>,
}

/// A fresh, migrated database on `cluster`.
fn database(cluster: &PgCluster, db: &str) -> String {
    let url = cluster.create_database(db);
    assert_eq!(migrate(&url).expect("migrate"), (0, SCHEMA_VERSION));
    url
}

/// The same test on a fresh folder and on a fresh database; `None` when PostgreSQL is
/// missing and not required (the harness said SKIPPED).
fn backends(test: &str) -> Option<(Option<PgCluster>, Vec<Backend>)> {
    let folder = TempDir::new("store-folder");
    let mut all = vec![Backend {
        name: "folder",
        registry: Registry::open(folder.join("models")),
        _folder: Some(folder),
    }];
    let cluster = postgres_or_skip(test)?;
    let url = database(&cluster, "registry");
    all.push(Backend {
        name: "postgres",
        registry: pismo_store::open_registry(&url).expect("open the database"),
        _folder: None,
    });
    Some((Some(cluster), all))
}

fn id(s: &str) -> ModelId {
    s.parse().unwrap()
}

/// The shipped model file `name.vV.pismo`, whose bytes hold `name@V`.
fn shipped(file: &str) -> Vec<u8> {
    std::fs::read(workspace_root().join("models").join(file)).unwrap()
}

/// Registers the shipped `mnist@1` bytes as version 1 of a fresh name: a real model file.
fn register_shipped(reg: &Registry) -> ModelId {
    reg.register("mnist", &mut |v| {
        assert_eq!(v, 1, "the first version of a fresh name");
        shipped("mnist.v1.pismo")
    })
    .unwrap()
}

#[test]
fn versions_count_up_per_name_and_are_never_given_again() {
    let Some((_cluster, backends)) = backends("versions_count_up…") else {
        return;
    };
    for b in backends {
        let reg = &b.registry;
        let mut seen = Vec::new();
        for name in ["a", "b", "a", "a"] {
            let id = reg
                .register(name, &mut |v| format!("{name} v{v}").into_bytes())
                .unwrap();
            seen.push(id.to_string());
        }
        assert_eq!(seen, ["a@1", "b@1", "a@2", "a@3"], "{}", b.name);
        assert_eq!(reg.read(&id("a@2")).unwrap(), b"a v2", "{}", b.name);
        reg.delete(&id("a@3")).unwrap();
        let next = reg.register("a", &mut |v| vec![v as u8]).unwrap();
        assert_eq!(
            next,
            id("a@4"),
            "{}: a deleted number is not reused",
            b.name
        );
        let e = reg.read(&id("a@3")).unwrap_err();
        assert!(e.is_not_found(), "{}: {e}", b.name);
        assert!(
            e.to_string().contains("have: a@1, a@2, a@4, b@1"),
            "{}: {e}",
            b.name
        );
        assert_eq!(
            reg.ids().unwrap(),
            [id("a@1"), id("a@2"), id("a@4"), id("b@1")],
            "{}",
            b.name
        );
    }
}

#[test]
fn aliases_resolve_move_guard_deletion_and_keep_their_history() {
    let Some((_cluster, backends)) = backends("aliases_resolve…") else {
        return;
    };
    for b in backends {
        let reg = &b.registry;
        let one = register_shipped(reg);
        let two = reg
            .register("mnist", &mut |_| shipped("mnist.v2.pismo"))
            .unwrap();
        assert_eq!(two, id("mnist@2"));
        // Without `default`, the newest created model.
        assert_eq!(reg.resolve(None).unwrap(), two, "{}", b.name);
        reg.set_alias("default", &one).unwrap();
        assert_eq!(reg.resolve(None).unwrap(), one, "{}", b.name);
        assert_eq!(reg.resolve(Some("mnist@default")).unwrap(), one);
        reg.set_alias("default", &two).unwrap();
        let (loaded, bytes) = reg.load(None).unwrap();
        assert_eq!(
            (loaded, bytes),
            (two.clone(), shipped("mnist.v2.pismo")),
            "{}",
            b.name
        );
        let e = reg.delete(&two).unwrap_err();
        assert!(matches!(e, RegistryError::InUse { .. }), "{}: {e}", b.name);
        assert!(reg.read(&two).is_ok(), "{}: refused means kept", b.name);
        let e = reg.set_alias("best", &id("mnist@9")).unwrap_err();
        assert!(e.is_not_found(), "{}: {e}", b.name);
        assert_eq!(reg.remove_alias("default").unwrap(), two, "{}", b.name);
        reg.delete(&two).unwrap();
        let listed: Vec<(String, Vec<String>)> = reg
            .list()
            .unwrap()
            .into_iter()
            .map(|e| (e.id.to_string(), e.aliases))
            .collect();
        assert_eq!(listed, [("mnist@1".to_owned(), vec![])], "{}", b.name);
        let history: Vec<(String, Option<String>)> = reg
            .alias_history()
            .unwrap()
            .into_iter()
            .map(|c| (c.alias, c.model.map(|m| m.to_string())))
            .collect();
        assert_eq!(
            history,
            [
                ("default".to_owned(), Some("mnist@1".to_owned())),
                ("default".to_owned(), Some("mnist@2".to_owned())),
                ("default".to_owned(), None),
            ],
            "{}",
            b.name
        );
    }
}

#[test]
fn bytes_that_hold_another_model_are_refused_on_every_store() {
    let Some((_cluster, backends)) = backends("bytes_that_hold…") else {
        return;
    };
    for b in backends {
        let reg = &b.registry;
        // `mnist@1`'s bytes registered as version 1 of `other`: they say mnist@1 inside.
        let other = reg
            .register("other", &mut |_| shipped("mnist.v1.pismo"))
            .unwrap();
        let e = reg.read(&other).unwrap_err();
        assert!(
            matches!(e, RegistryError::WrongModel { .. }),
            "{}: {e}",
            b.name
        );
        let e = reg.set_alias("default", &other).unwrap_err();
        assert!(
            matches!(e, RegistryError::WrongModel { .. }),
            "{}: {e}",
            b.name
        );
        let e = reg
            .import(&id("mnist@7"), &shipped("mnist.v1.pismo"))
            .unwrap_err();
        assert!(
            matches!(e, RegistryError::WrongModel { .. }),
            "{}: {e}",
            b.name
        );
        let listed = reg.list().unwrap();
        assert!(listed[0].meta.is_err(), "{}: listed with its error", b.name);
    }
}

#[test]
fn writers_in_many_threads_never_share_a_version() {
    let Some((_cluster, backends)) = backends("writers_in_many_threads…") else {
        return;
    };
    for b in backends {
        let reg = Arc::new(b.registry);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let reg = reg.clone();
                std::thread::spawn(move || {
                    (0..10)
                        .map(|i| {
                            reg.register("race", &mut |v| format!("t{t} i{i} v{v}").into_bytes())
                                .unwrap()
                                .version
                        })
                        .collect::<Vec<u32>>()
                })
            })
            .collect();
        let versions: BTreeSet<u32> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        assert_eq!(versions, (1..=40).collect(), "{}", b.name);
        // Each version holds the bytes made for it.
        for v in [1, 17, 40] {
            let bytes = reg.read(&ModelId::new("race", v).unwrap()).unwrap();
            assert!(
                String::from_utf8(bytes)
                    .unwrap()
                    .ends_with(&format!(" v{v}")),
                "{}",
                b.name
            );
        }
    }
}

/// `pismo store copy` of the shipped registry into a database and back into a fresh folder
/// gives every file byte for byte, and the same aliases.
#[test]
fn the_shipped_registry_copies_into_postgres_and_back_byte_for_byte() {
    let Some(cluster) = postgres_or_skip("the_shipped_registry_copies…") else {
        return;
    };
    let url = database(&cluster, "copy");
    let shipped_dir = workspace_root().join("models");
    let from = Registry::open(&shipped_dir);
    let db = pismo_store::open_registry(&url).unwrap();
    let report = copy(&from, &db).unwrap();
    assert_eq!(report.copied, from.ids().unwrap());
    assert_eq!(db.aliases().unwrap(), from.aliases().unwrap());
    // Again: nothing left to do.
    let again = copy(&from, &db).unwrap();
    assert!(again.copied.is_empty() && again.aliases_set.is_empty());
    assert_eq!(again.present, from.ids().unwrap());

    let back_dir = TempDir::new("store-back");
    let back = Registry::open(back_dir.join("models"));
    copy(&db, &back).unwrap();
    for id in from.ids().unwrap() {
        let file = id.file_name();
        assert_eq!(
            std::fs::read(back_dir.join("models").join(&file)).unwrap(),
            std::fs::read(shipped_dir.join(&file)).unwrap(),
            "{file}"
        );
    }
    assert_eq!(back.aliases().unwrap(), from.aliases().unwrap());
    // The versions deleted from the shipped registry stay deleted in both copies.
    let deleted = from.deleted().unwrap();
    assert!(
        !deleted.is_empty(),
        "the shipped registry has deleted versions"
    );
    assert_eq!(report.deleted, deleted);
    assert_eq!(db.deleted().unwrap(), deleted);
    assert_eq!(back.deleted().unwrap(), deleted);
    // Registering after a copy continues after every version the source ever gave, the
    // deleted ones too (a run record may name them).
    let highest = from
        .ids()
        .unwrap()
        .into_iter()
        .chain(deleted)
        .filter(|i| i.name == "mnist")
        .map(|i| i.version)
        .max()
        .unwrap();
    for registry in [&db, &back] {
        let next = registry.register("mnist", &mut |_| b"x".to_vec()).unwrap();
        assert_eq!(next.version, highest + 1, "{}", registry.location());
    }
}

#[test]
fn a_database_without_the_schema_says_to_migrate_and_migrating_twice_is_harmless() {
    let Some(cluster) = postgres_or_skip("a_database_without_the_schema…") else {
        return;
    };
    let url = cluster.create_database("fresh");
    let e = PgStore::connect(&url).unwrap_err();
    assert!(
        e.message.contains("has no pismo schema")
            && e.message.contains("pismo store migrate --store"),
        "{e}"
    );
    assert_eq!(migrate(&url).unwrap(), (0, SCHEMA_VERSION));
    assert_eq!(migrate(&url).unwrap(), (SCHEMA_VERSION, SCHEMA_VERSION));
    PgStore::connect(&url).expect("connects once migrated");
    // A database from a newer pismo is refused, not misread.
    cluster.psql(
        "fresh",
        &[],
        "UPDATE pismo_schema SET version = version + 1;",
    );
    let e = PgStore::connect(&url).unwrap_err();
    assert!(e.message.contains("newer than this pismo"), "{e}");
    // Nothing listens there: a clear error, not a hang.
    let e = PgStore::connect("postgres://nobody@127.0.0.1:9/none").unwrap_err();
    assert!(e.message.contains("cannot connect"), "{e}");
}

#[test]
fn a_connection_lost_mid_register_leaves_no_half_registered_model() {
    let Some(cluster) = postgres_or_skip("a_connection_lost_mid_register…") else {
        return;
    };
    let url = database(&cluster, "lost");
    let reg = pismo_store::open_registry(&url).unwrap();
    register_shipped(&reg);
    // The connection is cut while the model's bytes are being made, inside the transaction
    // that took the version number.
    let e = reg
        .register("mnist", &mut |_| {
            assert!(cluster.kill_connections("lost") >= 1);
            shipped("mnist.v2.pismo")
        })
        .unwrap_err();
    assert!(
        e.is_unavailable() && e.to_string().contains("register `mnist`"),
        "{e}"
    );
    // The store works again on a new connection, without the model and with its number free.
    assert_eq!(reg.ids().unwrap(), [id("mnist@1")]);
    let next = reg
        .register("mnist", &mut |_| shipped("mnist.v2.pismo"))
        .unwrap();
    assert_eq!(next, id("mnist@2"));
    assert_eq!(reg.read(&next).unwrap(), shipped("mnist.v2.pismo"));
}

#[test]
fn bytes_changed_inside_the_database_are_detected() {
    let Some(cluster) = postgres_or_skip("bytes_changed_inside_the_database…") else {
        return;
    };
    let url = database(&cluster, "rot");
    let reg = pismo_store::open_registry(&url).unwrap();
    let one = register_shipped(&reg);
    cluster.psql(
        "rot",
        &[],
        "UPDATE pismo_models SET bytes = bytes || '\\x00'::bytea;",
    );
    let e = reg.read(&one).unwrap_err();
    assert!(e.to_string().contains("do not match their SHA-256"), "{e}");
    let listed = reg.list().unwrap();
    assert!(listed[0].meta.as_ref().unwrap_err().contains("SHA-256"));
}
