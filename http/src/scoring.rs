//! Scoring: `POST /api/predict` (PNG, 28x28 pixels or a drawing; the answer holds what the
//! model saw) and MLflow's `POST /invocations` (rows of 784 model inputs; a data frame's
//! columns are placed by name, see [`column`]). Every image goes
//! through `pismo_core::preprocess::to_input`, as in `pismo predict` and `pismo draw`.

use std::time::Instant;

use pismo_core::host::image::{self, ImageError};
use pismo_core::mlp::{CLASSES, INPUT};
use pismo_core::preprocess::{self, GreyImage};
use pismo_core::verdict::verdict;
use serde::Serialize;
use serde_json::{json, Value};

use crate::budget::Permit;
use crate::catalog::model;
use crate::reply::{ApiError, Reply};
use crate::request::{body, json_body, parse_json, unsupported_type, Request};
use crate::State;

fn argmax(p: &[f32; CLASSES]) -> usize {
    let mut best = 0;
    for (i, &v) in p.iter().enumerate() {
        if v > p[best] {
            best = i;
        }
    }
    best
}

// ---------------------------------------------------------------------------------------
// POST /api/predict

#[derive(Serialize)]
struct Prediction<'a> {
    model: &'a str,
    label: usize,
    probabilities: &'a [f32],
    input: &'a [f32],
    /// Whether the model is sure (`pismo_core::verdict`).
    sure: bool,
    /// The digit when sure; the two most likely, most likely first, when not.
    candidates: &'static [usize],
}

pub(crate) fn predict(state: &State, request: &Request) -> Result<Reply, ApiError> {
    // The model first: an unknown model is a 404 whatever the body holds.
    let (name, mlp) = model(state, request.query_param("model").as_deref())?;
    let kind = request.content_type();
    let body = body(request)?;
    let started = Instant::now();
    let (img, _permit) = match kind.as_deref() {
        Some("image/png") => {
            let (img, permit) = png_image(state, body)?;
            (img, Some(permit))
        }
        Some("application/json") => {
            let (value, permit) = budgeted_json(state, request)?;
            (json_image(&value)?, Some(permit))
        }
        _ => return Err(unsupported_type(kind, "image/png or application/json")),
    };
    let mut x = [0.0f32; INPUT];
    preprocess::to_input(&img.as_grey(), &mut x).map_err(|e| ApiError::bad(e.to_string()))?;
    let p = mlp.predict_proba(&x);
    let millis = started.elapsed().as_secs_f64() * 1e3;
    let v = verdict(&p);
    Ok(Reply::json(&Prediction {
        model: &name,
        label: argmax(&p),
        probabilities: &p,
        input: &mlp.network_input(&x),
        sure: v.is_sure(),
        candidates: v.candidates(),
    })?
    .with_header("Server-Timing", format!("predict;dur={millis:.3}")))
}

/// A grey image owned by the request.
pub(crate) struct Grey {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

impl Grey {
    /// Borrows the image for the core.
    pub(crate) fn as_grey(&self) -> GreyImage<'_> {
        GreyImage {
            width: self.width,
            height: self.height,
            data: &self.data,
        }
    }
}

/// Bytes of memory that parsing a JSON body of `len` bytes into a `serde_json::Value` may
/// take: [`crate::limits::JSON_BYTES_PER_BODY_BYTE`] a byte.
fn json_decode_cost(len: usize) -> u64 {
    len as u64 * crate::limits::JSON_BYTES_PER_BODY_BYTE
}

/// The JSON body of `request` (`Content-Type: application/json`, else 415), parsed within
/// the server's decoding budget; the permit gives it back when dropped.
pub(crate) fn budgeted_json(state: &State, request: &Request) -> Result<(Value, Permit), ApiError> {
    let kind = request.content_type();
    if kind.as_deref() != Some("application/json") {
        return Err(unsupported_type(kind, "application/json"));
    }
    let body = body(request)?;
    let permit = state.images.take(json_decode_cost(body.len()))?;
    Ok((parse_json(body)?, permit))
}

/// Decodes a PNG within the server's image budget: its cost is known from the header
/// before any pixel is decoded, and is given back when the permit drops (after the
/// preprocessing of the grey image).
fn png_image(state: &State, body: &[u8]) -> Result<(Grey, Permit), ApiError> {
    let refused = |e: ImageError| match e {
        ImageError::TooLarge { .. } => ApiError::new(413, format!("{e}")),
        e => ApiError::bad(format!("malformed PNG: {e}")),
    };
    let (width, height) = image::png_size(body).map_err(refused)?;
    let permit = state.images.take(image::png_decode_cost(width, height))?;
    let img = image::decode_png(body).map_err(refused)?;
    let grey = Grey {
        width: img.width,
        height: img.height,
        data: img.data,
    };
    Ok((grey, permit))
}

/// `{"pixels":[784 numbers in 0..=1]}` or `{"image":{"width":W,"height":H,"data":[W*H]}}`
/// (also the image of `POST /api/drawn`).
pub(crate) fn json_image(value: &Value) -> Result<Grey, ApiError> {
    if let Some(pixels) = value.get("pixels") {
        let x = numbers(pixels, "pixels")?;
        if x.len() != INPUT {
            return Err(ApiError::bad(format!(
                "`pixels` must hold {INPUT} numbers (28x28), got {}",
                x.len()
            )));
        }
        let data = x.iter().map(|&v| (v * 255.0).round() as u8).collect();
        return Ok(Grey {
            width: 28,
            height: 28,
            data,
        });
    }
    if let Some(img) = value.get("image") {
        let side = |name: &str| {
            img.get(name)
                .and_then(Value::as_u64)
                .filter(|&v| v > 0)
                .ok_or_else(|| ApiError::bad(format!("`image.{name}` must be a positive integer")))
        };
        let (width, height) = (side("width")?, side("height")?);
        let max = u64::from(image::MAX_PNG_SIDE);
        if width > max || height > max {
            return Err(ApiError::new(
                413,
                format!("the image is {width}x{height} pixels, at most {max}x{max}"),
            ));
        }
        let data = img
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| ApiError::bad("`image.data` must be an array of grey bytes"))?;
        if data.len() as u64 != width * height {
            return Err(ApiError::bad(format!(
                "`image.data` must hold width*height = {} bytes, got {}",
                width * height,
                data.len()
            )));
        }
        let data = data
            .iter()
            .map(|v| {
                v.as_u64()
                    .and_then(|b| u8::try_from(b).ok())
                    .ok_or_else(|| ApiError::bad("`image.data` values must be integers 0..=255"))
            })
            .collect::<Result<Vec<u8>, _>>()?;
        return Ok(Grey {
            width: width as usize,
            height: height as usize,
            data,
        });
    }
    Err(ApiError::bad(
        "the JSON body needs `pixels` (784 numbers) or `image` {width, height, data}",
    ))
}

/// An array of finite numbers in 0..=1.
fn numbers(value: &Value, what: &str) -> Result<Vec<f32>, ApiError> {
    let array = value
        .as_array()
        .ok_or_else(|| ApiError::bad(format!("`{what}` must be an array of numbers")))?;
    array.iter().map(|v| number(v, what)).collect()
}

fn number(v: &Value, what: &str) -> Result<f32, ApiError> {
    let n = v
        .as_f64()
        .ok_or_else(|| ApiError::bad(format!("`{what}` must hold numbers, got {v}")))?;
    if !n.is_finite() || !(0.0..=1.0).contains(&n) {
        return Err(ApiError::bad(format!(
            "`{what}` values must be finite numbers in 0..=1, got {n}"
        )));
    }
    Ok(n as f32)
}

// ---------------------------------------------------------------------------------------
// POST /invocations (MLflow)

pub(crate) fn invocations(state: &State, request: &Request) -> Result<Reply, ApiError> {
    let (_, mlp) = model(state, request.query_param("model").as_deref())?;
    let _permit = state.images.take(json_decode_cost(request.body.len()))?;
    let rows = mlflow_rows(&json_body(request)?)?;
    let predictions: Vec<usize> = rows.iter().map(|x| argmax(&mlp.predict_proba(x))).collect();
    Reply::json(&json!({ "predictions": predictions }))
}

/// The rows of an MLflow scoring body, each the model's 784 inputs.
pub(crate) fn mlflow_rows(value: &Value) -> Result<Vec<[f32; INPUT]>, ApiError> {
    let object = value
        .as_object()
        .ok_or_else(|| ApiError::bad("the body must be a JSON object"))?;
    let keys = [
        "dataframe_split",
        "dataframe_records",
        "instances",
        "inputs",
    ];
    let found: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| object.contains_key(*k))
        .collect();
    let [key] = found[..] else {
        return Err(ApiError::bad(format!(
            "the body needs exactly one of {}",
            keys.join(", ")
        )));
    };
    let v = &object[key];
    match key {
        "dataframe_split" => {
            let data = v
                .get("data")
                .ok_or_else(|| ApiError::bad("`dataframe_split` needs `data`"))?;
            match v.get("columns") {
                None => list_rows(data, "dataframe_split.data", None),
                Some(columns) => {
                    let names = columns
                        .as_array()
                        .ok_or_else(|| {
                            ApiError::bad("`dataframe_split.columns` must be an array of names")
                        })?
                        .iter()
                        .map(column_name)
                        .collect::<Vec<_>>();
                    let order = column_order(names.iter().map(String::as_str))?;
                    list_rows(data, "dataframe_split.data", Some(&order))
                }
            }
        }
        "dataframe_records" => {
            let records = v
                .as_array()
                .ok_or_else(|| ApiError::bad("`dataframe_records` must be an array"))?;
            records.iter().map(record_row).collect()
        }
        _ => list_rows(v, key, None),
    }
}

/// The rows of `value`, an array of arrays of numbers; with `order`, the j-th number of a
/// row is the model's input `order[j]` (else the numbers are the inputs in order).
fn list_rows(
    value: &Value,
    what: &str,
    order: Option<&[usize]>,
) -> Result<Vec<[f32; INPUT]>, ApiError> {
    let rows = value
        .as_array()
        .ok_or_else(|| ApiError::bad(format!("`{what}` must be an array of rows")))?;
    rows.iter()
        .map(|row| {
            let x = numbers(row, what)?;
            if x.len() != INPUT {
                return Err(ApiError::bad(format!(
                    "each row of `{what}` must hold {INPUT} numbers, got {}",
                    x.len()
                )));
            }
            let mut placed = [0.0f32; INPUT];
            for (j, v) in x.into_iter().enumerate() {
                placed[order.map_or(j, |o| o[j])] = v;
            }
            Ok(placed)
        })
        .collect()
}

/// One record `{"pixel0": v, …}` (or `{"0": v, …}`), its values placed by column name.
fn record_row(record: &Value) -> Result<[f32; INPUT], ApiError> {
    let record = record
        .as_object()
        .ok_or_else(|| ApiError::bad("each of `dataframe_records` must be an object"))?;
    let order = column_order(record.keys().map(String::as_str))?;
    let mut x = [0.0f32; INPUT];
    for (v, i) in record.values().zip(order) {
        x[i] = number(v, "dataframe_records")?;
    }
    Ok(x)
}

// ---------------------------------------------------------------------------------------
// The model's columns, as MLflow's data frames name them

/// The name of the model's input `i` as a data-frame column: `pixel0` … `pixel783`, the
/// 28x28 image row by row (as MNIST's CSV files name them). A column may also be named by
/// the bare number (`"7"`, or `7` as pandas writes the columns of a frame built without
/// names).
pub(crate) fn column(i: usize) -> String {
    format!("{COLUMN_PREFIX}{i}")
}

const COLUMN_PREFIX: &str = "pixel";

/// The model input a column name stands for (see [`column`]).
fn column_index(name: &str) -> Option<usize> {
    let digits = name.strip_prefix(COLUMN_PREFIX).unwrap_or(name);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // `pixel07` or `007` would be a second name of a column.
    digits
        .parse()
        .ok()
        .filter(|&i: &usize| i < INPUT && i.to_string() == digits)
}

/// A `dataframe_split` column as a name: a string as it is, a number as written, anything
/// else as its JSON (which names no column).
fn column_name(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Where each column `names` gives goes among the model's inputs: the j-th name is input
/// `order[j]`. Every one of the model's [`INPUT`] columns must be there once, in any order;
/// a 400 names the unknown, repeated or missing ones.
fn column_order<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Vec<usize>, ApiError> {
    let mut order = Vec::with_capacity(INPUT);
    let mut seen = [false; INPUT];
    let (mut unknown, mut repeated) = (Vec::new(), Vec::new());
    for name in names {
        match column_index(name) {
            Some(i) if seen[i] => repeated.push(name.to_owned()),
            Some(i) => {
                seen[i] = true;
                order.push(i);
            }
            None => unknown.push(name.to_owned()),
        }
    }
    let missing: Vec<String> = (0..INPUT).filter(|&i| !seen[i]).map(column).collect();
    let mut problems = Vec::new();
    for (what, names) in [
        ("unknown", &unknown),
        ("repeated", &repeated),
        ("missing", &missing),
    ] {
        if !names.is_empty() {
            problems.push(format!(
                "{what} column{} {}",
                plural(names.len()),
                listed(names)
            ));
        }
    }
    if problems.is_empty() {
        Ok(order)
    } else {
        Err(ApiError::bad(format!(
            "{}: the model's {INPUT} columns are {} … {} (or 0 … {}), each once, in any order",
            problems.join("; "),
            column(0),
            column(INPUT - 1),
            INPUT - 1
        )))
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `names` quoted, the first few of them when there are many.
fn listed(names: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = names
        .iter()
        .take(SHOWN)
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" … ({} in all)", names.len()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_placed_by_column_name() {
        let mut record = serde_json::Map::new();
        for i in 0..INPUT {
            record.insert(column(i), json!(if i == 700 { 1.0 } else { 0.0 }));
        }
        let x = record_row(&Value::Object(record)).unwrap();
        assert_eq!(x[700], 1.0);
        assert_eq!(x.iter().sum::<f32>(), 1.0);
    }

    #[test]
    fn column_names() {
        assert_eq!(column(0), "pixel0");
        for (name, index) in [
            ("pixel0", Some(0)),
            ("pixel783", Some(783)),
            ("783", Some(783)),
            ("pixel784", None),
            ("pixel07", None),
            ("007", None),
            ("pixel", None),
            ("", None),
            ("col7", None),
            ("pixel+7", None),
        ] {
            assert_eq!(column_index(name), index, "{name}");
        }
    }

    #[test]
    fn columns_in_another_order_are_placed_and_wrong_ones_named() {
        let names: Vec<String> = (0..INPUT).rev().map(column).collect();
        let order = column_order(names.iter().map(String::as_str)).unwrap();
        assert_eq!(order[0], INPUT - 1);
        let mut names: Vec<String> = (0..INPUT).map(|i| i.to_string()).collect();
        names[3] = "ink".to_owned();
        names[4] = "0".to_owned();
        let m = column_order(names.iter().map(String::as_str))
            .unwrap_err()
            .message;
        assert!(m.contains("unknown column \"ink\""), "{m}");
        assert!(m.contains("repeated column \"0\""), "{m}");
        assert!(m.contains("missing columns \"pixel3\", \"pixel4\""), "{m}");
    }
}
