//! The registry and run records as JSON: aliases, run lists with their summaries and best
//! epoch, and the decoded-model cache that scoring uses.
//!
//! Invariant of the cache: a model is decoded once per `NAME@V` and stored version (size and
//! storage time, [`Stamp`]); a file that changes under the same `NAME@V` is decoded again.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use pismo_engine::model::AnyMlp;
use pismo_storage::registry::store::Stamp;
use pismo_storage::runs::RunInfo;
use serde::Serialize;
use serde_json::{json, Value};

use crate::reply::{ApiError, Reply};
use crate::State;

/// A decoded model and the stored bytes it came from.
struct Cached {
    stamp: Stamp,
    mlp: Arc<AnyMlp>,
}

/// Decoded models by `NAME@V`.
#[derive(Default)]
pub(crate) struct ModelCache(Mutex<HashMap<String, Cached>>);

impl ModelCache {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Cached>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `GET /api/aliases`: alias -> `NAME@V`.
pub(crate) fn aliases(state: &State) -> Result<Reply, ApiError> {
    let aliases: BTreeMap<String, String> = state
        .registry
        .aliases()?
        .into_iter()
        .map(|(alias, id)| (alias, id.to_string()))
        .collect();
    Reply::json(&aliases)
}

/// `DELETE /api/aliases/{alias}`.
pub(crate) fn remove_alias(state: &State, alias: &str) -> Result<Reply, ApiError> {
    let old = state.registry.remove_alias(alias)?;
    Reply::json(&json!({ "alias": alias, "model": old.to_string() }))
}

/// `PUT /api/aliases/{alias}` with `{"model": "NAME@V"}` (or any reference).
pub(crate) fn set_alias(state: &State, alias: &str, body: &Value) -> Result<Reply, ApiError> {
    let reference = body
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            ApiError::bad("the body must be {\"model\": \"NAME@VERSION\"}")
                .with("field", json!("model"))
        })?;
    let id = state.registry.resolve(Some(reference))?;
    state.registry.set_alias(alias, &id)?;
    Reply::json(&json!({ "alias": alias, "model": id.to_string() }))
}

/// A run as listed: its record, the last value of each metric (`summary`) and the metrics
/// of its best epoch (`best`: lowest validation loss, the weights the trainer kept).
#[derive(Serialize)]
struct RunSummary {
    #[serde(flatten)]
    info: RunInfo,
    summary: BTreeMap<String, Value>,
    best: Option<BTreeMap<String, Value>>,
}

/// The metrics of the epoch with the lowest finite `val_loss` (the first of equals), with
/// `epoch` = its step.
fn best_epoch(metrics: &[pismo_storage::runs::Metric]) -> Option<BTreeMap<String, Value>> {
    let best = pismo_storage::runs::kept_epoch(metrics)?;
    let mut out: BTreeMap<String, Value> = metrics
        .iter()
        .filter(|m| m.step == best && m.name != "test_accuracy" && m.value.is_finite())
        .map(|m| (m.name.clone(), metric_value(m.value)))
        .collect();
    out.insert("epoch".to_owned(), json!(best));
    Some(out)
}

/// A metric of a run record as JSON. Metrics are f32 values stored as f64: they are shown
/// in their shortest f32 form (0.03, not 0.029999999329447743). Not finite: `null`.
pub(crate) fn metric_value(v: f64) -> Value {
    format!("{}", v as f32)
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// `GET /api/runs/{id}`: the record with every metric, and `best` as in the list.
pub(crate) fn run_with_best(state: &State, id: &str) -> Result<Reply, ApiError> {
    #[derive(Serialize)]
    struct WithBest {
        #[serde(flatten)]
        record: pismo_storage::runs::RunRecord,
        best: Option<BTreeMap<String, Value>>,
    }
    let record = state.runs.get(id)?;
    let best = best_epoch(&record.metrics);
    Reply::json(&WithBest { record, best })
}

pub(crate) fn runs_with_summaries(state: &State) -> Result<Reply, ApiError> {
    let runs: Vec<RunSummary> = state
        .runs
        .list()?
        .into_iter()
        .map(|info| {
            let mut summary = BTreeMap::new();
            let mut best = None;
            if let Ok(metrics) = state.runs.metrics(&info.run_id) {
                best = best_epoch(&metrics);
                for m in metrics {
                    if m.value.is_finite() {
                        summary.insert(m.name, metric_value(m.value));
                    }
                }
            }
            RunSummary {
                info,
                summary,
                best,
            }
        })
        .collect();
    Reply::json(&runs)
}

/// The model `reference` means, decoded once per `NAME@V` and stored version, then shared.
pub(crate) fn model(
    state: &State,
    reference: Option<&str>,
) -> Result<(String, Arc<AnyMlp>), ApiError> {
    let reference = reference.filter(|r| !r.is_empty());
    let id = state.registry.resolve(reference)?;
    let key = id.to_string();
    let stamp = state.registry.stamp(&id)?;
    let mut models = state.models.lock();
    if let Some(c) = models.get(&key) {
        if c.stamp == stamp {
            return Ok((key, c.mlp.clone()));
        }
    }
    let bytes = state.registry.read(&id)?;
    let (mlp, _) = AnyMlp::decode(&bytes)
        .map_err(|e| ApiError::new(500, format!("model {key} does not decode: {e}")))?;
    let mlp = Arc::new(mlp);
    models.insert(
        key.clone(),
        Cached {
            stamp,
            mlp: mlp.clone(),
        },
    );
    Ok((key, mlp))
}
