//! Seams for the fuzz targets in `fuzz/`, not an API: each takes a request body's bytes and
//! runs on them the same functions the route runs, up to the point where the route would
//! use a model or start a run, and returns the route's error message.

use pismo_core::mlp::INPUT;
use pismo_engine::kernels;

use crate::reply::ApiError;
use crate::request::{parse_json, parse_typed};
use crate::scoring::JsonImage;
use crate::training::parse_request;

fn message(e: ApiError) -> String {
    e.message
}

/// A JSON body of `POST /api/predict` to the model's input, as the route does it.
pub fn predict_body(body: &[u8]) -> Result<[f32; INPUT], String> {
    let img = parse_typed::<JsonImage>(body)
        .and_then(JsonImage::grey)
        .map_err(message)?;
    let mut x = [0.0f32; INPUT];
    kernels::to_input(&img.as_grey(), &mut x).map_err(|e| e.to_string())?;
    Ok(x)
}

/// The rows of a `POST /invocations` body, each the model's 784 inputs.
pub fn invocations_body(body: &[u8]) -> Result<Vec<[f32; INPUT]>, String> {
    parse_typed(body)
        .and_then(crate::mlflow::rows)
        .map_err(message)
}

/// The checks `POST /api/train` makes on its body before it reserves a slot: the model's
/// name, its aliases and the hyperparameters.
pub fn train_body(body: &[u8]) -> Result<(String, Vec<String>), String> {
    let (name, aliases, hyper) =
        parse_request(&parse_json(body).map_err(message)?).map_err(message)?;
    hyper.validate().map_err(|e| e.to_string())?;
    Ok((name, aliases))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seams_accept_and_refuse_as_the_routes_do() {
        let x = predict_body(br#"{"image":{"width":2,"height":2,"data":[0,255,255,0]}}"#);
        assert!(x.unwrap().iter().any(|&v| v > 0.0));
        assert!(predict_body(b"{")
            .unwrap_err()
            .starts_with("malformed JSON"));
        assert!(predict_body(br#"{"pixels":[0,0.5]}"#)
            .unwrap_err()
            .contains("784"));
        let row = vec!["0.5"; INPUT].join(",");
        let rows = invocations_body(format!(r#"{{"inputs":[[{row}],[{row}]]}}"#).as_bytes());
        assert_eq!(rows.unwrap().len(), 2);
        assert!(invocations_body(b"[]").is_err());
        assert_eq!(
            train_body(br#"{"name":"web","epochs":1}"#).unwrap().0,
            "web"
        );
        assert!(train_body(br#"{"dropout_rate":1}"#).is_err());
        assert!(train_body(br#"{"hidden_sizes":64}"#).is_err());
    }
}
