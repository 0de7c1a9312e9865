"""Which `--round-to` should be the default? Measures ONNX Runtime CPU latency of models pruned
to unaligned channel counts (round_to=1) against the same ratio rounded up to multiples of
4, 8 and 16. Runs are interleaved (A, B, C, D, A, B, ...) so machine drift hits all alike;
reports medians and each variant's ratio to round_to=1.

    python benchmarks/round_to.py [--runs 200] [--threads 1] [--out benchmarks/results/round_to.md]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "models"))

import onnxprune  # noqa: E402
BUNDLED = Path(__file__).resolve().parent.parent / "onnxprune" / "assets" / "kws_dscnn.onnx"  # the seeded, untrained DS-CNN fixture
from onnxprune.core.runtime import make_session, random_feeds  # noqa: E402


def cases():
    from fetch import fetch

    yield "kws_dscnn (bundled)", BUNDLED, None
    yield "openwakeword embedding_model", fetch("embedding_model"), {"input_1": [1, 76, 32, 1]}
    yield "silero_vad_v6", fetch("silero_vad_v6"), {"input": [1, 576]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ratio", type=float, default=0.4)
    ap.add_argument("--out", default="benchmarks/results/round_to.md")
    args = ap.parse_args()
    rows, raw = [], {}
    for name, path, shapes in cases():
        variants = {"original": onnxprune.load_model(path)}
        for r in (1, 4, 8, 16):
            variants[f"round_to={r}"] = onnxprune.prune(path, ratio=args.ratio, round_to=r, shapes=shapes).model
        sessions = {k: make_session(m, threads=args.threads) for k, m in variants.items()}
        feeds = random_feeds(next(iter(sessions.values())), shapes or {}, seed=0)
        times = {k: [] for k in sessions}
        for _ in range(10):
            for s in sessions.values():
                s.run(None, feeds)
        for _ in range(args.runs):
            for k, s in sessions.items():
                t = time.perf_counter()
                s.run(None, feeds)
                times[k].append(time.perf_counter() - t)
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        params = {k: onnxprune.core.cost.count_params(m) for k, m in variants.items()}
        raw[name] = {"median_ms": med, "params": params}
        for k in variants:
            rows.append([name, k, params[k], f"{med[k]:.3f}", f"{med['original'] / med[k]:.2f}x",
                         f"{med['round_to=1'] / med[k]:.2f}"])
    lines = [f"Command: `python benchmarks/round_to.py --runs {args.runs} --threads {args.threads} --ratio {args.ratio}`",
             "", "| model | variant | params | p50 ms | speedup vs original | round_to=1 time / this |",
             "|---|---|---:|---:|---:|---:|"]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    out = Path(__file__).resolve().parent.parent / args.out if not Path(args.out).is_absolute() else Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(raw, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    np.random.seed(0)
    main()
