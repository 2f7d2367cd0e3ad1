//! `pismo-bench serve-data`: the inputs of the serving benchmark (`bench/serve-load`).
//!
//! ```text
//! pismo-bench serve-data --model FILE --out DIR [--data DIR] [--count N]
//! ```
//!
//! Writes, for the first `N` (default 200) MNIST test digits:
//!
//! - `DIR/png28/IIIII-L.png`: the digit as a 28x28 8-bit grey PNG (light ink on black, as
//!   MNIST stores it);
//! - `DIR/png280/IIIII-L.png`: the digit drawn on a 280x280 white canvas, enlarged 7x, dark
//!   ink, off-centre (the same drawing as `predict`'s `drawing_us`), as the web page sends it;
//! - `DIR/invocations/IIIII-L.json`: MLflow's `dataframe_split` body of one row, the 784
//!   pixels / 255 under columns `"0"`…`"783"`, as a pandas client sends it to `/invocations`;
//! - `DIR/weights/{W1,b1,W2,b2}.npy`: the model's f32 weights in the layout of the NumPy
//!   reference (`bench/reference/mlp_numpy.py`: `W1` (784, H), `W2` (H, 10), biases (1, n)),
//!   for `bench/reference/serve_numpy.py`.
//!
//! `L` in a file name is the label the model gives that body through the server's own path
//! (PNG decoding, `preprocess::to_input`, `predict_proba`; for `/invocations` the row as is),
//! so the load generator can check every answer, not only its status.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use pismo_core::mlp::argmax;
use pismo_core::mlp::{Mlp, CLASSES, INPUT};
use pismo_core::preprocess::GreyImage;
use pismo_digits::image;
use pismo_digits::mnist;
use pismo_engine::kernels;
use pismo_engine::model::{AnyMlp, Weights};

use crate::{drawing_of, model_and_test, CANVAS};

/// Runs `serve-data` with its command-line arguments.
pub fn run(args: &[String]) -> Result<(), String> {
    let (mut model, mut out, mut data, mut count) = (None, None, mnist::default_dir(), 200);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--model" => model = Some(PathBuf::from(value)),
            "--out" => out = Some(PathBuf::from(value)),
            "--data" => data = PathBuf::from(value),
            "--count" => {
                count = value
                    .parse::<usize>()
                    .map_err(|_| format!("--count: expected a number, got `{value}`"))?
                    .max(1)
            }
            other => return Err(format!("unknown flag `{other}`")),
        }
    }
    let model = model.ok_or("--model FILE is required")?;
    let out = out.ok_or("--out DIR is required")?;
    let (mlp, test) = model_and_test(&model, &data)?;
    let count = count.min(test.len());

    let dirs = ["png28", "png280", "invocations", "weights"].map(|d| out.join(d));
    for d in &dirs {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let [png28, png280, invocations, weights] = &dirs;
    let columns = (0..INPUT)
        .map(|i| format!("\"{i}\""))
        .collect::<Vec<_>>()
        .join(",");
    let mut right = 0;
    for (i, digit) in test.images.iter().take(count).enumerate() {
        let small = image::encode_png(&grey(28, digit)?);
        let label = label_of_png(&mlp, &small)?;
        write(&png28.join(format!("{i:05}-{label}.png")), &small)?;

        let big = image::encode_png(&grey(CANVAS, &drawing_of(digit))?);
        let label = label_of_png(&mlp, &big)?;
        write(&png280.join(format!("{i:05}-{label}.png")), &big)?;

        let row: [f32; INPUT] = std::array::from_fn(|k| f32::from(digit[k]) / 255.0);
        let label = argmax(&mlp.predict_proba(&row));
        right += usize::from(label == usize::from(test.labels[i]));
        let mut body = format!("{{\"dataframe_split\":{{\"columns\":[{columns}],\"data\":[[");
        for (k, v) in row.iter().enumerate() {
            let sep = if k == 0 { "" } else { "," };
            write!(body, "{sep}{v}").expect("writing to a String");
        }
        body.push_str("]]}}");
        write(
            &invocations.join(format!("{i:05}-{label}.json")),
            body.as_bytes(),
        )?;
    }
    export_weights(&mlp, weights)?;
    println!(
        "{}",
        serde_json::json!({
            "bench": "serve-data",
            "model": model.display().to_string(),
            "hidden_size": mlp.hidden_size(),
            "count": count,
            "invocations_accuracy": right as f64 / count as f64,
            "out": out.display().to_string(),
        })
    );
    Ok(())
}

fn grey(side: usize, data: &[u8]) -> Result<GreyImage<'_>, String> {
    GreyImage::new(side, side, data).map_err(|e| e.to_string())
}

/// The label the server gives a PNG body: decode, `to_input`, `predict_proba`.
fn label_of_png(mlp: &AnyMlp, png: &[u8]) -> Result<usize, String> {
    let img = image::decode_png(png).map_err(|e| e.to_string())?;
    let mut x = [0.0f32; INPUT];
    kernels::to_input(&img.as_grey(), &mut x).map_err(|e| e.to_string())?;
    Ok(argmax(&mlp.predict_proba(&x)))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes the f32 weights as four `.npy` files in the NumPy reference's layout.
fn export_weights(mlp: &AnyMlp, dir: &Path) -> Result<(), String> {
    if mlp.deskew() {
        return Err(
            "the model deskews its inputs, which the NumPy reference does not: \
                    use a model trained without --deskew"
                .to_owned(),
        );
    }
    macro_rules! each {
        ($($v:ident),*) => {
            match mlp.weights() {
                $(Weights::$v(m) => export(m, dir),)*
                Weights::Int8(_) => Err("an int8 model has no f32 weights for the NumPy \
                                        reference: use an f32 model".to_owned()),
            }
        };
    }
    each!(H16, H32, H64, H128, H192, H256, H512, H1024, H2048, H4096)
}

fn export<const H: usize>(m: &Mlp<H>, dir: &Path) -> Result<(), String> {
    // w1 is (IN, H) in pismo and in NumPy; w2 is (CLASSES, H) in pismo, (H, CLASSES) in NumPy.
    let w2t: Vec<f32> = (0..H)
        .flat_map(|j| (0..CLASSES).map(move |k| (j, k)))
        .map(|(j, k)| m.w2[k][j])
        .collect();
    write(&dir.join("W1.npy"), &npy(&[INPUT, H], m.w1.as_flattened()))?;
    write(&dir.join("b1.npy"), &npy(&[1, H], &m.b1))?;
    write(&dir.join("W2.npy"), &npy(&[H, CLASSES], &w2t))?;
    write(&dir.join("b2.npy"), &npy(&[1, CLASSES], &m.b2))
}

/// A little-endian f32 array in NumPy's `.npy` format, version 1.0: magic, version, header
/// length, a Python dict literal padded with spaces to a multiple of 64 bytes, the data.
fn npy(shape: &[usize], data: &[f32]) -> Vec<u8> {
    debug_assert_eq!(shape.iter().product::<usize>(), data.len());
    let dims: String = shape.iter().map(|d| format!("{d}, ")).collect();
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}), }}",
        dims.trim_end()
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    for v in data {
        out.extend(v.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::npy;

    #[test]
    fn npy_header_is_aligned_and_names_the_shape() {
        let bytes = npy(&[2, 3], &[0.0; 6]);
        let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
        assert!(header.contains("'shape': (2, 3,)"), "{header}");
        assert!(header.ends_with('\n'));
        assert_eq!(bytes.len(), 10 + len + 6 * 4);
    }
}
