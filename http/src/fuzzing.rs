//! Seams for the fuzz targets in `fuzz/`, not an API: each takes a request body's bytes and
//! runs on them the same functions the route runs, up to the point where the route would
//! use a model or start a run, and returns the route's error message.

use pismo_core::mlp::INPUT;
use pismo_core::preprocess;

use crate::reply::ApiError;
use crate::request::parse_json;
use crate::scoring::{json_image, mlflow_rows};
use crate::training::parse_request;

fn message(e: ApiError) -> String {
    e.message
}

/// A JSON body of `POST /api/predict` to the model's input, as the route does it.
pub fn predict_body(body: &[u8]) -> Result<[f32; INPUT], String> {
    let img = json_image(&parse_json(body).map_err(message)?).map_err(message)?;
    let mut x = [0.0f32; INPUT];
    preprocess::to_input(&img.as_grey(), &mut x).map_err(|e| e.to_string())?;
    Ok(x)
}

/// The rows of a `POST /invocations` body, each the model's 784 inputs.
pub fn invocations_body(body: &[u8]) -> Result<Vec<[f32; INPUT]>, String> {
    mlflow_rows(&parse_json(body).map_err(message)?).map_err(message)
}

/// The checks `POST /api/train` makes on its body before it reserves a slot: the model's
/// name, its aliases and the hyperparameters.
pub fn train_body(body: &[u8]) -> Result<(String, Vec<String>), String> {
    let (name, aliases, hyper) =
        parse_request(&parse_json(body).map_err(message)?).map_err(message)?;
    hyper.validate().map_err(|e| e.to_string())?;
    Ok((name, aliases))
}
