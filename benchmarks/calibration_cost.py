"""What does calibration cost? One `calibrate` pass (every consumer input as an extra output of ONE
onnxruntime session, per-channel statistics streamed in float64) against one plain forward pass
over the same examples, as a multiple of the plain pass. Two modes: first-order statistics only
(activation criterion, bias compensation) and with full second moments (reconstruction, lstsq).
Runs are interleaved (plain, stats, moments, plain, ...); medians are reported.

    python benchmarks/calibration_cost.py [--examples 100] [--rounds 5] [--out benchmarks/results/calibration_cost.md]
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
from onnxprune.calibration.statistics import calibrate, plain_pass_seconds  # noqa: E402
BUNDLED = Path(__file__).resolve().parent.parent / "onnxprune" / "assets" / "kws_dscnn.onnx"  # the seeded, untrained DS-CNN fixture
from onnxprune.core.runtime import make_session, random_feeds  # noqa: E402


def cases():
    yield "kws_dscnn (bundled)", BUNDLED, None
    for name, shapes in (("embedding_model", {"input_1": [1, 76, 32, 1]}), ("silero_vad_v6", {"input": [1, 576]})):
        path = _cached(name)
        if path:
            yield name, path, shapes


def _cached(name):
    from fetch import cache_dir

    path = cache_dir() / f"{name}.onnx"
    return path if path.exists() else None  # cached by models/fetch.py; never downloaded here


def feeds_for(model, analysis, n):
    sess = make_session(model)
    out = []
    for i in range(n):
        f = random_feeds(sess, analysis.input_shapes, seed=i)
        for k in ("h", "c", "state"):  # recurrent state starts at zero, as a caller would
            if k in f:
                f[k] = np.zeros_like(f[k])
        out.append(f)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default="benchmarks/results/calibration_cost.md")
    args = ap.parse_args()
    rows, raw = [], {}
    for name, path, shapes in cases():
        model = onnxprune.load_model(path)
        analysis = onnxprune.analyze(model, shapes=shapes)
        feeds = feeds_for(model, analysis, args.examples)
        times = {"plain": [], "stats": [], "moments": []}
        calibrate(analysis, feeds[:2], moments=True)  # warm-up
        for _ in range(args.rounds):
            times["plain"].append(plain_pass_seconds(analysis.model, feeds))
            for mode in ("stats", "moments"):
                t = time.perf_counter()
                calib = calibrate(analysis, feeds, moments=mode == "moments")
                times[mode].append(time.perf_counter() - t)
        med = {k: statistics.median(v) for k, v in times.items()}
        sites = len(calib.sites)
        values = len({s.value for s in calib.sites})
        raw[name] = {"median_s": med, "sites": sites, "tracked_values": values, "examples": args.examples,
                     "moment_sites": len(calib.moments)}
        rows.append(f"| {name} | {args.examples} | {values} | {sites} ({len(calib.moments)}) | "
                    f"{med['plain'] * 1e3:.1f} | {med['stats'] * 1e3:.1f} | {med['stats'] / med['plain']:.2f}× | "
                    f"{med['moments'] * 1e3:.1f} | {med['moments'] / med['plain']:.2f}× |")
        print(rows[-1], flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "# Calibration cost\n\n"
        f"`python benchmarks/calibration_cost.py --examples {args.examples} --rounds {args.rounds}` "
        "(random inputs of the model's shape; ORT CPU, default threads, shared 2-core machine; "
        f"medians of {args.rounds} interleaved rounds). 'plain' = one forward pass over the examples in an "
        "existing session; calibration times include building its session with the extra outputs.\n\n"
        "| model | examples | tracked values | consumer sites (with moments) | plain ms | stats ms | stats / plain | "
        "stats+moments ms | moments / plain |\n|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    out.with_suffix(".json").write_text(json.dumps(raw, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
