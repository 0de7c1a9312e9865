"""Does a pruned zoo model run as fast as the same recipe built dense at its widths (its "dense twin")?

For the zoo DS-CNN keyword spotter and the zoo CNN+BiGRU CTC recognizer: prune at `--ratio`
(verified), read the kept widths from the pruned graph (KWS: stem and each pointwise conv; CTC:
both convs, the projection, the GRU hidden size), build the torch recipe (models/train_kws.py
DSCNN(widths=...), models/train_ctc.py CRNN(conv, conv2, proj, hidden)) at those widths with fresh
weights, and export it the way the zoo model was exported (export_kws / export_ts). Each row checks
that the twin has the pruned graph's op types and MACs, then times pruned and twin interleaved
(rotated order) at 1 and 2 threads, `--repeats` times: ratio = p50 pruned / p50 twin, median over
repeats (range). Issue 16's criterion: the pruned model within 5 % (ratio <= 1.05).

Needs: torch (the `recover` or `train` extra); the zoo models are committed in models/zoo.

    python benchmarks/dense_twin.py [--runs 300] [--repeats 5] [--out benchmarks/results/dense_twin.md]
"""

from __future__ import annotations

import statistics
import tempfile
from collections import Counter
from pathlib import Path

from _common import REPO as ROOT, parser, write

import onnx  # noqa: E402

import onnxprune  # noqa: E402
from onnxprune.bench import BenchConfig, run_bench  # noqa: E402

ZOO = ROOT / "models" / "zoo"


def _weights(model: onnx.ModelProto) -> dict:
    return {t.name: list(t.dims) for t in model.graph.initializer}


def fresh(net):
    """Fresh random weights everywhere, batch-norm statistics included: with torch's defaults every
    folded conv bias is 0, and the exporter shares identical tensors through Identity nodes, which
    a trained model (and the pruned one) does not have."""
    import torch

    torch.manual_seed(0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def kws_twin(pruned: onnx.ModelProto, path: Path) -> str:
    """DSCNN at the pruned widths: the stem and every ungrouped (pointwise) conv give one width each."""
    import torch
    from train_kws import DSCNN, export_kws

    w = _weights(pruned)
    convs = [n for n in pruned.graph.node if n.op_type == "Conv"]
    group = {n.name: next((a.i for a in n.attribute if a.name == "group"), 1) for n in convs}
    widths = tuple(w[n.input[1]][0] for n in convs if group[n.name] == 1)
    torch.manual_seed(0)
    export_kws(fresh(DSCNN(widths=widths)), path)
    return f"widths {'/'.join(map(str, widths))}"


def ctc_twin(pruned: onnx.ModelProto, path: Path) -> str:
    """CRNN at the pruned widths: both convs, the projection (first MatMul) and the GRU hidden size."""
    import torch
    from train_ctc import CRNN, export_ts

    w = _weights(pruned)
    convs = [w[n.input[1]][0] for n in pruned.graph.node if n.op_type == "Conv"]
    proj = next(w[n.input[1]][1] for n in pruned.graph.node if n.op_type == "MatMul" and n.input[1] in w)
    hidden = next(w[n.input[2]][2] for n in pruned.graph.node if n.op_type == "GRU")
    torch.manual_seed(0)
    net = fresh(CRNN(conv=convs[0], conv2=convs[1], proj=proj, hidden=hidden))
    with torch.no_grad():
        export_ts(net, path)
    m = onnx.load(path)
    m.ir_version = min(m.ir_version, 10)  # as the zoo export does
    onnx.save(m, path)
    return f"convs {convs[0]}/{convs[1]}, projection {proj}, GRU hidden {hidden}"


CASES = [("kws_dscnn (zoo)", ZOO / "kws_dscnn.onnx", None, kws_twin),
         ("crnn_ctc_ts (zoo)", ZOO / "crnn_ctc_ts.onnx", {"logmel": [1, 1, 100, 40]}, ctc_twin)]


def main():
    ap = parser(__doc__, "dense_twin.md")
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--ratio", type=float, default=0.5)
    args = ap.parse_args()
    import onnxruntime as ort

    tmp = Path(tempfile.mkdtemp(prefix="onnxprune-twin-"))
    rows, raw = [], {}
    for name, path, shapes, build in CASES:
        result = onnxprune.prune(path, ratio=args.ratio, shapes=shapes)
        assert result.verify.passed, result.verify.message
        shapes = {k: list(v) for k, v in result.analysis.input_shapes.items()}
        pruned, twin = tmp / f"{path.stem}_pruned.onnx", tmp / f"{path.stem}_twin.onnx"
        result.save(pruned)
        widths = build(result.model, twin)
        twin_model = onnx.load(twin)
        ops_p = Counter(n.op_type for n in result.model.graph.node)
        ops_t = Counter(n.op_type for n in twin_model.graph.node)
        macs_p, macs_t = result.after["macs"], onnxprune.prune(twin_model, ratio=0.0, shapes=shapes).before["macs"]
        same = "same" if ops_p == ops_t else f"differ: pruned +{dict(ops_p - ops_t)}, twin +{dict(ops_t - ops_p)}"
        entry = {"widths": widths, "macs_pruned": macs_p, "macs_twin": macs_t, "macs_original": result.before["macs"],
                 "ops": same}
        cells = []
        for threads in (1, 2):
            ratios, p50s = [], []
            for _ in range(args.repeats):
                b = run_bench([str(pruned), str(twin)], BenchConfig(threads=threads, warmup=20, runs=args.runs,
                                                                    shapes=shapes, memory=False, fidelity_inputs=1))
                p = [m["latency"]["p50_ms"] for m in b["models"]]
                p50s.append(p)
                ratios.append(p[0] / p[1])
            entry[f"{threads} thread"] = {"ratios": ratios, "p50_ms": p50s}
            cells += [f"{statistics.median(x[0] for x in p50s):.3f} / {statistics.median(x[1] for x in p50s):.3f}",
                      f"**{statistics.median(ratios):.3f}** ({min(ratios):.3f}–{max(ratios):.3f})"]
        raw[name] = entry
        rows.append([name, widths, f"{macs_p / 1e6:.2f}M / {macs_t / 1e6:.2f}M", same, *cells])
        print(" | ".join(rows[-1]), flush=True)
    lines = [f"ONNX Runtime {ort.__version__} CPU; ratio {args.ratio} (l1, round-to 4, verified); pruned and dense twin "
             f"interleaved with rotated order, {args.runs} runs each, {args.repeats} repeats; ratio = p50 pruned / p50 "
             "twin, median over repeats (range). The twin is the torch recipe at the pruned widths, fresh weights, "
             "exported as the zoo model was.", "",
             "| model | pruned widths | MACs pruned / twin | op types | p50 ms pruned / twin, 1 thread | ratio 1 thread "
             "| p50 ms pruned / twin, 2 threads | ratio 2 threads |", "|---|---|---:|---|---:|---:|---:|---:|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    write(args.out, "\n".join(lines), raw)


if __name__ == "__main__":
    main()
