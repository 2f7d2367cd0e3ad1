//! The server's lifecycle: [`Options`], binding, the accept loop, the connection cap, and
//! stopping.
//!
//! One thread accepts; each accepted connection gets a thread of its own
//! ([`crate::connection`]), so a slow or stalled client never holds a shared worker.
//! Invariants:
//! - At most [`Options::max_connections`] connections are served at once, and at most
//!   [`Options::max_connections_per_client`] of one client ([`client_of`]); one more is
//!   answered 503 + `Retry-After` by the accept thread without blocking it, and closed.
//! - A non-loopback address without a token does not start, nor a server whose token could
//!   never be sent (empty, only whitespace, or whitespace at its ends).
//! - [`Server::stop`] closes the listener (new connections are refused), ends idle
//!   connections at once (their read side is shut), lets requests being answered finish,
//!   and waits for the connection threads (at most [`STOP_WAIT`]). Event streams end within
//!   a second; training runs go on to their end, and so do studies.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pismo_storage::registry::Registry;
use pismo_storage::runs::Runs;

use crate::adapting::Adapting;
use crate::budget::{Budget, Purpose};
use crate::catalog::ModelCache;
use crate::fetching::{FetchCommand, Fetching};
use crate::limits;
use crate::redact::Redact;
use crate::reply::ApiError;
use crate::request::Request;
use crate::training::Training;
use crate::tuning::Tuning;
use pismo_storage::studies::shelf::{JournalShelf, StudyShelf};

/// How the server runs. The limits default to the values in [`crate::limits`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Largest request body in bytes of a route that takes an image; a larger
    /// `Content-Length` gets 413.
    pub max_body: usize,
    /// Largest request body in bytes of every other route; a larger one gets 413.
    pub max_small_body: usize,
    /// Largest request head in bytes; larger ones get 431.
    pub max_head: usize,
    /// Time for a request head to arrive; 408 after it.
    pub head_timeout: Duration,
    /// Time for a request body to arrive; 408 after it.
    pub body_timeout: Duration,
    /// Time for a body's first bytes to arrive; 408 after it.
    pub body_start_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Connections served at once; more get 503.
    pub max_connections: usize,
    /// Connections served at once for one client (see [`client_of`]); more get 503.
    pub max_connections_per_client: usize,
    /// Bytes of images being decoded at once; more get 503 + `Retry-After`.
    pub image_budget: u64,
    /// Bytes of request bodies held at once; more get 503 + `Retry-After`.
    pub body_budget: u64,
    /// Bytes of request bodies one client may hold at once; more get 503 + `Retry-After`.
    pub body_budget_per_client: u64,
    /// MNIST for `POST /api/train` (raw or `.gz` IDX files), loaded on first use.
    pub data_dir: PathBuf,
    /// Training runs at once (at least 1); more get 409.
    pub max_training: usize,
    /// The token that training and registry changes need (`Authorization: Bearer …`).
    /// Required when the address is not a loopback one. Without it, only loopback `Host`
    /// names are served (see `auth.rs`).
    pub token: Option<String>,
    /// The folder of corrected drawings for `POST /api/drawn`.
    pub drawn_dir: PathBuf,
    /// Where the studies of `POST /api/tune` are kept; `None`: journals in
    /// `<runs folder>/studies` (with runs in a database, the local `$PISMO_RUNS`, else
    /// `./runs`).
    pub studies: Option<Arc<dyn StudyShelf>>,
    /// The command the page's "Fetch MNIST" runs to download MNIST into
    /// [`Options::data_dir`] (`pismo data fetch --data DIR`); `None`: the page is told to
    /// run it in a terminal.
    pub fetch: Option<FetchCommand>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_body: limits::MAX_BODY_BYTES,
            max_small_body: limits::MAX_SMALL_BODY_BYTES,
            max_head: limits::MAX_HEAD_BYTES,
            head_timeout: limits::HEAD_TIMEOUT,
            body_timeout: limits::BODY_TIMEOUT,
            body_start_timeout: limits::BODY_START_TIMEOUT,
            idle_timeout: limits::IDLE_TIMEOUT,
            max_connections: limits::MAX_CONNECTIONS,
            max_connections_per_client: limits::MAX_CONNECTIONS_PER_CLIENT,
            image_budget: limits::IMAGE_BUDGET_BYTES,
            body_budget: limits::BODY_BUDGET_BYTES,
            body_budget_per_client: limits::BODY_BUDGET_PER_CLIENT,
            data_dir: PathBuf::from("data/mnist"),
            max_training: 1,
            token: None,
            drawn_dir: PathBuf::from(pismo_digits::drawn::DEFAULT_DIR),
            studies: None,
            fetch: None,
        }
    }
}

/// Why the server could not start.
#[derive(Debug)]
pub struct ServeError {
    addr: String,
    message: String,
    /// The options were refused before any listening was tried.
    options: bool,
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.options {
            write!(f, "will not serve on {}: {}", self.addr, self.message)
        } else {
            write!(f, "cannot listen on {}: {}", self.addr, self.message)
        }
    }
}

impl std::error::Error for ServeError {}

/// What the connections share.
pub(crate) struct State {
    pub registry: Registry,
    pub runs: Runs,
    pub options: Options,
    /// The address bound (with its real port).
    pub bound: SocketAddr,
    pub models: ModelCache,
    pub training: Arc<Training>,
    pub adapting: Adapting,
    pub fetching: Fetching,
    pub tuning: Arc<Tuning>,
    pub images: Arc<Budget>,
    pub bodies: Arc<Budget>,
    /// With a token: the host folders its answers do not show (see [`crate::redact`]).
    pub redact: Option<Redact>,
    /// Event streams open now.
    pub streams: AtomicUsize,
    pub stopping: Arc<AtomicBool>,
    /// Connections being served, by number: a clone of each socket, to end them on stop,
    /// and its client.
    connections: Mutex<HashMap<u64, (TcpStream, IpAddr)>>,
    next_id: AtomicU64,
}

/// How long [`Server::stop`] waits for connections that are answering a request.
pub const STOP_WAIT: Duration = Duration::from_secs(5);

/// A running server. [`Server::stop`] (or dropping it) stops it.
pub struct Server {
    addr: SocketAddr,
    state: Arc<State>,
    acceptor: Option<JoinHandle<()>>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

impl Server {
    /// Binds `addr` (port 0 picks a free port) and starts accepting. A non-loopback
    /// address without [`Options::token`] is refused. It also fixes glibc's malloc
    /// thresholds for the whole process (`allocator.rs`), so freed request memory is not kept.
    pub fn start(
        addr: &str,
        registry: Registry,
        runs: Runs,
        options: Options,
    ) -> Result<Server, ServeError> {
        let fail = |message: String| ServeError {
            addr: addr.to_owned(),
            message,
            options: false,
        };
        if let Some(token) = &options.token {
            check_token(token).map_err(|e| ServeError {
                options: true,
                ..fail(e.to_owned())
            })?;
        }
        crate::allocator::configure();
        let listener = listen(addr).map_err(fail)?;
        let bound = listener.local_addr().map_err(|e| fail(e.to_string()))?;
        if !bound.ip().is_loopback() && options.token.is_none() {
            return Err(fail(format!(
                "{} is reachable from other machines: give a token for training and registry changes (pismo serve --token …)",
                bound.ip()
            )));
        }
        let studies = options.studies.clone().unwrap_or_else(|| {
            let folder = runs
                .folder()
                .map_or_else(Runs::default_dir, Path::to_path_buf);
            Arc::new(JournalShelf::new(folder.join("studies")))
        });
        let redact = options.token.is_some().then(|| {
            Redact::new(&[
                (registry.folder(), "<registry>"),
                (runs.folder(), "<runs>"),
                (Some(options.data_dir.as_path()), "<MNIST>"),
                (Some(options.drawn_dir.as_path()), "<drawings>"),
            ])
        });
        let state = Arc::new(State {
            redact,
            registry,
            tuning: Arc::new(Tuning::new(studies)),
            runs,
            training: Arc::new(Training::new(
                options.data_dir.clone(),
                options.max_training.max(1),
            )),
            adapting: Adapting::new(),
            fetching: Fetching::new(options.fetch.clone(), &options.data_dir),
            images: Budget::new(Purpose::Images, options.image_budget, options.image_budget),
            bodies: Budget::new(
                Purpose::Bodies,
                options.body_budget,
                options.body_budget_per_client,
            ),
            options,
            bound,
            models: ModelCache::default(),
            streams: AtomicUsize::new(0),
            stopping: Arc::new(AtomicBool::new(false)),
            connections: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        });
        let acceptor = std::thread::Builder::new()
            .name("pismo-http-accept".to_owned())
            .spawn({
                let state = state.clone();
                move || accept(listener, state)
            })
            .map_err(|e| fail(e.to_string()))?;
        Ok(Server {
            addr: bound,
            state,
            acceptor: Some(acceptor),
        })
    }

    /// The address the server listens on (with the real port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server (see the module doc).
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Blocks until the server stops (it only stops after [`Server::stop`] from elsewhere,
    /// so in practice: forever).
    pub fn wait(mut self) {
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }

    fn shutdown(&mut self) {
        let state = &self.state;
        if state.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wake the accept thread, which then drops the listener.
        let mut target = self.addr;
        if target.ip().is_unspecified() {
            target.set_ip(match target {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&target, Duration::from_secs(1));
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        // Idle connections see the end of their input; answers being written go out.
        for (c, _) in state.lock_connections().values() {
            let _ = c.shutdown(Shutdown::Read);
        }
        state.fetching.kill();
        let deadline = Instant::now() + STOP_WAIT;
        while !state.lock_connections().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl State {
    /// `e` as this server may show it to a client (see [`crate::redact`]).
    pub fn shown(&self, request: Option<&Request>, e: ApiError) -> ApiError {
        match &self.redact {
            Some(redact) => redact.error(request, e),
            None => e,
        }
    }

    fn lock_connections(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (TcpStream, IpAddr)>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Accepts until the server stops; each connection on a thread of its own, up to the caps.
fn accept(listener: TcpListener, state: Arc<State>) {
    for stream in listener.incoming() {
        if state.stopping.load(Ordering::SeqCst) {
            return;
        }
        let stream = match stream {
            Ok(s) => s,
            // Out of descriptors and the like: let connections end, then go on.
            Err(_) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        // No peer address: the client has left already.
        let Ok(peer) = stream.peer_addr() else {
            continue;
        };
        let client = client_of(peer);
        let mut connections = state.lock_connections();
        if let Err(why) = admit(&connections, client, &state.options) {
            drop(connections);
            crate::connection::refuse(stream, why);
            continue;
        }
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        let id = state.next_id.fetch_add(1, Ordering::SeqCst);
        connections.insert(id, (clone, client));
        drop(connections);
        let spawned = std::thread::Builder::new()
            .name("pismo-http-conn".to_owned())
            .spawn({
                let state = state.clone();
                move || {
                    crate::connection::serve(&state, stream, client);
                    state.lock_connections().remove(&id);
                }
            });
        if spawned.is_err() {
            state.lock_connections().remove(&id);
        }
    }
}

/// Whether one more connection of `client` may be served beside those `open`: under the
/// server's cap and under the client's own. `Err`: why not, for the 503.
fn admit(
    open: &HashMap<u64, (TcpStream, IpAddr)>,
    client: IpAddr,
    options: &Options,
) -> Result<(), String> {
    let cap = options.max_connections.max(1);
    let share = options.max_connections_per_client.clamp(1, cap);
    if open.len() >= cap {
        return Err(format!(
            "the server has {cap} connections open, its limit; try again shortly"
        ));
    }
    if open.values().filter(|(_, c)| *c == client).count() >= share {
        return Err(format!(
            "you have {share} connections open, the most one client may have; close one or try again shortly"
        ));
    }
    Ok(())
}

/// The client a peer address belongs to, for the limits per client: the IP address, an
/// IPv6 one by its /64 (the block one subscriber usually gets), an IPv4-mapped one as IPv4.
pub(crate) fn client_of(peer: SocketAddr) -> IpAddr {
    match peer.ip() {
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(ip) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

/// A token that a client can send: not empty, and without whitespace at its ends (an
/// `Authorization` value is trimmed, so `" "` or `"abc "` could never match).
fn check_token(token: &str) -> Result<(), &'static str> {
    if token.trim().is_empty() {
        Err("the token (--token, $PISMO_TOKEN) must not be empty or only whitespace")
    } else if token.trim() != token {
        Err("the token (--token, $PISMO_TOKEN) must not start or end with whitespace")
    } else {
        Ok(())
    }
}

/// A listening socket on `addr` with `TCP_NODELAY` (accepted connections set it too).
fn listen(addr: &str) -> Result<TcpListener, String> {
    use socket2::{Domain, Socket, Type};
    use std::net::ToSocketAddrs;
    let target = addr
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| "the address resolves to nothing".to_owned())?;
    let socket =
        Socket::new(Domain::for_address(target), Type::STREAM, None).map_err(|e| e.to_string())?;
    socket.set_reuse_address(true).map_err(|e| e.to_string())?;
    socket.bind(&target.into()).map_err(|e| e.to_string())?;
    socket.listen(1024).map_err(|e| e.to_string())?;
    Ok(socket.into())
}

/// Starts a server on `addr` and answers requests until the process ends.
pub fn serve(
    addr: &str,
    registry: Registry,
    runs: Runs,
    options: Options,
) -> Result<(), ServeError> {
    Server::start(addr, registry, runs, options)?.wait();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_an_ipv4_address_or_an_ipv6_64() {
        let client = |s: &str| client_of(s.parse().unwrap()).to_string();
        assert_eq!(client("10.0.0.7:5000"), "10.0.0.7");
        assert_eq!(client("[::ffff:10.0.0.7]:5000"), "10.0.0.7");
        assert_eq!(
            client("[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:80"),
            "2001:db8:1:2::"
        );
        assert_eq!(
            client("[2001:db8:1:2::1]:80"),
            client("[2001:db8:1:2:ffff::9]:81")
        );
        assert_eq!(client("[::1]:80"), "::");
    }

    #[test]
    fn tokens_that_could_never_be_sent_are_refused() {
        for bad in ["", " ", "\t\n", " abc", "abc "] {
            assert!(check_token(bad).is_err(), "{bad:?}");
        }
        assert!(check_token("s3cret").is_ok());
    }
}
