//! Scoring: `POST /api/predict` (PNG, 28x28 pixels or a drawing; the answer holds what the
//! model saw) and MLflow's `POST /invocations` (rows of 784 model inputs). Every image goes
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
            if let Some(columns) = v.get("columns").and_then(Value::as_array) {
                if columns.len() != INPUT {
                    return Err(ApiError::bad(format!(
                        "`dataframe_split.columns` must name {INPUT} columns, got {}",
                        columns.len()
                    )));
                }
            }
            let data = v
                .get("data")
                .ok_or_else(|| ApiError::bad("`dataframe_split` needs `data`"))?;
            list_rows(data, "dataframe_split.data")
        }
        "dataframe_records" => {
            let records = v
                .as_array()
                .ok_or_else(|| ApiError::bad("`dataframe_records` must be an array"))?;
            records.iter().map(record_row).collect()
        }
        _ => list_rows(v, key),
    }
}

fn list_rows(value: &Value, what: &str) -> Result<Vec<[f32; INPUT]>, ApiError> {
    let rows = value
        .as_array()
        .ok_or_else(|| ApiError::bad(format!("`{what}` must be an array of rows")))?;
    rows.iter()
        .map(|row| {
            let x = numbers(row, what)?;
            <[f32; INPUT]>::try_from(x.as_slice()).map_err(|_| {
                ApiError::bad(format!(
                    "each row of `{what}` must hold {INPUT} numbers, got {}",
                    x.len()
                ))
            })
        })
        .collect()
}

/// One record `{"0": v, …}` or `{"pixel0": v, …}`: 784 columns, placed by the number that
/// ends their name.
fn record_row(record: &Value) -> Result<[f32; INPUT], ApiError> {
    let what = "dataframe_records";
    let record = record
        .as_object()
        .ok_or_else(|| ApiError::bad("each of `dataframe_records` must be an object"))?;
    if record.len() != INPUT {
        return Err(ApiError::bad(format!(
            "each record must hold {INPUT} columns, got {}",
            record.len()
        )));
    }
    let mut x = [0.0f32; INPUT];
    let mut seen = [false; INPUT];
    for (name, v) in record {
        let digits = name.trim_start_matches(|c: char| !c.is_ascii_digit());
        let index = digits
            .parse::<usize>()
            .ok()
            .filter(|&i| i < INPUT && !seen[i])
            .ok_or_else(|| {
                ApiError::bad(format!(
                    "record column `{name}`: columns must be 0..{INPUT} (or pixel0..pixel{}), each once",
                    INPUT - 1
                ))
            })?;
        seen[index] = true;
        x[index] = number(v, what)?;
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_placed_by_column_number() {
        let mut record = serde_json::Map::new();
        for i in 0..INPUT {
            record.insert(format!("pixel{i}"), json!(if i == 700 { 1.0 } else { 0.0 }));
        }
        let x = record_row(&Value::Object(record)).unwrap();
        assert_eq!(x[700], 1.0);
        assert_eq!(x.iter().sum::<f32>(), 1.0);
    }
}
