"""Compare onnxprune with onnxsim 0.8.1's structured pruning on the same models, with one harness.

Per model (the five cached by models/fetch.py and the bundled kws_dscnn), ratio and tool: float parameters
before/after; onnx's full checker and stale value_info; whether onnxruntime runs it with the original input and
output shapes; layers pruned/skipped, with or without a reason; max |pruned - reference| (reference = original
with the consumer slices of removed channels zeroed; onnxsim's is derived from its pruned weights) and max
|pruned - original|; whether onnxsim at sparsity 0 is bit identical; transform wall time, median of 3.
onnxsim runs in a child Python (this file with --worker): this one when onnxsim is importable here,
else the one given with --onnxsim-python.

Needs: onnxsim 0.8.1, installed by `pip install -e ".[compare]"` into this environment (or in another
venv, passed with --onnxsim-python PATH), and the pretrained models (models/fetch.py; PyPI access once).

    python benchmarks/compare_onnxsim.py [--onnxsim-python PATH] [--out benchmarks/results/compare_onnxsim.md]
"""
from __future__ import annotations

import argparse, copy, importlib.util, json, os, platform, statistics, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from _common import REPO, need_models, parser, write
# model -> concrete shapes of its dynamic inputs (used by both tools and every run)
MODELS = {"silero_vad_v6": {"input": [1, 576]}, "embedding_model": {"input_1": [1, 76, 32, 1]},
          "alexa_v0.1": {}, "hey_jarvis_v0.1": {}, "melspectrogram": {"input": [1, 1760]}, "kws_dscnn": {}}
SIM_NORM = "l2"  # onnxsim's default importance_norm (onnxprune's default criterion is l1)


def model_path(name: str) -> str:
    if name == "kws_dscnn":
        return str(REPO / "onnxprune" / "assets" / "kws_dscnn.onnx")
    return str(need_models(name)[name])


def timed(fn, repeats=3):
    fn()  # warm-up; then each run is (start, result, end), evaluated left to right
    runs = [(time.perf_counter(), fn(), time.perf_counter()) for _ in range(repeats)]
    return runs[-1][1], [end - start for start, _, end in runs]


def guarded(fn) -> dict:
    try:
        return fn()
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


# ------------------------------------------------------------------ onnxsim side, in its own venv
def worker(job_file: str) -> None:
    import onnxsim
    from onnxsim import pruning as P
    job = json.loads(Path(job_file).read_text())
    result = {"onnxsim_version": getattr(onnxsim, "__version__", "?"), "models": {}}

    def prune(m, ratio, file):
        pruned, times = timed(lambda: P.apply_structured_pruning(m, sparsity=ratio, importance_norm=SIM_NORM))
        onnx.save(pruned, file)
        return {"file": file, "seconds": times}

    def analyze(m, ratio=0.5):  # onnxsim's own dry-run report: matched layers and not_eligible nodes (no reasons)
        rep = P.analyze_pruning_sensitivity(m, P.apply_structured_pruning, sparsity=ratio, importance_norm=SIM_NORM)
        return {"layers": [{"label": x.label, "family": x.family, "total": x.total, "drop": x.would_drop}
                           for x in rep.layers], "not_eligible": rep.not_eligible}

    for name, path in job["models"].items():
        m, tmp = onnx.load(path), job["out_dir"]
        entry = result["models"][name] = {"ratios": {}, "probes": {}}
        for r in job["ratios"]:
            entry["ratios"][str(r)] = {**guarded(lambda: prune(m, r, f"{tmp}/{name}_{r}.onnx")),
                                       "analyze": guarded(lambda: analyze(m, r))}
        g, maxes = copy.deepcopy(m), {n.output[0]: n.input[0] for n in m.graph.node if n.op_type == "Max"}
        for n in [n for n in g.graph.node if n.op_type == "Max"]:  # diagnostic only: bypass Max(x, const)
            g.graph.node.remove(n)
        for n in g.graph.node:
            n.input[:] = [maxes.get(x, x) for x in n.input]
        entry["probes"] = {  # the model given full value_info; after onnxsim.simplify (folds BatchNorm)
            "value_info_inferred": guarded(lambda: prune(onnx.shape_inference.infer_shapes(m), 0.5, f"{tmp}/{name}_vi.onnx")),
            "simplify_then_prune": guarded(lambda: analyze(onnxsim.simplify(m)[0])),
            "without_Max_nodes": guarded(lambda: analyze(g)) if maxes else None}
    Path(job["result"]).write_text(json.dumps(result))


# ------------------------------------------------------------------ one harness for both tools
def graphs(g):
    return [g] + [s for n in g.node for a in n.attribute for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs)
                  for s in graphs(sub)]


def float_params(m) -> int:  # elements of float initializers and Constant tensors, in subgraphs too
    tensors = [t for g in graphs(m.graph) for t in list(g.initializer) + [
        a.t for n in g.node if n.op_type == "Constant" for a in n.attribute if a.name == "value"]]
    return sum(int(np.prod(t.dims, dtype=np.int64)) for t in tensors
               if onnx.helper.tensor_dtype_to_np_dtype(t.data_type).kind == "f")


def checker(m) -> str:
    try:
        onnx.checker.check_model(m, full_check=True)
        return "pass"
    except Exception as exc:
        return "FAIL: " + (str(exc).strip().splitlines() or [type(exc).__name__])[0][:240]


def stale_value_info(m) -> list[str]:
    dims = lambda vi: [d.dim_value or None for d in vi.type.tensor_type.shape.dim]  # noqa: E731
    bare = copy.deepcopy(m)
    del bare.graph.value_info[:]
    inferred = {v.name: dims(v) for v in onnx.shape_inference.infer_shapes(bare).graph.value_info}
    return [f"{v.name}: declared {dims(v)}, inferred {inferred[v.name]}" for v in m.graph.value_info
            if v.name in inferred and (len(dims(v)) != len(inferred[v.name])
                                       or any(a and b and a != b for a, b in zip(dims(v), inferred[v.name])))]


def outputs(m, shapes):
    import onnxruntime as ort
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    dims = {i.name: shapes.get(i.name) or [d if isinstance(d, int) else 1 for d in i.shape] for i in sess.get_inputs()}
    rngs = [np.random.default_rng(seed) for seed in (0, 1)]
    return [sess.run(None, {k: rng.standard_normal(v).astype(np.float32) for k, v in dims.items()}) for rng in rngs]


def derive_reference(orig, pruned):
    """The original with the consumer slices of removed channels zeroed, read off the pruned weights."""
    def kept(o, p, axis):  # indices of o's slices along axis that survive in p (other axes may be cut too)
        O, Q = (np.moveaxis(t, axis, 0).reshape(t.shape[axis], -1) for t in (o, p))
        def is_subsequence(q, r):  # q is r with some entries removed, order kept
            j = 0
            for v in r:
                j += bool(j < len(q) and v == q[j])
            return j == len(q)
        out = []
        for q in Q:  # slices keep their order, so match greedily
            out.append(next((j for j in range(out[-1] + 1 if out else 0, len(O)) if is_subsequence(q, O[j])), None))
            if out[-1] is None:
                return None
        return out
    new, ref = {t.name: numpy_helper.to_array(t) for t in pruned.graph.initializer}, copy.deepcopy(orig)
    for t in ref.graph.initializer:
        o, p = numpy_helper.to_array(t), new.get(t.name)
        if p is None:
            return None, f"initializer {t.name} is missing from the pruned model"
        for n in (n for n in ref.graph.node if o.shape != p.shape and n.input[1:2] == [t.name]):
            trans = any(a.name == "transB" and a.i for a in n.attribute)  # weight axis that reads input channels:
            axis = {"Gemm": int(trans), "MatMul": o.ndim - 2, "Conv": 1, "ConvTranspose": 0, "LSTM": 2,
                    "GRU": 2}.get(n.op_type)
            if axis is None or o.shape[axis] == p.shape[axis]:
                continue
            keep = kept(o, p, axis)
            if keep is None:
                return None, f"cannot match the slices of {t.name} along axis {axis}"
            z, idx = np.zeros_like(o), [slice(None)] * o.ndim
            idx[axis] = keep
            z[tuple(idx)] = o[tuple(idx)]
            t.CopyFrom(numpy_helper.from_array(z, t.name))
    return ref, None


def rnn_weights(m):
    inits = {t.name: list(t.dims) for t in m.graph.initializer}
    return {n.name: {"hidden_size": [a.i for a in n.attribute if a.name == "hidden_size"],
                     "W,R,B": [inits.get(x) for x in n.input[1:4]]}
            for n in m.graph.node if n.op_type in ("LSTM", "GRU", "RNN")}


def evaluate(orig, pruned, shapes, base, reference=None):
    before = {t.name: list(t.dims) for t in orig.graph.initializer}
    r = {"params_before": float_params(orig), "params_after": float_params(pruned), "checker": checker(pruned),
         "value_info": [len(orig.graph.value_info), len(pruned.graph.value_info)],
         "stale_value_info": stale_value_info(pruned), "rnn": rnn_weights(pruned),
         "changed_initializers": {t.name: [before.get(t.name), list(t.dims)]
                                  for t in pruned.graph.initializer if before.get(t.name) != list(t.dims)}}
    try:
        got = outputs(pruned, shapes)
    except Exception as exc:
        return {**r, "ort": "FAIL: " + str(exc)[:240]}
    def max_diff(a, b):  # over both seeded runs and every output
        return max(float(np.max(np.abs(x.astype(np.float64) - y), initial=0)) for u, v in zip(a, b) for x, y in zip(u, v))
    same = all(x.shape == y.shape for x, y in zip(got[0], base[0]))
    r.update(ort="runs, same output shapes" if same else "runs, OUTPUT SHAPES CHANGED",
             diff_vs_original=max_diff(got, base),
             bit_identical_to_original=all(np.array_equal(x, y) for a, b in zip(got, base) for x, y in zip(a, b)))
    if reference is None:
        reference, r["reference_note"] = derive_reference(orig, pruned)
    if reference is not None:
        r["diff_vs_reference"] = max_diff(got, outputs(reference, shapes))
    return r


def run_onnxprune(orig, shapes, ratio, base):
    import onnxprune, traceback
    try:
        res, times = timed(lambda: onnxprune.prune(orig, ratio=ratio, shapes=shapes))
        _, quick = timed(lambda: onnxprune.prune(orig, ratio=ratio, shapes=shapes, verify=False))
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-2000:]}
    r = evaluate(orig, res.model, shapes, base, reference=res.reference)
    r["derived_reference_diff"] = evaluate(orig, res.model, shapes, base).get("diff_vs_reference")  # harness check
    return {**r, "seconds": statistics.median(times), "seconds_without_verify": statistics.median(quick),
            "own_verify": res.verify.to_dict() if res.verify else None,
            "pruned": [f"{g['name']} {g['size']}->{g['kept']}" for g in res.groups if g["kept"] < g["size"]],
            "skipped": [{"name": g["name"], "reason": "; ".join(g["blocked_by"] or []) or None}
                        for g in res.groups if g["kept"] >= g["size"]]}


def run_onnxsim(orig, shapes, ratio, base, s):
    if "error" in s:
        return s
    pruned, layers = onnx.load(s["file"]), s["analyze"].get("layers", [])
    return {**evaluate(orig, pruned, shapes, base), "seconds": statistics.median(s["seconds"]),
            "model_bytes_identical": pruned.SerializeToString() == orig.SerializeToString(), "report": s["analyze"],
            "pruned": [f"{x['label']} {x['total']}->{x['total'] - x['drop']}" for x in layers if x["drop"]],
            "skipped": [{"name": x, "reason": None} for x in s["analyze"].get("not_eligible", [])]
            + [{"name": x["label"], "reason": None} for x in layers if not x["drop"]]}


def markdown(res, cmd) -> str:
    fmt = lambda x: "n/a" if x is None else "0" if x == 0 else f"{x:.2e}"  # noqa: E731
    lines = [f"# onnxprune vs onnxsim {res['onnxsim_version']}: structured pruning", "", "```", cmd, "```", "",
             f"{res['env']}. onnxsim `apply_structured_pruning(sparsity=ratio, importance_norm='{SIM_NORM}')`; onnxprune "
             "`prune(ratio=ratio)` (criterion l1; its time includes verification). Reference = original with consumer "
             "slices of removed channels zeroed (0 or float noise: kept channels compute what they did). An onnxprune "
             "group is a set of coupled channels, an onnxsim layer a matched producer chain. Raw data: the .json.", "",
             "| model | ratio | tool | params before → after | full checker | onnxruntime | pruned / skipped "
             "(with a reason) | max abs diff vs reference | vs original | time (median of 3) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, per in res["models"].items():
        for key, r in per["runs"].items():
            ratio, tool = key.split("/")
            if "error" in r:
                lines.append(f"| {name} | {ratio} | {tool} | ERROR: {r['error'][:200]} | | | | | | |")
                continue
            b, a, skipped = r["params_before"], r["params_after"], r["skipped"]
            ref = fmt(r["diff_vs_reference"]) if "diff_vs_reference" in r else f"n/a: {r.get('reference_note')}"
            lines.append(f"| {name} | {ratio} | {tool} | {b:,} → {a:,} ({100 * (a - b) / b:+.1f}%) | {r['checker']} "
                         f"| {r['ort']} | {len(r['pruned'])} / {len(skipped)} ({sum(bool(s['reason']) for s in skipped)}) "
                         f"| {ref} | {fmt(r.get('diff_vs_original'))} | {r['seconds'] * 1e3:.1f} ms |")
    lines += ["", "## Claims about onnxsim: what it did at ratio 0.5", "", "| model | onnxsim pruned | not eligible "
              "(no reason given) | after `onnxsim.simplify` (folds BatchNorm) | recurrent weights: original / onnxsim "
              "/ onnxprune | value_info before→after, stale, checker: as shipped / with inferred value_info "
              "| sparsity 0: bytes / outputs identical |", "|---|---|---|---|---|---|---|"]
    for name, m in res["models"].items():
        sim, vi, pr, zero = m["runs"]["0.5/onnxsim"], m["vi_probe"], m["sim_probes"], m["runs"]["0.0/onnxsim"]
        after = pr["simplify_then_prune"].get("error") or [
            f"{x['label']} {x['total']}->{x['total'] - x['drop']}" for x in pr["simplify_then_prune"]["layers"]]
        if pr.get("without_Max_nodes"):  # a matcher diagnostic: bypassing them changes the function
            after = f"{after}; with its Max(x, const) nodes bypassed: {len(pr['without_Max_nodes']['layers'])} layers"
        rnn = f"{m['rnn']} / {sim.get('rnn')} / {m['runs']['0.5/onnxprune'].get('rnn')}" if m["rnn"] else "none"
        vis = " / ".join(f"{r.get('value_info')}, {r.get('stale_value_info') or 'none'}, {r.get('checker')}"
                         for r in (sim, vi))
        lines.append(f"| {name} | {sim.get('pruned')} | {[x['name'] for x in sim.get('skipped', [])]} | {after} "
                     f"| {rnn} | {vis} | {zero.get('model_bytes_identical')} / {zero.get('bit_identical_to_original')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = parser(__doc__, "compare_onnxsim.md")
    ap.add_argument("--onnxsim-python", help="another venv's python with onnxsim==0.8.1 (default: this one, "
                    "when the [compare] extra is installed)")
    ap.add_argument("--ratios", default="0.5,0.25", help="0.5 is always included")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker)
    if args.onnxsim_python is None:
        if importlib.util.find_spec("onnxsim") is None:
            raise SystemExit('error: onnxsim is not installed here: pip install -e ".[compare]", or pass '
                             "--onnxsim-python with another environment's python that has onnxsim==0.8.1")
        args.onnxsim_python = sys.executable
    elif not Path(args.onnxsim_python).exists():
        raise SystemExit(f"error: --onnxsim-python {args.onnxsim_python}: no such file")
    import onnxprune, onnxruntime
    ratios = sorted({float(r) for r in args.ratios.split(",")} | {0.5}, reverse=True)
    paths = {name: model_path(name) for name in MODELS}
    res = {"ratios": ratios, "models": {},
           "env": f"Python {platform.python_version()}, onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}, "
                  f"onnxprune {getattr(onnxprune, '__version__', '?')}, {os.cpu_count()} CPUs"}
    with tempfile.TemporaryDirectory() as tmp:
        job = {"models": paths, "ratios": [0.0] + ratios, "out_dir": tmp, "result": f"{tmp}/onnxsim.json"}
        Path(f"{tmp}/job.json").write_text(json.dumps(job))  # the onnxsim half, in its own interpreter:
        subprocess.run([args.onnxsim_python, str(Path(__file__).resolve()), "--worker", f"{tmp}/job.json"], check=True)
        sim = json.loads(Path(job["result"]).read_text())
        res["onnxsim_version"] = sim["onnxsim_version"]
        for name, path in paths.items():
            orig, shapes, s = onnx.load(path), MODELS[name], sim["models"][name]
            base = outputs(orig, shapes)
            entry = res["models"][name] = {"path": path, "checker_original": checker(orig), "rnn": rnn_weights(orig),
                                           "runs": {}, "sim_probes": s["probes"]}
            for ratio in ratios:
                entry["runs"][f"{ratio}/onnxprune"] = run_onnxprune(orig, shapes, ratio, base)
                entry["runs"][f"{ratio}/onnxsim"] = run_onnxsim(orig, shapes, ratio, base, s["ratios"][str(ratio)])
            entry["runs"]["0.0/onnxsim"] = run_onnxsim(orig, shapes, 0.0, base, s["ratios"]["0.0"])
            vi = s["probes"]["value_info_inferred"]
            entry["vi_probe"] = vi if "error" in vi else evaluate(onnx.shape_inference.infer_shapes(orig),
                                                                  onnx.load(vi["file"]), shapes, base)
            print(f"{name}: done", file=sys.stderr)
    cmd = "python benchmarks/compare_onnxsim.py " + " ".join(sys.argv[1:])
    write(args.out, markdown(res, cmd), res)


if __name__ == "__main__":
    main()
