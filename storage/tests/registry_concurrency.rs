//! Concurrent writers of one registry: threads of this process and child processes (this
//! test binary re-run in worker mode) register versions of the same model name and set
//! aliases at the same time. Every registration must get its own version, every file must be
//! present and intact, and no alias update may be lost.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pismo_storage::registry::{ModelId, Registry};

/// Set in a child process: `<registry dir>|<writer tag>`; selects worker mode.
const WORKER_ENV: &str = "PISMO_REGISTRY_CONCURRENCY_WORKER";
const NAME: &str = "mnist";
const PER_WRITER: u32 = 40;
const ALIASES_PER_WRITER: u32 = 5;

/// The bytes writer `writer` registers as its `seq`-th model when given `version`: a header
/// naming all three, then 8–24 KB derived from it, so a torn or swapped file is detected.
fn payload(writer: &str, seq: u32, version: u32) -> Vec<u8> {
    let header = format!("writer={writer} seq={seq} version={version}\n");
    let mut state = header.bytes().fold(0x9e37_79b9_7f4a_7c15_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let len = 8_192 + (seq as usize * 4_099) % 16_384;
    let mut bytes = header.into_bytes();
    bytes.extend((0..len).map(|_| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 56) as u8
    }));
    bytes
}

/// (writer, seq, version) of a file written by [`payload`], if it is intact.
fn check_payload(bytes: &[u8]) -> Option<(String, u32, u32)> {
    let end = bytes.iter().position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut fields = header.split(' ');
    let writer = fields.next()?.strip_prefix("writer=")?.to_owned();
    let seq = fields.next()?.strip_prefix("seq=")?.parse().ok()?;
    let version = fields.next()?.strip_prefix("version=")?.parse().ok()?;
    (payload(&writer, seq, version) == bytes).then_some((writer, seq, version))
}

/// Waits for the start signal, then registers [`PER_WRITER`] models and sets
/// [`ALIASES_PER_WRITER`] aliases. Returns (seq, id) of each registration.
fn work(dir: &Path, writer: &str) -> Vec<(u32, ModelId)> {
    let go = dir.join("go");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !go.exists() {
        assert!(
            Instant::now() < deadline,
            "no start signal in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let registry = Registry::open(dir);
    let mut got = Vec::new();
    for seq in 0..PER_WRITER {
        let id = registry
            .register(NAME, &mut |version| payload(writer, seq, version))
            .unwrap_or_else(|e| panic!("writer {writer}: {e}"));
        got.push((seq, id));
    }
    for k in 0..ALIASES_PER_WRITER {
        let (_, target) = &got[k as usize];
        registry
            .set_alias(&format!("{writer}-{k}"), target)
            .unwrap_or_else(|e| panic!("writer {writer}: {e}"));
    }
    got
}

/// Worker mode: a no-op unless the parent test set [`WORKER_ENV`].
#[test]
fn worker() {
    let Ok(spec) = std::env::var(WORKER_ENV) else {
        return;
    };
    let (dir, writer) = spec.split_once('|').expect("dir|writer");
    for (seq, id) in work(Path::new(dir), writer) {
        println!("REGISTERED {writer} {seq} {id}");
    }
}

/// Checks the registry after `writers` each registered [`PER_WRITER`] models; `claimed` holds
/// what each registration returned: (writer, seq) → id.
fn check_registry(dir: &Path, writers: &[String], claimed: &BTreeMap<(String, u32), ModelId>) {
    let registry = Registry::open(dir);
    let total = writers.len() as u32 * PER_WRITER;

    // Versions 1..=total, each exactly once, each file intact and holding its own version.
    let ids = registry.ids().unwrap();
    let versions: Vec<u32> = ids.iter().map(|id| id.version).collect();
    assert_eq!(versions, (1..=total).collect::<Vec<_>>());
    let mut found = BTreeMap::new();
    for id in &ids {
        let bytes = registry.read(id).unwrap();
        let (writer, seq, version) =
            check_payload(&bytes).unwrap_or_else(|| panic!("{id} is torn or foreign"));
        assert_eq!(
            version, id.version,
            "{id} holds the bytes of version {version}"
        );
        let before = found.insert((writer.clone(), seq), id.clone());
        assert!(before.is_none(), "{writer}/{seq} is stored twice");
    }

    // Every registration is there, under the id it was told.
    assert_eq!(found.len(), total as usize);
    assert_eq!(&found, claimed);

    // No alias update was lost, and each points where its writer set it.
    let aliases = registry.aliases().unwrap();
    assert_eq!(aliases.len(), writers.len() * ALIASES_PER_WRITER as usize);
    for writer in writers {
        for k in 0..ALIASES_PER_WRITER {
            let alias = format!("{writer}-{k}");
            assert_eq!(
                aliases.get(&alias),
                claimed.get(&(writer.clone(), k)),
                "{alias}"
            );
        }
    }

    // Nothing left behind: no temp files; the lock file (an OS lock, never deleted) stays.
    let leftovers: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') || (n.ends_with(".lock") && n != "aliases.lock"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn run_threads(
    dir: &Path,
    writers: &[String],
) -> Vec<std::thread::JoinHandle<Vec<(u32, ModelId)>>> {
    writers
        .iter()
        .map(|w| {
            let (dir, w) = (dir.to_path_buf(), w.clone());
            std::thread::spawn(move || work(&dir, &w))
        })
        .collect()
}

#[test]
fn threads_never_share_a_version() {
    let tmp = tempfile::Builder::new()
        .prefix("pismo-registry-threads-")
        .tempdir()
        .unwrap();
    let dir = tmp.path().join("models");
    fs::create_dir_all(&dir).unwrap();
    let writers: Vec<String> = (0..4).map(|i| format!("thread{i}")).collect();
    let handles = run_threads(&dir, &writers);
    fs::write(dir.join("go"), b"").unwrap();
    let mut claimed = BTreeMap::new();
    for (writer, handle) in writers.iter().zip(handles) {
        for (seq, id) in handle.join().unwrap() {
            claimed.insert((writer.clone(), seq), id);
        }
    }
    fs::remove_file(dir.join("go")).unwrap();
    check_registry(&dir, &writers, &claimed);
}

#[test]
fn processes_and_threads_never_share_a_version() {
    let tmp = tempfile::Builder::new()
        .prefix("pismo-registry-processes-")
        .tempdir()
        .unwrap();
    let dir = tmp.path().join("models");
    fs::create_dir_all(&dir).unwrap();
    let exe = std::env::current_exe().unwrap();
    let processes: Vec<String> = (0..2).map(|i| format!("process{i}")).collect();
    let children: Vec<_> = processes
        .iter()
        .map(|w| {
            Command::new(&exe)
                .args(["worker", "--exact", "--nocapture", "--test-threads=1"])
                .env(WORKER_ENV, format!("{}|{w}", dir.display()))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let threads: Vec<String> = (0..2).map(|i| format!("thread{i}")).collect();
    let handles = run_threads(&dir, &threads);
    fs::write(dir.join("go"), b"").unwrap();

    let mut claimed = BTreeMap::new();
    for (writer, handle) in threads.iter().zip(handles) {
        for (seq, id) in handle.join().unwrap() {
            claimed.insert((writer.clone(), seq), id);
        }
    }
    let mut seen_writers = BTreeSet::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "worker failed: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        for line in stdout.lines() {
            // libtest may print "test worker ... " on the same line as the first record.
            let Some((_, rest)) = line.split_once("REGISTERED ") else {
                continue;
            };
            let parts: Vec<&str> = rest.split(' ').collect();
            let [writer, seq, id] = parts[..] else {
                panic!("bad worker line {line:?}");
            };
            seen_writers.insert(writer.to_owned());
            claimed.insert(
                (writer.to_owned(), seq.parse().unwrap()),
                id.parse().unwrap(),
            );
        }
    }
    assert_eq!(seen_writers.into_iter().collect::<Vec<_>>(), processes);
    fs::remove_file(dir.join("go")).unwrap();
    let all: Vec<String> = threads.iter().chain(&processes).cloned().collect();
    check_registry(&dir, &all, &claimed);
}
