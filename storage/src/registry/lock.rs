//! The registry lock: an OS file lock (`flock` on Unix, `LockFileEx` on Windows) on
//! `<dir>/aliases.lock`, held while the aliases change, while a version is deleted and while
//! a new version is registered.
//!
//! Guarantees:
//! - The OS releases the lock when its holder ends, however it ends (kill -9 included), so
//!   nothing ever has to judge a lock stale, and a holder that works for minutes keeps it.
//! - The lock file is created once and never deleted: deleting it would let a second writer
//!   lock a new file while the first still holds the old one. Its content is not used, so a
//!   file left by an older pismo (which wrote a token into it) is simply locked as it is.
//! - Threads of one process exclude each other too: each acquisition opens its own file
//!   description.
//! - A directory (or anything that is not a regular file) in the lock file's place is an
//!   error naming it, not a wait.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{io_err, RegistryError, LOCK_FILE};

/// Give up waiting for the lock after this long (a holder is alive and busy).
const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// Holds the registry lock until dropped.
#[derive(Debug)]
pub(super) struct RegistryLock {
    file: fs::File,
}

impl RegistryLock {
    /// Waits for the lock of the registry in `dir` (creating the folder and the lock file if
    /// needed), at most [`LOCK_TIMEOUT`].
    pub(super) fn acquire(dir: &Path) -> Result<Self, RegistryError> {
        fs::create_dir_all(dir).map_err(|e| io_err("create registry folder", dir, e))?;
        let path = dir.join(LOCK_FILE);
        let not_a_file = || RegistryError::NotALockFile { path: path.clone() };
        if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            return Err(not_a_file());
        }
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::IsADirectory => not_a_file(),
                _ => io_err("open lock file", &path, e),
            })?;
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            return Err(not_a_file());
        }
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Self { file }),
                Err(fs::TryLockError::WouldBlock) => {
                    if start.elapsed() > LOCK_TIMEOUT {
                        return Err(RegistryError::Busy {
                            message: format!(
                                "timed out after {} s waiting for lock {}: another pismo is changing this registry",
                                LOCK_TIMEOUT.as_secs(),
                                path.display()
                            ),
                            location: path.display().to_string(),
                        });
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(fs::TryLockError::Error(e)) => return Err(io_err("lock", &path, e)),
            }
        }
    }
}

impl Drop for RegistryLock {
    fn drop(&mut self) {
        // Closing the file releases the lock as well; unlocking first says so.
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ModelId;
    use std::time::SystemTime;

    fn id(s: &str) -> ModelId {
        s.parse().unwrap()
    }

    /// Waits up to `limit` for `thread` to finish; `None` if it is still running.
    fn join_within<T>(thread: std::thread::JoinHandle<T>, limit: Duration) -> Option<T> {
        let start = Instant::now();
        while !thread.is_finished() {
            if start.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Some(thread.join().unwrap())
    }

    /// Issue 11 row 9: `mkdir aliases.lock` made `pismo models alias` hang.
    #[test]
    fn issue11_row9_a_directory_in_place_of_the_lock_is_a_clear_error() {
        let (_tmp, reg) = crate::registry::tests::registry_with("lock-dir", &["mnist"]);
        let lock = reg.folder().unwrap().join(LOCK_FILE);
        // (Registering made the lock file; before the fix it was gone after each use.)
        let _ = fs::remove_file(&lock);
        fs::create_dir(&lock).unwrap();
        let reg2 = reg.clone();
        let setter = std::thread::spawn(move || reg2.set_alias("default", &id("mnist@1")));
        let e = join_within(setter, Duration::from_secs(3))
            .expect("set_alias hangs on a directory named aliases.lock")
            .unwrap_err()
            .to_string();
        assert!(e.contains(&lock.display().to_string()), "{e}");
        assert!(e.contains("is a directory"), "{e}");
        let e = reg
            .register("mnist", &mut crate::registry::tests::opaque)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a directory"), "{e}");
        assert!(reg.aliases().unwrap().is_empty());
    }

    /// Issue 11 row 9: a holder's lock was judged stale after 10 s, so a waiter entered while
    /// it still held the lock (and two waiters breaking the same stale lock both entered).
    /// The OS lock is held for as long as its holder lives, whatever the file's age.
    #[test]
    fn issue11_row9_an_old_lock_held_by_a_live_holder_is_waited_for() {
        let (_tmp, reg) = crate::registry::tests::registry_with("lock-old", &["mnist"]);
        let lock = reg.folder().unwrap().join(LOCK_FILE);
        let held = RegistryLock::acquire(reg.folder().unwrap()).unwrap();
        // The holder has been working for a minute.
        fs::File::options()
            .write(true)
            .open(&lock)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(60))
            .unwrap();
        let waiters: Vec<_> = (0..2)
            .map(|k| {
                let reg = reg.clone();
                std::thread::spawn(move || reg.set_alias(&format!("w{k}"), &id("mnist@1")))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            waiters.iter().all(|w| !w.is_finished()),
            "a waiter entered while the holder held the lock"
        );
        assert!(reg.aliases().unwrap().is_empty());
        drop(held);
        for w in waiters {
            w.join().unwrap().unwrap();
        }
        assert_eq!(reg.aliases().unwrap().len(), 2);
        // The lock file stays: nothing ever has to judge it stale.
        assert!(lock.is_file());
    }

    /// The OS drops the lock of a holder killed with SIGKILL: here the holder is util-linux
    /// `flock` (the same `flock(2)` lock as `File::lock` on Linux), killed while it holds it.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_lock_of_a_holder_killed_with_sigkill_is_released() {
        if std::process::Command::new("flock")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("SKIPPED: the_lock_of_a_holder_killed_with_sigkill_is_released: no `flock` (util-linux)");
            return;
        }
        let (_tmp, reg) = crate::registry::tests::registry_with("lock-kill", &["mnist"]);
        let lock = reg.folder().unwrap().join(LOCK_FILE);
        // -o: the lock stays with `flock` itself, not with the `sleep` it runs.
        let mut holder = std::process::Command::new("flock")
            .arg("-o")
            .arg(&lock)
            .args(["sleep", "60"])
            .spawn()
            .unwrap();
        let probe = fs::File::options().write(true).open(&lock).unwrap();
        let start = Instant::now();
        while probe.try_lock().is_ok() {
            probe.unlock().unwrap();
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "flock never took the lock"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let reg2 = reg.clone();
        let setter = std::thread::spawn(move || reg2.set_alias("default", &id("mnist@1")));
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            !setter.is_finished(),
            "set_alias did not wait for the holder"
        );
        holder.kill().unwrap(); // SIGKILL
        holder.wait().unwrap();
        join_within(setter, Duration::from_secs(5))
            .expect("the lock of a killed holder was not released")
            .unwrap();
        assert_eq!(reg.resolve(None).unwrap(), id("mnist@1"));
    }

    /// Existing registries: a lock file left by an older pismo that was killed is not a
    /// held lock.
    #[test]
    fn a_lock_file_left_by_a_killed_older_pismo_does_not_block() {
        let (_tmp, reg) = crate::registry::tests::registry_with("lock-left", &["mnist"]);
        fs::write(reg.folder().unwrap().join(LOCK_FILE), b".lock.tmp-123-4-5").unwrap();
        let reg2 = reg.clone();
        let setter = std::thread::spawn(move || reg2.set_alias("default", &id("mnist@1")));
        join_within(setter, Duration::from_secs(3))
            .expect("set_alias waits for a lock file nobody holds")
            .unwrap();
        assert_eq!(reg.resolve(None).unwrap(), id("mnist@1"));
    }
}
