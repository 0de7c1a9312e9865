"""Which per-group widths make the zoo's small models fast? Latency of pruned copies (first channels
kept: latency does not depend on the values) against the original, interleaved (ONNX Runtime CPU,
1 thread, p50 over --runs rotated rounds): uniform ratios against plans that prune the costly
layers harder and keep widths onnxruntime's blocked conv kernels like (multiples of 16).

Needs: nothing beyond the install; the zoo's models are committed.

    python benchmarks/width_latency.py [kws|ctc ...] [--runs 400] [--out benchmarks/results/width_latency.md]
"""

from __future__ import annotations

import statistics

import numpy as np
from _common import REPO, parser, write

from onnxprune.api import PruneConfig, prune
from onnxprune.bench.latency import TimingPlan, time_interleaved
from onnxprune.core.io import load_model
from onnxprune.core.runtime import make_session
from onnxprune.prune.plan import Plan

ZOO = REPO / "models" / "zoo"
CASES = {  # prunable groups in inspect's order
    "kws": (ZOO / "kws_dscnn.onnx", "logmel", [1, 1, 49, 40], {
        "uniform 0.5": (32, 32, 48, 48, 64), "uniform 0.625": (24, 24, 36, 36, 48),
        "uniform 0.75": (16, 16, 24, 24, 32), "stem 16": (16, 32, 48, 48, 64), "stem 8": (8, 32, 48, 48, 64),
        "16/32/32/32/48": (16, 32, 32, 32, 48), "16/16/32/48/64": (16, 16, 32, 48, 64),
        "16/16/32/32/64": (16, 16, 32, 32, 64), "32/16/32/32/64": (32, 16, 32, 32, 64)}),
    "ctc": (ZOO / "crnn_ctc_ts.onnx", "logmel", [1, 1, 100, 40], {
        "uniform 0.375": (20, 20, 60, 40), "uniform 0.5": (16, 16, 48, 32), "16/8/48/32": (16, 8, 48, 32),
        "8/16/48/32": (8, 16, 48, 32), "16/16/64/32": (16, 16, 64, 32), "16/16/48/24": (16, 16, 48, 24),
        "24/24/48/32": (24, 24, 48, 32), "32/16/48/32": (32, 16, 48, 32)}),
}


def main() -> None:
    ap = parser(__doc__, "width_latency.md")
    ap.add_argument("cases", nargs="*", default=list(CASES))
    ap.add_argument("--runs", type=int, default=400)
    args = ap.parse_args()
    lines, data = [], []
    for name in args.cases:
        path, inp, shape, plans = CASES[name]
        model = load_model(path)
        probe = prune(model, config=PruneConfig(ratio=0.5, verify=False, shapes={inp: shape}))
        prunable = [g["name"] for g in probe.groups if g["prunable"]]
        models = {"original": model}
        for label, widths in plans.items():
            keep = {g: list(range(probe.plan.sizes[g])) for g in probe.plan.groups}
            keep.update({g: list(range(w)) for g, w in zip(prunable, widths)})
            plan = Plan(probe.plan.fingerprint, keep, dict(probe.plan.sizes), {})
            models[label] = prune(model, config=PruneConfig(plan=plan, verify=False, shapes={inp: shape})).model
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        sessions = [make_session(m.SerializeToString(), threads=1) for m in models.values()]
        times = time_interleaved([lambda i, s=s: s.run(None, {inp: x}) for s in sessions], TimingPlan(50, args.runs))
        p50 = [statistics.median(t) for t in times]
        lines += [f"{name} ({path.name}, input {shape}; prunable groups: {', '.join(prunable)}):", "",
                  "| widths | p50 us | speedup |", "|---|---:|---:|"]
        for label, t in zip(models, p50):
            lines.append(f"| {label}{'' if label == 'original' else ' ' + str(plans[label])} | {t * 1e6:.1f} "
                         f"| {p50[0] / t:.2f}x |")
            data.append({"case": name, "plan": label, "widths": plans.get(label), "p50_us": t * 1e6,
                         "speedup": p50[0] / t})
        lines.append("")
        print("\n".join(lines[-len(models) - 4:]), flush=True)
    write(args.out, "\n".join(lines), data, threads=1)


if __name__ == "__main__":
    main()
