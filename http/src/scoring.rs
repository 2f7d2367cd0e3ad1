//! Scoring: `POST /api/predict` (PNG, 28x28 pixels or a drawing; the answer holds what the
//! model saw) and MLflow's `POST /invocations` (rows of 784 model inputs, parsed in
//! [`crate::mlflow`]). JSON bodies are parsed straight into their numbers ([`JsonImage`],
//! [`Inputs`]), never into a `serde_json::Value`. Every image goes
//! through `pismo_core::preprocess::to_input`, as in `pismo predict` and `pismo draw`.

use std::time::Instant;

use pismo_core::mlp::{CLASSES, INPUT};
use pismo_core::preprocess::GreyImage;
use pismo_core::verdict::verdict;
use pismo_digits::image::{self, ImageError};
use pismo_engine::kernels;
use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::budget::Permit;
use crate::catalog::model;
use crate::reply::{ApiError, Reply};
use crate::request::{body, parse_typed, unsupported_type, Request};
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
            let (image, permit) = budgeted_json::<JsonImage>(state, request)?;
            (image.grey()?, Some(permit))
        }
        _ => return Err(unsupported_type(kind, "image/png or application/json")),
    };
    let mut x = [0.0f32; INPUT];
    kernels::to_input(&img.as_grey(), &mut x).map_err(|e| ApiError::bad(e.to_string()))?;
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

/// The JSON body of `request` (`Content-Type: application/json`, else 415) parsed into `T`
/// within the server's decoding budget, at [`crate::limits::JSON_BYTES_PER_BODY_BYTE`] a
/// byte of body; the permit gives it back when dropped.
pub(crate) fn budgeted_json<T: DeserializeOwned>(
    state: &State,
    request: &Request,
) -> Result<(T, Permit), ApiError> {
    charged_json(state, request, crate::limits::JSON_BYTES_PER_BODY_BYTE)
}

/// The JSON body of `request` parsed into `T` within the server's decoding budget, charged
/// `per_byte` bytes a byte of body (415 for another content type).
pub(crate) fn charged_json<T: DeserializeOwned>(
    state: &State,
    request: &Request,
    per_byte: u64,
) -> Result<(T, Permit), ApiError> {
    let kind = request.content_type();
    if kind.as_deref() != Some("application/json") {
        return Err(unsupported_type(kind, "application/json"));
    }
    let body = body(request)?;
    let permit = state.images.take(body.len() as u64 * per_byte)?;
    Ok((parse_typed(body)?, permit))
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

// ---------------------------------------------------------------------------------------
// JSON images, parsed straight into numbers

/// The JSON body of `POST /api/predict` (and of `POST /api/drawn`, which adds `label`):
/// `{"pixels":[784 numbers in 0..=1]}` or `{"image":{"width":W,"height":H,"data":[W*H
/// grey bytes]}}`. Parsed by serde into these fields, not into a `serde_json::Value`: a
/// value of another type (an object where a number belongs) is a 400 where the parser
/// meets it, before anything large is built; other fields are skipped without being kept.
#[derive(Deserialize)]
pub(crate) struct JsonImage {
    pixels: Option<Inputs>,
    image: Option<Drawing>,
    /// `POST /api/drawn` only: the digit the drawing really is.
    pub label: Option<Label>,
}

#[derive(Deserialize)]
struct Drawing {
    width: u64,
    height: u64,
    data: Vec<u8>,
}

impl JsonImage {
    /// The image, as the core's preprocessing takes it.
    pub(crate) fn grey(self) -> Result<Grey, ApiError> {
        if let Some(pixels) = self.pixels {
            let data = pixels
                .0
                .iter()
                .map(|&v| (v * 255.0).round() as u8)
                .collect();
            return Ok(Grey {
                width: 28,
                height: 28,
                data,
            });
        }
        let Some(img) = self.image else {
            return Err(ApiError::bad(
                "the JSON body needs `pixels` (784 numbers) or `image` {width, height, data}",
            ));
        };
        let max = u64::from(image::MAX_PNG_SIDE);
        if img.width == 0 || img.height == 0 {
            return Err(ApiError::bad(
                "`image.width` and `image.height` must be positive integers",
            ));
        }
        if img.width > max || img.height > max {
            return Err(ApiError::new(
                413,
                format!(
                    "the image is {}x{} pixels, at most {max}x{max}",
                    img.width, img.height
                ),
            ));
        }
        if img.data.len() as u64 != img.width * img.height {
            return Err(ApiError::bad(format!(
                "`image.data` must hold width*height = {} bytes, got {}",
                img.width * img.height,
                img.data.len()
            )));
        }
        Ok(Grey {
            width: img.width as usize,
            height: img.height as usize,
            data: img.data,
        })
    }
}

/// The model's [`INPUT`] inputs, numbers in 0..=1, parsed into a fixed array: a row of
/// another length is refused at its end, a value that is not such a number where it is.
pub(crate) struct Inputs(pub Box<[f32; INPUT]>);

impl<'de> Deserialize<'de> for Inputs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Numbers;
        impl<'de> Visitor<'de> for Numbers {
            type Value = Inputs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "an array of {INPUT} numbers in 0..=1")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Inputs, A::Error> {
                let mut x = Box::new([0.0f32; INPUT]);
                let mut n = 0;
                while let Some(v) = seq.next_element()? {
                    if n == INPUT {
                        return Err(de::Error::custom(format!(
                            "{INPUT} numbers (28x28) are needed, got more"
                        )));
                    }
                    x[n] = unit(v)?;
                    n += 1;
                }
                if n != INPUT {
                    return Err(de::Error::custom(format!(
                        "{INPUT} numbers (28x28) are needed, got {n}"
                    )));
                }
                Ok(Inputs(x))
            }
        }
        d.deserialize_seq(Numbers)
    }
}

/// `v` if it is a finite number in 0..=1 (a model input).
pub(crate) fn unit<E: de::Error>(v: f32) -> Result<f32, E> {
    if v.is_finite() && (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(E::custom(format!(
            "inputs must be finite numbers in 0..=1, got {v}"
        )))
    }
}

/// The `label` of a corrected drawing as sent: an integer, or another scalar kept as its
/// JSON text for the 400 (an array or object is refused by the parser).
pub(crate) enum Label {
    Integer(i64),
    Other(String),
}

impl<'de> Deserialize<'de> for Label {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Scalar;
        impl Visitor<'_> for Scalar {
            type Value = Label;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a digit from 0 to 9")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Label, E> {
                Ok(Label::Integer(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Label, E> {
                Ok(i64::try_from(v).map_or(Label::Other(v.to_string()), Label::Integer))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Label, E> {
                Ok(Label::Other(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Label, E> {
                Ok(Label::Other(format!("{v:?}")))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Label, E> {
                Ok(Label::Other(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Label, E> {
                Ok(Label::Other("null".to_owned()))
            }
        }
        d.deserialize_any(Scalar)
    }
}

// ---------------------------------------------------------------------------------------
// POST /invocations (MLflow)

pub(crate) fn invocations(state: &State, request: &Request) -> Result<Reply, ApiError> {
    let (_, mlp) = model(state, request.query_param("model").as_deref())?;
    let (body, _permit) = budgeted_json(state, request)?;
    let rows = crate::mlflow::rows(body)?;
    let predictions: Vec<usize> = rows.iter().map(|x| argmax(&mlp.predict_proba(x))).collect();
    Reply::json(&json!({ "predictions": predictions }))
}
