//! Atomic file writes shared by the registry and the run records: a file is written under a
//! unique hidden temp name, fsynced, then renamed over its final name or hard-linked to a new
//! one, so readers see a whole file or none.
//!
//! Temp files are named `.<stem>.tmp-<pid>-<start>-<n>-<nanos>`: they start with `.`, so
//! listings ignore them, and they name their writer by pid and process start time (see
//! [`crate::process`]), so [`remove_dead_temps`] can tell the temp file of a writer that was
//! killed (kill -9 leaves it behind) from one a live writer is still filling. pismo before
//! this naming wrote `.<stem>.tmp-<pid>-<n>-<nanos>`; such a file is removed once no process
//! has its pid.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::process;

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A path in `dir` that no other thread or process uses:
/// `.<stem>.tmp-<pid>-<start>-<n>-<nanos>` (`start` is 0 where the start time is unknown).
pub fn unique_tmp_path(dir: &Path, stem: &str) -> PathBuf {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let start = process::own_start_time().unwrap_or(0);
    dir.join(format!(
        ".{stem}.tmp-{}-{start}-{n}-{nanos}",
        std::process::id()
    ))
}

/// The writer of a temp file named by [`unique_tmp_path`] (or by pismo before it recorded
/// start times): its pid and, if recorded, its start time. `None` for any other name.
fn temp_writer(file: &str) -> Option<(u32, Option<u64>)> {
    let (_, tail) = file.strip_prefix('.')?.rsplit_once(".tmp-")?;
    let numbers: Vec<u64> = tail
        .split('-')
        .map(|f| {
            (!f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
                .then(|| f.parse().ok())
                .flatten()
        })
        .collect::<Option<_>>()?;
    let pid = u32::try_from(*numbers.first()?).ok()?;
    match numbers.len() {
        4 => Some((pid, Some(numbers[1]).filter(|&s| s != 0))),
        3 => Some((pid, None)),
        _ => None,
    }
}

/// Removes the temp files in `dir` (not in its subfolders) whose writer has ended, and
/// returns how many. Best effort: a folder or file that cannot be read or removed is left.
/// A temp file of a live writer is never touched.
pub fn remove_dead_temps(dir: &Path) -> usize {
    let Ok(read_dir) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in read_dir.flatten() {
        let Some((pid, start)) = entry.file_name().to_str().and_then(temp_writer) else {
            continue;
        };
        if entry.file_type().is_ok_and(|t| t.is_file())
            && process::is_gone(pid, start)
            && fs::remove_file(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// Creates `path` (which must not exist), writes `bytes` and fsyncs. Removes the file again
/// if any step fails.
pub fn write_new_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    let result = file.write_all(bytes).and_then(|()| file.sync_all());
    if result.is_err() {
        drop(file);
        let _ = fs::remove_file(path);
    }
    result
}

/// Best effort: makes a rename or link in `dir` durable.
pub fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Replaces `path` with `bytes` atomically: readers see the old or the new content.
pub fn replace_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let stem = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy());
    let tmp = unique_tmp_path(dir, &stem);
    write_new_synced(&tmp, bytes)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir);
    Ok(())
}

/// Links the complete temp file `tmp` to `dest` without ever replacing an existing `dest`.
/// `Ok(false)`: `dest` exists (someone else took it).
pub fn link_no_clobber(tmp: &Path, dest: &Path) -> io::Result<bool> {
    match fs::hard_link(tmp, dest) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        // File systems without hard links (FAT, some network and FUSE mounts): reserve the
        // name with create_new, then rename the complete file over our own empty
        // reservation. Readers may see the empty file for a moment; nobody is clobbered.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::Unsupported | io::ErrorKind::PermissionDenied
            ) =>
        {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(dest)
            {
                Ok(_) => fs::rename(tmp, dest).map(|()| true),
                Err(e2) if e2.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                Err(_) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_carry_their_writer() {
        let path = unique_tmp_path(Path::new("/x"), "mnist.v1.pismo");
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(".mnist.v1.pismo.tmp-"), "{name}");
        let (pid, start) = temp_writer(name).unwrap();
        assert_eq!(
            (pid, start),
            (std::process::id(), process::own_start_time())
        );
        assert!(!process::is_gone(pid, start));
        assert_eq!(temp_writer(".a.tmp-12-3-4"), Some((12, None)));
        assert_eq!(temp_writer(".a.tmp-12-0-3-4"), Some((12, None)));
        assert_eq!(temp_writer(".a.tmp-12-77-3-4"), Some((12, Some(77))));
        for other in [
            "a.tmp-1-2-3",
            ".a.tmp-1-2",
            ".a.tmp-1-2-3-4-5",
            ".a.tmp-x-2-3",
            ".a.tmp-1--3",
            ".a.tmp-+1-2-3",
            ".a.tmp-99999999999-2-3",
            "mnist.v1.pismo",
        ] {
            assert_eq!(temp_writer(other), None, "{other}");
        }
    }
}
