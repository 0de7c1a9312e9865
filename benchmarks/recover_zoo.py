"""Recovery on the zoo's keyword spotter and CTC recognizer: reconstruction + lstsq alone against
the same models after `--recover` (distillation from the original on the unlabeled calibration
clips); task metric on held-out voices, latency of all variants interleaved (ONNX Runtime CPU,
1 thread, p50), recovery time and the process's peak memory.

Pruning calibrates on the model's calib set. Recovery reads the calib set plus, with --unlabeled,
that many extra *unlabeled* clips of training voices (models/recover_data.py: new renditions,
waveform-augmented, synthesized once into ~/.cache/onnxprune/recover-synth/; their words are never
read); it keeps 20 % of its data for early stopping. The metric is on the eval set (voices never
seen in training, calibration or recovery). A recovered model has the pruned model's graph, so its
latency is the pruned model's. --widths prunes to given per-group widths (reconstruction scores
pick the channels) instead of a uniform ratio: e.g. the keyword spotter's stem conv costs more
than its MACs say, and widths that are multiples of 16 suit onnxruntime's blocked conv kernels.

Needs: the [recover] extra (`pip install -e ".[recover]"`: torch, onnx2torch); the zoo's models and
clips are committed. Writes recover_<case>.md and .json into --out (a folder; default benchmarks/out/).

    python benchmarks/recover_zoo.py [kws|ctc ...] [--ratios kws=0.5,0.625 ...] [--widths kws=16,16,32,48,64 ...]
                                     [--unlabeled kws=2000,ctc=400] [--seconds 240] [--runs 300]
                                     [--out benchmarks/results]
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path

from _common import OUT, REPO as ROOT, parser, write, zoo_cases

from onnxprune.api import PruneConfig, check_verified, prune  # noqa: E402
from onnxprune.bench.evaluate import BenchConfig, run_bench  # noqa: E402
from onnxprune.core.io import load_model, save_model  # noqa: E402
from onnxprune.core.runtime import make_session  # noqa: E402
from onnxprune.prune.pipeline import PREPARE, run  # noqa: E402
from onnxprune.prune.plan import group_names, make_plan  # noqa: E402
from onnxprune.data import DataConfig, load_examples  # noqa: E402
from onnxprune.recover import RecoverConfig, recover_pruned  # noqa: E402

CASES = zoo_cases()
CASES["kws"]["ratios"], CASES["ctc"]["ratios"] = (0.5, 0.625), (0.375, 0.5)


def main() -> None:
    ap = parser(__doc__, "")
    ap.set_defaults(out=OUT)
    ap.add_argument("cases", nargs="*", default=list(CASES))
    ap.add_argument("--ratios", action="append", default=[], help="CASE=R1,R2 (default: kws=0.5,0.625 ctc=0.375,0.5)")
    ap.add_argument("--widths", action="append", default=[],
                    help="CASE=W1,W2,...: kept channels per prunable group (inspect's order), one plan (repeatable)")
    ap.add_argument("--unlabeled", default="", help="CASE=N,...: extra unlabeled clips for recovery (default none)")
    ap.add_argument("--seconds", type=float, default=240.0, help="Recovery time budget per model.")
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=300)
    args = ap.parse_args()
    ratios = {k: tuple(float(r) for r in v.split(",")) for k, v in (s.split("=") for s in args.ratios)}
    widths: dict = {}
    for k, v in (s.split("=") for s in args.widths):
        widths.setdefault(k, []).append(tuple(int(w) for w in v.split(",")))
    extra = {k: int(v) for k, v in (s.split("=") for s in args.unlabeled.split(",") if s)}
    for name in args.cases:
        plans = [("ratio", r) for r in ratios.get(name, () if name in widths else CASES[name]["ratios"])]
        run_case(name, CASES[name], plans + [("widths", w) for w in widths.get(name, [])], extra.get(name, 0), args)


def unlabeled_feeds(name: str, case: dict, count: int) -> list[dict]:
    """The front-end's features of `count` unlabeled clips of training voices (models/recover_data.py)."""
    from recover_data import ctc_utterances, kws_clips

    waves = kws_clips(count) if name == "kws" else ctc_utterances(count)
    front = make_session(case["front"])
    src, dst = front.get_inputs()[0].name, front.get_outputs()[0].name
    return [{"logmel": front.run([dst], {src: w[None, :].astype("float32")})[0]} for w in waves]


def width_plan(model, widths, calib, shapes):
    """Reconstruction scores, then per-group widths (prunable groups in inspect's order)."""
    cfg = PruneConfig(criterion="reconstruction", compensate="lstsq", shapes=shapes, calibration=calib)
    st = run(model, cfg, PREPARE)
    names = group_names(st.analysis)
    groups = [g for g in st.analysis.groups if g.prunable]
    if len(groups) != len(widths):
        raise SystemExit(f"error: --widths needs {len(groups)} widths ({', '.join(names[g.id] for g in groups)})")
    ratios = {names[g.id]: 1.0 - w / g.size for g, w in zip(groups, widths)}
    return make_plan(st.analysis, st.scores, ratio=0.0, global_ranking=False, round_to=1,
                     fingerprint=st.fingerprint, ratios=ratios)


def run_case(name: str, case: dict, plans, n_extra: int, args) -> None:
    model = load_model(case["model"])
    calib = [ex.feeds for ex in load_examples(model, DataConfig(str(case["data"] / "calib" / "manifest.jsonl"),
                                                                frontend=case["front"]))]
    recovery_feeds = calib + (unlabeled_feeds(name, case, n_extra) if n_extra else [])
    tmp = Path(tempfile.mkdtemp(prefix=f"recover-{name}-"))
    variants, rows = [("original", str(case["model"]))], [{"model": "original"}]
    for kind, value in plans:
        if kind == "ratio":
            cfg, tag = PruneConfig(ratio=value, criterion="reconstruction", compensate="lstsq", shapes=case["shapes"],
                                   calibration=calib), f"r={value:g}"
        else:
            cfg = PruneConfig(plan=width_plan(model, value, calib, case["shapes"]), criterion="reconstruction",
                              compensate="lstsq", shapes=case["shapes"], calibration=calib)
            tag = "widths " + "/".join(map(str, value))
        result = prune(model, config=cfg)
        check_verified(result)
        start = time.perf_counter()
        rec = recover_pruned(model, result, recovery_feeds, RecoverConfig(seconds=args.seconds, steps=args.steps,
                                                                          seed=0))
        seconds = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        for label, m in ((f"{tag} reconstruction+lstsq", result.model),
                         (f"{tag} reconstruction+lstsq+recover", rec.model)):
            path = tmp / f"{len(variants):02d}.onnx"
            save_model(m, path)
            variants.append((label, str(path)))
        ratio = value if kind == "ratio" else "/".join(map(str, value))
        rows.append({"model": variants[-2][0], "ratio": ratio})
        rows.append({"model": variants[-1][0], "ratio": ratio, "recover_seconds": round(seconds, 1),
                     "peak_rss_mb": round(peak_mb), **{f"recover_{k}": v for k, v in rec.report().items()}})
        print(f"{name} {tag}: recovery {seconds:.0f}s ({rec.steps} steps, {rec.stop}), peak RSS {peak_mb:.0f} MB, "
              f"held-out top-1 agreement {rec.before['top1_agreement']:.1f}% -> {rec.after['top1_agreement']:.1f}%",
              flush=True)
    bench = run_bench([p for _, p in variants], BenchConfig(
        threads=1, runs=args.runs, warmup=50, memory=False, names=tuple(n for n, _ in variants),
        data=DataConfig(str(case["data"] / "eval" / "manifest.jsonl"), frontend=case["front"]), task=case["task"]))
    key = case["metric"]
    for row, m in zip(rows, bench["models"]):
        row.update({"params": m["params"], "macs": m["macs"], "p50_ms": m["latency"]["p50_ms"],
                    "speedup": m["speedup"], key: m["task"][key],
                    "top1_agreement": m.get("fidelity", {}).get("top1_agreement", 1.0)})
    report(name, key, rows, args, case, len(calib), n_extra)


def report(name, key, rows, args, case, n_calib, n_extra) -> None:
    data = f"the calib set ({n_calib})" + (f" + {n_extra} unlabeled clips of training voices" if n_extra else "")
    lines = [f"Case {name}, recovery budget {args.seconds:g} s: ONNX Runtime CPU, 1 thread, p50 of {args.runs} "
             f"interleaved runs; {key} on the held-out-voice eval set ({case['data'].relative_to(ROOT)}/eval); "
             f"pruning calibrates on the calib set; recovery reads {data} (20 %, at most 512, held out for early stopping).",
             "", f"| model | params | MACs | p50 ms | speedup | {key} | top-1 agreement with original | "
                 "recovery s | peak RSS MB |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['params']:,} | {r['macs'] / 1e6:.2f}M | {r['p50_ms']:.3f} | "
                     f"{r['speedup']:.2f}x | {100 * r[key]:.1f}% | {100 * r['top1_agreement']:.1f}% | "
                     f"{r.get('recover_seconds', '')} | {r.get('peak_rss_mb', '')} |")
    write(Path(args.out) / f"recover_{name}.md", "\n".join(lines), rows, threads=1)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
