"""Load benchmark of `pismo serve` against the original's MLflow scoring server, in one run.

Started by `bench/serve-load` (which builds the binaries and prepares bench/.venv); see the
"Serving" section of bench/README.md. Steps:

1. `pismo-bench serve-data` writes the request bodies (200 MNIST test digits as 28x28 PNGs,
   as 280x280 drawn PNGs and as MLflow `dataframe_split` JSON) and the model's weights as
   `.npy` files, into a temporary folder;
2. starts the servers, each in its own process group: `pismo serve --addr 127.0.0.1:0
   --registry models --runs TMP` (URL from its first stdout line), the stdlib NumPy
   reference `bench/reference/serve_numpy.py`, and MLflow's own `mlflow models serve`
   around the same NumPy MLP as a pyfunc model (`bench/reference/mlflow_pyfunc.py`) when
   MLflow imports;
3. for each connection count, runs `loadgen` (target/release) on `POST /invocations` with
   the same JSON bodies on every server, one after the other, then on pismo's
   `POST /api/predict` with the 28x28 and the 280x280 PNGs; then `wrk` (if installed) as a
   second opinion on throughput;
4. prints a table, writes `bench/results/serve-<UTC>.json`, stops the servers (also on
   Ctrl-C or an error) and exits 1 if any run had an error.

Load generator and servers share the machine's cores: on 2 cores the load generator's own
work is part of what limits the numbers. The CPU time each server used per request (from
/proc) is reported so that the servers can be compared without that effect.
"""

import argparse
import datetime
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from machine import cpu_busy_seconds, machine, read, sh

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(BENCH)
RELEASE = os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"),
                       "release")
TICK = os.sysconf("SC_CLK_TCK")

# The targets for POST /api/predict with a PNG body.
TARGET_RPS = 5000
TARGET_P99_MS = 5.0


def parse_args():
    ap = argparse.ArgumentParser(
        prog="bench/serve-load",
        description="Requests/s and latency of pismo serve against MLflow's scoring server.")
    ap.add_argument("--duration", type=float, default=10, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=2, help="unmeasured seconds before each run")
    ap.add_argument("--connections", default="1,4,16",
                    help="comma-separated connection counts (default 1,4,16)")
    ap.add_argument("--servers", default="pismo,numpy,mlflow",
                    help="servers for /invocations: pismo, numpy (stdlib reference), mlflow")
    ap.add_argument("--mlflow-workers", type=int, default=1,
                    help="uvicorn workers of mlflow models serve (its default: 1)")
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "mnist.v1.pismo"),
                    help="model file whose weights the references use (pismo's default model)")
    ap.add_argument("--pismo-bin", default=os.path.join(RELEASE, "pismo"),
                    help="the pismo binary to serve with (default: this workspace's release "
                         "build); e.g. a build of another branch to compare")
    ap.add_argument("--no-wrk", action="store_true", help="skip the wrk runs")
    ap.add_argument("--pip-log", help="file with the venv's install status (from serve-load)")
    ap.add_argument("--pid-file", help="append the process group id of each server started")
    ap.add_argument("--out", default=os.path.join(BENCH, "results"),
                    help="folder of the JSON result")
    return ap.parse_args()


# ---------------------------------------------------------------------------------------
# Processes

class Servers:
    """Servers started in their own process groups; `stop` ends each group it started."""

    def __init__(self, pid_file=None):
        self.procs = {}
        self.pid_file = pid_file

    def start(self, name, argv, env=None, url_from_stdout=True, log=None):
        log = open(log or os.devnull, "wb")
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE if url_from_stdout else log,
                                stderr=log, env=env, start_new_session=True, cwd=ROOT)
        self.procs[name] = proc
        if self.pid_file:
            with open(self.pid_file, "a") as f:
                f.write(f"{proc.pid}\n")
        if not url_from_stdout:
            return None
        line = proc.stdout.readline().decode().strip()
        if not line.startswith("http://"):
            raise RuntimeError(f"{name} did not print its URL (exit {proc.poll()}): {line!r}")
        return line

    def stop(self):
        for name, proc in list(self.procs.items()):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.time() + 5
        for name, proc in list(self.procs.items()):
            try:
                proc.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        self.procs.clear()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, proc, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server at {url} exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/ping", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url}/ping did not answer in {seconds} s")


def group_cpu_seconds(pgid):
    """User + system CPU seconds of every live process of process group `pgid`."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # Fields after the name: state ppid pgrp ...; utime, stime are fields 14, 15.
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / TICK


# ---------------------------------------------------------------------------------------
# Runs

def loadgen(url, bodies, conns, args, name, server_pgid):
    """One loadgen run: its JSON, plus CPU seconds of the server, the load generator and
    everything else on the machine during the run."""
    argv = [os.path.join(RELEASE, "loadgen"), "--url", url, "--bodies", bodies,
            "--connections", str(conns), "--duration", str(args.duration),
            "--warmup", str(args.warmup), "--name", name]
    loadgen_cpu_seconds()  # forget the children reaped before
    busy0, server0, t0 = cpu_busy_seconds(), group_cpu_seconds(server_pgid), time.time()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    status = proc.returncode
    wall = time.time() - t0
    server = group_cpu_seconds(server_pgid) - server0
    busy = cpu_busy_seconds() - busy0
    try:
        result = json.loads(out.decode().strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise RuntimeError(f"loadgen gave no result (exit {status}): {err.decode()[-2000:]}")
    if status != 0:
        sys.stderr.write(err.decode())
    loadgen_cpu = loadgen_cpu_seconds()
    result["exit_status"] = status
    result["wall_seconds"] = wall
    result["server_cpu_seconds"] = server
    result["loadgen_cpu_seconds"] = loadgen_cpu
    result["other_cpu_seconds"] = max(0.0, busy - server - loadgen_cpu)
    total = result["requests"] + result["warmup_requests"]
    result["server_cpu_us_per_request"] = server / total * 1e6 if total else None
    result["loadgen_cpu_us_per_request"] = loadgen_cpu / total * 1e6 if total else None
    return result


_children_cpu = [0.0]


def loadgen_cpu_seconds():
    """CPU seconds of the children reaped since the last call (the last loadgen run)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    now = r.ru_utime + r.ru_stime
    spent, _children_cpu[0] = now - _children_cpu[0], now
    return spent


WRK_LINE = re.compile(r"^\s*(50|90|99)%\s+([\d.]+)(us|ms|s)\s*$")


def wrk(url, body, content_type, conns, args):
    """One wrk run on one body; requests/s, latency percentiles (ms) and errors."""
    if shutil.which("wrk") is None:
        return None
    threads = min(conns, 2)
    env = dict(os.environ, WRK_BODY=body, WRK_CONTENT_TYPE=content_type)
    script = os.path.join(BENCH, "wrk", "post-body.lua")
    # wrk has no warm-up: run it unmeasured first.
    subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", f"-d{max(1, int(args.warmup))}s",
                    "-s", script, url], env=env, capture_output=True, check=False)
    p = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", f"-d{int(args.duration)}s",
                        "--latency", "-s", script, url], env=env, capture_output=True,
                       text=True, check=False)
    out = p.stdout
    result = {"connections": conns, "threads": threads, "exit_status": p.returncode,
              "output": out}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    result["rps"] = float(m.group(1)) if m else None
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    for line in out.splitlines():
        m = WRK_LINE.match(line)
        if m:
            result[f"p{m.group(1)}_ms"] = float(m.group(2)) * scale[m.group(3)]
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors += int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors += sum(int(g) for g in m.groups()) if m else 0
    result["errors"] = errors
    return result


# ---------------------------------------------------------------------------------------
# Report

def fmt(v, digits=2):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    return f"{v:,.{digits}f}"


def machine_facts():
    """The machine (as harness.py records it) plus what this benchmark depends on."""
    info = machine()
    info["commit"] = sh(["git", "rev-parse", "HEAD"]) or None
    info["wrk"] = (sh(["wrk", "--version"]) or "").splitlines()[0] if shutil.which("wrk") else None
    try:
        import mlflow
        info["mlflow"] = mlflow.__version__
    except ImportError:
        info["mlflow"] = None
    import numpy
    info["numpy"] = numpy.__version__
    info["loadavg_start"] = read("/proc/loadavg").split()[:3]
    return info


def main():
    args = parse_args()
    conns_list = [int(c) for c in args.connections.split(",") if c]
    wanted = [s for s in args.servers.split(",") if s]
    started = datetime.datetime.now(datetime.timezone.utc)
    info = machine_facts()
    notes = []
    if args.pip_log and os.path.exists(args.pip_log):
        with open(args.pip_log) as f:
            notes += [l.strip() for l in f if l.strip()]
    tmp = tempfile.mkdtemp(prefix="pismo-serve-load-")
    servers = Servers(args.pid_file)

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    runs, wrk_runs = [], []
    try:
        data = os.path.join(tmp, "data")
        p = subprocess.run([os.path.join(RELEASE, "pismo-bench"), "serve-data", "--model",
                            args.model, "--out", data, "--data",
                            os.path.join(ROOT, "tests", "data")],
                           capture_output=True, text=True, check=True)
        serve_data = json.loads(p.stdout)
        urls, pgids = {}, {}
        os.makedirs(os.path.join(tmp, "runs"))
        urls["pismo"] = servers.start("pismo", [
            args.pismo_bin, "serve", "--addr", "127.0.0.1:0",
            "--registry", os.path.join(ROOT, "models"), "--runs", os.path.join(tmp, "runs")],
            log=os.path.join(tmp, "pismo.log"))
        if "numpy" in wanted:
            urls["numpy"] = servers.start("numpy", [
                sys.executable, os.path.join(BENCH, "reference", "serve_numpy.py"),
                os.path.join(data, "weights")], log=os.path.join(tmp, "numpy.log"))
        if "mlflow" in wanted:
            if info["mlflow"] is None:
                notes.append("mlflow: not importable in bench/.venv; MLflow's server not run")
            else:
                model_dir = os.path.join(tmp, "mlflow-model")
                env = dict(os.environ, MLFLOW_TRACKING_URI="file://" + os.path.join(tmp, "mlruns"),
                           PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
                subprocess.run([sys.executable, os.path.join(BENCH, "reference", "mlflow_pyfunc.py"),
                                os.path.join(data, "weights"), model_dir],
                               env=env, capture_output=True, check=True)
                port = free_port()
                servers.start("mlflow", [
                    os.path.join(os.path.dirname(sys.executable), "mlflow"), "models", "serve",
                    "-m", model_dir, "--env-manager", "local", "-h", "127.0.0.1",
                    "-p", str(port), "-w", str(args.mlflow_workers)],
                    env=env, url_from_stdout=False, log=os.path.join(tmp, "mlflow.log"))
                urls["mlflow"] = f"http://127.0.0.1:{port}"
        for name, url in urls.items():
            wait_ready(url, servers.procs[name])
            pgids[name] = servers.procs[name].pid
        print(f"servers: " + ", ".join(f"{n} {u}" for n, u in urls.items()), file=sys.stderr)

        inv = os.path.join(data, "invocations")
        for conns in conns_list:
            for name in urls:
                print(f"  /invocations  {name:6} {conns:3} connections", file=sys.stderr)
                r = loadgen(urls[name] + "/invocations", inv, conns, args,
                            f"invocations/{name}", pgids[name])
                r.update(scenario="invocations", server=name)
                runs.append(r)
            for kind in ("png28", "png280"):
                print(f"  /api/predict  {kind:6} {conns:3} connections", file=sys.stderr)
                r = loadgen(urls["pismo"] + "/api/predict", os.path.join(data, kind), conns,
                            args, f"predict/{kind}", pgids["pismo"])
                r.update(scenario=f"predict {kind}", server="pismo")
                runs.append(r)
        if not args.no_wrk:
            if shutil.which("wrk") is None:
                notes.append("wrk: not installed (apt-get install -y wrk); second opinion not run")
            else:
                png = sorted(os.listdir(os.path.join(data, "png28")))[0]
                body_json = sorted(os.listdir(inv))[0]
                for conns in conns_list:
                    for name, scenario, path, body, ctype in (
                            [("pismo", "predict png28", "/api/predict",
                              os.path.join(data, "png28", png), "image/png")]
                            + [(n, "invocations", "/invocations", os.path.join(inv, body_json),
                                "application/json") for n in urls if n != "mlflow"]):
                        print(f"  wrk {scenario:14} {name:6} {conns:3} connections",
                              file=sys.stderr)
                        w = wrk(urls[name] + path, body, ctype, conns, args)
                        w.update(scenario=scenario, server=name)
                        wrk_runs.append(w)
    finally:
        servers.stop()
    with open("/proc/loadavg") as f:
        info["loadavg_end"] = f.read().split()[:3]

    report(args, started, info, serve_data, notes, runs, wrk_runs)
    shutil.rmtree(tmp, ignore_errors=True)
    bad = [r for r in runs if r["errors"]["total"] or r["exit_status"] or not r["requests"]]
    bad += [w for w in wrk_runs if w["errors"] or w["rps"] is None]
    if bad:
        print(f"\n!!! {len(bad)} RUN(S) HAD ERRORS: see the table and the JSON !!!",
              file=sys.stderr)
        return 1
    return 0


def report(args, started, info, serve_data, notes, runs, wrk_runs):
    by = {(r["scenario"], r["server"], r["connections"]): r for r in runs}
    rows = []
    header = ["scenario", "server", "conns", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms",
              "errors", "server CPU µs/req", "other CPU s", "req/s pismo÷ref",
              "p50 pismo÷ref", "p99 pismo÷ref"]
    for r in runs:
        lat = r["latency_ms"]
        ratio = ["—", "—", "—"]
        if r["scenario"] == "invocations" and r["server"] != "pismo":
            p = by.get(("invocations", "pismo", r["connections"]))
            if p and r["rps"] and p["rps"]:
                ratio = [f"{p['rps'] / r['rps']:.1f}×",
                         f"{p['latency_ms']['p50'] / lat['p50']:.2f}×" if lat["p50"] else "—",
                         f"{p['latency_ms']['p99'] / lat['p99']:.2f}×" if lat["p99"] else "—"]
        rows.append([r["scenario"], r["server"], str(r["connections"]), fmt(r["rps"], 0),
                     fmt(lat["p50"], 3), fmt(lat["p90"], 3), fmt(lat["p99"], 3),
                     fmt(lat["max"], 1), str(r["errors"]["total"]),
                     fmt(r["server_cpu_us_per_request"], 0), fmt(r["other_cpu_seconds"], 1)]
                    + ratio)
    wrk_rows = [[w["scenario"], w["server"], str(w["connections"]), fmt(w["rps"], 0),
                 fmt(w.get("p50_ms"), 3), fmt(w.get("p90_ms"), 3), fmt(w.get("p99_ms"), 3),
                 str(w["errors"])] for w in wrk_runs]

    verdict = []
    for kind in ("png28", "png280"):
        mine = [r for r in runs if r["scenario"] == f"predict {kind}"]
        ok = [r for r in mine if r["rps"] >= TARGET_RPS and r["latency_ms"]["p99"] < TARGET_P99_MS
              and not r["errors"]["total"]]
        best = max(mine, key=lambda r: r["rps"], default=None)
        if best is None:
            continue
        verdict.append(
            f"POST /api/predict {kind}: best {best['rps']:,.0f} req/s at {best['connections']} "
            f"connections (p99 {best['latency_ms']['p99']:.2f} ms) — targets ≥ {TARGET_RPS} req/s "
            f"and p99 < {TARGET_P99_MS} ms: "
            + ("MET at " + ", ".join(f"{r['connections']} conns" for r in ok) if ok else "NOT MET"))

    stamp = started.strftime("%Y-%m-%dT%H-%M-%SZ")
    lines = [f"pismo serve load benchmark, {started:%Y-%m-%d %H:%M} UTC — {info.get('cpu')}, "
             f"{info['cores']} cores, load average {' '.join(info['loadavg_start'])} → "
             f"{' '.join(info['loadavg_end'])}",
             f"model {serve_data['model']} (hidden {serve_data['hidden_size']}), "
             f"{serve_data['count']} test digits; pismo binary {args.pismo_bin}; "
             f"{args.duration:g} s measured after "
             f"{args.warmup:g} s warm-up per run; closed loop, keep-alive, loadgen and servers "
             f"share the cores",
             ""]
    lines += table(header, rows)
    if wrk_rows:
        lines += ["", "wrk (one body per run, second opinion on throughput):"]
        lines += table(["scenario", "server", "conns", "req/s", "p50 ms", "p90 ms", "p99 ms",
                        "errors"], wrk_rows)
    lines += [""] + verdict
    if any(r["other_cpu_seconds"] > 0.1 * r["wall_seconds"] for r in runs):
        lines.append("NOISY: other processes used more than 10 % of one core during some runs "
                     "(column 'other CPU s'); compare ratios, not absolute numbers")
    lines += [f"note: {n}" for n in notes]
    text = "\n".join(lines)
    print(text)

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"serve-{stamp}.json")
    with open(path, "w") as f:
        json.dump({"bench": "serve-load", "started": started.isoformat(), "machine": info,
                   "args": vars(args), "serve_data": serve_data, "notes": notes,
                   "targets": {"rps": TARGET_RPS, "p99_ms": TARGET_P99_MS},
                   "verdict": verdict, "runs": runs, "wrk": wrk_runs, "table": text},
                  f, indent=1)
    print(f"\nwrote {os.path.relpath(path, ROOT)}")


def table(header, rows):
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    return out


if __name__ == "__main__":
    sys.exit(main())
