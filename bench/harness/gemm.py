"""The compute limit: float32 GEMM rate of NumPy's BLAS on large square products, on all
cores and on one (threadpoolctl), best of several. One JSON line on stdout."""

import argparse
import json
import time

import numpy as np
from threadpoolctl import threadpool_limits

from common import blas_info


def best_rate(n, reps):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), dtype=np.float32)
    np.matmul(a, b, out=c)  # warm-up: thread start, page faults
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9, best


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=4096)
    p.add_argument("--n1", type=int, default=2048, help="size of the one-core product")
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    info = blas_info()
    threads = max((d.get("num_threads", 0) for d in info), default=0)
    all_rate, all_s = best_rate(args.n, args.reps)
    with threadpool_limits(limits=1, user_api="blas"):
        one_rate, one_s = best_rate(args.n1, args.reps)
    print(json.dumps(dict(event="gemm", numpy=np.__version__, blas=info, threads=threads,
                          n=args.n, gflops=all_rate, best_seconds=all_s, n1=args.n1,
                          gflops_1thread=one_rate, best_seconds_1thread=one_s,
                          reps=args.reps)), flush=True)


if __name__ == "__main__":
    main()
