"""Label-free gradient criteria (Taylor, Fisher; onnxprune/recover/criteria.py) against the
data-aware criteria, on the zoo's keyword spotter and CTC recognizer at one uniform ratio, with and
without lstsq compensation; task metric on the held-out-voice eval sets.

    python benchmarks/recover_criteria.py [kws|ctc ...] [--ratio 0.5]   # -> benchmarks/results/recover_criteria.md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from onnxprune.api import PruneConfig, prune  # noqa: E402
from onnxprune.core.io import load_model  # noqa: E402
from onnxprune.data import DataConfig, load_examples  # noqa: E402
from onnxprune.recover.criteria import gradient_plan  # noqa: E402
from onnxprune.search.task_eval import TaskEvaluator  # noqa: E402
from recover_zoo import CASES  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cases", nargs="*", default=list(CASES))
    ap.add_argument("--ratio", type=float, default=0.5)
    args = ap.parse_args()
    lines = [f"Command: `python benchmarks/recover_criteria.py {' '.join(args.cases)} --ratio {args.ratio:g}` — uniform "
             f"ratio {args.ratio:g}, calibration on each model's calib set, metric on its held-out-voice eval set; "
             "Taylor/Fisher from sampled-label gradients (no labels), scoring time on 1 torch thread.", "",
             "| model | criterion | compensation | metric | scoring s |", "|---|---|---|---:|---:|"]
    for name in args.cases:
        case = CASES[name]
        model = load_model(case["model"])
        calib = [ex.feeds for ex in load_examples(model, DataConfig(str(case["data"] / "calib" / "manifest.jsonl"),
                                                                    frontend=case["front"]))]
        evaluate = TaskEvaluator(model, list(load_examples(model, DataConfig(
            str(case["data"] / "eval" / "manifest.jsonl"), frontend=case["front"]))), case["task"])
        lines.append(f"| {name} original | - | - | {100 * _value(evaluate(model)):.1f}% {case['metric']} | |")
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
                lines.append(f"| {name} | {criterion} | {comp} | {100 * metric:.1f}% {case['metric']} | "
                             f"{seconds:.0f} |" if plan else f"| {name} | {criterion} | {comp} | "
                             f"{100 * metric:.1f}% {case['metric']} | |")
                print(lines[-1], flush=True)
    out = ROOT / "benchmarks" / "results" / "recover_criteria.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _value(result: dict) -> float:
    """The task metric as a fraction (accuracy, or WER where lower is better)."""
    return next(v for k, v in result.items() if k.startswith("task_"))


if __name__ == "__main__":
    main()
