"""`onnxprune quantize` on the zoo keyword spotter: file size, accuracy on the committed held-out
eval set (300 clips through the committed front-end), agreement with the float model, and latency.

Static modes calibrate on the committed calibration set (204 clips of training voices). Latency is
the median over interleaved rounds (the machine is shared, so A/B rounds alternate).

    python benchmarks/quantize_zoo.py          # -> benchmarks/results/quantize_zoo.{json,md}
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "models"))
from eval_zoo import ZOO, read_manifest, session  # noqa: E402

from onnxprune.data import DataConfig  # noqa: E402
from onnxprune.quantize import QuantizeConfig, quantize  # noqa: E402

VARIANTS = {
    "dynamic": dict(mode="dynamic"),
    "static qdq": dict(mode="static"),
    "static qdq per-channel": dict(mode="static", per_channel=True),
    "static qoperator per-channel": dict(mode="static", per_channel=True, format="qoperator"),
}


def features(folder: Path):
    fe = session(ZOO / "logmel_frontend.onnx")
    rows = read_manifest(folder)
    return np.concatenate([fe.run(None, {"waveform": r["audio"][None]})[0] for r in rows]), [r["label"] for r in rows]


def main() -> None:
    classes = json.loads((ZOO / "kws_labels.json").read_text())
    x_eval, labels = features(ZOO / "data" / "kws" / "eval")
    truth = np.array([classes.index(lab) for lab in labels])
    tmp = Path(tempfile.mkdtemp())
    x_cal, _ = features(ZOO / "data" / "kws" / "calib")
    np.savez(tmp / "calib.npz", logmel=x_cal)
    models = {"float": ZOO / "kws_dscnn.onnx"}
    for name, opts in VARIANTS.items():
        data = DataConfig(path=str(tmp / "calib.npz")) if opts["mode"] == "static" else None
        models[name] = tmp / (name.replace(" ", "_") + ".onnx")
        quantize(ZOO / "kws_dscnn.onnx", models[name], QuantizeConfig(data=data, **opts))
    sessions = {n: session(p) for n, p in models.items()}
    outs = {n: np.concatenate([s.run(None, {"logmel": x_eval[i:i + 1]})[0] for i in range(len(x_eval))])
            for n, s in sessions.items()}
    times = {n: [] for n in models}
    for _ in range(7):
        for n, s in sessions.items():
            start = time.perf_counter()
            for i in range(0, len(x_eval), 3):
                s.run(None, {"logmel": x_eval[i:i + 1]})
            times[n].append((time.perf_counter() - start) / len(range(0, len(x_eval), 3)) * 1e6)
    ref = outs["float"]
    rows = []
    for n, p in models.items():
        rows.append({"model": n, "bytes": p.stat().st_size,
                     "accuracy": float((outs[n].argmax(1) == truth).mean()),
                     "same_top_class": float((outs[n].argmax(1) == ref.argmax(1)).mean()),
                     "max_abs_diff": float(np.abs(outs[n] - ref).max()),
                     "median_us": statistics.median(times[n])})
    out = REPO / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "quantize_zoo.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["| model | bytes | held-out accuracy | same top class as float | max abs diff (probs) | median us/clip |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['bytes']} | {r['accuracy']:.4f} | {r['same_top_class']:.4f} | "
              f"{r['max_abs_diff']:.4f} | {r['median_us']:.0f} |" for r in rows]
    (out / "quantize_zoo.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
