"""Wall time of `onnxprune auto` (openwakeword's embedding model) and `onnxprune batch` (the real-
model corpus), run locally and on Ray with 1 and 2 worker CPUs, plus the overhead of one task.

Each Ray configuration is a real local cluster (`ray start --head --num-cpus N`, started before
the runs; its start-up time is reported apart) that the CLI joins with `--ray ADDRESS`; the
commands run as subprocesses, modes interleaved per repeat (local, ray1, ray2, local, ...) so load
from other jobs hits all alike. Every Ray run's plan / rows are checked equal to the local run's.

Needs: the [ray] extra (`pip install -e ".[ray]"`) and every pretrained model models/fetch.py knows
(`python models/fetch.py`; PyPI access once).

    python benchmarks/ray_scaling.py [--repeats 2] [--runs 20] [--out benchmarks/results/ray_scaling.md]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import need_models, parser, write

import fetch  # models/, on the path via _common: only its list of model names

MODELS = tuple(fetch.MODELS)

# the real-model corpus (tests/reliability/test_real_corpus.py): concrete dims for symbolic inputs
SHAPES = {
    "silero_vad_v6": {"input": [1, 576]}, "embedding_model": {"input_1": [1, 76, 32, 1]},
    "melspectrogram": {"input": [1, 1280]}, "hey_mycroft_v0.1": {"input_1": [1, 16, 96]},
    "silero_vad": {"input": [1, 512], "state": [2, 1, 128]},
    "silero_vad_op18_ifless": {"input": [1, 512], "state": [2, 1, 128]},
    "ddddocr_common": {"input1": [1, 1, 64, 128]}, "ddddocr_common_old": {"input1": [1, 1, 64, 128]},
    "ppocrv6_det_small": {"x": [1, 3, 64, 64]}, "ppocrv6_rec_small": {"x": [1, 3, 48, 160]},
    "ppocr_mobile_cls": {"x": [1, 3, 48, 192]},
}
AUTO = ["--target-macs", "0.5", "--min-snr", "-3", "--shape", "input_1:1,76,32,1"]


def manifest(path: Path, paths: dict[str, Path]) -> None:
    with path.open("w") as fh:
        for name in MODELS:
            entry = {"path": str(paths[name])}
            if name in SHAPES:
                entry["shape"] = SHAPES[name]
            if name == "silero_vad":
                entry["input"] = {"sr": [16000]}
            fh.write(json.dumps(entry) + "\n")


def run(args: list[str], env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "onnxprune", *args], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode not in (0,):
        raise SystemExit(f"onnxprune {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return seconds


def task_overhead(model: Path, address: str | None, n: int = 200) -> float:
    """Milliseconds per task of a map whose tasks do nothing, sharing a 1.3 MB model as context."""
    from onnxprune.core.executor import LocalExecutor
    from onnxprune.distributed import RayExecutor, connect, disconnect

    context = Path(model).read_bytes()
    executor = RayExecutor(connect(address)) if address else LocalExecutor()
    list(executor.map(_noop, range(8), context=context))  # start the worker processes
    start = time.perf_counter()
    list(executor.map(_noop, range(n), context=context))
    ms = (time.perf_counter() - start) * 1e3 / n
    if address:
        disconnect()
    return ms


def _noop(context, item):
    return item


def main() -> int:
    ap = parser(__doc__, "ray_scaling.md")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--runs", type=int, default=20, help="batch: timed runs per model")
    args = ap.parse_args()
    paths = need_models(*MODELS)
    from onnxprune.distributed import LocalCluster

    os.environ["RAY_AUTH_MODE"] = "disabled"  # the clusters below are LocalClusters
    env = dict(os.environ)
    tmp = Path(tempfile.mkdtemp(prefix="ray-scaling-"))
    manifest(tmp / "corpus.jsonl", paths)
    model = str(paths["embedding_model"])
    clusters, startup = {}, {}
    for n in (1, 2):
        t = time.perf_counter()
        clusters[n] = LocalCluster(head_cpus=n).__enter__()
        startup[n] = time.perf_counter() - t
    modes = {"local": [], "ray, 1 worker": ["--ray", clusters[1].address], "ray, 2 workers": ["--ray", clusters[2].address]}
    times = {(job, mode): [] for job in ("auto", "batch") for mode in modes}
    outputs = {}
    try:
        for r in range(args.repeats):
            for mode, flag in modes.items():
                tag = mode.replace(" ", "").replace(",", "")
                plan, rows = tmp / f"plan_{tag}.json", tmp / f"batch_{tag}.json"
                times["auto", mode].append(run(["auto", model, str(tmp / f"e_{tag}.onnx"), *AUTO, "--save-plan",
                                                str(plan), *flag], env))
                times["batch", mode].append(run(["batch", str(tmp / "corpus.jsonl"), "--runs", str(args.runs),
                                                 "--json", str(rows), *flag], env))
                outputs[mode] = (plan.read_text(), [{k: m.get(k) for k in ("name", "status", "params_after", "verify")}
                                                    for m in json.loads(rows.read_text())["models"]])
                print(r, mode, times["auto", mode][-1], times["batch", mode][-1], flush=True)
        same = {mode: outputs[mode] == outputs["local"] for mode in modes}
        overhead = {"local": task_overhead(model, None), "ray, 1 worker": task_overhead(model, clusters[1].address),
                    "ray, 2 workers": task_overhead(model, clusters[2].address)}
    finally:
        for c in clusters.values():
            c.__exit__()
    lines = [f"Ray backend, wall time: medians of {args.repeats} interleaved repeats, seconds, each command a fresh "
             "process (imports included).", "",
             f"auto: `onnxprune auto embedding_model.onnx out.onnx {' '.join(AUTO)}`; batch: `onnxprune batch` over "
             f"the {len(MODELS)} cached real models (inspect, prune 0.5, verify, bench {args.runs} runs).", "",
             "| mode | auto (s) | batch (s) | per-task overhead (ms) | same plan / rows as local |",
             "|---|---|---|---|---|"]
    for mode in modes:
        lines.append(f"| {mode} | {statistics.median(times['auto', mode]):.1f} | "
                     f"{statistics.median(times['batch', mode]):.1f} | {overhead[mode]:.3f} | {'yes' if same[mode] else 'NO'} |")
    lines += ["", f"Cluster start-up (not in the times above): {startup[1]:.1f} s (1 CPU), {startup[2]:.1f} s (2 CPUs). "
              "Per-task overhead: a map of 200 no-op tasks sharing a 1.3 MB context (local: a function call).",
              "", "Raw seconds: " + json.dumps({f"{j} / {m}": [round(x, 2) for x in v] for (j, m), v in times.items()})]
    raw = {"seconds": {f"{j} / {m}": v for (j, m), v in times.items()}, "startup_s": startup,
           "task_overhead_ms": overhead, "same_as_local": same}
    write(args.out, "\n".join(lines), raw)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
