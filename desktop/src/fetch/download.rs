//! One URL into one `.part` file, resuming what an earlier attempt or run left there.
//!
//! The `.part` file is locked while it is written, so two `pismo data fetch` into one folder
//! do not write it at once. An existing `.part` is resumed with an HTTP `Range` request; a
//! server that answers `206` with the matching `Content-Range` continues it, one that answers
//! `200` (no byte ranges) starts it over from byte 0, and `416` means it is already whole.
//! Within one call a broken connection is resumed again as long as each attempt gets further.
//! The caller checks the content and gives it its final name.

use std::fs::{self, File, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use ureq::Agent;

use super::mirror;
use crate::progress::{megabytes, Progress};

/// Attempts of one download in one run (each after the first resumes where the last broke).
const ATTEMPTS: u32 = 5;
/// More than this is not MNIST (the largest download, the npm tarball, is 11.5 MB).
const MAX_BYTES: u64 = 256 << 20;
/// Pause before resuming a broken download.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// The HTTP client ([`crate::http_client`]): plain HTTP too (every file is checked by its
/// SHA-256 anyway), no compression (byte ranges must count the bytes of the file itself). A
/// mirror that cannot be resolved or reached fails within seconds, and a transfer that stalls
/// for half a minute breaks.
pub fn agent() -> Agent {
    crate::http_client::agent_config(Duration::from_secs(10), Duration::from_secs(30))
        .accept_encoding("identity")
        .build()
        .new_agent()
}

/// Downloads `url` into `part` (created if missing, resumed if not empty) until it holds the
/// whole file, and returns it open and still locked, for the caller to check and remove.
/// The error is one line saying what went wrong; `part` keeps what arrived, for next time.
pub fn download(agent: &Agent, url: &str, part: &Path) -> Result<File, String> {
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(part)
        .map_err(|e| format!("cannot open {}: {e}", part.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(format!(
                "another download into {} is running; wait for it, then run this again",
                part.display()
            ))
        }
        Err(TryLockError::Error(e)) => return Err(format!("cannot lock {}: {e}", part.display())),
    }
    let label = format!("{} from {}", mirror::file_name(url), mirror::host(url));
    let result = download_into(agent, url, &file, &label);
    if result.is_err() && file.metadata().is_ok_and(|m| m.len() == 0) {
        // Nothing arrived: nothing to resume.
        let _ = fs::remove_file(part);
    }
    result
        .and_then(|()| {
            file.sync_all()
                .map_err(|e| format!("cannot write {}: {e}", part.display()))
        })
        .map(|()| file)
}

/// The attempts of [`download`]: again as long as each one gets further.
fn download_into(agent: &Agent, url: &str, file: &File, label: &str) -> Result<(), String> {
    let mut attempt = 1;
    loop {
        match attempt_once(agent, url, file, label) {
            Ok(()) => return Ok(()),
            Err(broken) if broken.got_further && attempt < ATTEMPTS => {
                eprintln!("{label}: {}; resuming", broken.message);
                attempt += 1;
                std::thread::sleep(RETRY_PAUSE);
            }
            Err(broken) => return Err(broken.message),
        }
    }
}

/// Why an attempt ended early, and whether the `.part` file changed (so trying again may
/// get further).
#[derive(Debug)]
struct Broken {
    message: String,
    got_further: bool,
}

impl Broken {
    fn new(message: String, got_further: bool) -> Broken {
        Broken {
            message,
            got_further,
        }
    }
}

/// One request: asks for the bytes `file` lacks and appends them (or starts it over).
fn attempt_once(agent: &Agent, url: &str, file: &File, label: &str) -> Result<(), Broken> {
    let have = file.metadata().map_err(write_error)?.len();
    let mut request = agent.get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let response = request
        .call()
        .map_err(|e| Broken::new(one_line(&e.to_string()), false))?;
    let status = response.status().as_u16();
    let content_range = response
        .headers()
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .map(ContentRange::parse);
    let length = response.body().content_length();
    let answer = Answer {
        status,
        content_range,
        length,
    };
    if !matches!(status, 200 | 206 | 416) {
        let reason = response.status().canonical_reason().unwrap_or("");
        return Err(Broken::new(format!("HTTP {status} {reason}"), false));
    }
    let Some((start, total)) = resume_point(&answer, have, file, label)? else {
        return Ok(());
    };
    if total.is_some_and(|t| t > MAX_BYTES) {
        return Err(too_large());
    }
    let mut file = file;
    file.seek(SeekFrom::Start(start)).map_err(write_error)?;
    append_body(
        response.into_body().into_reader(),
        file,
        start,
        total,
        label,
    )
}

/// What a server answered to a download request, as far as resuming goes.
struct Answer {
    status: u16,
    content_range: Option<Option<ContentRange>>,
    /// `Content-Length`.
    length: Option<u64>,
}

/// Where the body of `answer` goes in a file that has `have` bytes, and the file's whole
/// length if known; `None` when the file is already complete. A body that cannot be
/// spliced on empties the file and is an error that got further (the next attempt starts
/// over). `answer.status` is 200, 206 or 416.
fn resume_point(
    answer: &Answer,
    have: u64,
    file: &File,
    label: &str,
) -> Result<Option<(u64, Option<u64>)>, Broken> {
    match (answer.status, &answer.content_range) {
        (206, Some(Some(ContentRange::Bytes { start, total }))) if *start == have && have > 0 => {
            Ok(Some((have, *total)))
        }
        (206, _) => {
            // Not the range asked for: start over rather than splice wrong bytes.
            file.set_len(0).map_err(write_error)?;
            Err(Broken::new(
                "the server sent another byte range than asked for; starting over".to_owned(),
                true,
            ))
        }
        (200, _) => {
            if have > 0 {
                eprintln!("{label}: the server does not resume downloads; starting over");
            }
            file.set_len(0).map_err(write_error)?;
            Ok(Some((0, answer.length)))
        }
        (416, Some(Some(ContentRange::Unsatisfied { total }))) if *total == have => Ok(None),
        _ => {
            file.set_len(0).map_err(write_error)?;
            Err(Broken::new(
                "the partial download does not fit the file on the server; starting over"
                    .to_owned(),
                true,
            ))
        }
    }
}

/// Appends `body` to `file` (positioned at byte `start`) with a progress line, up to
/// [`MAX_BYTES`]; an error if the connection breaks or ends short of `total`.
fn append_body(
    mut body: impl Read,
    mut file: &File,
    start: u64,
    total: Option<u64>,
    label: &str,
) -> Result<(), Broken> {
    let mut progress = Progress::start(label.to_owned(), start, total);
    let mut buf = vec![0u8; 64 * 1024];
    let mut done = start;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Broken::new(
                    format!(
                        "the connection broke after {}: {}",
                        megabytes(done),
                        one_line(&e.to_string())
                    ),
                    done > start,
                ))
            }
        };
        file.write_all(&buf[..n]).map_err(write_error)?;
        done += n as u64;
        if done > MAX_BYTES {
            return Err(too_large());
        }
        progress.set(done);
    }
    match total {
        Some(t) if done != t => Err(Broken::new(
            format!(
                "the connection closed after {} of {}",
                megabytes(done),
                megabytes(t)
            ),
            done > start,
        )),
        _ => Ok(()),
    }
}

fn write_error(e: io::Error) -> Broken {
    Broken::new(format!("cannot write the download: {e}"), false)
}

fn too_large() -> Broken {
    Broken::new(
        format!("the file is larger than {}", megabytes(MAX_BYTES)),
        false,
    )
}

/// A `Content-Range` header: `bytes START-END/TOTAL` (TOTAL may be `*`) or `bytes */TOTAL`.
#[derive(Debug, PartialEq, Eq)]
enum ContentRange {
    Bytes { start: u64, total: Option<u64> },
    Unsatisfied { total: u64 },
}

impl ContentRange {
    fn parse(value: &str) -> Option<ContentRange> {
        let (range, total) = value.trim().strip_prefix("bytes ")?.split_once('/')?;
        let total = total.trim();
        if range.trim() == "*" {
            return Some(ContentRange::Unsatisfied {
                total: total.parse().ok()?,
            });
        }
        let (start, end) = range.trim().split_once('-')?;
        let (start, end): (u64, u64) = (start.parse().ok()?, end.parse().ok()?);
        let total = if total == "*" {
            None
        } else {
            Some(total.parse::<u64>().ok().filter(|&t| end < t)?)
        };
        (start <= end).then_some(ContentRange::Bytes { start, total })
    }
}

/// Error text on one line (some errors carry the server's multi-line text).
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_headers_are_read() {
        assert_eq!(
            ContentRange::parse("bytes 100-199/1000"),
            Some(ContentRange::Bytes {
                start: 100,
                total: Some(1000)
            })
        );
        assert_eq!(
            ContentRange::parse("bytes 5-9/*"),
            Some(ContentRange::Bytes {
                start: 5,
                total: None
            })
        );
        assert_eq!(
            ContentRange::parse("bytes */1000"),
            Some(ContentRange::Unsatisfied { total: 1000 })
        );
        for bad in [
            "bytes 9-5/10",
            "bytes 0-10/10",
            "items 0-1/2",
            "bytes x-1/2",
            "",
        ] {
            assert_eq!(ContentRange::parse(bad), None, "{bad}");
        }
    }
}
