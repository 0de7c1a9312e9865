"""Label-free gradient criteria (Taylor, Fisher; onnxprune/recover/criteria.py) against the
data-aware criteria, on the zoo's keyword spotter and CTC recognizer at one uniform ratio, with and
without lstsq compensation; task metric on the held-out-voice eval sets.

Needs: the [recover] extra (`pip install -e ".[recover]"`: torch, onnx2torch); the zoo's models and
clips are committed.

    python benchmarks/recover_criteria.py [kws|ctc ...] [--ratio 0.5] [--out benchmarks/results/recover_criteria.md]
"""

from __future__ import annotations

import time

from _common import parser, write

from onnxprune.api import PruneConfig, prune  # noqa: E402
from onnxprune.core.io import load_model  # noqa: E402
from onnxprune.data import DataConfig, load_examples  # noqa: E402
from onnxprune.recover.criteria import gradient_plan  # noqa: E402
from onnxprune.search.task_eval import TaskEvaluator  # noqa: E402
from recover_zoo import CASES  # noqa: E402


def main() -> None:
    ap = parser(__doc__, "recover_criteria.md")
    ap.add_argument("cases", nargs="*", default=list(CASES))
    ap.add_argument("--ratio", type=float, default=0.5)
    args = ap.parse_args()
    lines = [f"Uniform ratio {args.ratio:g}, calibration on each model's calib set, metric on its held-out-voice eval set; "
             "Taylor/Fisher from sampled-label gradients (no labels), scoring time on 1 torch thread.", "",
             "| model | criterion | compensation | metric | scoring s |", "|---|---|---|---:|---:|"]
    raw = {"ratio": args.ratio, "rows": []}
    for name in args.cases:
        case = CASES[name]
        model = load_model(case["model"])
        calib = [ex.feeds for ex in load_examples(model, DataConfig(str(case["data"] / "calib" / "manifest.jsonl"),
                                                                    frontend=case["front"]))]
        evaluate = TaskEvaluator(model, list(load_examples(model, DataConfig(
            str(case["data"] / "eval" / "manifest.jsonl"), frontend=case["front"]))), case["task"])
        base = _value(evaluate(model))
        raw["rows"].append({"model": name, "criterion": None, "compensate": None, case["metric"]: base})
        lines.append(f"| {name} original | - | - | {100 * base:.1f}% {case['metric']} | |")
        for criterion in ("l1", "activation", "reconstruction", "taylor", "fisher"):
            plan, seconds = None, 0.0
            if criterion in ("taylor", "fisher"):
                start = time.perf_counter()
                plan = gradient_plan(model, calib, ratio=args.ratio, kind=criterion, shapes=case["shapes"])
                seconds = time.perf_counter() - start
            for comp in ("none", "lstsq"):
                data_free = criterion in ("l1", "taylor", "fisher") and comp == "none"
                cfg = PruneConfig(ratio=args.ratio, criterion="l1" if plan else criterion, plan=plan, compensate=comp,
                                  shapes=case["shapes"], calibration=None if data_free else calib)
                metric = _value(evaluate(prune(model, config=cfg).model))
                raw["rows"].append({"model": name, "criterion": criterion, "compensate": comp, case["metric"]: metric,
                                    "scoring_s": seconds if plan else None})
                lines.append(f"| {name} | {criterion} | {comp} | {100 * metric:.1f}% {case['metric']} | "
                             f"{seconds:.0f} |" if plan else f"| {name} | {criterion} | {comp} | "
                             f"{100 * metric:.1f}% {case['metric']} | |")
                print(lines[-1], flush=True)
    write(args.out, "\n".join(lines), raw, threads=1)
    print("\n".join(lines))


def _value(result: dict) -> float:
    """The task metric as a fraction (accuracy, or WER where lower is better)."""
    return next(v for k, v in result.items() if k.startswith("task_"))


if __name__ == "__main__":
    main()
