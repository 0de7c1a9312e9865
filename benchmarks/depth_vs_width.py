"""Depth pruning vs width pruning at similar MACs, and onnxsim 0.8.1's transformer-block pruning.

Per model (the transformer and conformer fixtures, the bundled DS-CNN and a ResNet KWS built in
code by models/build_resnet_kws.py): every removable block is scored alone (nmse of the outputs
vs the original on 16 seeded inputs); the least sensitive half is dropped (verified against the
zeroed-projection reference). Width pruning then takes the uniform ratio whose MACs are closest
to the depth-pruned model's (round-to 4, l1, verified). onnxsim drops the same number of blocks
(its own choice, in its own venv). Original, depth, width and onnxsim are timed interleaved
(rotated order) on ONNX Runtime CPU, 1 thread; speedup = median over repeats of p50 ratios.

Needs: nothing beyond the install for depth vs width; for the onnxsim column, a venv with onnxsim 0.8.1
(`python -m venv /tmp/simvenv && /tmp/simvenv/bin/pip install onnxsim==0.8.1 onnxruntime`) passed with
--onnxsim-python (without it that column reads "no block matched").

    python benchmarks/depth_vs_width.py [--onnxsim-python /path/venv/bin/python] [--runs 300] [--repeats 3]
                                        [--out benchmarks/results/depth_vs_width.md]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import onnx

from _common import REPO as ROOT, parser, write

import onnxprune  # noqa: E402
from onnxprune.bench import BenchConfig, run_bench  # noqa: E402

SIM_WORKER = """
import json, sys, onnx
from onnxsim.pruning import apply_transformer_block_pruning
m = onnx.load(sys.argv[1])
out = apply_transformer_block_pruning(m, num_blocks_to_drop=int(sys.argv[3]), seed=0)
onnx.save(out, sys.argv[2])
kept = {n.name for n in out.graph.node}
print(json.dumps([n.name for n in m.graph.node if n.name not in kept]))
"""


def onnxsim_check(model, sim_path: Path, removed: list[str]) -> dict:
    """Which of our blocks onnxsim removed, and its max |output - our zeroed-projection reference|."""
    from onnxprune.prune.depth import drop_blocks, model_blocks
    from onnxprune.core.runtime import make_session, random_feeds

    blocks = [b for b in model_blocks(model) if b.name in removed]
    ref = make_session(drop_blocks(model, blocks, mode="reference"))
    sim = make_session(onnx.load(sim_path))
    diff = 0.0
    for seed in range(4):
        feeds = random_feeds(ref, {}, seed)
        for a, b in zip(ref.run(None, feeds), sim.run(None, feeds)):
            diff = max(diff, float(np.max(np.abs(a - b))))
    return {"blocks": [b.name for b in blocks], "max_abs_diff_vs_reference": diff}


def cases(tmp: Path):
    """The models depth is compared on (auto_depth.py uses the same)."""
    from build_resnet_kws import build

    resnet = tmp / "resnet_kws.onnx"
    onnx.save(build(), resnet)
    yield "transformer_dynamo", ROOT / "models" / "fixtures" / "transformer_dynamo.onnx"
    yield "conformer_dynamo", ROOT / "models" / "fixtures" / "conformer_dynamo.onnx"
    yield "kws_dscnn (bundled)", ROOT / "onnxprune" / "assets" / "kws_dscnn.onnx"
    yield "resnet_kws (built)", resnet


def width_at_macs(path: Path, macs: int) -> tuple[float, object]:
    """The uniform ratio (steps of 0.025) whose pruned MACs are closest to `macs`."""
    best = None
    for ratio in np.arange(0.0, 0.951, 0.025):
        r = onnxprune.prune(path, ratio=float(ratio), verify=False)
        gap = abs(r.after["macs"] - macs)
        if best is None or gap < best[0]:
            best = (gap, float(ratio))
    final = onnxprune.prune(path, ratio=best[1])
    assert final.verify.passed, final.verify.message
    return best[1], final


def main():
    from onnxprune.search.depth import block_sensitivity

    ap = parser(__doc__, "depth_vs_width.md")
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--onnxsim-python", default=None, help="python of a venv with onnxsim==0.8.1")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="onnxprune-depth-"))
    rows, raw = [], {}
    for name, path in cases(tmp):
        model = onnxprune.load_model(path)
        sens = block_sensitivity(model, count=16, seed=0)
        removable = [s for s in sens if s["removable"]]
        chosen = sorted(removable, key=lambda s: s["nmse"])[:max(1, (len(removable) + 1) // 2)]
        depth = onnxprune.prune(model, ratio=0.0, drop_blocks=tuple(s["name"] for s in chosen))
        assert depth.verify.passed and all(s["verify"]["passed"] for s in depth.steps), depth.steps
        d_path = tmp / f"{path.stem}_depth.onnx"
        depth.save(d_path)
        ratio, width = width_at_macs(path, depth.after["macs"])
        w_path = tmp / f"{path.stem}_width.onnx"
        width.save(w_path)
        paths, labels = [str(path), str(d_path), str(w_path)], ["original", "depth", "width"]
        sim = None
        if args.onnxsim_python:
            s_path = tmp / f"{path.stem}_onnxsim.onnx"
            done = subprocess.run([args.onnxsim_python, "-c", SIM_WORKER, str(path), str(s_path), str(len(chosen))],
                                  capture_output=True, text=True)
            removed = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
            sim = {"nodes_removed": len(removed or []),
                   "error": done.stderr.strip().splitlines()[-1] if done.returncode else None}
            if removed:
                sim.update(onnxsim_check(model, s_path, removed))
                paths.append(str(s_path))
                labels.append("onnxsim")
        speed = {k: [] for k in labels[1:]}
        for _ in range(args.repeats):
            b = run_bench(paths, BenchConfig(threads=1, warmup=20, runs=args.runs, memory=False, fidelity_inputs=4))
            for k, m in zip(labels[1:], b["models"][1:]):
                speed[k].append(m["speedup"])
        base = depth.before["macs"]
        from onnxprune.search.fidelity import Fidelity, make_feeds

        fid = Fidelity(model, make_feeds(model, depth.analysis.input_shapes, count=16, seed=0, part=1))
        nmse = {"depth": fid(depth.model)["nmse"], "width": fid(width.model)["nmse"]}
        entry = {"blocks": sens, "nmse": nmse, "dropped": [s["name"] for s in chosen], "width_ratio": ratio,
                 "macs": {"original": base, "depth": depth.after["macs"], "width": width.after["macs"]},
                 "speedups": speed, "onnxsim": sim,
                 }
        raw[name] = entry
        med = {k: statistics.median(v) for k, v in speed.items()}
        rows.append([name, ", ".join(f"{s['name']} ({s['kind']})" for s in chosen),
                     f"{base / depth.after['macs']:.2f}x", f"{med['depth']:.2f}x",
                     f"{ratio:.3f}", f"{base / width.after['macs']:.2f}x", f"{med['width']:.2f}x",
                     f"{med['depth'] / med['width']:.2f}", f"{nmse['depth']:.3g} / {nmse['width']:.3g}",
                     (f"{med['onnxsim']:.2f}x ({', '.join(sim['blocks'])}; max diff vs our reference "
                      f"{sim['max_abs_diff_vs_reference']:.2g})") if "onnxsim" in med else "no block matched"])
        print(" | ".join(rows[-1]), flush=True)
    lines = [f"ONNX Runtime CPU, 1 thread, {os.cpu_count()} cores shared with other work; interleaved, rotated "
             "order; speedup = median over repeats of p50 original / p50 pruned.", "",
             "| model | blocks dropped (least sensitive half) | depth MAC reduction | depth speedup | width ratio "
             "| width MAC reduction | width speedup | depth / width speedup | nmse depth / width (held-out seeded) "
             "| onnxsim 0.8.1, same block count |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    write(args.out, "\n".join(lines), raw, threads=1)


if __name__ == "__main__":
    main()
