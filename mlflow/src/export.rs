//! One pismo run into MLflow, and its model into MLflow's model registry.
//!
//! | pismo                                  | MLflow                                              |
//! | -------------------------------------- | --------------------------------------------------- |
//! | run record, its name                   | a run of the experiment (default `pismo`), run name |
//! | run id, dataset digest, model          | tags `pismo.run_id`, `pismo.dataset`, `pismo.model` |
//! | the record's tags (`study`, `trial`)    | tags `pismo.study`, `pismo.trial`                   |
//! | hyperparameters, recipe (from the log) | params `hidden_size`, …, `recipe.deskew`, …         |
//! | metrics.jsonl                          | metrics: key, value, step, timestamp as recorded    |
//! | log.txt                                | artifact `log.txt`                                  |
//! | each model of the run (its model, and  | artifact folder `models/NAME.vV/`, an MLflow model  |
//! | the int8 models quantized from it):    | ([`super::model`]: MLmodel, model.onnx, the file);  |
//! | NAME@V                                 | a version of the registered model NAME, tagged      |
//! |                                        | `pismo.version` V and `pismo.run_id`                |
//! | the run's model, deleted since         | tag `pismo.model_gone` saying so                    |
//! | aliases pointing at NAME@V             | aliases of that registered version                  |
//! | status, end time                       | status (stopped is KILLED), end time                |
//!
//! **Version numbers.** MLflow numbers a registered model's versions itself, 1, 2, 3, … in
//! the order they are registered; pismo's number is the version's `pismo.version` tag, and
//! every lookup (is it registered? which version does an alias name?) goes by that tag. When
//! the runs are exported oldest first (`pismo runs export` with no run) and no version was
//! deleted, the two numbers are the same. A gap (a deleted `mnist@4`, a run exported on its
//! own) never blocks: the next model takes MLflow's next number, and the export says which.
//!
//! An export is idempotent: the MLflow run is found again by its `pismo.run_id` tag, a model
//! version by its `pismo.version` tag. A run tagged `pismo.exported` (set last, once a run
//! has ended) is skipped, but for its models' aliases; one without it (a `pismo train
//! --mlflow` that was cut off, an export that failed half-way) is updated: what it lacks is
//! sent.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use pismo_engine::model::AnyMlp;
use pismo_storage::registry::{ModelId, Registry, RegistryError};
use pismo_storage::runs::{hyper_fields, Metric, RunInfo, RunRecord, Runs, RunsError, Status};
use pismo_training::recipe::Recipe;
use pismo_training::session::recorded_recipe;
use serde_json::{json, Value};

use crate::client::{Client, MlflowError};

/// The tag that ties an MLflow run to its pismo run.
pub const RUN_ID_TAG: &str = "pismo.run_id";
/// The tag set on an MLflow run once everything of an ended pismo run is in it.
pub const EXPORTED_TAG: &str = "pismo.exported";
/// The tag of a model version giving pismo's version.
pub const VERSION_TAG: &str = "pismo.version";
/// The tag of a run whose model is no longer in pismo's registry, saying so.
pub const MODEL_GONE_TAG: &str = "pismo.model_gone";

/// Why an export failed.
#[derive(Debug)]
pub enum ExportError {
    /// MLflow did not take it.
    Mlflow(MlflowError),
    /// The local run or model could not be read.
    Local(String),
}

impl ExportError {
    /// True when MLflow never answered: no point trying the next run.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Mlflow(e) if e.is_unreachable())
    }
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mlflow(e) => e.fmt(f),
            Self::Local(e) => f.write_str(e),
        }
    }
}

impl From<MlflowError> for ExportError {
    fn from(e: MlflowError) -> Self {
        Self::Mlflow(e)
    }
}

impl From<RunsError> for ExportError {
    fn from(e: RunsError) -> Self {
        Self::Local(e.to_string())
    }
}

impl From<RegistryError> for ExportError {
    fn from(e: RegistryError) -> Self {
        Self::Local(e.to_string())
    }
}

/// An MLflow run of a pismo run.
#[derive(Clone, Debug)]
pub struct MlflowRun {
    /// MLflow's run id.
    pub id: String,
    /// Where its artifacts go, e.g. `mlflow-artifacts:/1/<id>/artifacts`.
    pub artifact_uri: String,
    /// Whether it holds all of an ended run ([`EXPORTED_TAG`]).
    pub complete: bool,
}

/// What an export did.
#[derive(Debug)]
pub struct Exported {
    /// The MLflow run.
    pub run: MlflowRun,
    /// What happened to it.
    pub action: Action,
    /// The run's models in MLflow's model registry, in pismo's order (name, version).
    pub models: Vec<Registered>,
    /// Why the run's own model is not among them (it was deleted), as tagged.
    pub gone: Option<String>,
}

/// A model in MLflow's model registry.
#[derive(Debug)]
pub struct Registered {
    /// pismo's name and version.
    pub id: ModelId,
    /// MLflow's number of the version.
    pub version: String,
    /// The aliases pointing at it.
    pub aliases: Vec<String>,
}

/// What happened to the MLflow run of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// None existed: made.
    Created,
    /// One existed without all of the run: what it lacked was sent.
    Updated,
    /// One existed with all of the run: left alone (but for its model's aliases).
    Skipped,
}

impl Action {
    /// One word, for `--json`: `created`, `updated` or `skipped`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Skipped => "skipped",
        }
    }

    /// In words, for the export's report.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated (it was incomplete)",
            Self::Skipped => "already exported: skipped (aliases brought up to date)",
        }
    }
}

/// MLflow's name for a run status.
pub fn status_name(status: Status) -> &'static str {
    match status {
        Status::Running => "RUNNING",
        Status::Finished => "FINISHED",
        Status::Failed => "FAILED",
        Status::Stopped => "KILLED",
    }
}

/// The params of a run: every hyperparameter, and each field of the recipe (`recipe.NAME`)
/// when the run recorded one.
pub fn params(info: &RunInfo, recipe: Option<&Recipe>) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = hyper_fields(&info.params)
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
    if let Some(Value::Object(fields)) = recipe.and_then(|r| serde_json::to_value(r).ok()) {
        for (name, value) in fields {
            let value = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            params.push((format!("recipe.{name}"), value));
        }
    }
    params
}

/// The tags of a run: `pismo.run_id`, `pismo.dataset`, `pismo.model`, and `pismo.KEY` for each
/// tag of its record (a study's trials: `study`, `trial`).
pub fn tags(info: &RunInfo) -> Vec<(String, String)> {
    let mut tags = vec![(RUN_ID_TAG.to_owned(), info.run_id.clone())];
    if !info.dataset.is_empty() {
        tags.push(("pismo.dataset".to_owned(), info.dataset.clone()));
    }
    if let Some(model) = &info.model {
        tags.push(("pismo.model".to_owned(), model.clone()));
    }
    for (key, value) in &info.tags {
        tags.push((format!("pismo.{key}"), value.clone()));
    }
    tags
}

/// A metric as `runs/log-batch` takes it. A value that is not finite goes as the string
/// protobuf's JSON mapping uses (`"NaN"`, `"Infinity"`), which MLflow accepts.
pub fn metric_json(m: &Metric) -> Value {
    let value = if m.value.is_finite() {
        json!(m.value)
    } else if m.value.is_nan() {
        json!("NaN")
    } else if m.value > 0.0 {
        json!("Infinity")
    } else {
        json!("-Infinity")
    };
    json!({ "key": m.name, "value": value, "timestamp": m.timestamp, "step": m.step })
}

/// The artifact proxy's path of `file` in a run whose artifacts are at `artifact_uri`.
fn artifact_path(artifact_uri: &str, file: &str) -> Result<String, String> {
    let rest = artifact_uri
        .strip_prefix("mlflow-artifacts:")
        .ok_or_else(|| {
            format!(
                "MLflow keeps this run's artifacts at `{artifact_uri}`, which its server does not \
             serve: start `mlflow server` with artifact serving (the default; not \
             --no-serve-artifacts)"
            )
        })?;
    // `mlflow-artifacts:/1/…`, or `mlflow-artifacts://host:port/1/…`.
    let rest = match rest.strip_prefix("//") {
        Some(with_host) => with_host.split_once('/').map_or("", |(_, path)| path),
        None => rest.trim_start_matches('/'),
    };
    Ok(format!("{rest}/{file}"))
}

/// Exports runs into one experiment of one tracking server.
#[derive(Debug)]
pub struct Exporter {
    client: Client,
    experiment_id: String,
}

impl Exporter {
    /// Finds (or creates) the experiment `experiment`.
    pub fn connect(client: Client, experiment: &str) -> Result<Self, MlflowError> {
        let experiment_id = client.experiment_id(experiment)?;
        Ok(Self {
            client,
            experiment_id,
        })
    }

    /// Where the MLflow UI shows `run`.
    pub fn run_url(&self, run: &MlflowRun) -> String {
        format!(
            "{}/#/experiments/{}/runs/{}",
            self.client.uri(),
            self.experiment_id,
            run.id
        )
    }

    /// The MLflow run tagged with the pismo run `run_id`, if any.
    pub fn find(&self, run_id: &str) -> Result<Option<MlflowRun>, MlflowError> {
        let endpoint = "runs/search";
        let reply = self.client.post(
            endpoint,
            &json!({
                "experiment_ids": [self.experiment_id],
                "filter": format!("tags.`{RUN_ID_TAG}` = '{run_id}'"),
                "max_results": 2,
            }),
        )?;
        let Some(run) = reply.pointer("/runs/0") else {
            return Ok(None);
        };
        let complete = run
            .pointer("/data/tags")
            .and_then(Value::as_array)
            .is_some_and(|tags| {
                tags.iter().any(|t| {
                    t.get("key").and_then(Value::as_str) == Some(EXPORTED_TAG)
                        && t.get("value").and_then(Value::as_str) == Some("true")
                })
            });
        Ok(Some(MlflowRun {
            id: self.client.text(run, "/info/run_id", endpoint)?,
            artifact_uri: self.client.text(run, "/info/artifact_uri", endpoint)?,
            complete,
        }))
    }

    /// Makes the MLflow run of `info` with its params and tags.
    pub fn start(&self, info: &RunInfo, recipe: Option<&Recipe>) -> Result<MlflowRun, MlflowError> {
        let endpoint = "runs/create";
        let reply = self.client.post(
            endpoint,
            &json!({
                "experiment_id": self.experiment_id,
                "run_name": info.name,
                "start_time": info.start_unix_ms,
                "tags": [{ "key": RUN_ID_TAG, "value": info.run_id }],
            }),
        )?;
        let run = MlflowRun {
            id: self.client.text(&reply, "/run/info/run_id", endpoint)?,
            artifact_uri: self
                .client
                .text(&reply, "/run/info/artifact_uri", endpoint)?,
            complete: false,
        };
        self.client
            .log_batch(&run.id, &params(info, recipe), &tags(info), &[])?;
        Ok(run)
    }

    /// Sends `metrics` to `run`.
    pub fn send_metrics(&self, run: &MlflowRun, metrics: &[Metric]) -> Result<(), MlflowError> {
        let metrics: Vec<Value> = metrics.iter().map(metric_json).collect();
        self.client.log_batch(&run.id, &[], &[], &metrics)
    }

    /// The metrics of `metrics` that `run` does not have yet (by name, step and timestamp).
    fn missing<'m>(
        &self,
        run: &MlflowRun,
        metrics: &'m [Metric],
    ) -> Result<Vec<&'m Metric>, MlflowError> {
        let mut present = HashSet::new();
        let names: BTreeSet<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
        let endpoint = "metrics/get-history";
        for name in names {
            let mut page = String::new();
            loop {
                let mut query = vec![("run_id", run.id.as_str()), ("metric_key", name)];
                if !page.is_empty() {
                    query.push(("page_token", page.as_str()));
                }
                let reply = self.client.get(endpoint, &query)?;
                for m in reply
                    .get("metrics")
                    .and_then(Value::as_array)
                    .map_or(&[][..], Vec::as_slice)
                {
                    let step = m.get("step").and_then(Value::as_u64);
                    let timestamp = m.get("timestamp").and_then(Value::as_u64);
                    if let (Some(step), Some(timestamp)) = (step, timestamp) {
                        present.insert((name.to_owned(), step, timestamp));
                    }
                }
                match reply.get("next_page_token").and_then(Value::as_str) {
                    Some(token) if !token.is_empty() => page = token.to_owned(),
                    _ => break,
                }
            }
        }
        Ok(metrics
            .iter()
            .filter(|m| !present.contains(&(m.name.clone(), u64::from(m.step), m.timestamp)))
            .collect())
    }

    /// Exports the pismo run `run_id` of `runs`, its models from `registry`: what it has is
    /// read first, then its MLflow run is skipped, updated or created, its record sent, its
    /// models registered, and the run tagged [`EXPORTED_TAG`] once it has ended.
    pub fn export(
        &self,
        runs: &Runs,
        registry: &Registry,
        run_id: &str,
    ) -> Result<Exported, ExportError> {
        let local = Local::read(runs, registry, run_id)?;
        let info = &local.record.info;
        let (run, action) = match self.find(run_id)? {
            Some(run) if run.complete => return self.skip(registry, run, local),
            Some(run) => {
                // Params and tags are idempotent in MLflow: sent whole again.
                self.client.log_batch(
                    &run.id,
                    &params(info, local.recipe.as_ref()),
                    &local.tags,
                    &[],
                )?;
                (run, Action::Updated)
            }
            None => {
                let run = self.start(info, local.recipe.as_ref())?;
                if local.gone.is_some() {
                    self.client.log_batch(&run.id, &[], &local.tags, &[])?;
                }
                (run, Action::Created)
            }
        };
        self.send_record(&run, action, &local)?;
        let ended = info.status != Status::Running;
        let models = self.send_models(registry, &run, run_id, local.models)?;
        if ended {
            self.client.log_batch(
                &run.id,
                &[],
                &[(EXPORTED_TAG.to_owned(), "true".to_owned())],
                &[],
            )?;
        }
        Ok(Exported {
            run: MlflowRun {
                complete: ended,
                ..run
            },
            action,
            models,
            gone: local.gone,
        })
    }

    /// A run already exported whole: only its models' aliases are brought up to date.
    fn skip(
        &self,
        registry: &Registry,
        run: MlflowRun,
        local: Local,
    ) -> Result<Exported, ExportError> {
        let mut registered = Vec::new();
        for (id, _) in &local.models {
            if let Some(version) = self.mlflow_version(id)? {
                let aliases = self.set_aliases(registry, id, &version)?;
                registered.push(Registered {
                    id: id.clone(),
                    version,
                    aliases,
                });
            }
        }
        Ok(Exported {
            run,
            action: Action::Skipped,
            models: registered,
            gone: local.gone,
        })
    }

    /// Sends the run's record to `run`: the metrics it lacks (all of them to a run just
    /// `Created`), the log, and the status and end time when the run has ended.
    fn send_record(
        &self,
        run: &MlflowRun,
        action: Action,
        local: &Local,
    ) -> Result<(), ExportError> {
        let record = &local.record;
        let metrics = match action {
            Action::Created => record.metrics.iter().collect(),
            _ => self.missing(run, &record.metrics)?,
        };
        let metrics: Vec<Value> = metrics.into_iter().map(metric_json).collect();
        self.client.log_batch(&run.id, &[], &[], &metrics)?;
        self.upload(run, "log.txt", local.log.as_bytes())?;
        // The status before the models, so that a failure further on (a model MLflow
        // refuses) leaves the run ended, not RUNNING; `pismo.exported` last, so that it is
        // sent again.
        let info = &record.info;
        if info.status != Status::Running {
            let mut update = json!({ "run_id": run.id, "status": status_name(info.status) });
            if let Some(end) = info.end_unix_ms {
                update["end_time"] = json!(end);
            }
            self.client.post("runs/update", &update)?;
        }
        Ok(())
    }

    /// Uploads each model of `models` as an MLflow model into `run`, registers it and
    /// points its aliases. Returns them as registered.
    fn send_models(
        &self,
        registry: &Registry,
        run: &MlflowRun,
        run_id: &str,
        models: Vec<(ModelId, Vec<u8>)>,
    ) -> Result<Vec<Registered>, ExportError> {
        let mut registered = Vec::new();
        for (id, bytes) in models {
            let (model, _) = AnyMlp::decode(&bytes)
                .map_err(|e| ExportError::Local(format!("model {id}: {e}")))?;
            let folder = model_folder(&id);
            for (file, content) in crate::model::files(&id, &bytes, &model) {
                self.upload(run, &format!("{folder}/{file}"), &content)?;
            }
            let version = self.register(run, run_id, &id, &folder)?;
            let aliases = self.set_aliases(registry, &id, &version)?;
            registered.push(Registered {
                id,
                version,
                aliases,
            });
        }
        Ok(registered)
    }

    fn upload(&self, run: &MlflowRun, file: &str, bytes: &[u8]) -> Result<(), ExportError> {
        let path = artifact_path(&run.artifact_uri, file).map_err(MlflowError::Other)?;
        Ok(self.client.put_artifact(&path, bytes)?)
    }

    /// Registers the MLflow model in `folder` of `run` as a version of MLflow's registered
    /// model `id.name`, tagged with pismo's version, unless one is tagged so already.
    /// Returns MLflow's number of that version (see the module documentation).
    fn register(
        &self,
        run: &MlflowRun,
        pismo_run: &str,
        id: &ModelId,
        folder: &str,
    ) -> Result<String, MlflowError> {
        match self
            .client
            .post("registered-models/create", &json!({ "name": id.name }))
        {
            Err(e) if e.code() != Some("RESOURCE_ALREADY_EXISTS") => return Err(e),
            _ => {}
        }
        if let Some(number) = self.mlflow_version(id)? {
            return Ok(number);
        }
        let endpoint = "model-versions/create";
        let reply = self.client.post(
            endpoint,
            &json!({
                "name": id.name,
                "source": format!("{}/{folder}", run.artifact_uri),
                "run_id": run.id,
                "tags": [
                    { "key": VERSION_TAG, "value": id.version.to_string() },
                    { "key": RUN_ID_TAG, "value": pismo_run },
                ],
            }),
        )?;
        self.client.text(&reply, "/model_version/version", endpoint)
    }

    /// MLflow's number of the version of `id.name` tagged with pismo's `id.version`, if one
    /// is registered.
    fn mlflow_version(&self, id: &ModelId) -> Result<Option<String>, MlflowError> {
        let pismo_version = id.version.to_string();
        Ok(self
            .versions(&id.name)?
            .into_iter()
            .filter(|(_, tag)| tag.as_deref() == Some(pismo_version.as_str()))
            .map(|(number, _)| number)
            .min()
            .map(|n| n.to_string()))
    }

    /// The versions of the registered model `name`: number and `pismo.version` tag.
    fn versions(&self, name: &str) -> Result<Vec<(u32, Option<String>)>, MlflowError> {
        let endpoint = "model-versions/search";
        let filter = format!("name='{name}'");
        let mut versions = Vec::new();
        let mut page = String::new();
        loop {
            let mut query = vec![("filter", filter.as_str()), ("max_results", "1000")];
            if !page.is_empty() {
                query.push(("page_token", page.as_str()));
            }
            let reply = self.client.get(endpoint, &query)?;
            for v in reply
                .get("model_versions")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice)
            {
                let number = v
                    .get("version")
                    .and_then(Value::as_str)
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| {
                        self.client
                            .reply_error(endpoint, format!("no version in {v}"))
                    })?;
                let tag = v
                    .get("tags")
                    .and_then(Value::as_array)
                    .and_then(|tags| {
                        tags.iter()
                            .find(|t| t.get("key").and_then(Value::as_str) == Some(VERSION_TAG))
                    })
                    .and_then(|t| t.get("value").and_then(Value::as_str))
                    .map(str::to_owned);
                versions.push((number, tag));
            }
            match reply.get("next_page_token").and_then(Value::as_str) {
                Some(token) if !token.is_empty() => page = token.to_owned(),
                _ => break,
            }
        }
        Ok(versions)
    }

    /// Points MLflow's aliases of `id.name` at its version `version` as pismo's aliases
    /// point at `id`. Returns them.
    fn set_aliases(
        &self,
        registry: &Registry,
        id: &ModelId,
        version: &str,
    ) -> Result<Vec<String>, ExportError> {
        let aliases: BTreeMap<String, ModelId> = registry.aliases()?;
        let mut set = Vec::new();
        for (alias, target) in aliases {
            if &target == id {
                self.client.post(
                    "registered-models/alias",
                    &json!({ "name": id.name, "alias": alias, "version": version }),
                )?;
                set.push(alias);
            }
        }
        Ok(set)
    }
}

/// What an export sends of a pismo run, read before MLflow is asked anything.
struct Local {
    /// The run and its metrics.
    record: RunRecord,
    /// Its training log.
    log: String,
    /// The recipe its log records, if any.
    recipe: Option<Recipe>,
    /// Its MLflow tags ([`tags`]), with [`MODEL_GONE_TAG`] when its model is gone.
    tags: Vec<(String, String)>,
    /// Its models with their bytes ([`models_of`]).
    models: Vec<(ModelId, Vec<u8>)>,
    /// Why its own model is not among them.
    gone: Option<String>,
}

impl Local {
    /// Reads run `run_id` of `runs` and its models in `registry`.
    fn read(runs: &Runs, registry: &Registry, run_id: &str) -> Result<Self, ExportError> {
        let record = runs.get(run_id)?;
        let own = match &record.info.model {
            Some(model) => Some(model.parse::<ModelId>().map_err(|e| {
                ExportError::Local(format!("run {run_id}: its model `{model}`: {e}"))
            })?),
            None => None,
        };
        let (models, gone) = models_of(registry, run_id, own.as_ref())?;
        let log = runs.log(run_id)?;
        let recipe = recorded_recipe(&log);
        let mut tags = tags(&record.info);
        if let Some(gone) = &gone {
            tags.push((MODEL_GONE_TAG.to_owned(), gone.clone()));
        }
        Ok(Self {
            record,
            log,
            recipe,
            tags,
            models,
            gone,
        })
    }
}

/// The artifact folder of model `id`'s MLflow model in its run.
pub fn model_folder(id: &ModelId) -> String {
    format!("models/{}.v{}", id.name, id.version)
}

/// The models of run `run_id` in `registry`, sorted by name and version: its own model `own`
/// and every model whose file names the run (the int8 models quantized from it), with their
/// bytes; and, when `own` is no longer there, why, for [`MODEL_GONE_TAG`].
#[allow(clippy::type_complexity)]
fn models_of(
    registry: &Registry,
    run_id: &str,
    own: Option<&ModelId>,
) -> Result<(Vec<(ModelId, Vec<u8>)>, Option<String>), ExportError> {
    let mut ids: BTreeSet<ModelId> = registry
        .list()?
        .into_iter()
        .filter(|e| e.meta.as_ref().is_ok_and(|m| m.run_id == run_id))
        .map(|e| e.id)
        .collect();
    let mut gone = None;
    if let Some(own) = own {
        match registry.read(own) {
            Ok(_) => {
                ids.insert(own.clone());
            }
            Err(e) if e.is_not_found() => {
                gone = Some(if registry.deleted()?.contains(own) {
                    format!("{own} was deleted from pismo's registry")
                } else {
                    format!("{own} is not in pismo's registry")
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut models = Vec::with_capacity(ids.len());
    for id in ids {
        let bytes = registry.read(&id)?;
        models.push((id, bytes));
    }
    Ok((models, gone))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pismo_core::hyper::Hyper;

    fn info() -> RunInfo {
        RunInfo {
            run_id: "20261202-120000-abcdef".to_owned(),
            name: "mnist".to_owned(),
            status: Status::Finished,
            start_unix_ms: 1,
            end_unix_ms: Some(2),
            params: Hyper::DEFAULT,
            model: Some("mnist@3".to_owned()),
            error: None,
            dataset: "sha256:0123".to_owned(),
            pid: 1,
            pid_start_time: None,
            tags: Default::default(),
        }
    }

    #[test]
    fn params_are_every_hyperparameter_and_the_recipe() {
        let info = info();
        let plain = params(&info, None);
        assert_eq!(plain.len(), hyper_fields(&Hyper::DEFAULT).len());
        assert!(plain.contains(&(
            "hidden_size".to_owned(),
            Hyper::DEFAULT.hidden_size.to_string()
        )));
        let recipe = Recipe {
            deskew: true,
            corpora: vec!["semeion-train".to_owned()],
            ..Recipe::default()
        };
        let with = params(&info, Some(&recipe));
        assert!(with.contains(&("recipe.deskew".to_owned(), "true".to_owned())));
        assert!(with.contains(&(
            "recipe.corpora".to_owned(),
            "[\"semeion-train\"]".to_owned()
        )));
        assert!(with.len() > plain.len() + 5);
    }

    #[test]
    fn a_records_tags_pass_through_as_pismo_tags() {
        let mut info = info();
        let none = tags(&info);
        assert_eq!(
            none.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["pismo.run_id", "pismo.dataset", "pismo.model"]
        );
        info.tags.insert("study".to_owned(), "lr-sweep".to_owned());
        info.tags.insert("trial".to_owned(), "7".to_owned());
        let with = tags(&info);
        assert!(with.contains(&("pismo.study".to_owned(), "lr-sweep".to_owned())));
        assert!(with.contains(&("pismo.trial".to_owned(), "7".to_owned())));
    }

    #[test]
    fn non_finite_metrics_use_protobufs_names() {
        let m = |value| Metric {
            step: 2,
            name: "val_loss".to_owned(),
            value,
            timestamp: 5,
        };
        assert_eq!(metric_json(&m(0.5))["value"], json!(0.5));
        assert_eq!(metric_json(&m(f64::NAN))["value"], json!("NaN"));
        assert_eq!(
            metric_json(&m(f64::NEG_INFINITY))["value"],
            json!("-Infinity")
        );
        assert_eq!(metric_json(&m(0.5))["step"], json!(2));
    }

    #[test]
    fn artifact_paths_go_through_the_proxy_or_are_refused() {
        assert_eq!(
            artifact_path("mlflow-artifacts:/1/abc/artifacts", "log.txt").as_deref(),
            Ok("1/abc/artifacts/log.txt")
        );
        assert_eq!(
            artifact_path(
                "mlflow-artifacts://h:5000/1/abc/artifacts",
                "model/m.v1.pismo"
            )
            .as_deref(),
            Ok("1/abc/artifacts/model/m.v1.pismo")
        );
        assert!(artifact_path("s3://bucket/1/abc/artifacts", "log.txt")
            .unwrap_err()
            .contains("--no-serve-artifacts"));
    }
}
