"""Is there anything left to fold after pruning? OnnxSlim and onnxruntime's offline BASIC graph, checked and timed.

For the five models of issue 16 (zoo KWS DS-CNN, zoo CTC recognizer, the transformer and conformer
fixtures, openwakeword's embedding model), prune at `--ratio` (verified), then:

* count the trivial ops a hand-written fold would remove (single-input Concat, Split into one,
  full-range Slice, Reshape to the same shape, Reshape->Reshape, Transpose pairs that cancel, Add
  of zeros, Mul by ones), in the original and in the pruned graph;
* run `onnxprune.prune.finish.slim` (OnnxSlim) and `ort_offline` (onnxruntime BASIC, CPU): each
  is kept only if the interface, IR version and opset are the pruned model's and its outputs equal
  the pruned model's on 3 seeded inputs; the table says kept or why not, and what ops changed;
* time pruned, slimmed and ORT-offline models interleaved (rotated order) at 1 thread,
  `--repeats` times, as a user runs them (onnxruntime ALL at load); medians of p50 ratios.

Needs: the pretrained embedding_model (models/fetch.py; PyPI access once) and the `slim` extra (onnxslim).

    python benchmarks/slim_optimize.py [--runs 300] [--repeats 3] [--out benchmarks/results/slim_optimize.md]
"""

from __future__ import annotations

import statistics
import tempfile
from collections import Counter
from pathlib import Path

from _common import REPO as ROOT, need_models, parser, spread, write

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402

import onnxprune  # noqa: E402
from onnxprune.bench import BenchConfig, run_bench  # noqa: E402
from onnxprune.prune.finish import ort_offline, slim  # noqa: E402

ZOO = ROOT / "models" / "zoo"


def cases():
    yield "kws_dscnn (zoo)", ZOO / "kws_dscnn.onnx", None
    yield "crnn_ctc_ts (zoo)", ZOO / "crnn_ctc_ts.onnx", {"logmel": [1, 1, 100, 40]}
    yield "transformer_dynamo", ROOT / "models" / "fixtures" / "transformer_dynamo.onnx", None
    yield "conformer_dynamo", ROOT / "models" / "fixtures" / "conformer_dynamo.onnx", None
    yield "embedding_model (openwakeword)", need_models("embedding_model")["embedding_model"], {"input_1": [1, 76, 32, 1]}


def trivial_ops(model: onnx.ModelProto) -> Counter:
    """Ops that compute the identity, by kind (shapes from onnx shape inference where needed)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    shape = {v.name: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
             for v in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
             if v.type.tensor_type.HasField("shape")}
    const = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            const[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    producer = {o: n for n in model.graph.node for o in n.output}
    found = Counter()
    for n in model.graph.node:
        ins = [i for i in n.input if i]
        if n.op_type == "Concat" and len(ins) == 1:
            found["single-input Concat"] += 1
        elif n.op_type == "Split" and len(n.output) == 1:
            found["Split into one"] += 1
        elif n.op_type in ("Add", "Sub") and any(i in const and not np.any(const[i]) for i in ins[1:] or ins):
            found["Add of zeros"] += 1
        elif n.op_type in ("Mul", "Div") and any(i in const and np.all(const[i] == 1) for i in ins):
            found["Mul by ones"] += 1
        elif n.op_type == "Slice" and _full_slice(n, const, shape):
            found["full-range Slice"] += 1
        elif n.op_type == "Reshape":
            a, b = shape.get(ins[0]), shape.get(n.output[0])
            if a and b and None not in a and a == b:
                found["identity Reshape"] += 1
            elif ins[0] in producer and producer[ins[0]].op_type == "Reshape":
                found["Reshape -> Reshape"] += 1
        elif n.op_type == "Transpose" and ins[0] in producer and producer[ins[0]].op_type == "Transpose":
            p = [a.ints for a in producer[ins[0]].attribute if a.name == "perm"]
            q = [a.ints for a in n.attribute if a.name == "perm"]
            if p and q and [p[0][i] for i in q[0]] == sorted(p[0]):
                found["Transpose pair that cancels"] += 1
    return found


def _full_slice(n, const, shape) -> bool:
    ins = list(n.input) + [""] * 5
    if not all(i in const for i in ins[1:3]) or shape.get(ins[0]) is None:
        return False
    dims = shape[ins[0]]
    axes = const[ins[3]] if ins[3] in const else range(len(const[ins[1]]))
    steps = const[ins[4]] if ins[4] in const else [1] * len(const[ins[1]])
    return all(s == 1 and b == 0 and dims[a] is not None and e >= dims[a]
               for a, b, e, s in zip(axes, const[ins[1]], const[ins[2]], steps))


def start_times(paths: list[Path], n: int) -> dict[str, float]:
    """Median ms to create an InferenceSession (default options: ORT ALL, 1 thread) from each file,
    interleaved: what an offline-optimized file can save."""
    import time

    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    times = {p.stem.rsplit("_", 1)[1]: [] for p in paths}
    for _ in range(n):
        for p in paths:
            t = time.perf_counter()
            ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
            times[p.stem.rsplit("_", 1)[1]].append((time.perf_counter() - t) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def op_change(a: onnx.ModelProto, b: onnx.ModelProto) -> str:
    ca, cb = Counter(n.op_type for n in a.graph.node), Counter(n.op_type for n in b.graph.node)
    gone = ", ".join(f"{k} {v}" for k, v in sorted((ca - cb).items()))
    new = ", ".join(f"{k} {v}" for k, v in sorted((cb - ca).items()))
    return f"−({gone or 'none'}) +({new or 'none'})"


def main():
    ap = parser(__doc__, "slim_optimize.md")
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--starts", type=int, default=30, help="session creations per model (start-up time)")
    args = ap.parse_args()
    import onnxruntime as ort
    import onnxslim

    tmp = Path(tempfile.mkdtemp(prefix="onnxprune-slim-"))
    rows, raw = [], {}
    for name, path, shapes in cases():
        original = onnxprune.load_model(path)
        result = onnxprune.prune(original, ratio=args.ratio, shapes=shapes)
        assert result.verify.passed, result.verify.message
        shapes = result.analysis.input_shapes
        paths = [tmp / f"{path.stem}_pruned.onnx"]
        result.save(paths[0])
        entry = {"trivial_original": dict(trivial_ops(original)), "trivial_pruned": dict(trivial_ops(result.model))}
        cells = []
        for kind, fn in (("slim", slim), ("ort", ort_offline)):
            done = fn(result.model, shapes, values=result.analysis.input_values)
            entry[kind] = done.to_dict()
            entry[kind]["ir_opset"] = [done.model.ir_version, [(o.domain, o.version) for o in done.model.opset_import]]
            cells.append(("kept: " + op_change(result.model, done.model)) if done.kept else f"refused: {done.message}")
            if done.kept:
                paths.append(tmp / f"{path.stem}_{kind}.onnx")
                onnx.save(done.model, paths[-1])
        entry["session_start_ms"] = start_times(paths, args.starts)
        ratios = {p.stem.rsplit("_", 1)[1]: [] for p in paths[1:]}
        for _ in range(args.repeats):
            b = run_bench([str(p) for p in paths], BenchConfig(threads=1, warmup=20, runs=args.runs, shapes=shapes,
                                                              memory=False, fidelity_inputs=1))
            p50 = [m["latency"]["p50_ms"] for m in b["models"]]
            for p, t in zip(paths[1:], p50[1:]):
                ratios[p.stem.rsplit("_", 1)[1]].append(p50[0] / t)
        entry["speedup_vs_pruned"] = ratios
        raw[name] = entry
        triv = ", ".join(f"{k} {v}" for k, v in sorted(entry["trivial_pruned"].items())) or "none"
        triv0 = ", ".join(f"{k} {v}" for k, v in sorted(entry["trivial_original"].items())) or "none"
        st = entry["session_start_ms"]
        rows.append([name, triv0, triv, cells[0], spread(ratios.get("slim", []), "{:.3f}", "x"), cells[1],
                     spread(ratios.get("ort", []), "{:.3f}", "x"),
                     " / ".join(f"{st[k]:.2f}" if k in st else "-" for k in ("pruned", "slim", "ort"))])
        print(" | ".join(rows[-1]), flush=True)
    lines = [f"ONNX Runtime {ort.__version__} CPU, OnnxSlim {onnxslim.__version__}; ratio {args.ratio}; speedup = "
             "p50 pruned / p50 post-pass (1 thread, interleaved with rotated order, ORT ALL at load), median over "
             "repeats (range); session start = median ms to create an InferenceSession from the file (ORT ALL, interleaved). Kept = interface, IR and opset unchanged, outputs equal the pruned model's on 3 seeded "
             "inputs.", "",
             "| model | trivial ops, original | trivial ops, pruned | OnnxSlim | OnnxSlim speedup | ORT offline BASIC "
             "(cpu) | ORT offline speedup | session start ms: pruned / slim / ORT offline |", "|---|---|---|---|---:|---|---:|---:|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    write(args.out, "\n".join(lines), raw, threads=1)


if __name__ == "__main__":
    main()
