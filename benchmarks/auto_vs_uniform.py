"""Does sensitivity-guided allocation beat a uniform ratio at equal measured latency?

For each model: uniform ratios 0.05..0.80 and `auto` allocations for a few speedup targets
(greedy on measured per-group sensitivity and the measured latency model, no budget) are all
timed in one interleaved loop with the original (ONNX Runtime CPU, medians), and scored on
held-out seeded random feeds by label-free fidelity (output SNR vs the original, input-dependent
part; top-1 agreement). Each auto model is compared with the best uniform model that is at least
as fast (the uniform ratio with the smallest paired speedup >= the auto model's; paired speedup =
median over rounds of original time / variant time, each pair timed back to back). A second,
timing-free table compares the two at equal MACs (what `prune --allocate sensitivity` does).

Needs: the pretrained embedding_model and silero_vad_v6 (fetched by models/fetch.py; PyPI access once).

    python benchmarks/auto_vs_uniform.py [--runs 200] [--threads 1] [--out benchmarks/results/auto_vs_uniform.md]
"""

from __future__ import annotations

import math
import statistics

from _common import REPO as ROOT, need_models, parser, write

from onnxprune.search.auto import search  # noqa: E402
BUNDLED = ROOT / "onnxprune" / "assets" / "kws_dscnn.onnx"  # the seeded, untrained DS-CNN fixture
from onnxprune.search.fidelity import Fidelity, make_feeds  # noqa: E402
from onnxprune.core.io import load_model  # noqa: E402
from onnxprune.search.latency_model import LatencyModel, paired_speedup, time_rounds  # noqa: E402
from onnxprune.core.runtime import make_session, random_feeds  # noqa: E402
from onnxprune.search.sensitivity import measure_sensitivity  # noqa: E402
from onnxprune.search.widths import WidthSpace  # noqa: E402


def cases():
    models = need_models("embedding_model", "silero_vad_v6")

    yield "kws_dscnn (bundled)", BUNDLED, None, (1.3, 1.6, 2.0)
    yield "openwakeword embedding_model", models["embedding_model"], {"input_1": [1, 76, 32, 1]}, (1.3, 1.6, 2.0)
    yield "silero_vad_v6", models["silero_vad_v6"], {"input": [1, 576]}, (1.2, 1.4)


def run_case(path, shapes, targets, args) -> dict:
    model = load_model(path)
    space = WidthSpace(model, shapes=shapes)
    ins = space.analysis.input_shapes
    sens = measure_sensitivity(space, Fidelity(model, make_feeds(model, ins, count=16, seed=0, part=0)))
    held = Fidelity(model, make_feeds(model, ins, count=args.held, seed=0, part=1))
    latency = LatencyModel(space, threads=args.threads, runs=args.runs).build(cache=False)
    variants, widths = {}, {}
    for i in range(1, 17):
        r = round(0.05 * i, 2)
        widths[f"uniform {r:.2f}"] = {n: space.width_at(n, r) for n in space.groups}
    for t in targets:
        found = search(space, "speedup", t, sensitivity=sens, latency=latency)
        widths[f"auto {t:g}x"] = found.keep
    for k, keep in widths.items():
        variants[k] = space.build(keep)
    feeds = random_feeds(make_session(model), ins, seed=0)
    rounds = time_rounds({"original": model, **variants}, feeds, threads=args.threads, runs=args.runs)
    med = {k: statistics.median(v) for k, v in rounds.items()}
    base = space.stats(space.full)
    rows = {}
    for k, m in variants.items():
        fid = held(m)
        rows[k] = {"ms": med[k], "speedup": paired_speedup(rounds["original"], rounds[k]), "macs": space.stats(widths[k])["macs"] / base["macs"],
                   "top1": fid["top1_agreement"], "snr_db": fid["snr_db"], "widths": widths[k]}
    equal_macs = []
    for r in (0.25, 0.5, 0.75):
        uni = {n: space.width_at(n, r) for n in space.groups}
        target = space.stats(uni)["macs"] / base["macs"]
        alloc = search(space, "macs", target, sensitivity=sens).keep if target < 1 else uni
        fu, fa = held(space.build(uni)), held(space.build(alloc))
        equal_macs.append({"ratio": r, "uniform_macs": target, "auto_macs": space.stats(alloc)["macs"] / base["macs"],
                           "uniform_snr": fu["snr_db"], "auto_snr": fa["snr_db"],
                           "uniform_top1": fu["top1_agreement"], "auto_top1": fa["top1_agreement"]})
    return {"original_ms": med["original"], "variants": rows, "equal_macs": equal_macs, "sensitivity_passes": sens.passes,
            "latency_passes": latency.passes}


def compare(rows: dict) -> list[dict]:
    uniform = {k: v for k, v in rows.items() if k.startswith("uniform")}
    out = []
    for k, a in rows.items():
        if not k.startswith("auto"):
            continue
        faster = [(u["speedup"], name) for name, u in uniform.items() if u["speedup"] >= a["speedup"]]
        if not faster:
            out.append({"auto": k, "uniform": None})
            continue
        name = min(faster)[1]
        out.append({"auto": k, "uniform": name, "auto_snr": a["snr_db"], "uniform_snr": uniform[name]["snr_db"],
                    "auto_top1": a["top1"], "uniform_top1": uniform[name]["top1"],
                    "auto_speedup": a["speedup"], "uniform_speedup": uniform[name]["speedup"]})
    return out


def fmt(x, nd=1):
    return "∞" if x == math.inf else f"{x:.{nd}f}"


def main():
    ap = parser(__doc__, "auto_vs_uniform.md")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--held", type=int, default=64, help="held-out feeds for fidelity")
    args = ap.parse_args()
    lines = ["Fidelity on held-out *seeded random* feeds (label-free): SNR = output SNR vs the original "
             "(input-dependent part, logits for Softmax/Sigmoid outputs); top-1 = agreement of the first output's decisions. "
             "ORT CPU, medians of interleaved runs.", ""]
    raw = {}
    for name, path, shapes, targets in cases():
        res = run_case(path, shapes, targets, args)
        raw[name] = res
        lines += [f"## {name}", "", f"original {res['original_ms']:.3f} ms; sensitivity {res['sensitivity_passes']} "
                  f"forward passes, latency model + speedup measurements {res['latency_passes']} timed passes", "",
                  "| variant | MACs kept | p50 ms | speedup (paired) | SNR dB | top-1 % |", "|---|---:|---:|---:|---:|---:|"]
        for k, v in res["variants"].items():
            lines.append(f"| {k} | {100 * v['macs']:.1f}% | {v['ms']:.3f} | {v['speedup']:.2f}x | {fmt(v['snr_db'])} | {v['top1']:.1f} |")
        lines += ["", "| auto | best uniform at least as fast | SNR dB auto / uniform | top-1 % auto / uniform | speedup auto / uniform |",
                  "|---|---|---:|---:|---:|"]
        for c in compare(res["variants"]):
            if c["uniform"] is None:
                lines.append(f"| {c['auto']} | none as fast | | | |")
                continue
            lines.append(f"| {c['auto']} | {c['uniform']} | {fmt(c['auto_snr'])} / {fmt(c['uniform_snr'])} | "
                         f"{c['auto_top1']:.1f} / {c['uniform_top1']:.1f} | {c['auto_speedup']:.2f}x / {c['uniform_speedup']:.2f}x |")
        raw[name]["comparison"] = compare(res["variants"])
        lines += ["", "At equal MACs (deterministic; `prune --ratio R --allocate sensitivity` vs `prune --ratio R`):", "",
                  "| ratio | MACs kept uniform / allocated | SNR dB uniform / allocated | top-1 % uniform / allocated |",
                  "|---:|---:|---:|---:|"]
        for e in res["equal_macs"]:
            lines.append(f"| {e['ratio']:.2f} | {100 * e['uniform_macs']:.1f}% / {100 * e['auto_macs']:.1f}% | "
                         f"{fmt(e['uniform_snr'])} / {fmt(e['auto_snr'])} | {e['uniform_top1']:.1f} / {e['auto_top1']:.1f} |")
        lines.append("")
        print("\n".join(lines[-30:]), flush=True)
    write(args.out, "\n".join(lines), raw, threads=args.threads)


if __name__ == "__main__":
    main()
