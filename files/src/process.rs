//! Is the process that wrote a file (a run record, a temp file) still alive?
//!
//! A pid alone cannot say: once a process has ended, the OS gives its pid to the next process
//! that needs one. A process is named here by its pid *and* its start time, field 22 of
//! Linux's `/proc/PID/stat` (clock ticks since boot), which no two processes with the same pid
//! share. Both are recorded when the file is written and compared when it is read.
//!
//! Only Linux is checked (`/proc`); elsewhere every process counts as alive, so nothing that
//! might still be in use is ever judged dead.

use std::fs;
use std::io;
use std::sync::OnceLock;

/// The start time of process `pid` (clock ticks since boot), if it exists and is not a
/// zombie. `None` off Linux.
pub fn start_time(pid: u32) -> Option<u64> {
    match read_stat(pid) {
        Stat::Running(start) => start,
        Stat::Gone | Stat::Unknown => None,
    }
}

/// The start time of this process, read once (`None` off Linux).
pub fn own_start_time() -> Option<u64> {
    static OWN: OnceLock<Option<u64>> = OnceLock::new();
    *OWN.get_or_init(|| start_time(std::process::id()))
}

/// Whether the process `pid` that started at `start` (if known) has ended: there is no such
/// pid, it is a zombie, or the pid now belongs to a process that started at another time.
/// Without `start` only the pid is checked. Never true for this process, nor off Linux.
pub fn is_gone(pid: u32, start: Option<u64>) -> bool {
    if pid == 0 || pid == std::process::id() && (start.is_none() || start == own_start_time()) {
        return false;
    }
    match read_stat(pid) {
        Stat::Gone => true,
        Stat::Running(now) => matches!((start, now), (Some(s), Some(n)) if s != n),
        Stat::Unknown => false,
    }
}

enum Stat {
    /// The process exists; its start time if it could be parsed.
    Running(Option<u64>),
    /// No such process, or a zombie.
    Gone,
    /// Not Linux, or `/proc` could not be read.
    Unknown,
}

fn read_stat(pid: u32) -> Stat {
    if !cfg!(target_os = "linux") {
        return Stat::Unknown;
    }
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) state ppid …`: the command name may hold spaces and parentheses, so
        // the fields are counted from the last `) `. State is field 3, start time field 22.
        Ok(stat) => {
            let Some((_, rest)) = stat.rsplit_once(") ") else {
                return Stat::Unknown;
            };
            let mut fields = rest.split_ascii_whitespace();
            let state = fields.next().unwrap_or("");
            if state.starts_with('Z') || state.starts_with('X') {
                return Stat::Gone;
            }
            Stat::Running(fields.nth(18).and_then(|s| s.parse().ok()))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Stat::Gone,
        Err(_) => Stat::Unknown,
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_its_pid_and_start_time() {
        let own = own_start_time().expect("own start time");
        assert!(!is_gone(std::process::id(), Some(own)));
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let start = start_time(child.id()).expect("child start time");
        assert!(start >= own);
        assert!(!is_gone(child.id(), Some(start)));
        assert!(!is_gone(child.id(), None));
        assert!(is_gone(child.id(), Some(start + 1)));
        child.kill().unwrap();
        // Killed but not yet reaped: a zombie, gone.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(is_gone(child.id(), Some(start)));
        child.wait().unwrap();
        assert!(is_gone(child.id(), None));
        assert_eq!(start_time(child.id()), None);
    }
}
