"""Iterative prune -> recover (K rounds) against one-shot prune + recover, at equal total recovery
time and equal final widths, on the zoo's keyword spotter and CTC recognizer.

Both schedules rank with reconstruction and refit with lstsq on the calib set; one-shot recovers
once for --seconds, the iterative schedule prunes 1/K of the channels per round and recovers for
--seconds / K after each (onnxprune/recover/iterative.py; every round's rewrite verified exactly
against its reference). The task metric is on the held-out-voice eval set; recovery's own
early stopping uses 20 % of the calib set.

Needs: the [recover] extra (`pip install -e ".[recover]"`: torch, onnx2torch); the zoo's models and
clips are committed. Writes recover_iterative_<case>.md and .json into --out (a folder; default
benchmarks/out/).

    python benchmarks/recover_iterative.py [kws|ctc ...] [--ratio 0.5] [--rounds 3,6] [--seconds 120] [--seeds 0,1,2]
                                           [--out benchmarks/results]
"""

from __future__ import annotations

from pathlib import Path
import tempfile

from _common import OUT, REPO as ROOT, parser, spread, write, zoo_cases

from onnxprune.api import PruneConfig, check_verified, prune  # noqa: E402
from onnxprune.bench.evaluate import BenchConfig, run_bench  # noqa: E402
from onnxprune.core.io import load_model, save_model  # noqa: E402
from onnxprune.data import DataConfig, load_examples  # noqa: E402
from onnxprune.recover import RecoverConfig, recover_pruned  # noqa: E402
from onnxprune.recover.iterative import iterative_prune  # noqa: E402

CASES = zoo_cases()


def main() -> None:
    ap = parser(__doc__, "")
    ap.set_defaults(out=OUT)
    ap.add_argument("cases", nargs="*", default=list(CASES))
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--rounds", default="3", help="Comma-separated round counts, one iterative row each.")
    ap.add_argument("--seconds", type=float, default=120.0, help="Total recovery time per schedule.")
    ap.add_argument("--seeds", default="0,1,2", help="Recovery seeds; each schedule runs once per seed.")
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args()
    for name in args.cases:
        run_case(name, CASES[name], args)


def run_case(name: str, case: dict, args) -> None:
    model = load_model(case["model"])
    calib = [ex.feeds for ex in load_examples(model, DataConfig(str(case["data"] / "calib" / "manifest.jsonl"),
                                                                frontend=case["front"]))]
    config = PruneConfig(ratio=args.ratio, criterion="reconstruction", compensate="lstsq", shapes=case["shapes"],
                         calibration=calib)
    tmp = Path(tempfile.mkdtemp(prefix=f"iterative-{name}-"))
    one = prune(model, config=config)
    check_verified(one)
    r, rounds_list = args.ratio, [int(k) for k in args.rounds.split(",")]
    variants = [("original", {}, case["model"]), (f"r={r:g} one-shot, no recovery", {}, one.model)]
    for seed in (int(s) for s in args.seeds.split(",")):
        recover = RecoverConfig(seconds=args.seconds, seed=seed)
        rec = recover_pruned(model, one, calib, recover)
        variants.append((f"r={r:g} one-shot + recovery {args.seconds:g}s", _figures([rec.report()], seed), rec.model))
        most = None
        for rounds in rounds_list:
            it = iterative_prune(model, config, calib, rounds, recover, progress=lambda x, k=rounds, s=seed: print(
                f"{name} seed {s}, {k} rounds, round {x['round']}: ratio {x['ratio']:g}, verified (max diff "
                f"{x['verify_max_abs_diff']:.2g}), recovery {x['recover']['steps']} steps ({x['recover']['stop']})",
                flush=True))
            assert one.after["macs"] == it.result.after["macs"], "the schedules must end at the same widths"
            figures = _figures([x["recover"] for x in it.rounds], seed)
            variants.append((f"r={r:g} iterative {rounds} rounds x {args.seconds / rounds:g}s", figures, it.model))
            most = figures["steps"]
        # control: one-shot trained for as many steps as the iterative schedule with the most rounds took,
        # early stopping off (still keeping the best held-out weights), so the comparison is also at equal steps
        rec = recover_pruned(model, one, calib, RecoverConfig(seconds=args.seconds, steps=most, patience=10 ** 9,
                                                              seed=seed))
        variants.append((f"r={r:g} one-shot + recovery, {max(rounds_list)}-round steps, no early stop",
                         _figures([rec.report()], seed), rec.model))
    paths = []
    for i, (_, _, m) in enumerate(variants):
        if isinstance(m, Path):
            paths.append(str(m))
        else:
            save_model(m, tmp / f"{i}.onnx")
            paths.append(str(tmp / f"{i}.onnx"))
    bench = run_bench(paths, BenchConfig(
        threads=1, runs=args.runs, warmup=20, memory=False, names=tuple(f"{i}" for i in range(len(variants))),
        data=DataConfig(str(case["data"] / "eval" / "manifest.jsonl"), frontend=case["front"]), task=case["task"]))
    key = case["metric"]
    raw = []
    for (label, figures, _), m in zip(variants, bench["models"]):
        raw.append({"schedule": label, "macs": m["macs"], "speedup": m["speedup"], key: m["task"][key],
                    "top1_agreement": m.get("fidelity", {}).get("top1_agreement", 1.0), **figures})
    lines = [f"Case {name}, ratio {r:g} (reconstruction + lstsq on {len(calib)} calib examples), equal total recovery "
             f"budget {args.seconds:g} s per schedule, seeds {args.seeds}; {key} on the held-out-voice eval set "
             f"({case['data'].relative_to(ROOT)}/eval): median (min–max) over the seeds; recovery trains on 80 % of "
             "the calib set and stops early on 20 %; every round's rewrite verified against its reference; "
             "ONNX Runtime CPU, 1 thread.", "",
             f"| schedule | MACs | speedup | {key} | top-1 agreement with original | optimizer steps | "
             "recovery s (with checks) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for label in dict.fromkeys(row["schedule"] for row in raw):
        rows = [row for row in raw if row["schedule"] == label]
        lines.append(f"| {label} | {rows[0]['macs'] / 1e6:.2f}M | {spread([x['speedup'] for x in rows], unit='x')} | "
                     f"{spread([100 * x[key] for x in rows], '{:.1f}', '%')} | "
                     f"{spread([100 * x['top1_agreement'] for x in rows], '{:.1f}', '%')} | "
                     f"{spread([x['steps'] for x in rows if 'steps' in x], '{:.0f}')} | "
                     f"{spread([x['seconds'] for x in rows if 'seconds' in x], '{:.1f}')} |")
    write(Path(args.out) / f"recover_iterative_{name}.md", "\n".join(lines), raw, threads=1)
    print("\n".join(lines), flush=True)


def _figures(reports: list[dict], seed: int) -> dict:
    return {"seed": seed, "steps": sum(x["steps"] for x in reports), "seconds": round(sum(x["seconds"] for x in reports), 1),
            "stop": ", ".join(x["stop"] for x in reports)}


if __name__ == "__main__":
    main()
