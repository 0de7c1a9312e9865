"""The zoo's keyword spotter and CTC recognizer: uniform ratios (criterion × compensation) vs
`auto` — task metric on held-out voices, measured latency. Reproduces the README's results tables.

Calibration (and auto's budget checks) use the model's calib set only: its deterministic 60/40
split (--holdout 0.4) gives calibration clips and a *dev* split for auto's budget (with --holdout
0.2 the dev split is 41 KWS clips / 12 utterances, whose noise auto overfits; see
`onnxprune.search.auto.budget_noise`); the reported metric is on
the eval set (voices never seen in training or calibration). All models of a case are timed in one
interleaved run (ONNX Runtime CPU, 1 thread, p50).

Needs: nothing beyond the install (the zoo's models and clips are committed). Writes zoo_<case>.md
and .json into --out (a folder; default benchmarks/out/); `--repeats N` times every variant N times
and quotes speedups as median (range), since `auto`'s choices follow measured timings.

    python benchmarks/zoo_results.py [kws|ctc ...] [--runs 500] [--repeats 3] [--out benchmarks/results]
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from _common import OUT, REPO as ROOT, parser, spread, write as write_result, zoo_cases

from onnxprune.api import PruneConfig, check_verified, prune  # noqa: E402
from onnxprune.search.auto import AutoConfig, auto_prune  # noqa: E402
from onnxprune.bench.evaluate import BenchConfig, run_bench  # noqa: E402
from onnxprune.data import DataConfig, load_examples, split_examples  # noqa: E402
from onnxprune.search.fidelity import held_out_examples  # noqa: E402
from onnxprune.core.io import load_model, save_model  # noqa: E402
from onnxprune.search.task_eval import TaskEvaluator  # noqa: E402

CASES = zoo_cases()


def main() -> None:
    ap = parser(__doc__, "")
    ap.set_defaults(out=OUT)
    ap.add_argument("cases", nargs="*", default=list(CASES))
    ap.add_argument("--repeats", type=int, default=1, help="time every variant this many times (speedup spread)")
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--ratios", default="0.25,0.375,0.5")
    ap.add_argument("--targets", default="1.25,1.5,2.0")
    ap.add_argument("--holdout", type=float, default=0.4, help="Fraction of the calib set for auto's dev split.")
    args = ap.parse_args()
    for name in args.cases:
        run_case(name, CASES[name], args)


def run_case(name: str, case: dict, args) -> None:
    model_path, FRONT, TASK, shapes = case["model"], case["front"], case["task"], case["shapes"]
    model = load_model(model_path)
    calib_data = DataConfig(str(case["data"] / "calib" / "manifest.jsonl"), frontend=FRONT, holdout=args.holdout)
    calib = [ex.feeds for ex in load_examples(model, split_examples(calib_data)[0])]
    tmp = Path(tempfile.mkdtemp(prefix="zoo-kws-"))
    variants = [("original", str(model_path), {})]

    def add(name, result, extra):
        check_verified(result)
        path = tmp / f"{len(variants):02d}.onnx"
        save_model(result.model, path)
        variants.append((name, str(path), extra))

    for ratio in [float(r) for r in args.ratios.split(",")]:
        for criterion, comp in (("l1", "none"), ("activation", "none"), ("activation", "lstsq"),
                                ("reconstruction", "lstsq")):
            cfg = PruneConfig(ratio=ratio, criterion=criterion, compensate=comp, shapes=shapes,
                              calibration=None if (criterion, comp) == ("l1", "none") else calib)
            add(f"uniform {ratio:g} {criterion}+{comp}", prune(model, config=cfg),
                {"kind": "uniform", "ratio": ratio, "criterion": criterion, "compensate": comp})
    dev = TaskEvaluator(model, held_out_examples(model, calib_data, count=1000, part=1), TASK)
    for target in [float(t) for t in args.targets.split(",")]:
        done = auto_prune(model, AutoConfig(goal="speedup", target=target, max_drop=1.0, metric="task", calib=16,
                                            runs=200, cache=False, max_evals=60),
                          PruneConfig(ratio=0.0, criterion="reconstruction", compensate="lstsq", shapes=shapes),
                          data=calib_data, evaluate=dev)
        add(f"auto {target:g}x reconstruction+lstsq", done.result,
            {"kind": "auto", "target": target, "reached": done.search.reached, "stop": done.search.stop_reason,
             "dev_accuracy": dev(done.result.model)["task"]})
    benches = [run_bench([p for _, p, _ in variants], BenchConfig(
        threads=1, runs=args.runs, warmup=50, memory=False, names=tuple(n for n, _, _ in variants),
        data=DataConfig(str(case["data"] / "eval" / "manifest.jsonl"), frontend=FRONT), task=TASK))
        for _ in range(max(1, args.repeats))]
    bench = benches[0]
    key = case["metric"]
    rows = []
    for i, (m, (_, _, extra)) in enumerate(zip(bench["models"], variants)):
        speedups = [b["models"][i]["speedup"] for b in benches]
        rows.append({"model": m["name"], **extra, "params": m["params"], "macs": m["macs"],
                     "p50_ms": statistics.median(b["models"][i]["latency"]["p50_ms"] for b in benches),
                     "speedup": statistics.median(speedups), "speedups": speedups, key: m["task"][key],
                     "top1_agreement": m.get("fidelity", {}).get("top1_agreement", 1.0)})
    write(name, key, rows, bench, args, case)


def write(name, key, rows, bench, args, case) -> None:
    lines = [f"ONNX Runtime CPU, 1 thread, p50 of {args.runs} interleaved runs"
             f"{f', speedup as median (range) over {args.repeats} timings' if args.repeats > 1 else ''}; {key} on the "
             f"held-out-voice eval set ({case['data'].relative_to(ROOT)}/eval, {bench['timing']['inputs']}); "
             f"calibration and auto's budget (drop <= 1 point on the dev split, {args.holdout:.0%} of the calib set) never see it.",
             "", f"| model | params | MACs | p50 ms | speedup | {key} | top-1 agreement with original |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['params']:,} | {r['macs'] / 1e6:.2f}M | {r['p50_ms']:.3f} | "
                     f"{spread(r['speedups'], '{:.2f}', 'x')} | {100 * r[key]:.1f}% | {100 * r['top1_agreement']:.1f}% |")
    write_result(Path(args.out) / f"zoo_{name}.md", "\n".join(lines), rows, threads=1)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
