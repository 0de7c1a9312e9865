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

    python benchmarks/recover_iterative.py [kws|ctc ...] [--ratio 0.5] [--rounds 3,6] [--seconds 90]
                                           [--out benchmarks/results]
"""

from __future__ import annotations

import time
from pathlib import Path
import tempfile

from _common import OUT, REPO as ROOT, parser, write

from onnxprune.api import PruneConfig, check_verified, prune  # noqa: E402
from onnxprune.bench.evaluate import BenchConfig, run_bench  # noqa: E402
from onnxprune.bench.tasks import TaskConfig  # noqa: E402
from onnxprune.core.io import load_model, save_model  # noqa: E402
from onnxprune.data import DataConfig, load_examples  # noqa: E402
from onnxprune.recover import RecoverConfig, recover_pruned  # noqa: E402
from onnxprune.recover.iterative import iterative_prune  # noqa: E402

ZOO = ROOT / "models" / "zoo"
CASES = {
    "kws": dict(model=ZOO / "kws_dscnn.onnx", front=str(ZOO / "logmel_frontend.onnx"), data=ZOO / "data" / "kws",
                task=TaskConfig("classify", labels_file=str(ZOO / "kws_labels.json")), metric="accuracy", shapes=None),
    "ctc": dict(model=ZOO / "crnn_ctc_ts.onnx", front=str(ZOO / "logmel_frontend_dyn.onnx"), data=ZOO / "data" / "ctc",
                task=TaskConfig("ctc", vocab=str(ZOO / "ctc_vocab.txt")), metric="wer",
                shapes={"logmel": [1, 1, 100, 40]}),
}


def main() -> None:
    ap = parser(__doc__, "")
    ap.set_defaults(out=OUT)
    ap.add_argument("cases", nargs="*", default=list(CASES))
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--rounds", default="3", help="Comma-separated round counts, one iterative row each.")
    ap.add_argument("--seconds", type=float, default=90.0, help="Total recovery time per schedule.")
    ap.add_argument("--runs", type=int, default=100)
    args = ap.parse_args()
    for name in args.cases:
        run_case(name, CASES[name], args)


def run_case(name: str, case: dict, args) -> None:
    model = load_model(case["model"])
    calib = [ex.feeds for ex in load_examples(model, DataConfig(str(case["data"] / "calib" / "manifest.jsonl"),
                                                                frontend=case["front"]))]
    config = PruneConfig(ratio=args.ratio, criterion="reconstruction", compensate="lstsq", shapes=case["shapes"],
                         calibration=calib)
    recover = RecoverConfig(seconds=args.seconds, seed=0)
    tmp = Path(tempfile.mkdtemp(prefix=f"iterative-{name}-"))
    one = prune(model, config=config)
    check_verified(one)
    start = time.perf_counter()
    rec = recover_pruned(model, one, calib, recover)
    one_s = time.perf_counter() - start
    iterative = []
    for rounds in (int(k) for k in args.rounds.split(",")):
        start = time.perf_counter()
        it = iterative_prune(model, config, calib, rounds, recover, progress=lambda r, k=rounds: print(
            f"{name} {k} rounds, round {r['round']}: ratio {r['ratio']:g}, verified (max diff "
            f"{r['verify_max_abs_diff']:.2g}), recovery {r['recover']['steps']} steps ({r['recover']['stop']})",
            flush=True))
        assert one.after["macs"] == it.result.after["macs"], "the schedules must end at the same widths"
        iterative.append((rounds, it, time.perf_counter() - start))
    r = args.ratio
    variants = [("original", case["model"], {}),
                (f"r={r:g} one-shot, no recovery", one.model, {}),
                (f"r={r:g} one-shot + recovery {args.seconds:g}s", rec.model,
                 {"recover_seconds": round(rec.seconds, 1), "steps": rec.steps, "stop": rec.stop, "wall_s": round(one_s)}),
                ]
    for rounds, it, it_s in iterative:
        variants.append((f"r={r:g} iterative {rounds} rounds x {args.seconds / rounds:g}s", it.model,
                         {"recover_seconds": round(sum(x["recover"]["seconds"] for x in it.rounds), 1),
                          "steps": sum(x["recover"]["steps"] for x in it.rounds),
                          "stop": ", ".join(x["recover"]["stop"] for x in it.rounds), "wall_s": round(it_s)}))
    paths = []
    for i, (_, m, _) in enumerate(variants):
        if isinstance(m, Path):
            paths.append(str(m))
        else:
            save_model(m, tmp / f"{i}.onnx")
            paths.append(str(tmp / f"{i}.onnx"))
    bench = run_bench(paths, BenchConfig(
        threads=1, runs=args.runs, warmup=20, memory=False, names=tuple(v[0] for v in variants),
        data=DataConfig(str(case["data"] / "eval" / "manifest.jsonl"), frontend=case["front"]), task=case["task"]))
    key = case["metric"]
    rows = []
    for (label, _, extra), m in zip(variants, bench["models"]):
        rows.append({"model": label, "macs": m["macs"], "speedup": m["speedup"], key: m["task"][key],
                     "top1_agreement": m.get("fidelity", {}).get("top1_agreement", 1.0), **extra})
    lines = [f"Case {name}, ratio {r:g} (reconstruction + lstsq on {len(calib)} calib examples), equal total recovery "
             f"budget {args.seconds:g} s; {key} on the held-out-voice eval set ({case['data'].relative_to(ROOT)}/eval); "
             f"recovery trains on 80 % of the calib set and stops early on 20 %; ONNX Runtime CPU, 1 thread.", "",
             f"| schedule | MACs | speedup | {key} | top-1 agreement with original | recovery s (with checks) | steps | "
             "stopped by |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        lines.append(f"| {row['model']} | {row['macs'] / 1e6:.2f}M | {row['speedup']:.2f}x | {100 * row[key]:.1f}% | "
                     f"{100 * row['top1_agreement']:.1f}% | {row.get('recover_seconds', '')} | {row.get('steps', '')} | "
                     f"{row.get('stop', '')} |")
    write(Path(args.out) / f"recover_iterative_{name}.md", "\n".join(lines),
          {"rows": rows, "rounds": {k: it.rounds for k, it, _ in iterative}}, threads=1)
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
