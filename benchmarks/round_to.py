"""Which `--round-to` should be the default? Measures ONNX Runtime CPU latency of models pruned
to unaligned channel counts (round_to=1) against the same ratio rounded up to multiples of
4, 8 and 16. Runs are interleaved (A, B, C, D, A, B, ...) so machine drift hits all alike;
reports medians and each variant's ratio to round_to=1.

Needs: the pretrained embedding_model and silero_vad_v6 (models/fetch.py; PyPI access once).

    python benchmarks/round_to.py [--runs 200] [--threads 1] [--out benchmarks/results/round_to.md]
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from _common import REPO, need_models, parser, write

import onnxprune  # noqa: E402
BUNDLED = REPO / "onnxprune" / "assets" / "kws_dscnn.onnx"  # the seeded, untrained DS-CNN fixture
from onnxprune.core.runtime import make_session, random_feeds  # noqa: E402


def cases():
    models = need_models("embedding_model", "silero_vad_v6")
    yield "kws_dscnn (bundled)", BUNDLED, None
    yield "openwakeword embedding_model", models["embedding_model"], {"input_1": [1, 76, 32, 1]}
    yield "silero_vad_v6", models["silero_vad_v6"], {"input": [1, 576]}


def main():
    ap = parser(__doc__, "round_to.md")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ratio", type=float, default=0.4)
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
    lines = ["| model | variant | params | p50 ms | speedup vs original | round_to=1 time / this |",
             "|---|---|---:|---:|---:|---:|"]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    write(args.out, "\n".join(lines), raw, threads=args.threads)
    print("\n".join(lines))


if __name__ == "__main__":
    np.random.seed(0)
    main()
