//! Atomic file writes shared by the registry and the run records: a file is written under a
//! unique hidden temp name, fsynced, then renamed over its final name or moved to a new one
//! without replacing anything, so readers see a whole file or none.
//!
//! The temp files are `tempfile`'s: created under a name no one else holds and deleted if the
//! write fails or the writer gives up on it. Their names are `.<stem>.tmp-<pid>-<start>-<random>`:
//! they start with `.`, so listings ignore them, and they name their writer by pid and process
//! start time (see [`crate::process`]), so [`remove_dead_temps`] can tell the temp file of a
//! writer that was killed (kill -9 leaves it behind) from one a live writer is still filling.
//! Earlier versions of pismo wrote `.<stem>.tmp-<pid>-<start>-<n>-<nanos>` and, before they
//! recorded start times, `.<stem>.tmp-<pid>-<n>-<nanos>`; both are still recognised.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use tempfile::{Builder, NamedTempFile};

use crate::process;

/// A new, empty temp file in `dir` named `.<stem>.tmp-<pid>-<start>-<random>` (`start` is 0
/// where the start time is unknown), deleted when dropped unless persisted.
fn new_temp(dir: &Path, stem: &str) -> io::Result<NamedTempFile> {
    let start = process::own_start_time().unwrap_or(0);
    let prefix = format!(".{stem}.tmp-{}-{start}-", std::process::id());
    let mut builder = Builder::new();
    builder.prefix(&prefix);
    // The permissions a plain `File::create` gives (0o666 less the umask), not tempfile's
    // owner-only 0o600: these files become the registry's models and the run records.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    builder.tempfile_in(dir)
}

/// A temp file beside `path` holding `bytes`, fsynced.
fn synced_temp_for(path: &Path, bytes: &[u8]) -> io::Result<NamedTempFile> {
    let dir = folder_of(path);
    let stem = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy());
    let mut tmp = new_temp(dir, &stem)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    Ok(tmp)
}

fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// The writer of a temp file named by [`new_temp`] or by an earlier pismo: its pid and, if
/// recorded, its start time. `None` for any other name.
///
/// A random part that happens to be all digits reads as the oldest form, which names the
/// pid alone; a pid alone is judged gone only when no process has it, so a live writer's
/// file is never taken for a dead one's.
fn temp_writer(file: &str) -> Option<(u32, Option<u64>)> {
    let (_, tail) = file.strip_prefix('.')?.rsplit_once(".tmp-")?;
    let fields: Vec<&str> = tail.split('-').collect();
    let pid = u32::try_from(number(fields[0])?).ok()?;
    let recorded = |start: &str| number(start).filter(|&s| s != 0);
    match fields[1..] {
        // `<start>-<n>-<nanos>`
        [start, n, nanos] if [start, n, nanos].iter().all(|f| number(f).is_some()) => {
            Some((pid, recorded(start)))
        }
        // `<n>-<nanos>`, from before start times were recorded.
        [n, nanos] if number(n).is_some() && number(nanos).is_some() => Some((pid, None)),
        // `<start>-<random>`
        [start, random]
            if number(start).is_some()
                && !random.is_empty()
                && random.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            Some((pid, recorded(start)))
        }
        _ => None,
    }
}

/// A field of plain decimal digits (no sign, not empty) as a number.
fn number(field: &str) -> Option<u64> {
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    field.parse().ok()
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
    let tmp = synced_temp_for(path, bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(folder_of(path));
    Ok(())
}

/// Creates `path` holding `bytes`, whole or not at all, and never replaces an existing
/// `path`. `Ok(false)`: `path` exists (someone else took it); nothing was written.
pub fn create_new_atomic(path: &Path, bytes: &[u8]) -> io::Result<bool> {
    let tmp = synced_temp_for(path, bytes)?;
    // tempfile moves the file with a rename that refuses to replace (Linux's
    // RENAME_NOREPLACE), or, where the file system lacks that, a hard link.
    let refused = match tmp.persist_noclobber(path) {
        Ok(_) => {
            sync_dir(folder_of(path));
            return Ok(true);
        }
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => e,
    };
    if !matches!(
        refused.error.kind(),
        io::ErrorKind::Unsupported | io::ErrorKind::PermissionDenied
    ) {
        return Err(refused.error);
    }
    // File systems with neither (some network and FUSE mounts; FAT off Linux): reserve the
    // name with create_new, then rename the complete file over our own empty reservation.
    // Readers may see the empty file for a moment; nobody is clobbered.
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(_) => {
            refused.file.persist(path).map_err(|e| e.error)?;
            sync_dir(folder_of(path));
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(_) => Err(refused.error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_carry_their_writer() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = new_temp(dir.path(), "mnist.v1.pismo").unwrap();
        let name = tmp.path().file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(".mnist.v1.pismo.tmp-"), "{name}");
        let (pid, start) = temp_writer(name).unwrap();
        assert_eq!(
            (pid, start),
            (std::process::id(), process::own_start_time())
        );
        assert!(!process::is_gone(pid, start));
    }

    #[test]
    fn temp_names_of_every_version_are_recognised() {
        for (name, writer) in [
            (".a.tmp-12-77-x9Ab3Z", (12, Some(77))),
            (".a.tmp-12-0-x9Ab3Z", (12, None)),
            (".a.tmp-12-77-123456", (12, None)),
            (".a.tmp-12-77-3-4", (12, Some(77))),
            (".a.tmp-12-0-3-4", (12, None)),
            (".a.tmp-12-3-4", (12, None)),
            (".a.b.tmp-c.tmp-12-77-abc", (12, Some(77))),
        ] {
            assert_eq!(temp_writer(name), Some(writer), "{name}");
        }
        for other in [
            "a.tmp-1-2-3",
            ".a.tmp-1-2",
            ".a.tmp-1-2-3-4-5",
            ".a.tmp-x-2-3",
            ".a.tmp-1-x-abc",
            ".a.tmp-1--3",
            ".a.tmp-1-2-",
            ".a.tmp-1-2-ab_c",
            ".a.tmp-+1-2-3",
            ".a.tmp-99999999999-2-3",
            "mnist.v1.pismo",
        ] {
            assert_eq!(temp_writer(other), None, "{other}");
        }
    }

    #[test]
    fn replacing_leaves_the_new_content_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.json");
        replace_atomic(&path, b"old").unwrap();
        replace_atomic(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn creating_never_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnist.v1.pismo");
        assert!(create_new_atomic(&path, b"first").unwrap());
        assert!(!create_new_atomic(&path, b"second").unwrap());
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn written_files_get_the_permissions_of_a_plain_create() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        fs::File::create(&plain).unwrap();
        let replaced = dir.path().join("replaced");
        replace_atomic(&replaced, b"x").unwrap();
        let created = dir.path().join("created");
        create_new_atomic(&created, b"x").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode();
        assert_eq!(mode(&replaced), mode(&plain));
        assert_eq!(mode(&created), mode(&plain));
    }
}
