"""Peak memory of one model's session, measured in a fresh subprocess.

Measuring in the benchmarking process would mix every model's allocations (and Python's) into one
high-water mark that never goes down. A child process per model imports onnxruntime, records its
resident set (VmRSS), creates the session, runs the model a few times on seeded inputs and reads the high-water mark
(VmHWM, Linux; ru_maxrss elsewhere). `peak_rss_mb` is that whole-process peak; `session_mb` is the
peak minus the resident set before the session existed, i.e. what this model's session costs
(weights, arena, plans). Run as `python -m onnxprune.bench.memory SPEC_JSON`."""

from __future__ import annotations

import json
import subprocess
import sys


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _peak_kb() -> int:
    hwm = _status_kb("VmHWM")
    if hwm is not None:
        return hwm
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB on Linux


def measure_child(spec: dict) -> dict:
    import onnxruntime  # noqa: F401  (its import cost belongs to the baseline)

    from ..core.runtime import random_feeds
    from .providers import create_session

    before = _status_kb("VmRSS") or _peak_kb()
    session = create_session(spec["model"], spec["provider"], threads=spec.get("threads", 0),
                             inter_threads=spec.get("inter_threads", 0), opt_level=spec.get("opt_level", "all"),
                             spin=spec.get("spin", True))
    feeds = random_feeds(session, spec.get("shapes", {}), seed=spec.get("seed", 0))
    for _ in range(spec.get("runs", 5)):
        session.run(None, feeds)
    peak = _peak_kb()
    return {"peak_rss_mb": peak / 1024, "session_mb": max(0, peak - before) / 1024}


def measure(model_path: str, *, provider: str, shapes: dict, threads: int = 0, inter_threads: int = 0,
            opt_level: str = "all", seed: int = 0, runs: int = 5, timeout: float = 300, spin: bool = True) -> dict:
    """Peak memory of `model_path` in a child process; {"error": ...} if the child fails."""
    spec = {"model": str(model_path), "provider": provider, "shapes": shapes, "threads": threads,
            "inter_threads": inter_threads, "opt_level": opt_level, "seed": seed, "runs": runs, "spin": spin}
    try:
        proc = subprocess.run([sys.executable, "-m", "onnxprune.bench.memory", json.dumps(spec)],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"the measuring process took longer than {timeout:g} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["exit code %d" % proc.returncode])[-1]
        return {"error": tail[:200]}
    return json.loads(lines[-1])


if __name__ == "__main__":
    print(json.dumps(measure_child(json.loads(sys.argv[1]))))
