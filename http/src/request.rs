//! A parsed request as the handlers see it, and what they do with its body.
//!
//! A [`Request`] is whole: [`crate::connection`] has read its head within
//! [`crate::limits::MAX_HEAD_BYTES`] and its body within the body limit before any handler
//! runs, so a handler never blocks on the client. Header names are compared without regard
//! to case; values are trimmed. The body is bytes; [`json_body`] and [`body`] turn it into
//! what a route needs, with the 400/415 answers of the API.

use serde_json::Value;

use crate::reply::ApiError;

/// A request method pismo knows; others are kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Other(String),
}

impl Method {
    pub fn parse(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            other => Method::Other(other.to_owned()),
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Other(m) => m,
        })
    }
}

/// One request, head and body.
#[derive(Debug)]
pub(crate) struct Request {
    pub method: Method,
    /// The path, before any `?`, not decoded.
    pub path: String,
    /// What follows the `?` (empty when none).
    pub query: String,
    /// Names as sent; values trimmed (lossy UTF-8).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The media type of the body, lower case, without parameters (`; charset=…`).
    pub fn content_type(&self) -> Option<String> {
        self.header("Content-Type").map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }

    /// The value of `name` in the query string, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        query_param(&self.query, name)
    }
}

/// The body, 400 when empty. (Its size was checked against the limit when it was read.)
pub(crate) fn body(request: &Request) -> Result<&[u8], ApiError> {
    if request.body.is_empty() {
        return Err(ApiError::bad(
            "missing body: send a PNG (image/png) or JSON (application/json)",
        ));
    }
    Ok(&request.body)
}

pub(crate) fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("malformed JSON: {e}")))
}

/// A JSON body parsed straight into `T`: a 400 "malformed JSON" for bad syntax, and a 400
/// saying what was expected where for a body of another shape.
pub(crate) fn parse_typed<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            ApiError::bad(format!(
                "the JSON body does not have the shape this route takes: {e}"
            ))
        } else {
            ApiError::bad(format!("malformed JSON: {e}"))
        }
    })
}

/// The 415 for a body of media type `kind`, naming what is `accepted`.
pub(crate) fn unsupported_type(kind: Option<String>, accepted: &str) -> ApiError {
    ApiError::new(
        415,
        format!(
            "unsupported content type {}: send {accepted}",
            kind.map_or("(none)".to_owned(), |t| format!("`{t}`"))
        ),
    )
}

/// The value of `name` in a query string, percent-decoded.
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_percent_decoded() {
        assert_eq!(
            query_param("a=1&model=tiny%401", "model").as_deref(),
            Some("tiny@1")
        );
        assert_eq!(query_param("model=x", "other"), None);
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
