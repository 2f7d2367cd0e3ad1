//! The aliases lock: taken while `aliases.json` changes.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{io_err, RegistryError, LOCK_FILE};
use crate::host::atomic::unique_tmp_path;

/// A lock file older than this belongs to a crashed process and is removed.
const STALE_LOCK: Duration = Duration::from_secs(10);
/// Give up waiting for the aliases lock after this long.
const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// Holds `aliases.lock` until dropped.
#[derive(Debug)]
pub(super) struct AliasLock {
    path: PathBuf,
    token: String,
}

impl AliasLock {
    pub(super) fn acquire(dir: &Path) -> Result<Self, RegistryError> {
        fs::create_dir_all(dir).map_err(|e| io_err("create registry folder", dir, e))?;
        let path = dir.join(LOCK_FILE);
        let token = unique_tmp_path(Path::new(""), "lock")
            .to_string_lossy()
            .into_owned();
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    // The token lets Drop tell our lock from one taken after ours was
                    // (wrongly) judged stale. A failed write only weakens that check.
                    let _ = file.write_all(token.as_bytes());
                    return Ok(Self { path, token });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if lock_is_stale(&path) {
                        let _ = fs::remove_file(&path);
                        continue;
                    }
                    if start.elapsed() > LOCK_TIMEOUT {
                        return Err(RegistryError::Busy {
                            message: format!(
                                "timed out after {} s waiting for lock {} (if no pismo is changing aliases, delete it)",
                                LOCK_TIMEOUT.as_secs(),
                                path.display()
                            ),
                            path,
                        });
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(e) => return Err(io_err("create lock file", &path, e)),
            }
        }
    }
}

fn lock_is_stale(path: &Path) -> bool {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > STALE_LOCK)
}

impl Drop for AliasLock {
    fn drop(&mut self) {
        let ours = fs::read(&self.path).map_or(true, |b| b == self.token.as_bytes());
        if ours {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::registry::ModelId;
    use std::time::SystemTime;

    fn id(s: &str) -> ModelId {
        s.parse().unwrap()
    }

    #[test]
    fn a_stale_lock_is_broken_and_a_live_one_waited_for() {
        let (_tmp, reg) = crate::host::registry::tests::registry_with("lock", &["mnist"]);
        let lock = reg.dir().join(LOCK_FILE);
        fs::write(&lock, b"crashed").unwrap();
        fs::File::options()
            .write(true)
            .open(&lock)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(60))
            .unwrap();
        reg.set_alias("default", &id("mnist@1")).unwrap();
        assert!(!lock.exists());

        let held = AliasLock::acquire(reg.dir()).unwrap();
        let reg2 = reg.clone();
        let waiter = std::thread::spawn(move || reg2.remove_alias("default"));
        std::thread::sleep(Duration::from_millis(100));
        assert!(!waiter.is_finished());
        assert_eq!(reg.aliases().unwrap().len(), 1);
        drop(held);
        assert_eq!(waiter.join().unwrap().unwrap(), id("mnist@1"));
        assert!(reg.aliases().unwrap().is_empty());
    }
}
