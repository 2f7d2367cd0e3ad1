"""bench/tune: `pismo tune` against hyperopt and Optuna driving the NumPy reference, one
budget each, one after another on the same cores. See bench/README.md, "Tuning".

Each engine runs as a fresh process. Its stdout is read line by line and every trial that
ends is stamped with the seconds since that process started (MNIST loading included, for
every engine alike). Events after the budget do not count; the process is killed at the
budget. From the stamps: the best-so-far validation accuracy over time, the time each engine
first reaches 97.5 %, 98.0 % and 98.5 %, its best at the end, and the issue's three targets.
Writes bench/results/tune-<UTC>.json and tune-<UTC>.png and prints a Markdown table.
"""

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import resource
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from machine import ROOT, cpu_busy_seconds, machine, read, sh  # noqa: E402

ENGINES = ("hyperopt", "optuna", "pismo")
THRESHOLDS = (0.975, 0.980, 0.985)
PISMO = os.path.join(ROOT, "target", "release", "pismo")


def command(engine, args, scratch):
    """The command line of one engine's study."""
    if engine == "pismo":
        return [PISMO, "tune", "--budget", f"{args.budget}s", "--json", "--seed",
                str(args.seed), "--epochs", str(args.epochs), "--parallel",
                str(args.pismo_parallel), "--study", "bench", "--data", args.data,
                "--runs", os.path.join(scratch, "runs"),
                "--registry", os.path.join(scratch, "models")]
    return [sys.executable, os.path.join(HERE, "tune_peers.py"), engine, "--data", args.data,
            "--budget", str(args.budget), "--seed", str(args.seed),
            "--epochs", str(args.epochs)]


def trial_of(engine, event):
    """(state, val_accuracy, epochs) of a JSON line that reports an ended trial, else None."""
    if engine == "pismo" and event.get("event") == "trial_ended":
        return event["state"], event.get("val_accuracy"), event.get("epochs")
    if engine != "pismo" and event.get("event") == "trial":
        return event["state"], event.get("val_accuracy"), event.get("epochs")
    return None


def run_engine(engine, args):
    """Runs one engine for the budget; returns its record: stamped trials, exit, load."""
    scratch = tempfile.mkdtemp(prefix=f"pismo-tune-bench-{engine}-")
    cmd = command(engine, args, scratch)
    env = dict(os.environ)
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        env.pop(var, None)
    print(f"running {engine} for {args.budget:g} s: {' '.join(cmd)}", file=sys.stderr)
    load_before = read("/proc/loadavg").split()[:3]
    busy_before = cpu_busy_seconds()
    child_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT, bufsize=1)
    trials, other = [], []
    killed = False
    try:
        # The reader blocks on the pipe; a timer kills the process at the budget so a
        # trial that runs past it cannot hold the benchmark.
        timer = threading.Timer(args.budget, proc.kill)
        timer.start()
        for line in proc.stdout:
            t = time.monotonic() - start
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                other.append(line.rstrip())
                continue
            ended = trial_of(engine, event)
            if ended is None:
                continue
            state, acc, epochs = ended
            if t <= args.budget:
                trials.append({"t": round(t, 3), "state": state, "val_accuracy": acc,
                               "epochs": epochs})
                print(f"  {engine} {t:7.1f}s  trial {len(trials):3d} {state:8s} "
                      f"val acc {100 * (acc or 0):.2f} %", file=sys.stderr)
        timer.cancel()
        killed = proc.poll() is None or proc.returncode == -9
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        stderr = proc.stderr.read()
        shutil.rmtree(scratch, ignore_errors=True)
    wall = time.monotonic() - start
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    own_cpu = (child.ru_utime - child_before.ru_utime) + (child.ru_stime - child_before.ru_stime)
    busy = cpu_busy_seconds()
    # CPU time the rest of the machine used while this engine ran (the harness included).
    others = None if busy is None or busy_before is None else max(0.0, busy - busy_before - own_cpu)
    return {"cpu_seconds": round(own_cpu, 1),
            "others_cpu_seconds": None if others is None else round(others, 1),"engine": engine, "command": cmd, "exit": proc.returncode,
            "killed_at_budget": killed or proc.returncode == -9, "wall_seconds": round(wall, 1),
            "load_before": load_before, "load_after": read("/proc/loadavg").split()[:3],
            "trials": trials, "stdout_other": other[-20:], "stderr_tail": stderr[-4000:]}


def best_curve(trials):
    """[(t, best-so-far accuracy)] at each improvement."""
    curve, best = [], None
    for tr in trials:
        acc = tr["val_accuracy"]
        if acc is not None and (best is None or acc > best):
            best = acc
            curve.append((tr["t"], acc))
    return curve


def best_at(curve, t):
    """Best-so-far accuracy at time t (None before the first trial ends)."""
    best = None
    for ti, acc in curve:
        if ti <= t:
            best = acc
    return best


def time_to(curve, threshold):
    return next((t for t, acc in curve if acc >= threshold), None)


def ahead_everywhere(mine, theirs, budget):
    """Whether `mine` is at or above `theirs` at every moment either has a result, and
    the moments where it is not."""
    moments = sorted({t for t, _ in mine} | {t for t, _ in theirs} | {budget})
    behind = []
    for t in moments:
        a, b = best_at(mine, t), best_at(theirs, t)
        if b is not None and (a is None or a < b):
            behind.append((t, a, b))
    return not behind, behind


def fmt_s(t):
    return "never" if t is None else f"{t:.0f} s"


def fmt_pct(a):
    return "—" if a is None else f"{100 * a:.2f} %"


def table(records, budget):
    head = ("| engine | trials ended (pruned) | to 97.5 % | to 98.0 % | to 98.5 % | best at 60 s "
            f"| best at {budget:g} s |")
    rows = [head, "|" + "---|" * 7]
    for r in records:
        curve = best_curve(r["trials"])
        pruned = sum(1 for tr in r["trials"] if tr["state"] == "pruned")
        rows.append(f"| {r['engine']} | {len(r['trials'])} ({pruned}) | "
                    + " | ".join(fmt_s(time_to(curve, th)) for th in THRESHOLDS)
                    + f" | {fmt_pct(best_at(curve, 60))} | {fmt_pct(best_at(curve, budget))} |")
    return "\n".join(rows)


def targets(records, budget):
    """The issue's three targets, each (text, met)."""
    by = {r["engine"]: best_curve(r["trials"]) for r in records}
    out = []
    if "pismo" in by:
        t98 = time_to(by["pismo"], 0.98)
        out.append((f"pismo reaches 98.0 % in <= 60 s: {fmt_s(t98)}", t98 is not None and t98 <= 60))
        end = best_at(by["pismo"], budget)
        out.append((f"pismo's best at the end >= 98.6 %: {fmt_pct(end)}",
                    end is not None and end >= 0.986))
        if "optuna" in by:
            ok, behind = ahead_everywhere(by["pismo"], by["optuna"], budget)
            detail = "yes" if ok else "no, behind at " + ", ".join(
                f"{t:.0f} s ({fmt_pct(a)} < {fmt_pct(b)})" for t, a, b in behind[:5])
            out.append((f"pismo at or ahead of Optuna's best-so-far at every moment: {detail}", ok))
    return out


def plot(records, budget, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=110)
    for r in records:
        curve = best_curve(r["trials"])
        if not curve:
            continue
        xs = [t for t, _ in curve] + [budget]
        ys = [100 * a for _, a in curve] + [100 * curve[-1][1]]
        ax.step(xs, ys, where="post", label=r["engine"], linewidth=2)
        ax.plot(xs[:-1], ys[:-1], "o", markersize=3, color=ax.lines[-1].get_color())
    for th in THRESHOLDS:
        ax.axhline(100 * th, color="grey", linewidth=0.6, linestyle=":")
    ax.set_xscale("log")
    ax.set_xlim(5, budget)
    ax.set_ylim(95, 99.2)
    ax.set_xlabel("seconds since the engine started (log scale)")
    ax.set_ylabel("best validation accuracy so far (%)")
    ax.set_title(f"MNIST, 10000 validation images, {budget:g} s each, same {os.cpu_count()} cores")
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)


def main():
    ap = argparse.ArgumentParser(description="pismo tune vs hyperopt and Optuna, same budget")
    ap.add_argument("--budget", type=float, default=600, help="seconds per engine (600)")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=8, help="epochs of a full trial (8)")
    ap.add_argument("--pismo-parallel", type=int, default=2, help="pismo tune --parallel")
    ap.add_argument("--data", default=os.path.join(ROOT, "data", "mnist"))
    args = ap.parse_args()
    engines = [e for e in args.engines.split(",") if e]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        ap.error(f"--engines: unknown {unknown}; choose from {', '.join(ENGINES)}")
    if "pismo" in engines and not os.access(PISMO, os.X_OK):
        ap.error(f"{PISMO} is missing: cargo build --release -p pismo")
    if not os.path.exists(os.path.join(args.data, "train-images-idx3-ubyte")):
        ap.error(f"MNIST is not in {args.data}: scripts/fetch-mnist")

    started = datetime.datetime.now(datetime.timezone.utc)
    records = [run_engine(e, args) for e in engines]
    failed = [r["engine"] for r in records if not r["trials"]]
    md = table(records, args.budget)
    checks = targets(records, args.budget)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    out_dir = os.path.join(ROOT, "bench", "results")
    os.makedirs(out_dir, exist_ok=True)
    png = os.path.join(out_dir, f"tune-{stamp}.png")
    plot(records, args.budget, png)
    versions = {}
    for mod in ("numpy", "hyperopt", "optuna", "matplotlib"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception as e:  # noqa: BLE001
            versions[mod] = f"not importable: {e!r}"
    result = {"started_utc": started.isoformat(), "options": vars(args), "machine": machine(),
              "commit": sh(["git", "rev-parse", "HEAD"]), "dirty": bool(sh(["git", "status",
              "--porcelain"])), "versions": versions, "engines": records, "table_markdown": md,
              "targets": [{"text": t, "met": ok} for t, ok in checks], "plot": png}
    cores = os.cpu_count() or 1
    noisy = [r["engine"] for r in records if r["others_cpu_seconds"] is not None
             and r["others_cpu_seconds"] > 0.05 * cores * r["wall_seconds"]]
    result["noisy"] = noisy
    path = os.path.join(out_dir, f"tune-{stamp}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(path + ".tmp", path)
    print(md)
    print()
    for text, ok in checks:
        print(f"- {'MET' if ok else 'NOT MET'}: {text}")
    if noisy:
        print(f"\nNOISY: other processes used more than 5 % of the cores while "
              f"{', '.join(noisy)} ran (others_cpu_seconds in the JSON); compare with care.")
    print(f"\nwrote {path}\nwrote {png}")
    if failed:
        print(f"no trial ended for: {', '.join(failed)} (see stderr_tail in the JSON)",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
