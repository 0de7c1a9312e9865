"""Where the time goes, per op type: onnxruntime's own profiler on each model, runs interleaved.

`bench --profile` shows it before/after (every model against the first), so a user sees which
ops did not shrink: after width pruning, the Reshape/Transpose/LayerNorm work on an unpruned
residual stream, or a fixed cost per op. Profiling slows kernels down, so these are shares and
comparisons, not latencies (the latency table is measured without the profiler).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path


def _session(path: str, provider: str, threads: int, prefix: str):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.enable_profiling = True
    opts.profile_file_prefix = str(Path(tempfile.gettempdir()) / f"onnxprune-prof-{prefix}")
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=[provider])


def op_type_profiles(paths: list, feeds: list[dict], *, runs: int = 100, provider: str = "CPUExecutionProvider",
                     threads: int = 1) -> list[dict]:
    """Per model (all profiled together, interleaved, rotated order): median wall µs of a run and
    median µs per run of each op type's kernels (median per node over runs, summed by op type)."""
    sessions = [_session(p, provider, threads, f"{k}-{Path(p).stem}") for k, p in enumerate(paths)]
    walls: list[list[float]] = [[] for _ in sessions]
    order = list(range(len(sessions)))
    for r in range(runs):
        for k in order[r % len(order):] + order[:r % len(order)]:
            t = time.perf_counter()
            sessions[k].run(None, feeds[k])
            walls[k].append(time.perf_counter() - t)
    out = []
    for sess, wall in zip(sessions, walls):
        prof = Path(sess.end_profiling())
        per_node: dict[tuple[str, str], list[float]] = defaultdict(list)
        for ev in json.loads(prof.read_text()):
            if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time"):
                per_node[(ev["name"], ev["args"].get("op_name", "?"))].append(ev["dur"])
        prof.unlink()
        per_op: dict[str, float] = defaultdict(float)
        for (_, op), durs in per_node.items():
            per_op[op] += statistics.median(durs)
        out.append({"wall_us": statistics.median(wall) * 1e6, "ops_us": dict(per_op)})
    return out


def profile_table(names: list[str], profiles: list[dict], top: int = 12) -> tuple[list[str], list[list[str]]]:
    """(headers, rows): µs per run of each op type (the first model's largest first, then op types
    only the others have), per model, with each model's ratio to the first."""
    first = profiles[0]["ops_us"]
    ops = sorted(first, key=lambda k: -first[k])
    ops += sorted({k for p in profiles[1:] for k in p["ops_us"]} - set(first))
    shown, rest = ops[:top], ops[top:]
    headers = ["op type", f"{names[0]} µs"] + [h for n in names[1:] for h in (f"{n} µs", "× first")]
    rows = []
    for op in shown + (["(other)"] if rest else []) + ["all kernels"]:
        base = _us(profiles[0], op, rest)
        row = [op, f"{base:.1f}"]
        for p in profiles[1:]:
            v = _us(p, op, rest)
            row += [f"{v:.1f}", f"{v / base:.2f}" if base > 0 else "new"]
        rows.append(row)
    return headers, rows


def _us(profile: dict, op: str, rest: list[str]) -> float:
    ops = profile["ops_us"]
    if op == "all kernels":
        return sum(ops.values())
    if op == "(other)":
        return sum(ops.get(k, 0.0) for k in rest)
    return ops.get(op, 0.0)
