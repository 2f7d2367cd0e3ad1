//! One client connection, on a thread of its own: reads requests under the limits of
//! [`crate::limits`], hands each whole request to [`crate::routes`], writes the answer, and
//! keeps the connection for the next request (HTTP/1.1 keep-alive) or closes it.
//!
//! Invariants (tested in `tests/api/limits.rs`):
//! - At most `max_head` bytes of a head and `max_body` bytes of a body are ever held
//!   (`max_small_body` for a route that takes no image, `routes::body_limit`); a larger head
//!   is a 431 and a larger `Content-Length` a 413, answered before any of the body is read,
//!   then the connection closes. No body is ever drained.
//! - Every read has a deadline: the head must arrive within `head_timeout`, the body's
//!   first bytes within `body_start_timeout` and all of it within `body_timeout` (else 408
//!   and close), the next request of a keep-alive connection within `idle_timeout` (else a
//!   silent close). Writes time out after
//!   [`SEND_TIMEOUT`]. So a stalled client holds its thread, never a shared worker, and only
//!   for a bounded time.
//! - Bytes that are not HTTP/1.x close the connection at once: a TLS handshake without an
//!   answer, an HTTP/2 preface with 505, anything else with 400.
//! - A body counts in the body budget, within its client's share, for what it holds: the
//!   permit grows before each read ([`Conn::want`], the one place body bytes are read) to
//!   cover what the body then holds, so an announced `Content-Length` that never arrives
//!   holds at most [`READ_CHUNK`] of it. Over the budget or the share: 503 + `Retry-After`
//!   and close. A body of a `Content-Length` is read into a buffer sized for it once, so
//!   the memory it takes is the bytes that arrived (a chunked one's may grow to twice its
//!   length while it is decoded); between requests the buffer is at most `max_head`.
//! - What a request held leaves the process once it is routed, before its answer is
//!   written: its body and body permit are dropped then, and if it held a permit of
//!   [`crate::budget::GIVE_BACK_AFTER`] or more of a budget (its body, its decoding), the
//!   allocator returns its free pages to the system ([`crate::allocator::give_back`]), so the
//!   budgets bound what stays resident, not only what is in use (issue 29's soak).
//! - Every error is answered through `State::shown`, so a server with a token names no
//!   host folder in it ([`crate::redact`]).
//! - Closing after an error first reads at most [`LINGER_BYTES`] for at most [`LINGER`],
//!   so the answer is not lost to a reset, then closes.
//! - A body comes with `Content-Length` or `Transfer-Encoding: chunked` (decoded here, under
//!   the same size limit and deadline; a chunk-size line over [`MAX_CHUNK_LINE`] is a 400).
//!   Another transfer coding gets 501; both headers at once, or `Host`, `Content-Length` or
//!   `Transfer-Encoding` more than once, 400 (even when the copies agree: a proxy in front
//!   may read the other one).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::auth;
use crate::budget::Permit;
use crate::limits::{LINGER, LINGER_BYTES, MAX_HEADERS, SEND_TIMEOUT};
use crate::reply::ApiError;
use crate::request::{Method, Request};
use crate::routes::{self, Routed};
use crate::State;

/// Serves `stream` until the client leaves, a limit closes it, or the server stops.
pub(crate) fn serve(state: &Arc<State>, stream: TcpStream, client: IpAddr) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(SEND_TIMEOUT));
    let mut conn = Conn {
        stream,
        buf: Vec::new(),
        client,
    };
    let mut wait = state.options.head_timeout;
    loop {
        if state.stopping.load(Ordering::SeqCst) {
            return;
        }
        let mut request = match conn.read_request(state, wait) {
            Ok(request) => request,
            Err(End::Quiet) => return,
            Err(End::Answer(e)) => {
                let e = state.shown(None, e);
                let _ = e.into_reply().write_to(&mut conn.stream, true, false);
                conn.linger();
                return;
            }
        };
        let close = request.close;
        let head_only = request.request.method == Method::Head;
        let routed = routes::guarded(|| routes::route(state, &request.request));
        // The body is spent: its memory and its share of the body budget go back now, not
        // after the answer is written (up to SEND_TIMEOUT), a linger or an event stream.
        request.request.body = Vec::new();
        drop(request.body_permit.take());
        // All the request held is freed; after a large one the allocator returns it.
        if crate::budget::gave_back_large() {
            crate::allocator::give_back();
        }
        let mut reply = match routed {
            Ok(Routed::Events(what)) => {
                crate::events::stream(state, &mut conn.stream, &request.request, &what);
                return;
            }
            Ok(Routed::Reply(reply)) => reply,
            Err(e) => state.shown(Some(&request.request), e).into_reply(),
        };
        if request.http10 && !close {
            // HTTP/1.0 keeps a connection only when the answer says so.
            reply = reply.with_header("Connection", "keep-alive");
        }
        if reply.write_to(&mut conn.stream, close, head_only).is_err() {
            return;
        }
        if close {
            conn.linger();
            return;
        }
        wait = state.options.idle_timeout;
    }
}

/// How reading a request ended when it gave no request.
enum End {
    /// Close without an answer (client gone, idle, TLS, server stopping).
    Quiet,
    /// Answer this, then close.
    Answer(ApiError),
}

impl From<ApiError> for End {
    fn from(e: ApiError) -> Self {
        End::Answer(e)
    }
}

/// A whole request and whether the connection ends after its answer.
struct Incoming {
    request: Request,
    close: bool,
    http10: bool,
    /// The body's share of the body budget, held until the request is routed.
    body_permit: Option<Permit>,
}

struct Conn {
    stream: TcpStream,
    /// Bytes read and not yet used: the start of the next request (pipelining).
    buf: Vec<u8>,
    /// Who the peer is, for the shares per client (`server::client_of`).
    client: IpAddr,
}

/// A body being received: what it holds of the body budget, and its deadlines.
struct Receiving {
    permit: Permit,
    /// Whether any of it has arrived.
    started: bool,
    /// By when its first bytes must arrive, and how long that was.
    start_by: Instant,
    start_timeout: Duration,
    /// By when all of it must.
    deadline: Instant,
}

impl Receiving {
    /// The deadline of the next read.
    fn deadline(&self) -> Instant {
        if self.started {
            self.deadline
        } else {
            self.start_by.min(self.deadline)
        }
    }

    /// The 408 of a read past [`Receiving::deadline`].
    fn late(&self) -> ApiError {
        if self.started {
            ApiError::new(408, "the body did not arrive in time")
        } else {
            ApiError::new(
                408,
                format!(
                    "no byte of the body arrived within {} s of its head",
                    self.start_timeout.as_secs_f64()
                ),
            )
        }
    }
}

/// What the head says, owned (the parse borrows the buffer).
struct Head {
    len: usize,
    method: String,
    target: String,
    http10: bool,
    headers: Vec<(String, String)>,
}

impl Conn {
    /// Reads into `buf`, waiting at most until `deadline`. `Ok(0)`: the client closed.
    fn fill(&mut self, deadline: Instant, max: usize) -> io::Result<usize> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut chunk = [0u8; READ_CHUNK];
        let want = max.clamp(1, chunk.len());
        loop {
            match self.stream.read(&mut chunk[..want]) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock) => {
                    return Err(io::ErrorKind::TimedOut.into())
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn read_request(&mut self, state: &State, first_wait: Duration) -> Result<Incoming, End> {
        let o = &state.options;
        // Wait for the first byte: an idle connection just closes.
        if self.buf.is_empty() {
            match self.fill(Instant::now() + first_wait, usize::MAX) {
                Ok(0) | Err(_) => return Err(End::Quiet),
                Ok(_) => {}
            }
        }
        let head = self.read_head(o.max_head, Instant::now() + o.head_timeout)?;
        auth::check_host(
            single(&head.headers, "Host")?,
            head.http10,
            state.bound,
            o.token.as_deref(),
        )?;
        self.buf.drain(..head.len);
        let (path, query) = head.target.split_once('?').unwrap_or((&head.target, ""));
        let limit = routes::body_limit(o, path);
        let (body, body_permit) =
            self.read_body(state, &head.headers, framing(&head.headers)?, limit)?;
        // The body is out of `buf`: an idle keep-alive connection keeps no body-sized buffer.
        self.buf.shrink_to(o.max_head);
        let connection = header(&head.headers, "Connection").unwrap_or("");
        let has = |token: &str| {
            connection
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        };
        let close = has("close") || (head.http10 && !has("keep-alive"));
        Ok(Incoming {
            request: Request {
                method: Method::parse(&head.method),
                path: path.to_owned(),
                query: query.to_owned(),
                headers: head.headers,
                body,
            },
            close,
            http10: head.http10,
            body_permit,
        })
    }

    /// The body that `framed` announces (the head is read and gone from `buf`), at most
    /// `limit` bytes, within the other limits, and its permit of the body budget, held until
    /// the request is routed. The permit covers from the start what `buf` holds, then grows
    /// as the body arrives ([`Conn::want`]).
    fn read_body(
        &mut self,
        state: &State,
        headers: &[(String, String)],
        framed: Framing,
        limit: usize,
    ) -> Result<(Vec<u8>, Option<Permit>), End> {
        let o = &state.options;
        let length = match framed {
            Framing::Length(0) => return Ok((Vec::new(), None)),
            Framing::Length(n) if n > limit as u64 => return Err(too_large(limit).into()),
            Framing::Length(n) => Some(n as usize),
            Framing::Chunked => None,
        };
        let permit = state
            .bodies
            .take_for(Some(self.client), self.buf.len() as u64)?;
        if length.is_none_or(|n| n > self.buf.len())
            && header(headers, "Expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
        {
            self.stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .map_err(|_| End::Quiet)?;
        }
        let now = Instant::now();
        let mut body = Receiving {
            permit,
            started: !self.buf.is_empty(),
            start_by: now + o.body_start_timeout,
            start_timeout: o.body_start_timeout,
            deadline: now + o.body_timeout,
        };
        let data = match length {
            Some(n) => self.read_exactly(n, &mut body)?,
            None => self.read_chunked(limit, &mut body)?,
        };
        Ok((data, Some(body.permit)))
    }

    /// Waits until `buf` holds `n` bytes of `body`, which holds `decoded` bytes besides `buf`
    /// (a chunked body's data so far). Before each read the body's permit grows to cover all
    /// the body may then hold, so a body counts what has arrived, never what it announced.
    fn want(&mut self, n: usize, decoded: usize, body: &mut Receiving) -> Result<(), End> {
        while self.buf.len() < n {
            let read = (n - self.buf.len()).min(READ_CHUNK);
            body.permit
                .grow_to((decoded + self.buf.len() + read) as u64)?;
            match self.fill(body.deadline(), read) {
                Ok(0) => return Err(End::Quiet),
                Ok(_) => body.started = true,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(body.late().into()),
                Err(_) => return Err(End::Quiet),
            }
        }
        Ok(())
    }

    /// A body of `length` bytes. `buf` is sized for it once, in address space (memory is
    /// used as the bytes arrive), so it is neither grown to twice its size on the way nor
    /// copied out: it becomes the body, and what follows it the new `buf`.
    fn read_exactly(&mut self, length: usize, body: &mut Receiving) -> Result<Vec<u8>, End> {
        self.buf
            .reserve_exact(length.saturating_sub(self.buf.len()));
        self.want(length, 0, body)?;
        let rest = self.buf.split_off(length);
        Ok(std::mem::replace(&mut self.buf, rest))
    }

    /// A chunked body, decoded, at most `limit` bytes (413 beyond, without reading on).
    fn read_chunked(&mut self, limit: usize, body: &mut Receiving) -> Result<Vec<u8>, End> {
        let mut data = Vec::new();
        loop {
            let line = self.line(data.len(), body)?;
            let size = line.split(|&b| b == b';').next().unwrap_or(&[]);
            let size = std::str::from_utf8(size)
                .ok()
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.len() <= 15)
                .and_then(|s| usize::from_str_radix(s, 16).ok())
                .ok_or_else(|| ApiError::bad("malformed chunk size"))?;
            if size == 0 {
                // Trailer fields, ignored, up to the empty line.
                let mut trailers = 0;
                loop {
                    let line = self.line(data.len(), body)?;
                    if line.is_empty() {
                        return Ok(data);
                    }
                    trailers += line.len();
                    if trailers > MAX_CHUNK_LINE * 16 {
                        return Err(ApiError::new(431, "chunked trailers too large").into());
                    }
                }
            }
            if data.len() + size > limit {
                return Err(too_large(limit).into());
            }
            self.want(size + 2, data.len(), body)?;
            if &self.buf[size..size + 2] != b"\r\n" {
                return Err(ApiError::bad("a chunk is not ended by CRLF").into());
            }
            data.extend_from_slice(&self.buf[..size]);
            self.buf.drain(..size + 2);
        }
    }

    /// One line of a chunked body (without its CRLF), at most [`MAX_CHUNK_LINE`] bytes.
    fn line(&mut self, decoded: usize, body: &mut Receiving) -> Result<Vec<u8>, End> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.buf.len() > MAX_CHUNK_LINE {
                return Err(ApiError::bad("a chunk-size line is too long").into());
            }
            self.want(self.buf.len() + 1, decoded, body)?;
        }
    }

    /// Reads until `buf` holds a whole head (see the module doc for the answers).
    fn read_head(&mut self, max_head: usize, deadline: Instant) -> Result<Head, End> {
        let mut parse_from = 0;
        loop {
            // A TLS handshake record: nothing to answer in plain HTTP.
            if self.buf.first() == Some(&0x16) {
                return Err(End::Quiet);
            }
            // Parse again only when a line may have ended (and early, to refuse non-HTTP).
            if self.buf.len() <= 64 || self.buf[parse_from..].contains(&b'\n') {
                if let Some(head) = parse_head(&self.buf)? {
                    return Ok(head);
                }
            }
            if self.buf.len() >= max_head {
                return Err(ApiError::new(
                    431,
                    format!("the request head is larger than the limit of {max_head} bytes"),
                )
                .into());
            }
            parse_from = self.buf.len();
            match self.fill(deadline, max_head + 1 - self.buf.len()) {
                Ok(0) => return Err(End::Quiet),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Err(ApiError::new(
                        408,
                        "the request head did not arrive in time".to_owned(),
                    )
                    .into())
                }
                Err(_) => return Err(End::Quiet),
            }
        }
    }

    /// Closes after an error: stops writing, then reads (and drops) what the client still
    /// sends, within [`LINGER_BYTES`] and [`LINGER`], so it reads the answer rather than a
    /// reset.
    fn linger(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        let deadline = Instant::now() + LINGER;
        let mut seen = 0;
        let mut chunk = [0u8; 8192];
        while seen < LINGER_BYTES {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.stream.set_read_timeout(Some(left)).is_err() {
                break;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen += n,
            }
        }
    }
}

/// The 413 of a body over `limit` bytes.
fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        413,
        format!("the body is larger than this route's limit of {limit} bytes"),
    )
}

/// Longest chunk-size line of a chunked body (the size, extensions, CRLF).
const MAX_CHUNK_LINE: usize = 1024;

/// Most bytes one read takes from a socket (and so the most a body's permit grows ahead of
/// what has arrived).
const READ_CHUNK: usize = 8 << 10;

/// A whole head at the start of `buf`, `None` if it is not complete yet.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, ApiError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ApiError::new(
                431,
                format!("more than {MAX_HEADERS} header fields"),
            ))
        }
        Err(httparse::Error::Version) => {
            return Err(ApiError::new(
                505,
                "this server speaks HTTP/1.0 and HTTP/1.1 only",
            ))
        }
        Err(e) => return Err(ApiError::bad(format!("not an HTTP/1.x request: {e}"))),
    };
    Ok(Some(Head {
        len,
        method: parsed.method.unwrap_or("").to_owned(),
        target: parsed.path.unwrap_or("").to_owned(),
        http10: parsed.version == Some(0),
        headers: parsed
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_owned(),
                    String::from_utf8_lossy(h.value).trim().to_owned(),
                )
            })
            .collect(),
    }))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The one value of header `name`, `None` without it; 400 when the request carries it
/// more than once (two `Host`s or `Content-Length`s could be read differently by a proxy in
/// front and by pismo).
fn single<'a>(headers: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, ApiError> {
    let mut values = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str());
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::bad(format!(
            "the request carries {name} more than once: send it once"
        )));
    }
    Ok(first)
}

/// How a request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// `Content-Length` bytes (0 without the header).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// The framing of a body from its head: one `Content-Length` of digits, or one
/// `Transfer-Encoding: chunked`. Either header twice, both at once, or a length that is not
/// a number is a 400; another transfer coding a 501.
fn framing(headers: &[(String, String)]) -> Result<Framing, ApiError> {
    let length = single(headers, "Content-Length")?;
    match single(headers, "Transfer-Encoding")? {
        None => {}
        Some(_) if length.is_some() => {
            return Err(ApiError::bad("both Content-Length and Transfer-Encoding"))
        }
        Some(coding) if coding.eq_ignore_ascii_case("chunked") => return Ok(Framing::Chunked),
        Some(coding) => {
            return Err(ApiError::new(
                501,
                format!(
                "transfer coding {coding:?} is not supported: send the body with a Content-Length"
            ),
            ))
        }
    }
    let Some(v) = length else {
        return Ok(Framing::Length(0));
    };
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad(format!("invalid Content-Length {v:?}")));
    }
    // Too many digits for u64: larger than any limit.
    Ok(Framing::Length(v.parse::<u64>().unwrap_or(u64::MAX)))
}

/// Answers a connection over a cap with a 503 saying `why`, and closes it, without
/// blocking: what the client already sent is read without waiting, so the answer is not
/// lost to a reset.
pub(crate) fn refuse(mut stream: TcpStream, why: String) {
    let _ = stream.set_nonblocking(true);
    let mut chunk = [0u8; READ_CHUNK];
    let mut seen = 0;
    while seen < LINGER_BYTES {
        match stream.read(&mut chunk) {
            Ok(n) if n > 0 => seen += n,
            _ => break,
        }
    }
    let e = ApiError::new(503, why).with_header(
        "Retry-After",
        crate::limits::RETRY_AFTER_SECONDS.to_string(),
    );
    let _ = e.into_reply().write_to(&mut stream, true, false);
    let _ = stream.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(fields: &[(&str, &str)]) -> Result<Framing, u16> {
        let headers: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        framing(&headers).map_err(|e| e.status)
    }

    #[test]
    fn framings() {
        let cl = |v| ("content-length", v);
        let te = |v| ("Transfer-Encoding", v);
        assert_eq!(framed(&[]), Ok(Framing::Length(0)));
        assert_eq!(framed(&[cl("12")]), Ok(Framing::Length(12)));
        assert_eq!(
            framed(&[cl("99999999999999999999999")]),
            Ok(Framing::Length(u64::MAX))
        );
        assert_eq!(framed(&[cl("-1")]), Err(400));
        assert_eq!(framed(&[cl("+5")]), Err(400));
        assert_eq!(framed(&[cl("1"), cl("2")]), Err(400));
        assert_eq!(framed(&[cl("1"), ("Content-Length", "1")]), Err(400));
        assert_eq!(framed(&[te("Chunked")]), Ok(Framing::Chunked));
        assert_eq!(framed(&[te("chunked"), te("gzip")]), Err(400));
        assert_eq!(framed(&[te("chunked"), te("chunked")]), Err(400));
        assert_eq!(framed(&[te("chunked"), cl("3")]), Err(400));
        assert_eq!(framed(&[te("gzip")]), Err(501));
        assert_eq!(framed(&[te("gzip, chunked")]), Err(501));
    }

    #[test]
    fn heads_that_are_not_http1_are_refused() {
        assert_eq!(
            parse_head(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                .err()
                .map(|e| e.status),
            Some(505)
        );
        assert!(parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .unwrap()
            .is_none());
        assert!(parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap()
            .is_some());
        assert_eq!(
            parse_head(b"\x00\x01garbage\r\n\r\n")
                .err()
                .map(|e| e.status),
            Some(400)
        );
    }
}
