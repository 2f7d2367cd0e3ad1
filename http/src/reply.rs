//! Replies and errors: a status, a content type, a body and a few headers, written to the
//! connection by [`Reply::write_to`] with a `Content-Length`. Every error is an
//! [`ApiError`], sent as JSON `{"error": …}` (plus `"field"` when one input field is to
//! blame). Header names and values come from pismo's own code, never from a request
//! unchecked: [`Reply::write_to`] drops line breaks from values, so no reply can be split.

use pismo_storage::registry::RegistryError;
use pismo_storage::runs::RunsError;
use serde::Serialize;
use serde_json::{json, Value};
use std::io::{self, Write};

/// A response before it is written.
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    /// `value` as JSON with status 200.
    pub fn json(value: &impl Serialize) -> Result<Reply, ApiError> {
        let mut body = serde_json::to_vec(value)
            .map_err(|e| ApiError::new(500, format!("cannot serialise the answer: {e}")))?;
        body.push(b'\n');
        Ok(Reply::text(200, "application/json", body))
    }

    pub fn text(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            content_type,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    pub fn with_status(mut self, status: u16) -> Reply {
        self.status = status;
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    /// Writes the status line, the headers (with `Content-Length`, and `Connection: close`
    /// when `close`) and, unless `head_only` (a `HEAD` request), the body, in one write.
    pub fn write_to(&self, out: &mut impl Write, close: bool, head_only: bool) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(256 + self.body.len());
        write!(
            bytes,
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        )?;
        for (name, value) in &self.headers {
            let value: String = value
                .chars()
                .filter(|c| !matches!(c, '\r' | '\n'))
                .collect();
            write!(bytes, "{name}: {value}\r\n")?;
        }
        if close {
            bytes.extend_from_slice(b"Connection: close\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
        if !head_only {
            bytes.extend_from_slice(&self.body);
        }
        out.write_all(&bytes)?;
        out.flush()
    }
}

/// The reason phrase of the statuses pismo sends.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        421 => "Misdirected Request",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// An error answer: a status and a message, sent as `{"error": message}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: u16,
    pub message: String,
    /// Extra members of the JSON error (`field`, `active`, …).
    pub extra: Vec<(&'static str, Value)>,
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            extra: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// A 400.
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    pub fn with(mut self, key: &'static str, value: Value) -> Self {
        self.extra.push((key, value));
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn into_reply(self) -> Reply {
        let mut object = json!({ "error": self.message });
        for (key, value) in self.extra {
            object[key] = value;
        }
        let mut body = serde_json::to_vec(&object)
            .unwrap_or_else(|_| b"{\"error\":\"internal error\"}".to_vec());
        body.push(b'\n');
        Reply {
            status: self.status,
            content_type: "application/json",
            body,
            headers: self.headers,
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let status = if e.is_not_found() {
            404
        } else if e.is_invalid() {
            400
        } else if e.is_unavailable() {
            503
        } else {
            500
        };
        Self::new(status, e.to_string())
    }
}

impl From<RunsError> for ApiError {
    fn from(e: RunsError) -> Self {
        let status = match e {
            RunsError::InvalidId { .. } => 400,
            ref e if e.is_not_found() => 404,
            // The database of the runs refused or could not be reached: try again.
            RunsError::Store { .. } => 503,
            _ => 500,
        };
        Self::new(status, e.to_string())
    }
}
