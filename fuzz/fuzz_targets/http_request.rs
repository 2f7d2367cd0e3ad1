//! One HTTP request's bytes in, one response out, through the real server: a `pismo serve`
//! on 127.0.0.1:0 (a copy of the shipped registry, no training data) gets the bytes over a
//! socket, then the end of the stream, and must answer within the deadline below with an
//! HTTP/1.1 response or close without one (a TLS handshake, an empty or partial request).
//! A panic anywhere, a server thread included, aborts the process (libfuzzer-sys's hook).
//!
//! A socket rather than an in-memory stream: the connection loop works on a `TcpStream`
//! (deadlines are socket timeouts), so this runs exactly the code a client reaches, at a
//! few thousand requests a second.
#![no_main]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pismo_http::{Options, Server};
use pismo_storage::registry::Registry;
use pismo_storage::runs::Runs;

/// Longer than any answer takes; shorter than every read deadline of the server.
const DEADLINE: Duration = Duration::from_secs(5);

struct Running {
    addr: SocketAddr,
    _server: Server,
    _dir: tempfile::TempDir,
}

fn server() -> SocketAddr {
    static SERVER: OnceLock<Running> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            let registry = dir.path().join("models");
            std::fs::create_dir(&registry).expect("registry dir");
            let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../models");
            for entry in std::fs::read_dir(shipped).expect("models/") {
                let path = entry.expect("models/ entry").path();
                std::fs::copy(&path, registry.join(path.file_name().unwrap())).expect("copy");
            }
            let options = Options {
                data_dir: dir.path().join("no-mnist"),
                drawn_dir: dir.path().join("drawn"),
                ..Options::default()
            };
            let server = Server::start(
                "127.0.0.1:0",
                Registry::open(&registry),
                Runs::open(dir.path().join("runs")),
                options,
            )
            .expect("server starts");
            Running {
                addr: server.addr(),
                _server: server,
                _dir: dir,
            }
        })
        .addr
}

fuzz_target!(|bytes: &[u8]| {
    let started = Instant::now();
    let mut stream = TcpStream::connect(server()).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    // The server may answer and close before it has read everything (413, 431, 505…).
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(Shutdown::Write);
    let mut response = Vec::new();
    if let Err(e) = stream.read_to_end(&mut response) {
        assert!(
            e.kind() == std::io::ErrorKind::ConnectionReset,
            "no answer within {DEADLINE:?} ({e}), {} bytes of it",
            response.len()
        );
    }
    assert!(
        started.elapsed() < DEADLINE,
        "the answer took {:?}",
        started.elapsed()
    );
    if !response.is_empty() {
        assert!(
            response.starts_with(b"HTTP/1.1 ") || response.starts_with(b"HTTP/1.0 "),
            "not an HTTP response: {:?}",
            String::from_utf8_lossy(&response[..response.len().min(80)])
        );
        assert!(
            !response.starts_with(b"HTTP/1.1 500"),
            "a 500: {}",
            String::from_utf8_lossy(&response)
        );
    }
});
