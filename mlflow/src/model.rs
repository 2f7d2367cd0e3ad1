//! A pismo model as an MLflow model directory: what MLflow's registry keeps of a version,
//! so that `mlflow models serve -m models:/NAME@ALIAS` and `mlflow.pyfunc.load_model` load
//! it.
//!
//! ```text
//! MLmodel            flavours `onnx` (data: model.onnx) and `python_function`
//!                    (loader mlflow.onnx), the signature: input float32[-1,784],
//!                    outputs probabilities and logits float32[-1,10]
//! model.onnx         `pismo models export --format onnx`: the whole model, deskewing and
//!                    int8 arithmetic included (pismo_engine::onnx)
//! NAME.vV.pismo      the model file itself, byte for byte
//! requirements.txt   the Python packages that serve it, as tested (tests/e2e/mlflow.rs)
//! python_env.yaml    MLflow's virtualenv description (-r requirements.txt)
//! conda.yaml         the same for conda
//! ```
//!
//! `/invocations` takes `{"inputs": [[784 numbers]]}` (or a `dataframe_split` of 784
//! columns), each row an image as pismo preprocesses it (an MNIST byte `b` is `b / 255`), and
//! answers `{"predictions": {"probabilities": [[10]], "logits": [[10]]}}`.

use pismo_engine::model::AnyMlp;
use pismo_engine::onnx;
use pismo_storage::registry::ModelId;

/// The Python packages the directory is served with: the versions `tests/e2e/mlflow.rs`
/// serves it with (`tests/mlflow/requirements.txt`).
pub const REQUIREMENTS: &[&str] = &[
    "mlflow==3.17.2",
    "numpy==2.4.6",
    "onnx==1.23.2",
    "onnxruntime==1.32.0",
];
/// The Python the environment files ask for.
pub const PYTHON: &str = "3.11";

/// The files of the MLflow model directory of model `id` (its file `bytes`, decoded as
/// `model`): relative path and content.
pub fn files(id: &ModelId, bytes: &[u8], model: &AnyMlp) -> Vec<(String, Vec<u8>)> {
    let onnx_file = onnx::export(model, &id.to_string());
    let onnx_version = REQUIREMENTS
        .iter()
        .find_map(|r| r.strip_prefix("onnx=="))
        .expect("onnx is a requirement");
    let tensor = |name: &str, width: usize| {
        format!(
            r#"{{"name": "{name}", "type": "tensor", "tensor-spec": {{"dtype": "float32", "shape": [-1, {width}]}}}}"#
        )
    };
    let mlmodel = format!(
        "artifact_path: model\n\
         flavors:\n\
         \x20 onnx:\n\
         \x20   code: null\n\
         \x20   data: model.onnx\n\
         \x20   onnx_version: {onnx_version}\n\
         \x20   providers:\n\
         \x20   - CPUExecutionProvider\n\
         \x20 python_function:\n\
         \x20   data: model.onnx\n\
         \x20   env:\n\
         \x20     conda: conda.yaml\n\
         \x20     virtualenv: python_env.yaml\n\
         \x20   loader_module: mlflow.onnx\n\
         \x20   python_version: '{PYTHON}'\n\
         metadata:\n\
         \x20 pismo_model: {id}\n\
         \x20 pismo_file: {file}\n\
         \x20 pismo_kind: {kind}\n\
         \x20 pismo_deskew: {deskew}\n\
         model_size_bytes: {size}\n\
         signature:\n\
         \x20 inputs: '[{input}]'\n\
         \x20 outputs: '[{probabilities}, {logits}]'\n\
         \x20 params: null\n",
        file = id.file_name(),
        kind = model.kind(),
        deskew = model.deskew(),
        size = onnx_file.len() + bytes.len(),
        input = tensor(onnx::INPUT_NAME, pismo_core::mlp::INPUT),
        probabilities = tensor(onnx::PROBABILITIES, pismo_core::mlp::CLASSES),
        logits = tensor(onnx::LOGITS, pismo_core::mlp::CLASSES),
    );
    let requirements = REQUIREMENTS.join("\n") + "\n";
    let python_env = format!(
        "python: '{PYTHON}'\nbuild_dependencies:\n- pip\n- setuptools\n- wheel\n\
         dependencies:\n- -r requirements.txt\n"
    );
    let pip: String = REQUIREMENTS.iter().map(|r| format!("  - {r}\n")).collect();
    let conda = format!(
        "name: mlflow-env\nchannels:\n- conda-forge\ndependencies:\n- python={PYTHON}\n- pip\n\
         - pip:\n{pip}"
    );
    vec![
        ("MLmodel".to_owned(), mlmodel.into_bytes()),
        ("model.onnx".to_owned(), onnx_file),
        (id.file_name(), bytes.to_vec()),
        ("requirements.txt".to_owned(), requirements.into_bytes()),
        ("python_env.yaml".to_owned(), python_env.into_bytes()),
        ("conda.yaml".to_owned(), conda.into_bytes()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use pismo_core::mlp::Mlp;
    use pismo_engine::boxed_zeroed;
    use pismo_engine::model::IntoAny;

    #[test]
    fn the_folder_holds_an_onnx_flavoured_mlmodel_the_graph_and_the_file() {
        let m: Box<Mlp<16>> = boxed_zeroed();
        let model = m.into_any().with_deskew(true);
        let id = ModelId::new("t", 3).unwrap();
        let files = files(&id, b"the model file", &model);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "MLmodel",
                "model.onnx",
                "t.v3.pismo",
                "requirements.txt",
                "python_env.yaml",
                "conda.yaml"
            ]
        );
        let text = |i: usize| String::from_utf8(files[i].1.clone()).unwrap();
        let mlmodel = text(0);
        for line in [
            "  onnx:\n    code: null\n    data: model.onnx\n    onnx_version: 1.23.2\n",
            "    loader_module: mlflow.onnx\n",
            "  pismo_model: t@3\n",
            "  pismo_deskew: true\n",
            r#"  inputs: '[{"name": "input", "type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 784]}}]'"#,
        ] {
            assert!(mlmodel.contains(line), "{line} in\n{mlmodel}");
        }
        assert_eq!(files[1].1, onnx::export(&model, "t@3"));
        assert_eq!(files[2].1, b"the model file");
        assert!(text(3).lines().any(|l| l == "onnxruntime==1.32.0"));
        assert!(text(4).contains("- -r requirements.txt"));
        assert!(text(5).contains("  - onnx==1.23.2"));
    }
}
