"""A stand-in for the original's scoring server: MLflow's protocol over Python's stdlib.

The original project served its model with ``mlflow models serve`` (a Python web server
around a pyfunc model). This is the same protocol with the least Python possible, as a
second reference next to the real MLflow server in ``bench/serve-load``:

- ``POST /invocations`` with MLflow's ``dataframe_split`` JSON (784 columns, one row per
  image, pixels / 255) -> ``{"predictions": [label, ...]}``;
- ``GET /ping`` and ``GET /health`` -> 200.

The forward pass is the NumPy reference's ``MLP.predict`` (``bench/reference/mlp_numpy.py``)
with pismo's shipped weights, exported by ``pismo-bench serve-data`` as ``.npy`` files, so
both servers give the same answers. The server is ``http.server.ThreadingHTTPServer`` (one
thread per connection) speaking HTTP/1.1 with keep-alive. It is a generous reference: no
pandas DataFrame is built (MLflow builds one), no request log is written, Nagle's algorithm
is off and each answer leaves in one write (a stdlib server that writes headers and body
separately waits ~40 ms for the client's delayed ACK on every keep-alive request).

Run: ``python bench/reference/serve_numpy.py WEIGHTS_DIR [--host 127.0.0.1] [--port 0]``;
the first line on stdout is the URL.
"""

import argparse
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mlp_numpy import MLP  # noqa: E402

F32 = np.float32
MAX_BODY = 8 << 20


def load_mlp(weights_dir):
    """The NumPy reference MLP with the weights of ``weights_dir/{W1,b1,W2,b2}.npy``."""
    w = {n: np.load(os.path.join(weights_dir, n + ".npy")) for n in ("W1", "b1", "W2", "b2")}
    hidden = w["W1"].shape[1]
    mlp = MLP(784, hidden, 10, seed=0)
    for name, value in w.items():
        expected = getattr(mlp, name).shape
        if value.shape != expected or value.dtype != F32:
            raise ValueError(f"{name}.npy: {value.dtype}{value.shape}, expected float32{expected}")
        setattr(mlp, name, value)
    return mlp


def rows_of(payload):
    """The (m, 784) float32 rows of an MLflow scoring body."""
    if not isinstance(payload, dict):
        raise ValueError("the body must be a JSON object")
    if "dataframe_split" in payload:
        rows = payload["dataframe_split"].get("data")
    elif "inputs" in payload:
        rows = payload["inputs"]
    elif "instances" in payload:
        rows = payload["instances"]
    else:
        raise ValueError("the body needs dataframe_split, inputs or instances")
    x = np.asarray(rows, dtype=F32)
    if x.ndim != 2 or x.shape[1] != 784:
        raise ValueError(f"expected rows of 784 numbers, got shape {x.shape}")
    return x


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    mlp = None  # set by main

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def reply(self, status, body):
        data = json.dumps(body, separators=(",", ":")).encode() + b"\n"
        head = (f"HTTP/1.1 {status} {self.responses[status][0]}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n")
        self.wfile.write(head.encode("latin-1") + data)

    def do_GET(self):
        if self.path in ("/ping", "/health"):
            self.reply(200, {})
        else:
            self.reply(404, {"error": f"no such route: {self.path}"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            self.reply(413, {"error": "the body is too large"})
            return
        body = self.rfile.read(length)
        if self.path.split("?")[0] != "/invocations":
            self.reply(404, {"error": f"no such route: {self.path}"})
            return
        try:
            x = rows_of(json.loads(body))
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            self.reply(400, {"error": str(e)})
            return
        self.reply(200, {"predictions": self.mlp.predict(x).tolist()})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("weights", help="folder of W1.npy, b1.npy, W2.npy, b2.npy")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    Handler.mlp = load_mlp(args.weights)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    print(f"http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
