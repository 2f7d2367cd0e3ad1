//! Replies and errors before they are handed to tiny_http: a status, a content type, a body
//! and a few headers. Every error is an [`ApiError`], sent as JSON `{"error": …}` (plus
//! `"field"` when one input field is to blame).

use pismo_core::host::registry::RegistryError;
use pismo_core::host::runs::RunsError;
use serde::Serialize;
use serde_json::{json, Value};
use tiny_http::{Header, Response};

/// A response before it is handed to tiny_http.
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

    pub fn into_response(self) -> Response<std::io::Cursor<Vec<u8>>> {
        let mut response = Response::from_data(self.body)
            .with_status_code(self.status)
            .with_header(header("Content-Type", self.content_type));
        for (name, value) in &self.headers {
            response.add_header(header(name, value));
        }
        response
    }
}

/// A header from trusted parts (our names; values without line breaks).
pub(crate) fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap_or_else(|()| {
        Header::from_bytes(name.as_bytes(), &b"invalid"[..]).expect("static header is valid")
    })
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
            _ => 500,
        };
        Self::new(status, e.to_string())
    }
}
