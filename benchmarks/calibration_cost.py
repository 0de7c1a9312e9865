"""What does calibration cost? One `calibrate` pass (every consumer input as an extra output of ONE
onnxruntime session, per-channel statistics streamed in float64) against one plain forward pass
over the same examples, as a multiple of the plain pass. Two modes: first-order statistics only
(activation criterion, bias compensation) and with full second moments (reconstruction, lstsq).
Runs are interleaved (plain, stats, moments, plain, ...); medians are reported.

Needs: the pretrained embedding_model and silero_vad_v6 (models/fetch.py; PyPI access once).

    python benchmarks/calibration_cost.py [--examples 100] [--rounds 5] [--out benchmarks/results/calibration_cost.md]
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from _common import REPO, need_models, parser, write

import onnxprune  # noqa: E402
from onnxprune.calibration.statistics import calibrate, plain_pass_seconds  # noqa: E402
BUNDLED = REPO / "onnxprune" / "assets" / "kws_dscnn.onnx"  # the seeded, untrained DS-CNN fixture
from onnxprune.core.runtime import make_session, random_feeds  # noqa: E402


def cases():
    yield "kws_dscnn (bundled)", BUNDLED, None
    shapes = {"embedding_model": {"input_1": [1, 76, 32, 1]}, "silero_vad_v6": {"input": [1, 576]}}
    for name, path in need_models(*shapes).items():
        yield name, path, shapes[name]


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
    ap = parser(__doc__, "calibration_cost.md")
    ap.add_argument("--examples", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
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
    write(args.out,
        "# Calibration cost\n\n"
        "(random inputs of the model's shape; ORT CPU, default threads; "
        f"medians of {args.rounds} interleaved rounds). 'plain' = one forward pass over the examples in an "
        "existing session; calibration times include building its session with the extra outputs.\n\n"
        "| model | examples | tracked values | consumer sites (with moments) | plain ms | stats ms | stats / plain | "
        "stats+moments ms | moments / plain |\n|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows), raw)


if __name__ == "__main__":
    main()
