"""Facts about the machine a benchmark runs on, shared by harness.py and serve_load.py
(standard library only)."""

import os
import platform
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cpu_busy_seconds():
    """Busy CPU time of the whole machine so far (all cores), from /proc/stat."""
    fields = read("/proc/stat").split("\n", 1)[0].split()[1:]
    if len(fields) < 5:
        return None
    ticks = [int(x) for x in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine():
    cpuinfo = read("/proc/cpuinfo")
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.startswith("model name")), platform.processor())
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines()
                  if line.startswith("flags")), [])
    mem = next((line.split()[1] for line in read("/proc/meminfo").splitlines()
                if line.startswith("MemTotal")), "0")
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "simd": [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw",
                             "avx512vl", "avx512_bf16", "avx512_vnni") if f in flags],
        "mem_gib": round(int(mem) / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "rustc": sh(["rustc", "-V"]),
        "cargo": sh(["cargo", "-V"]),
    }
