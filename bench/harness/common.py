"""Shared helpers of the Python peers: flags, data, timing, JSON lines, BLAS facts.

Every peer script is run by harness.py as a fresh process per measurement and prints one
JSON object per line on stdout: ``{"event": "epoch", ...}`` per training epoch,
``{"event": "predict", ...}`` and ``{"event": "info", ...}`` once.
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))

import numpy as np  # noqa: E402

import mlp_numpy  # noqa: E402,F401  (re-exported for the peers)
from mlp_numpy import load_mnist, one_hot  # noqa: E402,F401


def parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--data", default="data/mnist")
    p.add_argument("--iters", type=int, default=5000, help="single-image predictions")
    p.add_argument("--batch-reps", type=int, default=20, help="batch predictions")
    p.add_argument("--seed", type=int, default=42)
    return p


def emit(**fields):
    print(json.dumps(fields), flush=True)


def time_per_call(f, calls, block):
    """Median and minimum seconds per call of f: calls//10 warm-up calls, then blocks of
    ``block`` calls; each block gives (block time / block). The same scheme as pismo-bench."""
    for _ in range(max(calls // 10, block)):
        f()
    per_call = []
    for _ in range(max(1, -(-calls // block))):
        t0 = time.perf_counter()
        for _ in range(block):
            f()
        per_call.append((time.perf_counter() - t0) / block)
    per_call.sort()
    return per_call[len(per_call) // 2], per_call[0]


def blas_info():
    """What threadpoolctl sees in this process: library, kernel ("architecture"), threads."""
    try:
        import threadpoolctl
        return [{k: v for k, v in d.items() if k != "filepath"} | {
            "file": os.path.basename(d.get("filepath", ""))}
            for d in threadpoolctl.threadpool_info()]
    except Exception as e:  # noqa: BLE001
        return [{"error": repr(e)}]


def data(args):
    """The harness's split: 50000 training / 10000 validation images (seeded), float32."""
    return load_mnist(args.data, val_size=10000, seed=args.seed)


def predict_timings(predict_proba, x1, X_test, y_test, args):
    """Single-image latency and batch throughput of a predict_proba function."""
    single, single_min = time_per_call(lambda: predict_proba(x1), args.iters, 100)
    batch, batch_min = time_per_call(lambda: predict_proba(X_test), args.batch_reps, 1)
    acc = float(np.mean(np.asarray(predict_proba(X_test)).argmax(axis=1) == y_test))
    return dict(single_us=single * 1e6, single_us_min=single_min * 1e6,
                single_iters=args.iters, batch_images=len(X_test), batch_seconds=batch,
                batch_seconds_min=batch_min, batch_images_per_s=len(X_test) / batch,
                batch_reps=args.batch_reps, test_accuracy=acc)
