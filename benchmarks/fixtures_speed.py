"""Do pruned recurrent and attention models get faster in proportion to the MACs removed?

For each torch-exported fixture (and silero-vad v6 with --allow-io-change) this prunes at 0.5,
then times original and pruned interleaved on ONNX Runtime CPU (1 thread by default) and reports
median latency, measured speedup, MAC ratio (theoretical speedup) and measured/theoretical.

Needs: the pretrained silero_vad_v6 (models/fetch.py; PyPI access once).

    python benchmarks/fixtures_speed.py [--runs 300] [--threads 1] [--out benchmarks/results/fixtures_speed.md]
"""

from __future__ import annotations

import statistics
import time

from _common import REPO as ROOT, need_models, parser, write

import onnxprune  # noqa: E402
from onnxprune.core.runtime import make_session, random_feeds  # noqa: E402


def cases():
    for path in sorted((ROOT / "models" / "fixtures").glob("*.onnx")):
        yield path.stem, path, {}, {}
    yield "silero_vad_v6 (state I/O resized)", need_models("silero_vad_v6")["silero_vad_v6"], {"input": [1, 576]}, {"allow_io_change": True}


def time_interleaved(sessions, feeds_list, runs):
    times = [[] for _ in sessions]
    for _ in range(20):
        for s, f in zip(sessions, feeds_list):
            s.run(None, f)
    for _ in range(runs):
        for k, (s, f) in enumerate(zip(sessions, feeds_list)):
            t = time.perf_counter()
            s.run(None, f)
            times[k].append(time.perf_counter() - t)
    return [statistics.median(t) * 1e3 for t in times]


def main():
    ap = parser(__doc__, "fixtures_speed.md")
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    rows, raw = [], {}
    for name, path, shapes, options in cases():
        result = onnxprune.prune(path, ratio=0.5, shapes=shapes, **options)
        assert result.verify.passed, result.verify.message
        so = make_session(onnxprune.load_model(path), threads=args.threads)
        sp = make_session(result.model, threads=args.threads)
        feeds = random_feeds(so, result.analysis.input_shapes, seed=0)
        shapes_p = {k: list(v) for k, v in result.analysis.input_shapes.items()}
        for io in result.resized_io:  # the caller's state buffers shrink with the LSTM
            if io["kind"] == "input":
                shapes_p[io["name"]][io["axis"]] = io["new"]
        feeds_p = random_feeds(sp, shapes_p, seed=0)
        t_orig, t_pruned = time_interleaved([so, sp], [feeds, feeds_p], args.runs)
        mac_ratio = result.before["macs"] / max(1, result.after["macs"])
        speedup = t_orig / t_pruned
        raw[name] = {"ms_original": t_orig, "ms_pruned": t_pruned, "macs_before": result.before["macs"],
                     "macs_after": result.after["macs"], "params_before": result.before["params"],
                     "params_after": result.after["params"]}
        rows.append([name, f"{result.before['params']}→{result.after['params']}", f"{mac_ratio:.2f}x",
                     f"{t_orig:.3f}", f"{t_pruned:.3f}", f"{speedup:.2f}x", f"{speedup / mac_ratio:.2f}"])
    lines = ["ONNX Runtime CPU, medians, original and pruned interleaved.", "",
             "| model | params | MAC reduction | p50 ms original | p50 ms pruned | measured speedup | measured / theoretical |",
             "|---|---|---:|---:|---:|---:|---:|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    write(args.out, "\n".join(lines), raw, threads=args.threads)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
