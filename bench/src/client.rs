//! A keep-alive HTTP/1.1 client over a plain `TcpStream` (Nagle off), as small as a load
//! generator needs: one request at a time, `Content-Length` answers only. `loadgen` and
//! `soak` send their requests through it; `soak`'s hostile clients write raw bytes instead.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// What went wrong in one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Connect,
    Io,
    Status,
    Protocol,
    Answer,
    WrongLabel,
}

/// Why one exchange failed.
#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// A keep-alive connection: writes on the stream, reads through a buffer.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    line: Vec<u8>,
    /// The body of the last answer.
    pub body: Vec<u8>,
    /// Answers read on this connection.
    pub answered: u64,
}

impl Conn {
    pub fn open(host: &str) -> Result<Conn, Failure> {
        let io = |e: std::io::Error| Failure::new(Kind::Connect, format!("connect {host}: {e}"));
        let stream = TcpStream::connect(host).map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(io)?;
        let reader = BufReader::with_capacity(64 << 10, stream.try_clone().map_err(io)?);
        Ok(Conn {
            stream,
            reader,
            line: Vec::with_capacity(256),
            body: Vec::with_capacity(16 << 10),
            answered: 0,
        })
    }

    /// Sends one request and reads its answer into `self.body`: the answer's status and
    /// whether the server asked to close the connection. Any status is an answer.
    pub fn send(&mut self, request: &[u8]) -> Result<Answer, Failure> {
        let io = |e: std::io::Error| Failure::new(Kind::Io, e.to_string());
        self.stream.write_all(request).map_err(io)?;
        // Status line.
        self.line.clear();
        let n = self.reader.read_until(b'\n', &mut self.line).map_err(io)?;
        if n == 0 {
            return Err(Failure::new(
                Kind::Io,
                "the server closed the connection before answering",
            ));
        }
        let status = parse_status(&self.line).ok_or_else(|| {
            Failure::new(
                Kind::Protocol,
                format!(
                    "bad status line {:?}",
                    String::from_utf8_lossy(&self.line).trim_end()
                ),
            )
        })?;
        // Headers.
        let (mut length, mut close, mut chunked) = (None, false, false);
        loop {
            self.line.clear();
            let n = self.reader.read_until(b'\n', &mut self.line).map_err(io)?;
            if n == 0 {
                return Err(Failure::new(Kind::Io, "connection closed in the headers"));
            }
            let line = trim_crlf(&self.line);
            if line.is_empty() {
                break;
            }
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                return Err(Failure::new(Kind::Protocol, "header line without a colon"));
            };
            let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
            if name.eq_ignore_ascii_case(b"content-length") {
                length = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<usize>().ok());
                if length.is_none() {
                    return Err(Failure::new(Kind::Protocol, "bad Content-Length"));
                }
            } else if name.eq_ignore_ascii_case(b"connection") {
                close = value.eq_ignore_ascii_case(b"close");
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                chunked = !value.eq_ignore_ascii_case(b"identity");
            }
        }
        if chunked {
            return Err(Failure::new(
                Kind::Protocol,
                "chunked answer: this client reads Content-Length bodies only",
            ));
        }
        let length = length.ok_or_else(|| Failure::new(Kind::Protocol, "no Content-Length"))?;
        self.body.clear();
        self.body.resize(length, 0);
        self.reader.read_exact(&mut self.body).map_err(io)?;
        self.answered += 1;
        Ok(Answer { status, close })
    }

    /// [`Conn::send`], and any status but 200 is a [`Kind::Status`] failure. Returns whether
    /// the server asked to close the connection.
    pub fn exchange(&mut self, request: &[u8]) -> Result<bool, Failure> {
        let answer = self.send(request)?;
        self.expect_ok(&answer)?;
        Ok(answer.close)
    }

    /// A [`Kind::Status`] failure naming the status and the start of the body unless
    /// `answer` (the last one read) is a 200.
    pub fn expect_ok(&self, answer: &Answer) -> Result<(), Failure> {
        if answer.status == 200 {
            return Ok(());
        }
        Err(Failure::new(
            Kind::Status,
            format!(
                "status {}: {}",
                answer.status,
                String::from_utf8_lossy(&self.body[..self.body.len().min(200)]).trim_end()
            ),
        ))
    }
}

pub fn parse_status(line: &[u8]) -> Option<u16> {
    let line = std::str::from_utf8(trim_crlf(line)).ok()?;
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

pub fn trim_crlf(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

pub fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &v[start..end]
}

/// The head of one answer (its body is in [`Conn::body`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The server asked to close the connection (`Connection: close`).
    pub close: bool,
}
