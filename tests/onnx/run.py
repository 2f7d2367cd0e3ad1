"""Runs an exported pismo model in onnxruntime, for tests/e2e/onnx.rs.

usage: run.py MODEL.onnx INPUTS.f32 OUT_DIR

Checks MODEL.onnx against the ONNX standard (onnx.checker, full check with shape inference),
runs it on INPUTS.f32 (little-endian float32 rows of 784), writes its outputs the same way to
OUT_DIR/probabilities.f32 and OUT_DIR/logits.f32, and prints one JSON line describing the graph's interface.
"""

import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main(model_path, inputs_path, out_dir):
    onnx.checker.check_model(onnx.load(model_path), full_check=True)
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    x = np.fromfile(inputs_path, dtype="<f4").reshape(-1, 784)
    names = [o.name for o in session.get_outputs()]
    outputs = dict(zip(names, session.run(None, {"input": x})))
    for name in ("probabilities", "logits"):
        outputs[name].astype("<f4").tofile(f"{out_dir}/{name}.f32")
    meta = session.get_modelmeta()
    print(json.dumps({
        "inputs": [[i.name, i.type, i.shape] for i in session.get_inputs()],
        "outputs": [[o.name, o.type, o.shape] for o in session.get_outputs()],
        "producer": meta.producer_name,
        "metadata": meta.custom_metadata_map,
        "onnxruntime": ort.__version__,
    }))


if __name__ == "__main__":
    main(*sys.argv[1:])
