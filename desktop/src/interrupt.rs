//! Ctrl-C for long commands: the first one asks the work to stop cleanly (it keeps what it
//! has), a second one ends the process at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Installs the handler and returns the flag the first Ctrl-C sets; `stopping` is printed on
/// stderr then. If a handler cannot be installed, Ctrl-C keeps its default (the process ends).
pub fn first_stops(stopping: &'static str) -> Arc<AtomicBool> {
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupted);
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\n{stopping} (Ctrl-C again to quit at once) …");
    });
    interrupted
}
