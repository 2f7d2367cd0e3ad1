//! How far long work is, on stderr: an indicatif bar when stderr is a terminal, plain lines
//! (or nothing) otherwise; stdout, and so `--json` output, is never touched.
//!
//! - [`Progress`]: one download (bytes, rate, ETA); off a terminal, a plain line at the start
//!   and at most one every few seconds while it runs, none at the end (the caller says what
//!   it got).
//! - [`Counter`]: images worked through (`pismo eval`, `pismo models quantize`) or batches of
//!   an epoch (`pismo train`, with its own ETA); off a terminal it shows nothing, as the
//!   command's own lines report the result.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Plain progress lines come at most this often.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// The progress of one download attempt, from its first to its last byte.
#[derive(Debug)]
pub struct Progress {
    label: String,
    total: Option<u64>,
    shown: Shown,
}

#[derive(Debug)]
enum Shown {
    Bar(ProgressBar),
    Lines { last: Instant },
}

impl Progress {
    /// Starts showing the download `label` (e.g. "x.tgz from host"), which already has `from`
    /// bytes (a resumed download) of `total`, if the size is known.
    pub fn start(label: String, from: u64, total: Option<u64>) -> Progress {
        let template = if total.is_some() {
            "{msg}\n[{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}"
        } else {
            "{msg} {bytes} {bytes_per_sec}"
        };
        let shown = if let Some(bar) = terminal_bar(total, template) {
            bar.set_message(label.clone());
            bar.set_position(from);
            // The rate and ETA count this run's bytes only, not those resumed from.
            bar.reset_eta();
            Shown::Bar(bar)
        } else {
            let resumed = if from > 0 {
                format!(", resuming at {}", megabytes(from))
            } else {
                String::new()
            };
            let size = total.map_or_else(String::new, |t| format!(" ({}{resumed})", megabytes(t)));
            eprintln!("fetching {label}{size} ...");
            Shown::Lines {
                last: Instant::now(),
            }
        };
        Progress {
            label,
            total,
            shown,
        }
    }

    /// The download now has `done` bytes.
    pub fn set(&mut self, done: u64) {
        match &mut self.shown {
            Shown::Bar(bar) => bar.set_position(done),
            Shown::Lines { last } => {
                if last.elapsed() >= LINE_EVERY {
                    *last = Instant::now();
                    let of = match self.total {
                        Some(t) if t > 0 => format!(
                            " {}% ({} of {})",
                            done.saturating_mul(100) / t,
                            megabytes(done),
                            megabytes(t)
                        ),
                        _ => format!(" {}", megabytes(done)),
                    };
                    eprintln!("fetching {} ...{of}", self.label);
                }
            }
        }
    }
}

impl Drop for Progress {
    /// Takes the bar off the terminal, so that the next line starts clean.
    fn drop(&mut self) {
        if let Shown::Bar(bar) = &self.shown {
            bar.finish_and_clear();
        }
    }
}

/// A bar drawn on stderr with `template`, if stderr is a terminal.
fn terminal_bar(total: Option<u64>, template: &str) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar)
}

/// How many of a known number of things are done, shown as a bar on a terminal. Cheap to
/// clone and to share between threads: every clone moves the same bar.
#[derive(Clone, Debug, Default)]
pub struct Counter {
    bar: Option<ProgressBar>,
}

impl Counter {
    /// A bar labelled `label` over `total` things (none off a terminal, or when `quiet`),
    /// with indicatif's ETA: for a count that starts at 0 as the work starts (images).
    pub fn start(label: &str, total: u64, quiet: bool) -> Counter {
        let template = "{msg} [{wide_bar}] {human_pos}/{human_len} ETA {eta}";
        let bar = if quiet {
            None
        } else {
            terminal_bar(Some(total), template)
        };
        if let Some(bar) = &bar {
            bar.set_message(label.to_owned());
        }
        Counter { bar }
    }

    /// A bar over `total` things whose text, ETA included, the caller sets after the bar
    /// ([`Counter::set_message`]); none off a terminal. For `pismo train`'s batches, whose
    /// bar appears with batches already done: indicatif's estimate counted those as done
    /// in no time and read about half the time left.
    pub fn start_own_eta(total: u64) -> Counter {
        let template = "[{wide_bar}] {human_pos}/{human_len} {msg}";
        Counter {
            bar: terminal_bar(Some(total), template),
        }
    }

    /// `n` more are done.
    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    /// `done` are done.
    pub fn set_position(&self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }

    /// Sets the bar's text (e.g. the ETA of a whole run beside one epoch's bar).
    pub fn set_message(&self, text: String) {
        if let Some(bar) = &self.bar {
            bar.set_message(text);
        }
    }

    /// Takes the bar off the terminal.
    pub fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `11.5 MB`: bytes as decimal megabytes with one decimal.
pub fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}
