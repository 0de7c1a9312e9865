"""Low-rank factorization: data-aware (whitened, activation-scaled) vs plain SVD at equal MACs.

Cases: the zoo CTC recognizer (crnn_ctc_ts: its GRU input weight alone, then every eligible layer;
calibration = the calib split of models/zoo/data/ctc, held-out = its eval set, through the log-mel
front-end; WER with greedy CTC decoding) and the transformer fixture's FFN (its two MatMuls;
seeded random inputs, 16 calibration / 32 held-out). For each rank setting every method gets the
same ranks (so the same MACs); fidelity = SNR / nmse / top-1 agreement of all outputs vs the
original on the held-out inputs. Each factorized model is verified against its A.B reference.
Latency: original and the whitened models interleaved, ONNX Runtime CPU 1 thread, p50 ratio.

Needs: nothing beyond the install (the zoo's CTC model and clips and the fixtures are committed).

    python benchmarks/lowrank_fidelity.py [--runs 300] [--ratios 0.25,0.5,0.75] [--out benchmarks/results/lowrank_fidelity.md]
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from _common import REPO as ROOT, parser, write

from onnxprune.api import PruneConfig, check_verified, prune  # noqa: E402
from onnxprune.bench.evaluate import BenchConfig, run_bench  # noqa: E402
from onnxprune.bench.tasks import TaskConfig  # noqa: E402
from onnxprune.data import DataConfig, load_examples, split_examples  # noqa: E402
from onnxprune.search.fidelity import Fidelity, make_feeds  # noqa: E402
from onnxprune.core.io import load_model, save_model  # noqa: E402
from onnxprune.prune.lowrank import find_layers, rank_for  # noqa: E402
from onnxprune.search.task_eval import TaskEvaluator  # noqa: E402

ZOO = ROOT / "models" / "zoo"
METHODS = ("svd", "asvd", "whiten")


def ctc_case():
    model = load_model(ZOO / "crnn_ctc_ts.onnx")
    front = str(ZOO / "logmel_frontend_dyn.onnx")
    calib = [ex.feeds for ex in load_examples(model, split_examples(
        DataConfig(str(ZOO / "data" / "ctc" / "calib" / "manifest.jsonl"), frontend=front))[0])]
    held = list(load_examples(model, DataConfig(str(ZOO / "data" / "ctc" / "eval" / "manifest.jsonl"), frontend=front)))
    task = TaskEvaluator(model, held, TaskConfig("ctc", vocab=str(ZOO / "ctc_vocab.txt")))
    gru = [l for l in find_layers(model) if l.kind == "rnn"]
    return "crnn_ctc_ts", model, calib, [ex.feeds for ex in held], task, {"shapes": {"logmel": [1, 1, 100, 40]}}, {
        "GRU input weight": lambda ratio: {l.name: rank_for(l, ratio) for l in gru},
        "all eligible layers": lambda ratio: {l.name: r for l in find_layers(model) if (r := rank_for(l, ratio))}}


def transformer_case():
    model = load_model(ROOT / "models" / "fixtures" / "transformer_dynamo.onnx")
    calib = make_feeds(model, {}, count=16, seed=0, part=0)
    held = make_feeds(model, {}, count=32, seed=0, part=1)
    ffn = [l for l in find_layers(model) if l.name in ("node_MatMul_87", "node_MatMul_89")]
    return "transformer_dynamo", model, calib, held, None, {}, {
        "FFN (2 MatMuls)": lambda ratio: {l.name: rank_for(l, ratio) for l in ffn}}


def main():
    ap = parser(__doc__, "lowrank_fidelity.md")
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--ratios", default="0.25,0.5,0.75")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="onnxprune-lowrank-"))
    rows, raw = [], []
    for name, model, calib, held, task, extra, settings in (ctc_case(), transformer_case()):
        fid = Fidelity(model, held)
        base_task = task(model)["task"] if task else None
        timed = [(f"{name} original", str(tmp / f"{name}.onnx"))]
        save_model(model, timed[0][1])
        for label, ranks_at in settings.items():
            for ratio in [float(r) for r in args.ratios.split(",")]:
                ranks = {k: v for k, v in ranks_at(ratio).items() if v}
                if not ranks:
                    continue
                row = {"model": name, "layers": label, "ratio": ratio, "ranks": ranks}
                for method in METHODS:
                    result = prune(model, config=PruneConfig(ratio=0.0, ranks=ranks, low_rank_method=method,
                                                             calibration=calib, **extra))
                    check_verified(result)
                    m = fid(result.model)
                    row[method] = {"snr_db": m["snr_db"], "nmse": m["nmse"], "top1": m["top1_agreement"],
                                   "macs": result.after["macs"], "macs_before": result.before["macs"]}
                    if task:
                        row[method]["wer"] = task(result.model)["task"]
                    if method == "whiten":
                        path = str(tmp / f"{name}_{len(timed)}.onnx")
                        save_model(result.model, path)
                        timed.append((f"{name} {label} {ratio:g}", path))
                row["base_wer"] = base_task
                rows.append(row)
                print(json.dumps({k: row[k] for k in ("model", "layers", "ratio")}),
                      {k: round(row[k]["snr_db"], 2) for k in METHODS}, flush=True)
        bench = run_bench([p for _, p in timed], BenchConfig(threads=1, warmup=20, runs=args.runs, memory=False,
                                                             fidelity_inputs=2, names=tuple(n for n, _ in timed),
                                                             shapes=extra.get("shapes")))
        speed = {m["name"]: m["speedup"] for m in bench["models"]}
        for row in rows:
            if row["model"] == name:
                row["whiten_speedup"] = speed.get(f"{name} {row['layers']} {row['ratio']:g}")
        raw.append({"model": name, "bench": bench["models"]})
    lines = [f"ONNX Runtime CPU, {os.cpu_count()} cores shared; speedup: p50 original / p50 whitened model, 1 thread, "
             "interleaved.", "",
             "| model | layers | MACs removed from them | MACs (model) | SNR dB svd / asvd / whiten | top-1 % svd / asvd / whiten "
             "| WER % svd / asvd / whiten (original) | speedup (whiten) |", "|---|---|---:|---:|---|---|---|---:|"]
    for r in rows:
        w = r["whiten"]
        wer = " / ".join(f"{-r[m]['wer']:.2f}" for m in METHODS) + f" ({-r['base_wer']:.2f})" if "wer" in w else "-"
        lines.append(f"| {r['model']} | {r['layers']} | {r['ratio']:.0%} | {w['macs_before'] / 1e6:.2f}M → {w['macs'] / 1e6:.2f}M | "
                     + " / ".join(f"{r[m]['snr_db']:.1f}" for m in METHODS) + " | "
                     + " / ".join(f"{r[m]['top1']:.1f}" for m in METHODS) + f" | {wer} | "
                     + (f"{r['whiten_speedup']:.2f}x" if r.get("whiten_speedup") else "-") + " |")
    write(args.out, "\n".join(lines), {"rows": rows, "bench": raw}, threads=1)


if __name__ == "__main__":
    main()
