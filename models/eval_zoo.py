"""Evaluate the zoo models with onnxruntime only (front-end ONNX -> model ONNX), on the committed
evaluation sets or on the full held-out-voice sets regenerated from the synthesis cache.

    python models/eval_zoo.py kws                 # committed models/zoo/data/kws/eval (FLAC)
    python models/eval_zoo.py kws --heldout       # every held-out-voice utterance (needs kws_data cache)
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort
import soundfile as sf

ZOO = Path(__file__).resolve().parent / "zoo"


def session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def read_manifest(folder: Path) -> list[dict]:
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines() if line.strip()]
    for r in rows:
        r["audio"] = sf.read(folder / r["audio_filepath"], dtype="float32")[0]
    return rows


def kws_predict(waves, model: Path = ZOO / "kws_dscnn.onnx", frontend: Path = ZOO / "logmel_frontend.onnx"):
    """Class indices for 1 s waveforms, via the two ONNX models."""
    fe, net = session(frontend), session(model)
    out = []
    for w in waves:
        feats = fe.run(None, {"waveform": np.asarray(w, np.float32)[None, :16000]})[0]
        out.append(int(net.run(None, {"logmel": feats})[0].argmax()))
    return np.array(out)


def kws_report(labels: list[str], preds: np.ndarray, classes: list[str]) -> dict:
    truth = np.array([classes.index(lab) for lab in labels])
    recall = {c: float((preds[truth == i] == i).mean()) for i, c in enumerate(classes) if (truth == i).any()}
    return {"clips": len(labels), "accuracy": float((preds == truth).mean()), "recall": recall}


def main(argv: list[str]) -> None:
    task = argv[0] if argv else "kws"
    if task != "kws":
        sys.exit(f"unknown task {task!r}")
    classes = json.loads((ZOO / "kws_labels.json").read_text())
    if "--heldout" in argv:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import kws_data

        waves, labels = kws_data.clips(kws_data.build_base(), "eval", 1, seed=11, silence=60)
        labels = list(labels)
    else:
        rows = read_manifest(ZOO / "data" / "kws" / "eval")
        waves, labels = [r["audio"] for r in rows], [r["label"] for r in rows]
    rep = kws_report(labels, kws_predict(waves), classes)
    print(f"kws_dscnn: {rep['clips']} clips, accuracy {rep['accuracy']:.4f}")
    print("recall: " + ", ".join(f"{c} {r:.2f}" for c, r in rep["recall"].items()))
    counts = Counter(labels)
    print("clips per class: " + ", ".join(f"{c} {counts[c]}" for c in classes))


if __name__ == "__main__":
    main(sys.argv[1:])
