//! Atomic file writes shared by the registry and the run records: a file is written under a
//! unique hidden temp name, fsynced, then renamed over its final name or hard-linked to a new
//! one, so readers see a whole file or none.
//!
//! Temp files are named `.<stem>.tmp-<pid>-<n>-<nanos>`: they start with `.`, so listings
//! ignore them.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A path in `dir` that no other thread or process uses: `.<stem>.tmp-<pid>-<n>-<nanos>`.
/// It starts with `.`, so listings ignore it.
pub(crate) fn unique_tmp_path(dir: &Path, stem: &str) -> PathBuf {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    dir.join(format!(".{stem}.tmp-{}-{n}-{nanos}", std::process::id()))
}

/// Creates `path` (which must not exist), writes `bytes` and fsyncs. Removes the file again
/// if any step fails.
pub(crate) fn write_new_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
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
pub(crate) fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Replaces `path` with `bytes` atomically: readers see the old or the new content.
pub(crate) fn replace_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
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
pub(crate) fn link_no_clobber(tmp: &Path, dest: &Path) -> io::Result<bool> {
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
