"""The NumPy reference MLP as an MLflow pyfunc model, for ``mlflow models serve``.

The original project registered its model in MLflow's registry (pyfunc flavor) and served it
with ``mlflow models serve``. ``bench/serve-load`` saves pismo's shipped weights (exported by
``pismo-bench serve-data``) as such a model and load-tests MLflow's own scoring server:

    python bench/reference/mlflow_pyfunc.py WEIGHTS_DIR MODEL_DIR
    mlflow models serve -m MODEL_DIR --env-manager local -h 127.0.0.1 -p PORT

``predict`` takes the DataFrame MLflow builds from the request (784 columns, pixels / 255)
and returns the labels of ``MLP.predict`` of ``bench/reference/mlp_numpy.py``.
"""

import os
import sys

import mlflow.pyfunc
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


class NumpyMlp(mlflow.pyfunc.PythonModel):
    """Loads the weights from the model's artifacts; predicts a label per row."""

    def load_context(self, context):
        from serve_numpy import load_mlp  # shipped with the model (code_paths)

        self.mlp = load_mlp(context.artifacts["weights"])

    def predict(self, context, model_input, params=None):
        x = np.asarray(model_input, dtype=np.float32)
        return self.mlp.predict(x)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: mlflow_pyfunc.py WEIGHTS_DIR MODEL_DIR")
    weights, out = sys.argv[1:]
    mlflow.pyfunc.save_model(
        path=out,
        python_model=NumpyMlp(),
        artifacts={"weights": weights},
        code_paths=[os.path.join(HERE, f) for f in ("mlp_numpy.py", "serve_numpy.py",
                                                    "mlflow_pyfunc.py")],
    )
    print(out)


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    main()
