"""Time each stage of `prune` (load, analyze, calibrate, score, plan, compensate, apply, verify,
stats, save) on a large and a small model, and the whole CLI command.

    python benchmarks/stage_times.py [--ratio 0.5] [--repeats 3] [--out stage_times.md]

The large model is a ResNet-50-shaped keyword spotter (bottleneck blocks [3, 4, 6, 3], widths
64..2048, 23.5 M parameters, ~94 MB, log-mel input [1, 1, 98, 64]) built here with seeded random
weights; the small one is the zoo's DS-CNN keyword spotter. Medians over --repeats runs.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from onnxprune.core.io import load_model, save_model  # noqa: E402
from onnxprune.prune import pipeline  # noqa: E402


def resnet50(path: Path, classes: int = 12, seed: int = 0, batchnorm: bool = False) -> Path:
    """A ResNet-50 layout: BatchNorm folded into the convs (as torch.onnx leaves it), or kept as
    nodes (`batchnorm`, as tf2onnx and training-mode exports leave it: four more slices per group)."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def conv(x, cin, cout, k, stride=1, relu=True):
        name = f"conv{len(nodes)}"
        w = (rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k))).astype(np.float32)
        inits.extend([numpy_helper.from_array(w, name + ".w"),
                      numpy_helper.from_array((rng.standard_normal(cout) * 0.01).astype(np.float32), name + ".b")])
        nodes.append(helper.make_node("Conv", [x, name + ".w", name + ".b"], [name], name=name, kernel_shape=[k, k],
                                      strides=[stride, stride], pads=[k // 2] * 4))
        if batchnorm:
            stats = [np.abs(rng.standard_normal(cout)).astype(np.float32) + 0.5, (rng.standard_normal(cout) * 0.1).astype(np.float32),
                     (rng.standard_normal(cout) * 0.1).astype(np.float32), np.abs(rng.standard_normal(cout)).astype(np.float32) + 0.5]
            names = [f"{name}.bn.{s}" for s in ("scale", "bias", "mean", "var")]
            inits.extend(numpy_helper.from_array(v, n) for v, n in zip(stats, names))
            nodes.append(helper.make_node("BatchNormalization", [name, *names], [name + ".bn"], name=name + "_bn"))
            name = name + ".bn"
        if not relu:
            return name
        nodes.append(helper.make_node("Relu", [name], [name + ".r"], name=name + "_relu"))
        return name + ".r"

    x = conv("logmel", 1, 64, 7, 2)
    nodes.append(helper.make_node("MaxPool", [x], ["pool"], name="pool", kernel_shape=[3, 3], strides=[2, 2],
                                  pads=[1, 1, 1, 1]))
    x, cin = "pool", 64
    for stage, (blocks, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512))):
        for b in range(blocks):
            stride = 2 if b == 0 and stage > 0 else 1
            y = conv(x, cin, width, 1)
            y = conv(y, width, width, 3, stride)
            y = conv(y, width, width * 4, 1, relu=False)
            skip = conv(x, cin, width * 4, 1, stride, relu=False) if b == 0 else x
            add = f"add{len(nodes)}"
            nodes.append(helper.make_node("Add", [y, skip], [add], name=add))
            nodes.append(helper.make_node("Relu", [add], [add + ".r"], name=add + "_relu"))
            x, cin = add + ".r", width * 4
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], name="flat"))
    inits.extend([numpy_helper.from_array((rng.standard_normal((classes, cin)) * 0.02).astype(np.float32), "fc.w"),
                  numpy_helper.from_array(np.zeros(classes, np.float32), "fc.b")])
    nodes.append(helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], name="fc", transB=1))
    graph = helper.make_graph(nodes, "resnet50_kws", [helper.make_tensor_value_info("logmel", TensorProto.FLOAT, [1, 1, 98, 64])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, path)
    return path


class _Clock:
    """Wall and CPU seconds of each `with clock(name):` block (CPU: this process, or its children
    for the CLI run), because on a shared machine wall time mostly measures the neighbours."""

    def __init__(self):
        self.times: dict[str, tuple[float, float]] = {}

    @contextlib.contextmanager
    def __call__(self, name: str, children: bool = False):
        who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
        wall, cpu = time.perf_counter(), _cpu(who)
        yield
        self.times[name] = (time.perf_counter() - wall, _cpu(who) - cpu)


def _cpu(who) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def stage_times(path: Path, ratio: float) -> dict[str, tuple[float, float]]:
    clock = _Clock()
    with clock("load"):
        model = load_model(path)
    st = pipeline.State(model, pipeline.PruneConfig(ratio=ratio))
    for step in (*pipeline.PREPARE, pipeline.MakePlan(), pipeline.Compensate()):
        with clock(step.name):
            step(st)
    apply = pipeline.Apply()
    with clock("apply"):
        apply.requires(st)
        apply.call(st)
    with clock("verify (apply's ensures)"):
        apply.ensures(st)
    with clock("stats"):
        result = pipeline._result(st, 0.0)
    assert result.verify.passed, result.verify.message
    with tempfile.TemporaryDirectory() as tmp:
        with clock("save"):
            save_model(st.pruned, Path(tmp) / "out.onnx")
        in_process = tuple(sum(v[i] for v in clock.times.values()) for i in (0, 1))
        with clock("CLI `onnxprune prune` (whole command)", children=True):
            subprocess.run([sys.executable, "-m", "onnxprune", "prune", str(path), str(Path(tmp) / "cli.onnx"),
                            "--ratio", str(ratio)], check=True, capture_output=True)
    clock.times["total in process"] = in_process
    return clock.times


_ONNXSIM = """
import resource, sys, time, onnx
from onnxsim.pruning import apply_structured_pruning
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
w, c = time.perf_counter(), cpu()
apply_structured_pruning(onnx.load(sys.argv[1]), sparsity=float(sys.argv[2]))
print(time.perf_counter() - w, cpu() - c)
"""


def _onnxsim(python: str, path: Path, ratio: float) -> tuple[float, float]:
    """Wall and CPU seconds of onnxsim 0.8.1's structured pruning (load + call), in its own venv."""
    out = subprocess.run([python, "-c", _ONNXSIM, str(path), str(ratio)], check=True, capture_output=True, text=True)
    wall, cpu = out.stdout.split()[-2:]
    return float(wall), float(cpu)


def _machine() -> str:
    import platform

    import onnxruntime

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    return f"{cpu}, onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}, Python {platform.python_version()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, help="write the table as markdown here")
    ap.add_argument("--onnxsim-python", help="python of a venv with onnxsim==0.8.1: also time its structured pruning")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        models = {"resnet50_kws (94 MB)": resnet50(Path(tmp) / "resnet50.onnx"),
                  "resnet50_kws with BatchNorm nodes": resnet50(Path(tmp) / "resnet50_bn.onnx", batchnorm=True),
                  "kws_dscnn (zoo)": ROOT / "models" / "zoo" / "kws_dscnn.onnx"}
        runs = {name: [stage_times(p, args.ratio) for _ in range(args.repeats)] for name, p in models.items()}
        for name, p in models.items():
            for r in runs[name]:
                r["analysis + rewrite (analyze, score, plan, apply)"] = tuple(
                    sum(r[s][i] for s in ("analyze", "score", "plan", "apply")) for i in (0, 1))
                if args.onnxsim_python:
                    r["onnxsim 0.8.1 apply_structured_pruning (load + call)"] = _onnxsim(args.onnxsim_python, p, args.ratio)
    stages = list(next(iter(runs.values()))[0])
    lines = ["| stage | " + " | ".join(f"{m} wall | {m} CPU" for m in runs) + " |", "|---|" + "---:|---:|" * len(runs)]
    for s in stages:
        cells = [f"{statistics.median(r[s][i] for r in rs):.3f} s" for rs in runs.values() for i in (0, 1)]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    text = (f"prune --ratio {args.ratio}, median of {args.repeats} runs; {_machine()}\n"
            "CPU = user + system seconds of the process (wall time on this shared machine mostly measures its "
            "neighbours)\n\n" + "\n".join(lines))
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
