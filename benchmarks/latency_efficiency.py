"""Does measured speed follow the MACs removed? Latency efficiency = measured speedup / MAC reduction.

For each model (the bundled KWS, the torch fixtures in models/fixtures, and the cached real models
silero_vad_v6 and embedding_model when present) this prunes at ratio 0.5 (verified), times original
and pruned with `onnxprune.bench.run_bench` (interleaved, rotated order) on ONNX Runtime CPU at 1
thread and at all threads, `--repeats` times, and reports the median speedup over repeats. An
onnxruntime profile of both models (1 thread) splits kernel time into MAC-bearing ops
(Conv/Gemm/MatMul/LSTM/GRU/...) and the rest; Amdahl's law then gives the speedup to expect if only
the MAC-bearing kernels shrank with their MACs, which is what an efficiency below 1 is compared with.
The ResNet KWS built in code (108 MMAC, the one model here over 100 MMAC) is also compared
with its dense twin: the same recipe built at the pruned widths / block counts, timed interleaved
with the pruned model (a ratio of 1.000 = no cost left behind by pruning).
With `--depth`, each model with removable residual blocks also gets a depth row: the least
sensitive half of its blocks dropped (verified; sensitivity = nmse on 8 seeded inputs), timed the
same way (no profile). Every row lists the op types pruning *added* to the graph ("none": the
pruned graph is the exporter's graph with smaller tensors, i.e. what a dense export at the same
widths gives; see docs/depth_lowrank.md for why re-randomizing the same graph would prove nothing).

Needs: the pretrained silero_vad_v6 and embedding_model (models/fetch.py; PyPI access once); the ResNet KWS
is built here.

    python benchmarks/latency_efficiency.py [--runs 300] [--repeats 3] [--depth] [--out benchmarks/results/latency_efficiency.md]
"""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path

from _common import REPO as ROOT, need_models, parser, spread, write

import onnx  # noqa: E402

import onnxprune  # noqa: E402
from onnxprune.bench import BenchConfig, run_bench  # noqa: E402
from onnxprune.core.runtime import random_feeds  # noqa: E402

MAC_OPS = {"Conv", "FusedConv", "NchwcConv", "ConvTranspose", "Gemm", "MatMul", "FusedMatMul", "FusedGemm",
           "LSTM", "GRU", "RNN", "DynamicQuantizeLSTM", "QLinearConv", "MatMulInteger"}


def cases(tmp: Path):
    from build_resnet_kws import build

    resnet = tmp / "resnet_kws.onnx"
    onnx.save(build(), resnet)
    yield "resnet_kws (built, 108 MMAC)", resnet, {}
    yield "kws_dscnn (bundled)", ROOT / "onnxprune" / "assets" / "kws_dscnn.onnx", {}
    for path in sorted((ROOT / "models" / "fixtures").glob("*.onnx")):
        yield path.stem, path, {}
    shapes = {"silero_vad_v6": {"input": [1, 576]}, "embedding_model": {"input_1": [1, 76, 32, 1]}}
    for name, path in need_models(*shapes).items():
        yield name, path, shapes[name]


def kernel_profiles(paths: list[Path], shapes_list: list[dict], runs: int) -> list[dict]:
    """Per model (profiled together, interleaved, 1 thread): median wall µs of a run and median
    microseconds per run of each op type's kernels (onnxprune.bench.profile, as `bench --profile`)."""
    from onnxprune.bench.profile import op_type_profiles
    from onnxprune.core.runtime import make_session

    feeds = [random_feeds(make_session(str(p)), sh, seed=0) for p, sh in zip(paths, shapes_list)]
    return op_type_profiles([str(p) for p in paths], feeds, runs=runs, threads=1)


def run_overhead_us(path: Path, shapes: dict, runs: int) -> float:
    """Median µs of session.run on a model that only passes its inputs through (Identity), with the
    same inputs: the fixed cost of a call that no pruning can remove."""
    import time

    import onnxruntime as ort
    from onnx import helper

    src = onnxprune.load_model(path)
    inits = {t.name for t in src.graph.initializer}
    ins = [v for v in src.graph.input if v.name not in inits]
    nodes = [helper.make_node("Identity", [v.name], [v.name + "_out"]) for v in ins]
    outs = [helper.make_tensor_value_info(v.name + "_out", v.type.tensor_type.elem_type, None) for v in ins]
    model = helper.make_model(helper.make_graph(nodes, "passthrough", list(ins), outs),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feeds = random_feeds(sess, shapes, seed=0)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def split(profile: dict, wall_us: float, overhead_us: float) -> tuple[float, float, float]:
    """(MAC-op kernels, other kernels, fixed per-call cost) in µs per run. Profiling slows kernels
    down, so the profile only gives the split between op types; it is scaled to the unprofiled
    p50 minus the fixed cost measured on a pass-through model."""
    mac = sum(v for k, v in profile["ops_us"].items() if k in MAC_OPS)
    other = sum(v for k, v in profile["ops_us"].items() if k not in MAC_OPS)
    scale = max(0.0, wall_us - overhead_us) / max(mac + other, 1e-9)
    return mac * scale, other * scale, min(overhead_us, wall_us)


def _pruned_shapes(result) -> dict:
    shapes = {k: list(v) for k, v in result.analysis.input_shapes.items()}
    for io in result.resized_io:
        if io["kind"] == "input":
            shapes[io["name"]][io["axis"]] = io["new"]
    return shapes


def timed(path, pruned, shapes, mac_ratio: float, args) -> dict:
    """Speedups of `pruned` over `path` at 1 thread and all threads, `args.repeats` interleaved runs each."""
    entry = {}
    for threads in (1, 0):
        speedups, p50s = [], []
        for _ in range(args.repeats):
            cfg = BenchConfig(threads=threads, warmup=20, runs=args.runs, shapes=shapes, memory=False,
                              fidelity_inputs=1)
            b = run_bench([str(path), str(pruned)], cfg)
            speedups.append(b["models"][1]["speedup"])
            p50s.append((b["models"][0]["latency"]["p50_ms"], b["models"][1]["latency"]["p50_ms"]))
        key = "1 thread" if threads == 1 else "all threads"
        entry[key] = {"speedup_median": statistics.median(speedups), "speedups": speedups, "p50_ms": p50s,
                      "efficiency": statistics.median(speedups) / mac_ratio}
    return entry


def ops_added(original, pruned) -> list[str]:
    """Op types the pruned graph has more of than the original (pruning should add none)."""
    from collections import Counter

    extra = Counter(n.op_type for n in pruned.graph.node) - Counter(n.op_type for n in original.graph.node)
    return sorted(f"{k} x{v}" for k, v in extra.items())


def dense_twin(name: str, pruned, tmp: Path) -> Path | None:
    """The same recipe built dense at the pruned model's widths and depth (the honest "dense export
    at the same widths"), where the recipe can express them: the ResNet KWS (models/build_resnet_kws.py,
    one width per stage, a block count per stage). Other models: None here; the zoo's torch recipes
    are re-exported at the pruned widths by benchmarks/dense_twin.py."""
    if not name.startswith("resnet_kws"):
        return None
    from build_resnet_kws import build

    w = {i.name: i.dims for i in pruned.graph.initializer}
    out = {n.name: w[n.input[1]][0] for n in pruned.graph.node if n.op_type == "Conv" and n.input[1] in w}
    stages = [sorted({c for k, c in out.items() if k.startswith(f"s{s}b")}) for s in (0, 1)]
    stem = [c for k, c in out.items() if k.startswith("stem")]
    if len(stem) != 1 or any(len(c) != 1 for c in stages) or stem[0] != stages[0][0]:
        return None  # widths differ inside a stage: the recipe cannot express them
    blocks = tuple(len({k.split(".")[0] for k in out if k.startswith(f"s{s}b")}) for s in (0, 1))
    path = tmp / f"resnet_kws_dense_{stages[0][0]}_{stages[1][0]}_{blocks[0]}_{blocks[1]}.onnx"
    onnx.save(build(widths=(stages[0][0], stages[1][0]), blocks=blocks), path)
    return path


def twin_cell(name: str, pruned_model, pruned_path: Path, shapes, args, tmp: Path, entry: dict) -> str:
    twin = dense_twin(name, pruned_model, tmp)
    if twin is None:
        return "n/a"
    t = timed(pruned_path, twin, shapes, 1.0, args)  # speedup = p50 pruned / p50 dense twin
    entry["dense_twin"] = {"path": twin.name, **t}
    one, allt = t["1 thread"]["speedup_median"], t["all threads"]["speedup_median"]
    return f"{1 / one:.3f} / {1 / allt:.3f}"


def depth_row(name, path, shapes, args, tmp) -> list[str] | None:
    """The least sensitive half of the removable blocks dropped, timed like the width rows."""
    from onnxprune.search.depth import block_sensitivity, least_sensitive

    model = onnxprune.load_model(path)
    rows = block_sensitivity(model, shapes=shapes, count=8)
    n = sum(r["removable"] for r in rows)
    if not n:
        return None
    result = onnxprune.prune(model, ratio=0.0, shapes=shapes, drop_blocks=tuple(least_sensitive(rows, (n + 1) // 2)))
    assert all(s["verify"]["passed"] for s in result.steps), result.steps
    out = tmp / f"{path.stem}_depth.onnx"
    result.save(out)
    mac_ratio = result.before["macs"] / max(1, result.after["macs"])
    entry = timed(path, out, shapes, mac_ratio, args)
    entry.update(blocks=list(result.plan.blocks), mac_reduction=mac_ratio, macs_before=result.before["macs"],
                 ops_added=ops_added(model, result.model))
    twin = twin_cell(name, result.model, out, shapes, args, tmp, entry)
    one, allt = entry["1 thread"], entry["all threads"]
    row = [f"{name}, depth: {', '.join(entry['blocks'])}", f"{mac_ratio:.2f}x",
           f"{statistics.median(p[0] for p in one['p50_ms']):.3f}", spread(one["speedups"], "{:.2f}", "x"),
           f"**{one['efficiency']:.2f}**", spread(allt["speedups"], "{:.2f}", "x"), f"**{allt['efficiency']:.2f}**",
           "-", "-", "-", "-", "-", "-", ", ".join(entry["ops_added"]) or "none", twin]
    return row, entry


def main():
    ap = parser(__doc__, "latency_efficiency.md")
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--depth", action="store_true", help="add a depth row per model with removable blocks")
    ap.add_argument("--models", default=None, help="comma-separated substrings: only the matching models")
    args = ap.parse_args()
    rows, raw = [], {}
    tmp = Path(tempfile.mkdtemp(prefix="onnxprune-eff-"))
    for name, path, shapes in cases(tmp):
        if args.models and not any(k in name for k in args.models.split(",")):
            continue
        result = onnxprune.prune(path, ratio=args.ratio, shapes=shapes)
        assert result.verify.passed, result.verify.message
        pruned = tmp / f"{path.stem}_pruned.onnx"
        result.save(pruned)
        mac_ratio = result.before["macs"] / max(1, result.after["macs"])
        entry = {"macs_before": result.before["macs"], "macs_after": result.after["macs"], "mac_reduction": mac_ratio}
        entry.update(timed(path, pruned, shapes, mac_ratio, args))
        entry["ops_added"] = ops_added(onnxprune.load_model(path), result.model)
        twin = twin_cell(name, result.model, pruned, shapes, args, tmp, entry)
        prof_o, prof_p = kernel_profiles([path, pruned], [result.analysis.input_shapes,
                                                          _pruned_shapes(result)], args.runs)
        wall_o = statistics.median(p[0] for p in entry["1 thread"]["p50_ms"]) * 1e3
        wall_p = statistics.median(p[1] for p in entry["1 thread"]["p50_ms"]) * 1e3
        overhead = run_overhead_us(path, result.analysis.input_shapes, args.runs)
        (mac_o, oth_o, out_o), (mac_p, oth_p, out_p) = split(prof_o, wall_o, overhead), split(prof_p, wall_p, overhead)
        bound = wall_o / max(1e-9, wall_o - mac_o + mac_o / mac_ratio)
        top = sorted(((v, k) for k, v in prof_o["ops_us"].items() if k not in MAC_OPS), reverse=True)[:3]
        entry.update(profile_original=prof_o, profile_pruned=prof_p, amdahl_bound=bound, call_overhead_us=overhead,
                     split_us={"original": [mac_o, oth_o, out_o], "pruned": [mac_p, oth_p, out_p]})
        raw[name] = entry
        one, allt = entry["1 thread"], entry["all threads"]
        rows.append([name, f"{mac_ratio:.2f}x", f"{statistics.median(p[0] for p in one['p50_ms']):.3f}",
                     spread(one["speedups"], "{:.2f}", "x"), f"**{one['efficiency']:.2f}**",
                     spread(allt["speedups"], "{:.2f}", "x"),
                     f"**{allt['efficiency']:.2f}**", f"{mac_o:.0f} → {mac_p:.0f}", f"{mac_o / max(mac_p, 1e-9):.2f}x", f"{oth_o:.0f} → {oth_p:.0f}",
                     f"{out_o:.0f}", f"{bound:.2f}x",
                     ", ".join(f"{k} {v:.0f}" for v, k in top), ", ".join(entry["ops_added"]) or "none", twin])
        print(" | ".join(rows[-1]), flush=True)
        found = depth_row(name, path, shapes, args, tmp) if args.depth else None
        if found:
            rows.append(found[0])
            raw[name + " (depth)"] = found[1]
            print(" | ".join(rows[-1]), flush=True)
    import onnxruntime as ort

    lines = [f"ONNX Runtime {ort.__version__} CPU, {os.cpu_count()} cores; ratio {args.ratio}, "
             "round-to 4, l1; original and pruned interleaved with rotated order; speedup = median over repeats of "
             "p50 original / p50 pruned, with the range over repeats; efficiency = median speedup / MAC reduction.", "",
             "Where the time goes (1 thread, original → pruned, µs per run): the fixed cost of a session.run call is "
             "the p50 of a pass-through (Identity) model with the same inputs; the rest of the unprofiled p50 is "
             "split between MAC-bearing kernels (Conv/Gemm/MatMul/LSTM/GRU and fused forms) and all other kernels "
             "in the proportions of an onnxruntime profile (medians per node, original and pruned interleaved). "
             "Amdahl bound = speedup if only the MAC kernels shrank, by exactly the MAC reduction.", "",
             "| model | MAC reduction | p50 ms original (1 thr) | speedup 1 thread | efficiency 1 thread | speedup all threads "
             "| efficiency all threads | MAC kernels µs | MAC-kernel speedup | other kernels µs | fixed call cost µs | Amdahl bound | largest other ops (orig, µs) | op types added by pruning "
             "| pruned / dense twin p50, 1 thr / all thr |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    write(args.out, "\n".join(lines), raw)


if __name__ == "__main__":
    main()
