"""bench/run's orchestrator: pismo against its Python peers, alternating, in one invocation.

For each round, for each hidden size: pismo training (the real CLI), pismo training with
augmentation (--augment --elastic 2 --deskew), pismo prediction (pismo-bench), then the NumPy
reference, scikit-learn and JAX, each a fresh process; then the GEMM rate of NumPy's BLAS, with
OpenBLAS's own choice of kernel and with the kernel of the instruction set pismo's kernels ran
(OPENBLAS_CORETYPE), which gives the floor. Every child's peak RSS comes from os.wait4. The summary is one
table (stdout) and one JSON file (bench/results/<UTC date-time>.json) holding the machine,
flags, versions, every raw measurement and the table. See bench/README.md.
"""

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from machine import cpu_busy_seconds, machine, read, sh

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
ROOT = os.path.dirname(BENCH)
PY = sys.executable

# Environment variables that change which BLAS kernel or how many threads the peers use.
UNSET_FOR_PEERS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS",
               "RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "PISMO_DATA")
PEERS = ("numpy", "sklearn", "jax")
# A run during which other processes used more than this share of all cores is flagged.
NOISY_SHARE = 0.10
ENGINES = ("pismo",) + PEERS
# pismo's kernel copies (PISMO_SIMD, engine/src/kernels.rs) and the OpenBLAS kernel of the
# same instruction set: the GEMM rate the floor is computed from. Prescott is OpenBLAS's
# SSE2/SSE3 kernel; aarch64 has no choice to make here.
CORETYPE_OF_LEVEL = {"avx512": "SkylakeX", "avx2": "Haswell", "baseline": "Prescott"}
# What the augmented epoch adds to pismo's plain training flags.
AUGMENT_FLAGS = ["--augment", "--elastic", "2", "--deskew"]
INPUT, CLASSES, N_TRAIN, N_VAL, N_TEST = 784, 10, 50000, 10000, 10000
TORCH_NOTE = ("not run: the registry's torch wheel pulls the CUDA libraries and does not "
              "import without them; the CPU wheel index is not reachable from this machine")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# -- flop counts ------------------------------------------------------------------------------
def flops_epoch_dense(h, n=N_TRAIN):
    """What one training epoch needs: forward 2·784·H·N + 2·H·10·N, backward dW1 2·784·H·N,
    dW2 2·H·10·N, dA1 2·10·H·N; the input gradient is not needed and not counted."""
    fwd = 2 * INPUT * h * n + 2 * h * CLASSES * n
    return fwd + 2 * INPUT * h * n + 2 * h * CLASSES * n + 2 * CLASSES * h * n


def flops_epoch_3x(h, n=N_TRAIN):
    """The usual count: three times the forward pass."""
    return 3 * (2 * INPUT * h * n + 2 * h * CLASSES * n)


def flops_forward(h, n):
    return 2 * INPUT * h * n + 2 * h * CLASSES * n


# -- running children -----------------------------------------------------------------------
LAST_FOREIGN = {}


def run(cmd, env, timeout, cwd=ROOT):
    """Runs cmd; returns (exit code, stdout, stderr, seconds, peak RSS in MB). The peak RSS is
    the child's own, from wait4 (Linux reports ru_maxrss in KiB). Also leaves in
    LAST_FOREIGN the share of the machine's CPU time that other processes used meanwhile
    (busy time from /proc/stat minus the child's user + system time), a noise indicator."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        busy0 = cpu_busy_seconds()
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd, text=True)
        timer = threading.Timer(timeout, p.kill)
        timer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        busy1 = cpu_busy_seconds()
        if busy0 is not None and busy1 is not None and seconds > 0:
            foreign = max(0.0, busy1 - busy0 - ru.ru_utime - ru.ru_stime)
            LAST_FOREIGN["share"] = foreign / (seconds * (os.cpu_count() or 1))
        else:
            LAST_FOREIGN["share"] = None
        out.seek(0)
        err.seek(0)
        return p.returncode, out.read(), err.read(), seconds, ru.ru_maxrss / 1024.0


def json_lines(text):
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return rows


def tail(text, n=6):
    return "\n".join(text.strip().splitlines()[-n:])


# -- machine facts --------------------------------------------------------------------------
def build_facts():
    toml = read(os.path.join(ROOT, "Cargo.toml"))
    profile, inside = [], False
    for line in toml.splitlines():
        if line.strip().startswith("["):
            inside = line.strip() == "[profile.release]"
            continue
        line = line.split("#", 1)[0].strip()
        if inside and line:
            profile.append(line)
    return {
        "command": "cargo build --release -p pismo -p pismo-bench",
        "profile_release": profile,
        "cargo_config": read(os.path.join(ROOT, ".cargo", "config.toml")) or None,
        "git_commit": sh(["git", "rev-parse", "HEAD"]),
        "git_dirty": bool(sh(["git", "status", "--porcelain", "--untracked-files=no"])),
    }


# -- the measurements -------------------------------------------------------------------------
class Bench:
    def __init__(self, opts):
        self.o = opts
        self.runs = []
        self.pismo = os.path.join(ROOT, "target", "release", "pismo")
        self.pismo_bench = os.path.join(ROOT, "target", "release", "pismo-bench")
        self.env = dict(os.environ)
        self.unset = {k: self.env.pop(k) for k in UNSET_FOR_PEERS if k in self.env}
        if opts.simd:
            self.env["PISMO_SIMD"] = opts.simd
        self.level = None  # the kernel copy pismo-bench reported
        self.tmp = tempfile.mkdtemp(prefix="pismo-bench-")
        self.models = {}  # hidden size -> a model file pismo trained in this invocation

    def record(self, **r):
        r["loadavg"] = read("/proc/loadavg").split()[:3]
        r["foreign_cpu_share"] = LAST_FOREIGN.pop("share", None)
        self.runs.append(r)
        return r

    def pismo_train(self, rnd, h, augmented=False):
        """A training run; augmented: with AUGMENT_FLAGS, its model not kept."""
        tag = f"{rnd}-{h}{'-aug' if augmented else ''}"
        reg = os.path.join(self.tmp, f"registry-{tag}")
        runs = os.path.join(self.tmp, f"runs-{tag}")
        cmd = [self.pismo, "train", "--json", "--quiet", "--hidden-size", str(h),
               "--epochs", str(self.o.epochs), "--patience", "0", "--batch-size", "64",
               "--dropout-rate", "0.5", "--val-size", str(N_VAL), "--threads", "0",
               "--registry", reg, "--runs", runs, "--data", self.o.data]
        cmd += AUGMENT_FLAGS if augmented else []
        code, out, err, secs, rss = run(cmd, self.env, self.o.timeout)
        rows = json_lines(out)
        epochs = [r for r in rows if r.get("event") == "epoch"]
        done = next((r for r in rows if r.get("event") == "done"), {})
        ok = code == 0 and len(epochs) == self.o.epochs
        model = None
        if ok and not augmented:
            files = sorted(f for f in os.listdir(reg) if f.endswith(".pismo"))
            if files:
                model = os.path.join(self.tmp, f"model-{h}.pismo")
                shutil.copy(os.path.join(reg, files[0]), model)
                self.models[h] = model
        shutil.rmtree(reg, ignore_errors=True)
        shutil.rmtree(runs, ignore_errors=True)
        return self.record(engine="pismo", kind="train_aug" if augmented else "train",
                           round=rnd, hidden=h, ok=ok, cmd=" ".join(cmd), exit=code,
                           wall_seconds=secs, max_rss_mb=rss, epochs=epochs, done=done,
                           pismo_simd=self.env.get("PISMO_SIMD"),
                           error=None if ok else tail(err))

    def pismo_predict(self, rnd, h):
        model = self.models.get(h)
        if model is None:
            return self.record(engine="pismo", kind="predict", round=rnd, hidden=h, ok=False,
                               error="no model: the training run failed")
        cmd = [self.pismo_bench, "predict", "--model", model, "--data", self.o.data,
               "--iters", str(self.o.iters), "--drawing-iters", str(self.o.iters // 5),
               "--batch-reps", str(self.o.batch_reps), "--threads", "0"]
        code, out, err, secs, rss = run(cmd, self.env, self.o.timeout)
        rows = json_lines(out)
        ok = code == 0 and bool(rows)
        if ok:
            self.level = rows[0].get("kernels")
        return self.record(engine="pismo", kind="predict", round=rnd, hidden=h, ok=ok,
                           cmd=" ".join(cmd), exit=code, wall_seconds=secs, max_rss_mb=rss,
                           predict=rows[0] if rows else None,
                           error=None if ok else tail(err))

    def peer(self, name, rnd, h):
        script = os.path.join(HERE, f"peer_{name}.py")
        cmd = [PY, script, "--hidden", str(h), "--epochs", str(self.o.epochs),
               "--data", self.o.data, "--iters", str(self.o.iters // 4),
               "--batch-reps", str(self.o.batch_reps)]
        code, out, err, secs, rss = run(cmd, self.env, self.o.timeout)
        rows = json_lines(out)
        epochs = [r for r in rows if r.get("event") == "epoch"]
        info = next((r for r in rows if r.get("event") == "info"), {})
        pred = next((r for r in rows if r.get("event") == "predict"), None)
        ok = code == 0 and len(epochs) == self.o.epochs
        return self.record(engine=name, kind="train", round=rnd, hidden=h, ok=ok,
                           cmd=" ".join(cmd), exit=code, wall_seconds=secs, max_rss_mb=rss,
                           epochs=epochs, info=info, predict=pred,
                           error=None if ok else tail(err))

    def gemm(self, rnd, kept_env=False, coretype=None):
        """The GEMM rate; with kept_env, under the OPENBLAS_* variables that were unset (for
        the record only: what the peers would have got had they been left in place); with
        coretype, with OpenBLAS's kernel forced to it (the floor's rate: the instruction set
        pismo's kernels ran)."""
        cmd = [PY, os.path.join(HERE, "gemm.py"), "--reps", str(self.o.gemm_reps)]
        env = dict(self.env, **self.unset) if kept_env else dict(self.env)
        extra = {}
        if coretype:
            extra = {"OPENBLAS_CORETYPE": coretype}
            env.update(extra)
        code, out, err, secs, rss = run(cmd, env, self.o.timeout)
        rows = json_lines(out)
        ok = code == 0 and bool(rows)
        kind = "gemm_kept_env" if kept_env else "gemm_matched" if coretype else "gemm"
        return self.record(engine="gemm", kind=kind, round=rnd, ok=ok, cmd=" ".join(cmd),
                           exit=code, wall_seconds=secs, gemm=rows[0] if rows else None,
                           env=self.unset if kept_env else extra,
                           error=None if ok else tail(err))


def probe_jax(env):
    code, out, err, _, _ = run([PY, "-c", "import jax, jax.numpy as j; "
                                "print(jax.__version__, j.ones(2).sum())"], env, 120)
    return (True, out.strip()) if code == 0 else (False, tail(err, 2))


def one_line(r):
    if not r["ok"]:
        return f"FAILED: {r.get('error')}"
    parts = []
    if r.get("epochs"):
        s = [e["seconds"] for e in r["epochs"]]
        parts.append("epochs " + " ".join(f"{x:.3f}" for x in s) + " s")
        va = r["epochs"][-1].get("val_accuracy")
        if va is not None:
            parts.append(f"val {100 * va:.2f} %")
    p = r.get("predict")
    if p:
        parts.append(f"1 image {p['single_us']:.1f} µs")
        if "drawing_us" in p:
            parts.append(f"drawing {p['drawing_us']:.1f} µs")
        parts.append(f"batch {p['batch_images_per_s'] / 1e3:.0f}k img/s")
    g = r.get("gemm")
    if g:
        parts.append(f"{g['gflops']:.0f} GFLOP/s ({g['threads']} threads), "
                     f"{g['gflops_1thread']:.0f} on 1")
    if r.get("max_rss_mb") is not None:
        parts.append(f"max RSS {r['max_rss_mb']:.0f} MB")
    return ", ".join(parts)


# -- summary --------------------------------------------------------------------------------
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarise(bench, hidden, warmup):
    runs = [r for r in bench.runs if r["ok"]]
    gemms = [r["gemm"] for r in runs if r["kind"] == "gemm"]
    matched = [r["gemm"] for r in runs if r["kind"] == "gemm_matched"]
    # The floor: NumPy's GEMM with OpenBLAS's kernel of pismo's instruction set when it was
    # measured, else with OpenBLAS's own choice.
    basis = matched or gemms
    rate = max((g["gflops"] for g in basis), default=None)
    rate1 = max((g["gflops_1thread"] for g in basis), default=None)
    rows = []

    def of(engine, h, kind="train"):
        return [r for r in runs if r["engine"] == engine and r.get("hidden") == h
                and r["kind"] == kind]

    def noisy(h, kind_pismo="train"):
        # (Peers have no augmented runs: their plain ones are what that row compares.)
        return {e: any((r.get("foreign_cpu_share") or 0) > NOISY_SHARE
                       for r in of(e, h, kind_pismo if e == "pismo" else "train"))
                for e in ENGINES}

    def row(metric, unit, values, floor=None, ratios=True, fmt=None, extra=None,
            flagged=None):
        peers = {k: v for k, v in values.items() if k != "pismo" and v is not None}
        p = values.get("pismo")
        best = min(peers.values()) if peers else None
        rows.append({
            "metric": metric, "unit": unit, "values": values, "floor": floor,
            "ratio_numpy": p / values["numpy"] if ratios and p and values.get("numpy")
            else None,
            "ratio_best_peer": p / best if ratios and p and best else None,
            "best_peer": min(peers, key=peers.get) if ratios and peers else None,
            "ratio_floor": p / floor if ratios and p and floor else None,
            "fmt": fmt, "extra": extra or {}, "noisy": flagged or {},
        })

    for h in hidden:
        # Training: every epoch after the warm-up one, of every round, pooled.
        vals, per_round, accs = {}, {}, {}
        for e in ENGINES:
            timed = [ep["seconds"] for r in of(e, h) for ep in r["epochs"][warmup:]]
            vals[e] = med(timed)
            per_round[e] = [med([ep["seconds"] for ep in r["epochs"][warmup:]])
                            for r in of(e, h)]
            accs[e] = med([r["epochs"][-1].get("val_accuracy") for r in of(e, h)])
        dense = flops_epoch_dense(h)
        floor = dense / (rate * 1e9) if rate else None
        floor3 = flops_epoch_3x(h) / (rate * 1e9) if rate else None
        row(f"train s/epoch, H={h}", "s", vals, floor, flagged=noisy(h),
            extra={"per_round_medians": per_round,
                   "best_round_median": {e: min((x for x in v if x is not None), default=None)
                                         for e, v in per_round.items()},
                   "floor_3x": floor3,
                   "flops_dense": dense, "flops_3x": flops_epoch_3x(h),
                   "n_timed_epochs": {e: sum(len(r["epochs"][warmup:]) for r in of(e, h))
                                      for e in ENGINES}})
        row(f"val accuracy after {bench.o.epochs} epochs, H={h}", "%",
            {e: 100 * a if a is not None else None for e, a in accs.items()}, ratios=False)

        # pismo's augmented epoch against its plain one and the peers' plain ones (they
        # have no augmentation): what it costs to train the way the shipped models are.
        aug_runs = of("pismo", h, "train_aug")
        if aug_runs:
            aug = med([ep["seconds"] for r in aug_runs for ep in r["epochs"][warmup:]])
            vs_plain = aug / vals["pismo"] if aug and vals.get("pismo") else None
            aug_vals = dict(vals, pismo=aug)
            row(f"train s/epoch with {' '.join(AUGMENT_FLAGS)}"
                f"{f' ({vs_plain:.2f}× its plain epoch)' if vs_plain else ''}; peers: plain "
                f"epoch, H={h}", "s", aug_vals, floor, flagged=noisy(h, "train_aug"),
                extra={"vs_pismo_plain": vs_plain, "flags": AUGMENT_FLAGS,
                       "val_accuracy": med([r["epochs"][-1].get("val_accuracy")
                                            for r in aug_runs]),
                       "max_rss_mb": max(r["max_rss_mb"] for r in aug_runs),
                       "what": "pismo: augmented epochs; numpy, sklearn, jax: their plain "
                               "epochs (the NumPy reference has no augmentation)"})

        # Prediction. pismo: pismo-bench runs; peers: their training processes.
        def pred(e, key):
            kind = "predict" if e == "pismo" else "train"
            return med([r["predict"][key] for r in of(e, h, kind) if r.get("predict")])
        single = {e: pred(e, "single_us") for e in ENGINES}
        floor1 = flops_forward(h, 1) / (rate1 * 1e9) * 1e6 if rate1 else None
        row(f"predict 1 image (784 floats), H={h}", "µs", single, floor1,
            flagged=noisy(h, "predict"), extra={"floor_basis": "forward FLOPs at NumPy's one-thread GEMM rate"})
        drawing = {e: None for e in ENGINES}
        drawing["pismo"] = pred("pismo", "drawing_us")
        row(f"predict 280x280 drawing (preprocess + infer), H={h}", "µs", drawing,
            ratios=False, flagged=noisy(h, "predict"))
        batch = {e: (lambda s: s * 1e3 if s else None)(pred(e, "batch_seconds"))
                 for e in ENGINES}
        floorb = flops_forward(h, N_TEST) / (rate * 1e9) * 1e3 if rate else None
        row(f"predict 10000 test images, H={h}", "ms", batch, floorb, fmt="throughput",
            flagged=noisy(h, "predict"), extra={"images_per_s": {e: N_TEST / (v / 1e3) if v else None
                                    for e, v in batch.items()},
                   "accuracy": {e: pred(e, "batch_accuracy" if e == "pismo"
                                        else "test_accuracy") for e in ENGINES}})
        rss = {e: max((r["max_rss_mb"] for r in of(e, h)), default=None) for e in ENGINES}
        row(f"peak RSS of a training run, H={h}", "MB", rss, flagged=noisy(h),
            extra={"what": f"whole process, {bench.o.epochs} epochs on the full MNIST "
                           "(pismo: the CLI run incl. loading, test eval and registering)"})
        if aug_runs:
            rss_aug = {e: None for e in ENGINES}
            rss_aug["pismo"] = max(r["max_rss_mb"] for r in aug_runs)
            row(f"peak RSS of an augmented training run, H={h}", "MB", rss_aug,
                ratios=False, flagged=noisy(h, "train_aug"))
    return rows, {"gflops": rate, "gflops_1thread": rate1, "all": gemms, "matched": matched,
                  "floor_basis": "OPENBLAS_CORETYPE of pismo's kernels" if matched
                  else "OpenBLAS's own kernel choice"}


def fmt_val(v, unit, row, engine=None):
    if v is None:
        return "—"
    if unit == "s":
        s = f"{v:.3f}"
    elif unit == "%":
        s = f"{v:.2f}"
    elif unit == "µs":
        s = f"{v:.1f}" if v < 1000 else f"{v:.0f}"
    elif unit == "ms":
        s = f"{v:.1f}"
        if row.get("fmt") == "throughput":
            s += f" ({N_TEST / v:.0f}k/s)"
    else:
        s = f"{v:.0f}"
    return s


def fmt_ratio(x):
    return "—" if x is None else f"{x:.2f}×"


def table(rows, jax_ok):
    head = ["metric", "pismo", "numpy", "sklearn", "jax" if jax_ok else "jax (n/a)",
            "floor", "pismo/numpy", "pismo/best peer", "pismo/floor"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        u = r["unit"]
        cells = [f"{r['metric']} ({u})"]
        cells += [fmt_val(r["values"].get(e), u, r)
                  + ("*" if r["noisy"].get(e) and r["values"].get(e) is not None else "")
                  for e in ENGINES]
        floor = fmt_val(r["floor"], u, {})
        if r["extra"].get("floor_3x"):
            floor += f" (3×: {r['extra']['floor_3x']:.3f})"
        cells.append(floor)
        best = fmt_ratio(r["ratio_best_peer"])
        if r["best_peer"] and r["ratio_best_peer"] is not None:
            best += f" ({r['best_peer']})"
        cells += [fmt_ratio(r["ratio_numpy"]), best, fmt_ratio(r["ratio_floor"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 1 round, 3 epochs, fewer prediction calls")
    ap.add_argument("--hidden", default="128,256,1024,2048,4096",
                    help="hidden sizes, comma-separated (default 128,256,1024,2048,4096)")
    ap.add_argument("--simd", choices=("baseline", "avx2", "avx512", "neon"),
                    default=os.environ.get("PISMO_SIMD") or None,
                    help="cap pismo's kernel copy (sets PISMO_SIMD for pismo's runs; default: "
                         "$PISMO_SIMD, else the widest the CPU runs)")
    ap.add_argument("--no-augmented", action="store_true",
                    help="skip pismo's augmented training runs")
    ap.add_argument("--rounds", type=int, help="rounds of alternating runs (default 3)")
    ap.add_argument("--epochs", type=int,
                    help="epochs per training run, the first is the warm-up (default 5)")
    ap.add_argument("--peers", default=",".join(PEERS),
                    help="Python peers to run (default numpy,sklearn,jax)")
    ap.add_argument("--data", default=os.environ.get("PISMO_DATA") or "data/mnist")
    ap.add_argument("--iters", type=int, help="pismo single-image calls (default 20000)")
    ap.add_argument("--batch-reps", type=int, help="batch predictions per run (default 20)")
    ap.add_argument("--gemm-reps", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=600, help="seconds per child process")
    ap.add_argument("--out", help="JSON path (default bench/results/<UTC date-time>.json)")
    ap.add_argument("--pip-log", help="(set by bench/run) status of the peer installs")
    o = ap.parse_args()
    o.rounds = o.rounds or (1 if o.quick else 3)
    o.epochs = o.epochs or (3 if o.quick else 5)
    o.iters = o.iters or (4000 if o.quick else 20000)
    o.batch_reps = o.batch_reps or (5 if o.quick else 20)
    if o.quick:
        o.gemm_reps = min(o.gemm_reps, 3)
    if o.epochs < 2:
        ap.error("--epochs must be at least 2 (the first one is the warm-up)")
    hidden = [int(x) for x in o.hidden.split(",") if x.strip()]
    peers = [p for p in o.peers.split(",") if p]
    for p in peers:
        if p not in PEERS:
            ap.error(f"unknown peer {p!r}; known: {', '.join(PEERS)}")
    o.data = os.path.abspath(os.path.join(ROOT, o.data))
    for f in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        if not any(os.path.exists(os.path.join(o.data, f + s)) for s in ("", ".gz")):
            sys.exit(f"error: MNIST not found in {o.data} (run scripts/fetch-mnist)")

    started = datetime.datetime.now(datetime.timezone.utc)
    b = Bench(o)
    for exe in (b.pismo, b.pismo_bench):
        if not os.path.exists(exe):
            sys.exit(f"error: {exe} missing: cargo build --release -p pismo -p pismo-bench")

    status = {"pip": read(o.pip_log) if o.pip_log else None, "torch": TORCH_NOTE}
    if "jax" in peers:
        jax_ok, msg = probe_jax(b.env)
        status["jax"] = msg if jax_ok else f"not run: {msg}"
        if not jax_ok:
            peers.remove("jax")
            log(f"JAX is not usable, skipping it: {msg}")
    jax_ok = "jax" in peers

    load = float(read("/proc/loadavg").split()[0] or 0)
    if load > 0.5:
        log(f"warning: the machine is busy (load average {load:.2f}): numbers will be noisy")
    log(f"pismo bench: hidden {hidden}, {o.rounds} round(s) × {o.epochs} epochs "
        f"(epoch 1 = warm-up), peers {peers}; unset for the runs: "
        f"{ {k: v for k, v in b.unset.items()} or 'none set'}")
    try:
        for rnd in range(1, o.rounds + 1):
            for h in hidden:
                for step in ["pismo"] + peers:
                    if step == "pismo":
                        r = b.pismo_train(rnd, h)
                        log(f"[round {rnd}] pismo train H={h}: {one_line(r)}")
                        if not o.no_augmented:
                            r = b.pismo_train(rnd, h, augmented=True)
                            log(f"[round {rnd}] pismo train {' '.join(AUGMENT_FLAGS)} H={h}: "
                                f"{one_line(r)}")
                        r = b.pismo_predict(rnd, h)
                        log(f"[round {rnd}] pismo predict H={h}: {one_line(r)}")
                    else:
                        r = b.peer(step, rnd, h)
                        log(f"[round {rnd}] {step} H={h}: {one_line(r)}")
            r = b.gemm(rnd)
            log(f"[round {rnd}] numpy GEMM: {one_line(r)}")
            coretype = CORETYPE_OF_LEVEL.get(b.level)
            if coretype:
                r = b.gemm(rnd, coretype=coretype)
                log(f"[round {rnd}] numpy GEMM with OPENBLAS_CORETYPE={coretype} (pismo's "
                    f"{b.level} kernels): {one_line(r)}")
            if rnd == 1 and b.unset:
                r = b.gemm(rnd, kept_env=True)
                log(f"[round {rnd}] numpy GEMM with {b.unset} kept (not used): "
                    f"{one_line(r)}")
    finally:
        shutil.rmtree(b.tmp, ignore_errors=True)

    rows, gemm = summarise(b, hidden, warmup=1)
    text = table(rows, jax_ok)
    finished = datetime.datetime.now(datetime.timezone.utc)

    versions, blas = {}, {}
    for r in b.runs:
        info = r.get("info") or {}
        for k in ("numpy", "sklearn", "jax", "jaxlib"):
            if k in info:
                versions[k] = info[k]
        if info.get("blas") and r["engine"] in ("numpy", "sklearn"):
            blas[r["engine"]] = info["blas"]
    if gemm["all"]:
        blas["gemm"] = gemm["all"][0]["blas"]
    if "jax" in versions:
        blas["jax"] = "XLA's own CPU kernels (not OpenBLAS)"

    print()
    print(f"pismo vs peers — {started:%Y-%m-%d %H:%M} UTC, {machine()['cpu']}, "
          f"{os.cpu_count()} cores, {o.rounds} round(s), median of the epochs after the "
          "first")
    kernels = sorted({f"{d.get('internal_api')} {d.get('version')} "
                      f"{d.get('architecture')} ×{d.get('num_threads')}"
                      for lst in blas.values() if isinstance(lst, list) for d in lst
                      if d.get("user_api") == "blas"})
    print("BLAS (threadpoolctl): " + "; ".join(kernels)
          + f"; unset for the runs: {', '.join(b.unset) or 'nothing (none set)'}")
    m = machine()
    print(f"pismo kernels: {b.level or 'unknown'} (PISMO_SIMD="
          f"{b.env.get('PISMO_SIMD') or 'unset'}); CPU SIMD: {' '.join(m['simd'])}")
    if gemm["all"]:
        own = gemm["all"]
        arch = ", ".join(sorted({str(d.get("architecture")) for g in own for d in g["blas"]
                                 if d.get("user_api") == "blas"}))
        print(f"NumPy sgemm, OpenBLAS's own kernel ({arch}): "
              f"{max(g['gflops'] for g in own):.0f} GFLOP/s on all cores ({own[0]['n']}²), "
              f"{max(g['gflops_1thread'] for g in own):.0f} on one ({own[0]['n1']}²), "
              "best over rounds")
    if gemm["matched"]:
        mt = gemm["matched"]
        print(f"NumPy sgemm, OPENBLAS_CORETYPE={CORETYPE_OF_LEVEL.get(b.level)} (pismo's "
              f"{b.level} instruction set): {max(g['gflops'] for g in mt):.0f} GFLOP/s on all "
              f"cores, {max(g['gflops_1thread'] for g in mt):.0f} on one: the floor's rate")
    kept = next((r["gemm"] for r in b.runs if r["kind"] == "gemm_kept_env" and r["ok"]), None)
    if kept:
        arch = ", ".join(str(d.get("architecture")) for d in kept["blas"])
        print(f"  (with {', '.join(f'{k}={v}' for k, v in b.unset.items())} left set it "
              f"would be {kept['gflops']:.0f} GFLOP/s, {kept['gflops_1thread']:.0f} on one, "
              f"kernel {arch}: not used)")
    for h in hidden:
        print(f"FLOPs per epoch, H={h}: {flops_epoch_dense(h) / 1e9:.2f} G needed "
              f"(dense, no input gradient), {flops_epoch_3x(h) / 1e9:.2f} G counted 3×")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items())
          + f"; torch: {TORCH_NOTE.split(':')[0]}"
          + ("" if jax_ok else f"; jax: {status.get('jax', 'not requested')}"))
    noisy = [r for r in b.runs if (r.get("foreign_cpu_share") or 0) > NOISY_SHARE]
    if noisy:
        worst = max(noisy, key=lambda r: r["foreign_cpu_share"])
        print(f"NOISY: in {len(noisy)} of {len(b.runs)} runs other processes used more than "
              f"{100 * NOISY_SHARE:.0f} % of the CPU (worst: {worst['engine']} "
              f"{worst['kind']} H={worst.get('hidden')} round {worst['round']}, "
              f"{100 * worst['foreign_cpu_share']:.0f} %). Values with * include such runs; "
              "the JSON has foreign_cpu_share per run. Rerun on a quiet machine.")
    print("Ratios are time ratios (pismo ÷ peer): below 1 means pismo is faster/smaller.")
    print()
    print(text)
    failed = [r for r in b.runs if not r["ok"]]
    for r in failed:
        print(f"\nFAILED {r['engine']} {r['kind']} H={r.get('hidden')} round {r['round']}: "
              f"{r.get('error')}")
    for r in rows:
        acc = r["extra"].get("accuracy")
        if acc and acc.get("pismo") is not None and acc["pismo"] < 0.9:
            print(f"\nWARNING: pismo's trained model scores {100 * acc['pismo']:.2f} % on "
                  f"the test images ({r['metric']}): timing a broken model?")

    result = {
        "schema": 1,
        "started_utc": started.isoformat(timespec="seconds"),
        "finished_utc": finished.isoformat(timespec="seconds"),
        "command": " ".join(["bench/run"] + sys.argv[1:]),
        "options": {k: v for k, v in vars(o).items() if k != "pip_log"},
        "machine": machine(),
        "build": build_facts(),
        "environment": {"unset_for_runs": b.unset,
                        "thread_vars": {k: os.environ.get(k) for k in THREAD_VARS},
                        "pismo_simd": b.env.get("PISMO_SIMD")},
        "pismo_kernels": b.level,
        "versions": versions,
        "blas": blas,
        "peer_status": status,
        "gemm": gemm,
        "flops": {str(h): {"epoch_dense": flops_epoch_dense(h),
                           "epoch_3x": flops_epoch_3x(h),
                           "validation_pass": flops_forward(h, N_VAL),
                           "forward_one_image": flops_forward(h, 1)} for h in hidden},
        "table": [{k: v for k, v in r.items() if k != "fmt"} for r in rows],
        "table_markdown": text,
        "runs": b.runs,
        "failed": len(failed),
        "noisy_runs": len(noisy),
    }
    out = o.out or os.path.join(BENCH, "results",
                                f"{started:%Y-%m-%dT%H-%M-%SZ}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"\nwrote {os.path.relpath(out, ROOT)} "
          f"({(finished - started).total_seconds():.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
