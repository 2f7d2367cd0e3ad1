//! The few calls of MLflow's REST API (`/api/2.0/mlflow/…` and the artifact proxy
//! `/api/2.0/mlflow-artifacts/…`) that an export needs, over ureq. Every reply is JSON; an
//! error reply carries `error_code` and `message`, which [`MlflowError::Api`] keeps.

use std::fmt;
use std::time::Duration;

use serde_json::{json, Value};
use ureq::Agent;

/// The most metrics one `runs/log-batch` may carry (MLflow's limit).
pub const MAX_METRICS_PER_BATCH: usize = 1000;
/// The most params one `runs/log-batch` may carry (MLflow's limit).
pub const MAX_PARAMS_PER_BATCH: usize = 100;
/// The most tags one `runs/log-batch` may carry (MLflow's limit).
pub const MAX_TAGS_PER_BATCH: usize = 100;

/// Why a call to MLflow failed.
#[derive(Debug)]
pub enum MlflowError {
    /// No answer: refused, unresolved, timed out, broken.
    Unreachable {
        /// The server's URI.
        uri: String,
        /// What the HTTP client said.
        detail: String,
    },
    /// MLflow answered with an error status.
    Api {
        /// The server's URI.
        uri: String,
        /// The endpoint called, e.g. `runs/log-batch`.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// MLflow's `error_code` (e.g. `INVALID_PARAMETER_VALUE`), or `HTTP <status>`.
        code: String,
        /// MLflow's `message`, or the start of the body.
        message: String,
    },
    /// MLflow answered something that is not what the API promises.
    Reply {
        /// The server's URI.
        uri: String,
        /// The endpoint called.
        endpoint: String,
        /// What was wrong.
        detail: String,
    },
    /// Anything else, said in full (e.g. a version numbering conflict).
    Other(String),
}

impl MlflowError {
    /// True when the server never answered (as opposed to answering with an error).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }

    /// MLflow's `error_code`, for an error answer.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

impl fmt::Display for MlflowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable { uri, detail } => {
                write!(f, "cannot reach MLflow at {uri}: {detail}")
            }
            Self::Api {
                uri,
                endpoint,
                status,
                code,
                message,
            } => write!(
                f,
                "MLflow at {uri} refused {endpoint} (HTTP {status}): {code}: {message}"
            ),
            Self::Reply {
                uri,
                endpoint,
                detail,
            } => write!(
                f,
                "MLflow at {uri} gave an unexpected answer to {endpoint}: {detail}"
            ),
            Self::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for MlflowError {}

/// How long a call may wait: the caller builds its agent with these.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// To connect.
    pub connect: Duration,
    /// For the answer to begin, and between reads of it.
    pub answer: Duration,
}

impl Timeouts {
    /// For `pismo runs export`: a server that does not answer fails within seconds, a slow
    /// upload of a large model is given time.
    pub const EXPORT: Timeouts = Timeouts {
        connect: Duration::from_secs(10),
        answer: Duration::from_secs(60),
    };
    /// For `pismo train --mlflow`: training must not wait long on a server in trouble.
    pub const TRAIN: Timeouts = Timeouts {
        connect: Duration::from_secs(3),
        answer: Duration::from_secs(15),
    };
}

/// Checks a tracking URI: `http://…` or `https://…` with a host. Returns it without a
/// trailing `/`, or why it is not one.
pub fn check_uri(uri: &str) -> Result<String, String> {
    let trimmed = uri.trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => {
            // The HTTP client must accept it too (e.g. no spaces).
            trimmed
                .parse::<ureq::http::Uri>()
                .map_err(|e| format!("invalid MLflow URI `{uri}`: {e}"))?;
            Ok(trimmed.to_owned())
        }
        _ => Err(format!(
            "invalid MLflow URI `{uri}`: expected the tracking server's http:// or https:// \
             address, e.g. http://127.0.0.1:5000"
        )),
    }
}

/// A tracking server. Cloning it is cheap (the agent's connections are shared).
#[derive(Clone, Debug)]
pub struct Client {
    agent: Agent,
    uri: String,
}

impl Client {
    /// A client of the server at `uri` (checked by [`check_uri`]) through `agent`, which
    /// must return error statuses as answers (`http_status_as_error(false)`): MLflow's
    /// error replies are read for their `error_code`.
    pub fn new(uri: &str, agent: Agent) -> Self {
        Self {
            agent,
            uri: uri.to_owned(),
        }
    }

    /// The server's URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// `GET /api/2.0/mlflow/<endpoint>?<query>`.
    pub fn get(&self, endpoint: &str, query: &[(&str, &str)]) -> Result<Value, MlflowError> {
        let mut request = self
            .agent
            .get(format!("{}/api/2.0/mlflow/{endpoint}", self.uri));
        for (key, value) in query {
            request = request.query(*key, *value);
        }
        self.answer(endpoint, request.call())
    }

    /// `POST /api/2.0/mlflow/<endpoint>` with a JSON body.
    pub fn post(&self, endpoint: &str, body: &Value) -> Result<Value, MlflowError> {
        let result = self
            .agent
            .post(format!("{}/api/2.0/mlflow/{endpoint}", self.uri))
            .header("content-type", "application/json")
            .send(body.to_string());
        self.answer(endpoint, result)
    }

    /// Uploads `bytes` as the artifact at `path` (`<experiment>/<run>/artifacts/<file>`)
    /// through the server's artifact proxy.
    pub fn put_artifact(&self, path: &str, bytes: &[u8]) -> Result<(), MlflowError> {
        let endpoint = format!("mlflow-artifacts/artifacts/{path}");
        let result = self
            .agent
            .put(format!("{}/api/2.0/{endpoint}", self.uri))
            .header("content-type", "application/octet-stream")
            .send(bytes);
        self.answer(&endpoint, result).map(drop)
    }

    /// The id of the experiment `name`, created if missing.
    pub fn experiment_id(&self, name: &str) -> Result<String, MlflowError> {
        let found = self.get("experiments/get-by-name", &[("experiment_name", name)]);
        let reply = match found {
            Ok(reply) => reply,
            Err(e) if e.code() == Some("RESOURCE_DOES_NOT_EXIST") => {
                let created = self.post("experiments/create", &json!({ "name": name }))?;
                return self.text(&created, "/experiment_id", "experiments/create");
            }
            Err(e) => return Err(e),
        };
        self.text(
            &reply,
            "/experiment/experiment_id",
            "experiments/get-by-name",
        )
    }

    /// Sends params, tags and metrics in as many `runs/log-batch` calls as MLflow's limits
    /// need.
    pub fn log_batch(
        &self,
        run_id: &str,
        params: &[(String, String)],
        tags: &[(String, String)],
        metrics: &[Value],
    ) -> Result<(), MlflowError> {
        let pairs = |items: &[(String, String)]| -> Vec<Value> {
            items
                .iter()
                .map(|(key, value)| json!({ "key": key, "value": value }))
                .collect()
        };
        // MLflow also caps a batch at 1000 items in all: params and tags (at most 200) go
        // apart from metrics.
        let rounds = params
            .len()
            .div_ceil(MAX_PARAMS_PER_BATCH)
            .max(tags.len().div_ceil(MAX_TAGS_PER_BATCH));
        for round in 0..rounds {
            let nth = |items: &[(String, String)], size: usize| {
                items.chunks(size).nth(round).map_or_else(Vec::new, pairs)
            };
            let body = json!({
                "run_id": run_id,
                "params": nth(params, MAX_PARAMS_PER_BATCH),
                "tags": nth(tags, MAX_TAGS_PER_BATCH),
            });
            self.post("runs/log-batch", &body)?;
        }
        for chunk in metrics.chunks(MAX_METRICS_PER_BATCH) {
            self.post(
                "runs/log-batch",
                &json!({ "run_id": run_id, "metrics": chunk }),
            )?;
        }
        Ok(())
    }

    /// The string at `pointer` in a reply of `endpoint`.
    pub fn text(
        &self,
        reply: &Value,
        pointer: &str,
        endpoint: &str,
    ) -> Result<String, MlflowError> {
        reply
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| self.reply_error(endpoint, format!("no `{pointer}` in {reply}")))
    }

    /// An unexpected answer of `endpoint`.
    pub fn reply_error(&self, endpoint: &str, detail: String) -> MlflowError {
        MlflowError::Reply {
            uri: self.uri.clone(),
            endpoint: endpoint.to_owned(),
            detail,
        }
    }

    fn answer(
        &self,
        endpoint: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, MlflowError> {
        let mut response = result.map_err(|e| MlflowError::Unreachable {
            uri: self.uri.clone(),
            detail: e.to_string(),
        })?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| MlflowError::Unreachable {
                uri: self.uri.clone(),
                detail: format!("the answer to {endpoint} broke off: {e}"),
            })?;
        let json = serde_json::from_str::<Value>(&body);
        if (200..300).contains(&status) {
            return match json {
                Ok(value) => Ok(value),
                // The artifact proxy may answer an upload with an empty body.
                Err(_) if body.trim().is_empty() => Ok(Value::Null),
                Err(e) => Err(self.reply_error(endpoint, format!("not JSON ({e})"))),
            };
        }
        let field = |name: &str| {
            json.as_ref()
                .ok()
                .and_then(|v| v.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let snippet: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
        Err(MlflowError::Api {
            uri: self.uri.clone(),
            endpoint: endpoint.to_owned(),
            status,
            code: field("error_code").unwrap_or_else(|| format!("HTTP {status}")),
            message: field("message").unwrap_or_else(|| snippet.chars().take(200).collect()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_uris_with_a_host_are_accepted() {
        assert_eq!(
            check_uri("http://127.0.0.1:5000/").as_deref(),
            Ok("http://127.0.0.1:5000")
        );
        assert_eq!(
            check_uri("https://mlflow.example.org/team").as_deref(),
            Ok("https://mlflow.example.org/team")
        );
        for bad in [
            "127.0.0.1:5000",
            "file:///tmp/mlruns",
            "http://",
            "http:///x",
            "ftp://h",
            "http://a b",
        ] {
            let err = check_uri(bad).unwrap_err();
            assert!(err.contains("invalid MLflow URI"), "{bad}: {err}");
        }
    }
}
