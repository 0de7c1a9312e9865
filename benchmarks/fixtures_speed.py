"""Do pruned recurrent and attention models get faster in proportion to the MACs removed?

For each torch-exported fixture (and silero-vad v6 with --allow-io-change) this prunes at 0.5,
then times original and pruned interleaved on ONNX Runtime CPU (1 thread by default) and reports
median latency, measured speedup, MAC ratio (theoretical speedup) and measured/theoretical.

    python benchmarks/fixtures_speed.py [--runs 300] [--threads 1] [--out benchmarks/results/fixtures_speed.md]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "models"))

import onnxprune  # noqa: E402
from onnxprune.core.runtime import make_session, random_feeds  # noqa: E402


def cases():
    for path in sorted((ROOT / "models" / "fixtures").glob("*.onnx")):
        yield path.stem, path, {}, {}
    from fetch import fetch

    yield "silero_vad_v6 (state I/O resized)", fetch("silero_vad_v6"), {"input": [1, 576]}, {"allow_io_change": True}


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
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/fixtures_speed.md")
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
    lines = [f"Command: `python benchmarks/fixtures_speed.py --runs {args.runs} --threads {args.threads}` "
             "(ONNX Runtime CPU, medians, original and pruned interleaved)", "",
             "| model | params | MAC reduction | p50 ms original | p50 ms pruned | measured speedup | measured / theoretical |",
             "|---|---|---:|---:|---:|---:|---:|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    out = ROOT / args.out if not Path(args.out).is_absolute() else Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(raw, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
