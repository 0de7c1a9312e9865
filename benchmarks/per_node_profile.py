"""Which kernels stop scaling with their MACs? Prune a model at 0.5, profile original and pruned
(onnxruntime profiler, CPU, 1 thread, medians per node over --runs) and list the slowest nodes of
the original with their time before and after and, where the node maps back to the ONNX graph,
their MACs before and after.

Needs: nothing beyond the install (pretrained models: models/fetch.py).

    python benchmarks/per_node_profile.py MODEL [--shape NAME:D1,D2,...] [--runs 300] [--top 12] [--out FILE.txt]
"""

from __future__ import annotations

import json
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path

from _common import parser, write

import onnxprune  # noqa: E402
from onnxprune.core.runtime import random_feeds  # noqa: E402
from onnxprune.core.shapes import infer_value_shapes  # noqa: E402
from onnxprune.core.cost import node_macs as _node_macs  # noqa: E402

from latency_efficiency import _profiled_session  # noqa: E402


def node_macs(model, shapes) -> dict[str, int]:
    values = infer_value_shapes(model, shapes)
    consts = {t.name: tuple(t.dims) for t in model.graph.initializer}
    out = {}
    for n in model.graph.node:
        try:
            out[n.name] = _node_macs(n, lambda x: values.get(x) or consts.get(x))
        except (TypeError, IndexError, ValueError):
            out[n.name] = 0
    return out


def profile(path: Path, shapes: dict, runs: int) -> dict[tuple[str, str], float]:
    sess = _profiled_session(path)
    feeds = random_feeds(sess, shapes, seed=0)
    for _ in range(runs):
        sess.run(None, feeds)
    per_node = defaultdict(list)
    prof = Path(sess.end_profiling())
    for ev in json.loads(prof.read_text()):
        if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time"):
            per_node[(ev["name"][: -len("_kernel_time")], ev["args"].get("op_name", "?"))].append(ev["dur"])
    prof.unlink()
    return {k: statistics.median(v) for k, v in per_node.items()}


def _graph_node(name: str, macs: dict) -> str:
    """onnxruntime names a fused Conv+BN+Relu after the last node it absorbed (`block0.pw.relu`);
    map it back to the MAC-bearing node whose name is the longest prefix (`block0.pw`)."""
    if macs.get(name):
        return name
    prefixes = [n for n, v in macs.items() if v and n and name.startswith(n)]
    return max(prefixes, key=len) if prefixes else name


def main():
    ap = parser(__doc__, "per_node_profile.txt")
    ap.add_argument("model")
    ap.add_argument("--shape", action="append", default=[])
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args()
    result = onnxprune.prune(args.model, ratio=0.5, shapes=args.shape)
    pruned = Path(tempfile.mkdtemp(prefix="onnxprune-node-")) / "pruned.onnx"
    result.save(pruned)
    shapes = result.analysis.input_shapes
    mo = node_macs(onnxprune.load_model(args.model), shapes)
    mp = node_macs(result.model, shapes)
    before, after = profile(Path(args.model), shapes, args.runs), profile(pruned, shapes, args.runs)
    lines = [f"{'op':12s} {'node':40s} {'µs before':>9s} {'µs after':>9s} {'time cut':>8s} {'MAC cut':>8s}"]
    for (name, op), us in sorted(before.items(), key=lambda x: -x[1])[: args.top]:
        up = after.get((name, op))
        base = _graph_node(name.removesuffix("_nchwc"), mo)
        mac_cut = f"{mo[base] / mp[base]:.2f}x" if mo.get(base) and mp.get(base) else "-"
        cut = f"{us / up:.2f}x" if up else "-"
        lines.append(f"{op:12s} {name[:40]:40s} {us:9.0f} {up if up is not None else float('nan'):9.0f} {cut:>8s} "
                     f"{mac_cut:>8s}")
    print("\n".join(lines))
    write(args.out, "\n".join(lines), threads=1)


if __name__ == "__main__":
    main()
