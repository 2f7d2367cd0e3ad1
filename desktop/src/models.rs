//! `pismo models`: list, show, alias, unalias, history, delete, quantize, join and export the models of a registry
//! (`pismo_storage::registry`, which owns the file layout, the reference grammar and the
//! locking; this module only prints).
//!
//! `quantize` and `join` make and measure their model in `pismo_training::quantized` and
//! `pismo_training::committee`; here they are loaded, registered
//! (`pismo_training::session::register`) and printed.
//!
//! `delete` takes an exact `NAME@VERSION`, never a name or alias that resolves to a version:
//! what gets deleted is what was typed.

use std::path::PathBuf;

use argh::FromArgs;
use pismo_core::mlp::INPUT;
use pismo_core::quant::FirstLayer;
use pismo_digits::mnist::{self, Split};
use pismo_engine::model::AnyMlp;
use pismo_storage::registry::{Entry, ModelId, OwnedMeta, Registry};
use pismo_training::committee::{Committee, Member, SetScore};
use pismo_training::quantized;

use crate::progress::Counter;
use crate::{text, CliError};

/// Manage the model registry (versioned model files and aliases).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "models")]
pub struct Args {
    #[argh(subcommand)]
    command: Command,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum Command {
    List(List),
    Show(Show),
    Alias(Alias),
    Unalias(Unalias),
    History(History),
    Delete(Delete),
    Quantize(Quantize),
    Join(Join),
    Export(Export),
}

/// List every model with its aliases, size and metrics.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "list")]
struct List {
    /// model registry folder (default: $PISMO_REGISTRY, else ./models)
    #[argh(option)]
    registry: Option<PathBuf>,
    /// model store in place of the registry folder, e.g. postgres://USER@HOST/DATABASE
    /// (default: $PISMO_STORE)
    #[argh(option)]
    store: Option<String>,
    /// print one JSON object per model on stdout
    #[argh(switch)]
    json: bool,
}

/// Show one model: file, aliases, hyperparameters, metrics, run.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "show")]
struct Show {
    /// the model: NAME, NAME@VERSION or NAME@ALIAS
    #[argh(positional)]
    model: String,
    /// model registry folder (default: $PISMO_REGISTRY, else ./models)
    #[argh(option)]
    registry: Option<PathBuf>,
    /// model store in place of the registry folder, e.g. postgres://USER@HOST/DATABASE
    /// (default: $PISMO_STORE)
    #[argh(option)]
    store: Option<String>,
    /// print one JSON object on stdout
    #[argh(switch)]
    json: bool,
}

/// Point an alias at a model (replacing its old target).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "alias")]
struct Alias {
    /// the model: NAME, NAME@VERSION or NAME@ALIAS
    #[argh(positional)]
    model: String,
    /// the alias, e.g. default
    #[argh(positional)]
    alias: String,
    /// model registry folder (default: $PISMO_REGISTRY, else ./models)
    #[argh(option)]
    registry: Option<PathBuf>,
    /// model store in place of the registry folder, e.g. postgres://USER@HOST/DATABASE
    /// (default: $PISMO_STORE)
    #[argh(option)]
    store: Option<String>,
    /// print the result as one JSON object
    #[argh(switch)]
    json: bool,
}

/// Every alias change, oldest first (who pointed where, and when).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "history")]
struct History {
    /// model registry folder (default: $PISMO_REGISTRY, else ./models)
    #[argh(option)]
    registry: Option<PathBuf>,
    /// model store in place of the registry folder, e.g. postgres://USER@HOST/DATABASE
    /// (default: $PISMO_STORE)
    #[argh(option)]
    store: Option<String>,
    /// print one JSON object per change on stdout
    #[argh(switch)]
    json: bool,
}

/// Remove an alias (the model stays).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "unalias")]
struct Unalias {
    /// the alias
    #[argh(positional)]
    alias: String,
    /// model registry folder (default: $PISMO_REGISTRY, else ./models)
    #[argh(option)]
    registry: Option<PathBuf>,
    /// model store in place of the registry folder, e.g. postgres://USER@HOST/DATABASE
    /// (default: $PISMO_STORE)
    #[argh(option)]
    store: Option<String>,
    /// print the result as one JSON object
    #[argh(switch)]
    json: bool,
}

/// Delete one model version (refused while an alias points at it).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "delete")]
struct Delete {
    /// the exact model version, NAME@VERSION
    #[argh(positional)]
    model: String,
    /// model registry folder (default: $PISMO_REGISTRY, else ./models)
    #[argh(option)]
    registry: Option<PathBuf>,
    /// model store in place of the registry folder, e.g. postgres://USER@HOST/DATABASE
    /// (default: $PISMO_STORE)
    #[argh(option)]
    store: Option<String>,
    /// print the result as one JSON object
    #[argh(switch)]
    json: bool,
}

/// Quantize an f32 model to int8 (weights, per-row scales) and register it, linked to its
/// parent; the hidden activation scale is calibrated on 2000 MNIST training images.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "quantize")]
struct Quantize {
    /// the f32 model: NAME, NAME@VERSION or NAME@ALIAS
    #[argh(positional)]
    model: String,
    /// name of the int8 model (default: the parent's name with `-int8`)
    #[argh(option)]
    name: Option<String>,
    /// drop the first-layer weights of the pixel pairs (2k, 2k+1) inked in at most N of
    /// MNIST's 60000 training images, as the model sees them (a smaller file for a small
    /// flash; e.g. 120)
    #[argh(option)]
    prune_rare: Option<usize>,
    /// bits of the first layer's weights: 8 (default), or 7, which the firmware's paired
    /// DSP kernel needs (scripts/firmware-sim)
    #[argh(option, default = "FirstLayer::Int8", from_str_fn(first_layer_bits))]
    first_layer_bits: FirstLayer,
    /// MNIST folder (default: $PISMO_DATA, else ./data/mnist)
    #[argh(option)]
    data: Option<PathBuf>,
    /// model registry folder (default: $PISMO_REGISTRY, else ./models)
    #[argh(option)]
    registry: Option<PathBuf>,
    /// model store in place of the registry folder, e.g. postgres://USER@HOST/DATABASE
    /// (default: $PISMO_STORE)
    #[argh(option)]
    store: Option<String>,
    /// print the result as one JSON object
    #[argh(switch)]
    json: bool,
}

/// Join f32 models into one committee model (their hidden layers side by side, the mean of
/// their outputs: still one hidden layer) and register it; e.g. the members of `pismo train
/// --member K`. It is measured on the validation split the members share and on MNIST test.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "join")]
struct Join {
    /// the f32 models: NAME, NAME@VERSION or NAME@ALIAS (two or more)
    #[argh(positional)]
    models: Vec<String>,
    /// name of the joined model
    #[argh(option)]
    name: String,
    /// MNIST folder (default: $PISMO_DATA, else ./data/mnist)
    #[argh(option)]
    data: Option<PathBuf>,
    /// model registry folder (default: $PISMO_REGISTRY, else ./models)
    #[argh(option)]
    registry: Option<PathBuf>,
    /// model store in place of the registry folder, e.g. postgres://USER@HOST/DATABASE
    /// (default: $PISMO_STORE)
    #[argh(option)]
    store: Option<String>,
    /// print the result as one JSON object
    #[argh(switch)]
    json: bool,
}

/// Write a model (f32 or int8) to a file another runtime reads: `--format onnx` is standard
/// ONNX, the whole model (deskewing included; input float32[N,784] as pismo preprocesses an
/// image, outputs `probabilities` and `logits` float32[N,10]).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "export")]
struct Export {
    /// the model: NAME, NAME@VERSION or NAME@ALIAS
    #[argh(positional)]
    model: String,
    /// the file format: onnx
    #[argh(option)]
    format: String,
    /// the file to write (replaced atomically if it exists)
    #[argh(option, short = 'o')]
    output: PathBuf,
    /// model registry folder (default: $PISMO_REGISTRY, else ./models)
    #[argh(option)]
    registry: Option<PathBuf>,
    /// model store in place of the registry folder, e.g. postgres://USER@HOST/DATABASE
    /// (default: $PISMO_STORE)
    #[argh(option)]
    store: Option<String>,
    /// print the result as one JSON object
    #[argh(switch)]
    json: bool,
}

/// The formats `pismo models export` writes.
const EXPORT_FORMATS: [&str; 1] = ["onnx"];

fn export(a: Export) -> Result<(), CliError> {
    use pismo_engine::onnx;
    if !EXPORT_FORMATS.contains(&a.format.as_str()) {
        return Err(CliError::usage(format!(
            "unknown export format `{}`: the formats are {}",
            a.format,
            EXPORT_FORMATS.join(", ")
        )));
    }
    let registry = crate::places::registry(&a.registry, &a.store)?;
    let (id, bytes) = registry.load(Some(&a.model))?;
    let (model, _) =
        AnyMlp::decode(&bytes).map_err(|e| CliError::Failed(format!("model {id}: {e}")))?;
    let reference = id.to_string();
    let out = onnx::export(&model, &reference);
    pismo_files::atomic::replace_atomic(&a.output, &out)
        .map_err(|e| CliError::Failed(format!("cannot write {}: {e}", a.output.display())))?;
    let input = if model.deskew() {
        "as preprocessed (the graph deskews it, as the model does)"
    } else {
        "as preprocessed"
    };
    let value = serde_json::json!({
        "model": reference, "format": a.format, "file": a.output, "bytes": out.len(),
        "opset": onnx::OPSET, "kind": model.kind(), "input": onnx::INPUT_NAME,
        "outputs": [onnx::PROBABILITIES, onnx::LOGITS], "deskew": model.deskew(),
    });
    let text = format!(
        "wrote {} ({} bytes): ONNX opset {} of {reference} ({}), input `{}` float32[N,784] {input}, outputs `{}` and `{}` float32[N,10]",
        a.output.display(),
        out.len(),
        onnx::OPSET,
        model.kind(),
        onnx::INPUT_NAME,
        onnx::PROBABILITIES,
        onnx::LOGITS,
    );
    crate::out_result(a.json, &value, &text)
}

/// `--first-layer-bits`: 7 or 8.
fn first_layer_bits(value: &str) -> Result<FirstLayer, String> {
    match value {
        "7" => Ok(FirstLayer::Int7),
        "8" => Ok(FirstLayer::Int8),
        _ => Err(format!("{value:?} is not 7 or 8")),
    }
}

fn quantize(a: Quantize) -> Result<(), CliError> {
    let registry = crate::places::registry(&a.registry, &a.store)?;
    let (parent_id, bytes) = registry.load(Some(&a.model))?;
    let (model, file) =
        AnyMlp::decode(&bytes).map_err(|e| CliError::Failed(format!("model {parent_id}: {e}")))?;
    let already_int8 = || CliError::Failed(format!("model {parent_id} is already int8"));
    if model.int8_view().is_some() {
        // Said before MNIST is looked for: no calibration images would make it f32.
        return Err(already_int8());
    }
    let name = a.name.unwrap_or_else(|| format!("{}-int8", parent_id.name));
    pismo_storage::registry::validate_name(&name)?;
    let dir = crate::places::data_dir(&a.data);
    let train =
        mnist::load_split(&dir, Split::Train).map_err(|e| CliError::Failed(e.to_string()))?;
    let first = a.first_layer_bits;
    let q = quantized::int8_copy(&model, &train, first, a.prune_rare).ok_or_else(already_int8)?;
    let kept_pixels = q.int8_view().map(|v| v.input_pixels());
    if kept_pixels == Some(0) {
        return Err(CliError::Failed(format!(
            "--prune-rare {} drops every pixel: none is inked in more than that many of the \
             {} MNIST training images (the firmware's model uses 120)",
            a.prune_rare.unwrap_or(0),
            train.len()
        )));
    }
    let test = mnist::load_split(&dir, Split::Test).ok();
    // The copy and its parent, one bar.
    let progress = Counter::start(
        &format!("measuring {name} and {parent_id} on MNIST test"),
        2 * test.as_ref().map_or(0, |t| t.len()) as u64,
        false,
    );
    let accuracies = test
        .as_ref()
        .map(|t| quantized::test_accuracies(&q, &model, t, &|n| progress.inc(n)));
    progress.clear();
    let (test_accuracy, parent_accuracy) = (accuracies.map(|a| a.0), accuracies.map(|a| a.1));
    let parent = parent_id.to_string();
    let meta = quantized::model_meta(&name, &parent, &file.meta, test_accuracy);
    let (id, size) = pismo_training::session::register(&registry, &q, &meta)?;
    if a.json {
        let v = serde_json::json!({
            "model": id.to_string(), "parent": parent, "bytes": size,
            "test_accuracy": test_accuracy, "parent_test_accuracy": parent_accuracy,
            "kept_pixels": kept_pixels, "first_layer_bits": first.bits(),
        });
        return crate::out_line(&v.to_string());
    }
    crate::out_line(&format!(
        "registered {id} ({size} bytes), int8 of {parent} ({} bytes)",
        bytes.len()
    ))?;
    if let (Some(n), Some(kept)) = (a.prune_rare, kept_pixels) {
        crate::out_line(&format!(
            "first layer pruned to the {kept} of {INPUT} pixels inked in more than {n} of \
             {} MNIST training images",
            train.len()
        ))?;
    }
    if let (Some(q), Some(p)) = (test_accuracy, parent_accuracy) {
        crate::out_line(&format!(
            "MNIST test accuracy: int8 {:.2} %, f32 parent {:.2} % ({:+.2} points)",
            q * 100.0,
            p * 100.0,
            (q - p) * 100.0
        ))?;
    }
    Ok(())
}

fn join(a: Join) -> Result<(), CliError> {
    if a.models.len() < 2 {
        return Err(CliError::usage("give two or more models to join"));
    }
    pismo_storage::registry::validate_name(&a.name)?;
    let registry = crate::places::registry(&a.registry, &a.store)?;
    let members = a
        .models
        .iter()
        .map(|reference| load_member(&registry, reference))
        .collect::<Result<Vec<_>, _>>()?;
    let committee = Committee::join(members).map_err(|e| CliError::usage(e.to_string()))?;
    let sets = committee
        .sets(&crate::places::data_dir(&a.data))
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let n = committee.members.len();
    let images: usize = sets.iter().map(|(_, d)| d.len()).sum();
    let progress = Counter::start(
        &format!("measuring {} and its {n} members", a.name),
        (images * (n + 1)) as u64,
        false,
    );
    let scores = committee.measure(&sets, &|n| progress.inc(n));
    progress.clear();
    let parent = committee.parent();
    let meta = committee.model_meta(&a.name, &parent, &scores);
    let (id, size) = pismo_training::session::register(&registry, &committee.joined, &meta)?;
    let hidden = committee.joined.hidden_size();
    if a.json {
        let sets: serde_json::Map<String, serde_json::Value> = scores
            .iter()
            .map(|s| {
                let v = serde_json::json!({"loss": s.loss, "accuracy": s.accuracy, "members": s.members});
                (s.set.to_owned(), v)
            })
            .collect();
        let v = serde_json::json!({
            "model": id.to_string(), "members": parent, "bytes": size,
            "hidden_size": hidden, "sets": sets,
        });
        return crate::out_line(&v.to_string());
    }
    crate::out_line(&format!(
        "registered {id} ({size} bytes): 784-{hidden}-10, the committee of {}",
        parent.replace('+', ", ")
    ))?;
    if !committee.shares_validation_split() {
        crate::out_line(
            "validation split not measured: the members did not all hold out the same one \
             (the same --seed and --val-size)",
        )?;
    }
    print_scores(&scores, &committee.members[0].meta)
}

fn load_member(registry: &Registry, reference: &str) -> Result<Member, CliError> {
    let (id, bytes) = registry.load(Some(reference))?;
    let (model, _) =
        AnyMlp::decode(&bytes).map_err(|e| CliError::Failed(format!("model {id}: {e}")))?;
    let meta = OwnedMeta::decode(&id, &bytes).map_err(CliError::Failed)?;
    Ok(Member { id, model, meta })
}

/// One line per set: the joined model's accuracy and loss, and each member's accuracy.
fn print_scores(scores: &[SetScore], first: &OwnedMeta) -> Result<(), CliError> {
    for SetScore {
        set,
        loss,
        accuracy,
        members,
    } in scores
    {
        let what = match *set {
            "validation" => format!(
                "MNIST validation split (seed {}, {} images)",
                first.hyper.seed, first.hyper.val_size
            ),
            _ => "MNIST test".to_owned(),
        };
        crate::out_line(&format!(
            "{what}: joined {:.2} % (loss {loss:.4}), members {}",
            accuracy * 100.0,
            members
                .iter()
                .map(|a| format!("{:.2} %", a * 100.0))
                .collect::<Vec<_>>()
                .join(", ")
        ))?;
    }
    Ok(())
}

/// Runs `pismo models …`.
pub fn run(args: Args) -> Result<(), CliError> {
    match args.command {
        Command::List(a) => list(&crate::places::registry(&a.registry, &a.store)?, a.json),
        Command::Show(a) => show(
            &crate::places::registry(&a.registry, &a.store)?,
            &a.model,
            a.json,
        ),
        Command::Alias(a) => {
            let registry = crate::places::registry(&a.registry, &a.store)?;
            let id = registry.resolve(Some(&a.model))?;
            let old = registry.aliases()?.remove(&a.alias);
            registry.set_alias(&a.alias, &id)?;
            let text = match &old {
                Some(old) if *old != id => format!("alias {} -> {id} (was {old})", a.alias),
                _ => format!("alias {} -> {id}", a.alias),
            };
            let value = serde_json::json!({
                "alias": a.alias, "model": id.to_string(),
                "was": old.map(|old| old.to_string()),
            });
            crate::out_result(a.json, &value, &text)
        }
        Command::Unalias(a) => {
            let old = crate::places::registry(&a.registry, &a.store)?.remove_alias(&a.alias)?;
            let value = serde_json::json!({
                "alias": a.alias, "model": null, "was": old.to_string(),
            });
            let text = format!("removed alias {} (pointed at {old})", a.alias);
            crate::out_result(a.json, &value, &text)
        }
        Command::Delete(a) => {
            let id: ModelId = a.model.parse()?;
            crate::places::registry(&a.registry, &a.store)?.delete(&id)?;
            let value = serde_json::json!({ "deleted": id.to_string() });
            crate::out_result(a.json, &value, &format!("deleted {id}"))
        }
        Command::History(a) => history(&crate::places::registry(&a.registry, &a.store)?, a.json),
        Command::Quantize(a) => quantize(a),
        Command::Join(a) => join(a),
        Command::Export(a) => export(a),
    }
}

fn f(x: f32) -> Option<f64> {
    Some(f64::from(x))
}

fn list(registry: &Registry, json: bool) -> Result<(), CliError> {
    let entries = registry.list()?;
    if json {
        for entry in &entries {
            crate::out_json(entry)?;
        }
        return Ok(());
    }
    if entries.is_empty() {
        eprintln!(
            "no models in {}: train one with `pismo train`",
            registry.location()
        );
        return Ok(());
    }
    let mut table = text::Table::new(
        &[
            "id", "aliases", "hidden", "kind", "size", "test acc", "val acc", "created", "run",
        ],
        &[2, 4, 5, 6],
    );
    for e in &entries {
        let aliases = if e.aliases.is_empty() {
            "-".to_owned()
        } else {
            e.aliases.join(",")
        };
        let mut row = vec![e.id.to_string(), aliases];
        match &e.meta {
            Ok(m) => row.extend([
                m.hidden_size.to_string(),
                m.kind.to_owned(),
                text::bytes(e.size),
                text::percent(m.metrics.test_accuracy.and_then(f)),
                text::percent(f(m.metrics.val_accuracy)),
                text::utc(m.created_unix),
                if m.run_id.is_empty() {
                    "-".to_owned()
                } else {
                    m.run_id.clone()
                },
            ]),
            Err(err) => {
                eprintln!("warning: {}: {err}", e.location);
                row.extend([
                    "-".into(),
                    "corrupt".into(),
                    text::bytes(e.size),
                    "-".into(),
                    "-".into(),
                    text::utc(e.modified_unix),
                    "-".into(),
                ]);
            }
        }
        table.row(row);
    }
    crate::out(&table.render())
}

fn history(registry: &Registry, json: bool) -> Result<(), CliError> {
    let changes = registry.alias_history()?;
    if json {
        for change in &changes {
            crate::out_json(change)?;
        }
        return Ok(());
    }
    if changes.is_empty() {
        eprintln!("no alias changes recorded in {}", registry.location());
        return Ok(());
    }
    let mut table = text::Table::new(&["when (UTC)", "alias", "now points at"], &[]);
    for c in &changes {
        table.row(vec![
            text::utc(c.unix),
            c.alias.clone(),
            c.model
                .as_ref()
                .map_or_else(|| "(removed)".to_owned(), ToString::to_string),
        ]);
    }
    crate::out(&table.render())
}

fn show(registry: &Registry, reference: &str, json: bool) -> Result<(), CliError> {
    let id = registry.resolve(Some(reference))?;
    let entry = registry
        .list()?
        .into_iter()
        .find(|e| e.id == id)
        .ok_or_else(|| {
            CliError::failed(format!("{id} disappeared from {}", registry.location()))
        })?;
    if json {
        return crate::out_json(&entry);
    }
    let meta = entry
        .meta
        .as_ref()
        .map_err(|err| CliError::failed(format!("{}: {err}", entry.location)))?;
    crate::out(&describe(&entry, meta))
}

fn describe(e: &Entry, m: &OwnedMeta) -> String {
    let or_dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    let h = m.hidden_size as usize;
    let params = m.params;
    let mut first_layer = Vec::new();
    if m.input_pixels < INPUT {
        first_layer.push(format!("pruned to {} of {INPUT} pixels", m.input_pixels));
    }
    if m.first_layer_bits == 7 {
        first_layer.push("7-bit for the firmware's paired kernel".to_owned());
    }
    let pruned = if first_layer.is_empty() {
        String::new()
    } else {
        format!(" (first layer {})", first_layer.join(", "))
    };
    let metrics = &m.metrics;
    let mut out = format!(
        "model     {}\nstored    {} ({})\naliases   {}\ncreated   {} UTC\nweights   {}, hidden {h}, {params} parameters{pruned}\ninput     {}\n",
        e.id,
        e.location,
        text::bytes(e.size),
        if e.aliases.is_empty() { "-".to_owned() } else { e.aliases.join(", ") },
        text::utc(m.created_unix),
        m.kind,
        if m.deskew { "deskewed before the network (as in training)" } else { "as preprocessed" },
    );
    out.push_str(&format!(
        "test acc  {}\nval acc   {} (val loss {}, train loss {})\nepochs    {} run, weights of epoch {}\n",
        text::percent(metrics.test_accuracy.and_then(f)),
        text::percent(f(metrics.val_accuracy)),
        text::number(f(metrics.val_loss), 4),
        text::number(f(metrics.train_loss), 4),
        metrics.epochs_run,
        metrics.best_epoch,
    ));
    out.push_str(&format!(
        "run       {}\ndataset   {}\nparent    {}\nparams\n",
        or_dash(&m.run_id),
        or_dash(&m.dataset),
        or_dash(&m.parent)
    ));
    out.push_str(&text::hyper_block(&m.hyper, "  ", 88));
    out
}
