//! The correction loop over HTTP: `POST /api/drawn` keeps a drawing with the digit it really
//! is ("Wrong? This is a …"), `GET /api/drawn` counts what is kept. The folder and its
//! guarantees (atomic, concurrent-safe, checked labels) are `pismo_digits::drawn`'s; the
//! image is parsed as `POST /api/predict` parses it, and saving changes data on the server,
//! so it is guarded like the other changes (same-origin, and the token when there is one).

use pismo_digits::drawn::{check_label, DrawnError, DrawnStore};
use serde_json::{json, Value};

use crate::reply::{ApiError, Reply};
use crate::request::Request;
use crate::scoring::{JsonImage, Label};
use crate::{scoring, State};

fn store(state: &State) -> DrawnStore {
    DrawnStore::open(state.options.drawn_dir.clone())
}

/// `GET /api/drawn`: the counts.
pub(crate) fn counts(state: &State) -> Result<Reply, ApiError> {
    Reply::json(&count(&store(state))?)
}

/// `POST /api/drawn` (the caller has authorized it): the body is read as `/api/predict`
/// reads a JSON image, within the same decoding budget.
pub(crate) fn save(state: &State, request: &Request) -> Result<Reply, ApiError> {
    let (mut body, _permit) = scoring::budgeted_json::<JsonImage>(state, request)?;
    let label = label(body.label.take())?;
    let img = body.grey().map_err(|e| e.with("field", json!("image")))?;
    let store = store(state);
    let info = store
        .save(label, &img.as_grey())
        .map_err(|e| drawn_error(e, "image"))?;
    let mut answer = count(&store)?;
    answer["sample"] = json!({
        "id": info.id,
        "label": info.label,
        "created_unix_ms": info.created_unix_ms,
        "width": info.width,
        "height": info.height,
    });
    Ok(Reply::json(&answer)?
        .with_status(201)
        .with_header("Location", "/api/drawn"))
}

/// `label`: an integer 0..=9.
fn label(given: Option<Label>) -> Result<u8, ApiError> {
    let field = |msg: String| ApiError::bad(msg).with("field", json!("label"));
    match given {
        None => Err(field(
            "missing `label`: the digit the drawing really is, 0 to 9".into(),
        )),
        Some(Label::Other(value)) => Err(field(format!(
            "bad label {value}: a label is a digit from 0 to 9"
        ))),
        Some(Label::Integer(n)) => check_label(n).map_err(|e| field(e.to_string())),
    }
}

/// `{"total":N, "counts":[10 numbers]}` (not the folder: a host path is not the
/// client's business, see SECURITY.md).
fn count(store: &DrawnStore) -> Result<Value, ApiError> {
    let counts = store.counts().map_err(|e| drawn_error(e, ""))?;
    Ok(json!({
        "total": counts.iter().sum::<usize>(),
        "counts": counts,
    }))
}

/// A 400 naming `field` for bad input, else a 500.
fn drawn_error(e: DrawnError, field: &str) -> ApiError {
    if e.is_invalid_input() {
        let field = if matches!(e, DrawnError::BadLabel { .. }) {
            "label"
        } else {
            field
        };
        ApiError::bad(e.to_string()).with("field", json!(field))
    } else {
        ApiError::new(500, e.to_string())
    }
}
