"""`onnxprune quantize` on the zoo keyword spotter: file size, accuracy on the committed held-out
eval set (300 clips through the committed front-end), agreement with the float model, and latency
(median with its range over interleaved rounds; the machine is shared).

Static modes calibrate on the committed calibration set (204 clips of training voices). With
`--emulate-cpu Haswell` every model is also run on an emulated CPU without VNNI (AVX2 only, via
qemu-user: `apt-get install qemu-user`), where 8-bit int8 weights can saturate; accuracy there is
what such a machine computes (its timings mean nothing and are not reported).

Needs: nothing beyond the install (`--emulate-cpu`: qemu-x86_64 on PATH).

    python benchmarks/quantize_zoo.py [--emulate-cpu Haswell] [--out benchmarks/results/quantize_zoo.md]
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import parser, spread, write

from eval_zoo import ZOO, read_manifest, session  # noqa: E402  (models/, on the path via _common)
from onnxprune.data import DataConfig  # noqa: E402
from onnxprune.quantize import QuantizeConfig, quantize  # noqa: E402

VARIANTS = {
    "dynamic": dict(mode="dynamic"),
    "static (default: per-tensor, 7-bit weights)": dict(mode="static"),
    "static per-channel, 7-bit weights": dict(mode="static", per_channel=True),
    "static per-tensor, 8-bit weights (--full-range)": dict(mode="static", reduce_range=False),
    "static per-channel, 8-bit weights": dict(mode="static", per_channel=True, reduce_range=False),
    "static qoperator (default weights)": dict(mode="static", format="qoperator"),
}
_RUN = """
import sys, numpy as np, onnxruntime as ort
x = np.load(sys.argv[1]); out = {}
for i, path in enumerate(sys.argv[3:]):
    o = ort.SessionOptions(); o.intra_op_num_threads = 1
    s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
    out[str(i)] = np.concatenate([s.run(None, {"logmel": x[j:j + 1]})[0] for j in range(len(x))])
np.savez(sys.argv[2], **out)
"""


def features(folder: Path):
    fe = session(ZOO / "logmel_frontend.onnx")
    rows = read_manifest(folder)
    return np.concatenate([fe.run(None, {"waveform": r["audio"][None]})[0] for r in rows]), [r["label"] for r in rows]


def emulated(cpu: str, models: dict, x: np.ndarray, tmp: Path) -> dict:
    if shutil.which("qemu-x86_64") is None:
        raise SystemExit("error: --emulate-cpu needs qemu-user (apt-get install qemu-user)")
    (tmp / "run.py").write_text(_RUN)
    np.save(tmp / "x.npy", x)
    subprocess.run(["qemu-x86_64", "-cpu", cpu, sys.executable, str(tmp / "run.py"), str(tmp / "x.npy"),
                    str(tmp / "emu.npz"), *map(str, models.values())], check=True, capture_output=True)
    got = np.load(tmp / "emu.npz")
    return {name: got[str(i)] for i, name in enumerate(models)}


def main() -> None:
    ap = parser(__doc__, "quantize_zoo.md")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--emulate-cpu", metavar="QEMU_CPU", help="also run every model on this qemu CPU model (e.g. Haswell)")
    args = ap.parse_args()
    classes = json.loads((ZOO / "kws_labels.json").read_text())
    x_eval, labels = features(ZOO / "data" / "kws" / "eval")
    truth = np.array([classes.index(lab) for lab in labels])
    tmp = Path(tempfile.mkdtemp())
    x_cal, _ = features(ZOO / "data" / "kws" / "calib")
    np.savez(tmp / "calib.npz", logmel=x_cal)
    models = {"float": ZOO / "kws_dscnn.onnx"}
    for name, opts in VARIANTS.items():
        data = DataConfig(path=str(tmp / "calib.npz")) if opts["mode"] == "static" else None
        models[name] = tmp / (f"v{len(models)}.onnx")
        quantize(ZOO / "kws_dscnn.onnx", models[name], QuantizeConfig(data=data, **opts))
    sessions = {n: session(p) for n, p in models.items()}
    outs = {n: np.concatenate([s.run(None, {"logmel": x_eval[i:i + 1]})[0] for i in range(len(x_eval))])
            for n, s in sessions.items()}
    times = {n: [] for n in models}
    for _ in range(args.rounds):
        for n, s in sessions.items():
            start = time.perf_counter()
            for i in range(0, len(x_eval), 3):
                s.run(None, {"logmel": x_eval[i:i + 1]})
            times[n].append((time.perf_counter() - start) / len(range(0, len(x_eval), 3)) * 1e6)
    emu = emulated(args.emulate_cpu, models, x_eval, tmp) if args.emulate_cpu else None
    ref = outs["float"]
    rows = []
    for n, p in models.items():
        row = {"model": n, "bytes": p.stat().st_size, "accuracy": float((outs[n].argmax(1) == truth).mean()),
               "same_top_class": float((outs[n].argmax(1) == ref.argmax(1)).mean()),
               "max_abs_diff": float(np.abs(outs[n] - ref).max()), "median_us": statistics.median(times[n]),
               "us_rounds": times[n]}
        if emu is not None:
            e, eref = emu[n], emu["float"]
            row.update(emulated_cpu=args.emulate_cpu, emulated_accuracy=float((e.argmax(1) == truth).mean()),
                       emulated_max_abs_diff=float(np.abs(e - eref).max()))
        rows.append(row)
    head = "| model | bytes | held-out accuracy | same top class as float | max abs diff (probs) | us/clip |"
    sep = "|---|---:|---:|---:|---:|---:|"
    if emu is not None:
        head += f" accuracy on {args.emulate_cpu} (no VNNI) | max abs diff on {args.emulate_cpu} |"
        sep += "---:|---:|"
    lines = [head, sep]
    for r in rows:
        line = (f"| {r['model']} | {r['bytes']} | {r['accuracy']:.4f} | {r['same_top_class']:.4f} | "
                f"{r['max_abs_diff']:.4f} | {spread(r['us_rounds'], '{:.0f}')} |")
        if emu is not None:
            line += f" {r['emulated_accuracy']:.4f} | {r['emulated_max_abs_diff']:.4f} |"
        lines.append(line)
    write(args.out, "\n".join(lines), rows, threads=1)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
