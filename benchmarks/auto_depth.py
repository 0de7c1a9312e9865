"""`auto` with depth (blocks first, then widths) vs widths alone, same goal and budget.

Per model (transformer and conformer fixtures, bundled DS-CNN, ResNet KWS built by
models/build_resnet_kws.py; seeded weights, so the budget is output SNR vs the original on 32
seeded held-out inputs, not accuracy): `auto --target-macs F --min-snr S` with the MACs proxy as
latency model (deterministic search), with and without `--depth`. The three models (original,
widths only, depth + widths) are then timed interleaved on ONNX Runtime CPU, 1 thread, and the
median over repeats of the p50 speedups is reported with the SNR each reached.

Needs: nothing beyond the install (the fixtures and the DS-CNN are committed, the ResNet KWS is built here).

    python benchmarks/auto_depth.py [--target-macs 0.5] [--min-snr 10] [--runs 300] [--repeats 3]
                                    [--out benchmarks/results/auto_depth.md]
"""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path

import onnx

from _common import parser, write
from depth_vs_width import cases  # the same four models

from onnxprune.search.auto import AutoConfig, auto_prune  # noqa: E402
from onnxprune.bench import BenchConfig, run_bench  # noqa: E402


def main():
    ap = parser(__doc__, "auto_depth.md")
    ap.add_argument("--target-macs", type=float, default=0.5)
    ap.add_argument("--min-snr", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="onnxprune-autodepth-"))
    rows, raw = [], {}
    for name, path in cases(tmp):
        model = onnx.load(path)
        runs = {}
        for label, depth in (("width", False), ("depth+width", True)):
            done = auto_prune(model, AutoConfig(goal="macs", target=args.target_macs, max_drop=None,
                                                min_snr=args.min_snr, latency="macs", depth=depth, max_evals=120))
            out = tmp / f"{path.stem}_{label}.onnx"
            done.result.save(out)
            runs[label] = {"path": str(out), "reached": done.search.reached, "macs": done.search.achieved,
                           "snr_db": done.metrics.get("snr_db"), "blocks": done.plan.blocks}
        speed = {k: [] for k in runs}
        for _ in range(args.repeats):
            b = run_bench([str(path)] + [r["path"] for r in runs.values()],
                          BenchConfig(threads=1, warmup=20, runs=args.runs, memory=False, fidelity_inputs=2))
            for k, m in zip(runs, b["models"][1:]):
                speed[k].append(m["speedup"])
        for k in runs:
            runs[k]["speedups"] = speed[k]
        raw[name] = runs
        w, d = runs["width"], runs["depth+width"]
        sw, sd = statistics.median(speed["width"]), statistics.median(speed["depth+width"])
        rows.append([name, f"{w['macs']:.3f} ({'reached' if w['reached'] else 'not reached'})", f"{w['snr_db']:.1f}",
                     f"{sw:.2f}x", ", ".join(d["blocks"]) or "none",
                     f"{d['macs']:.3f} ({'reached' if d['reached'] else 'not reached'})", f"{d['snr_db']:.1f}",
                     f"{sd:.2f}x", f"{sd / sw:.2f}"])
        print(" | ".join(rows[-1]), flush=True)
    lines = [f"ONNX Runtime CPU, 1 thread, {os.cpu_count()} cores shared; search on the MACs proxy, speedups "
             "measured afterwards, interleaved.", "",
             "| model | widths only: MACs kept | SNR dB | speedup | depth+widths: blocks dropped | MACs kept | SNR dB "
             "| speedup | depth+widths / widths |", "|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    write(args.out, "\n".join(lines), raw, threads=1)


if __name__ == "__main__":
    main()
