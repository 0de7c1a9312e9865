"""The zoo keyword spotter as the recovery tests read it: its paths, its calibration / held-out-voice
feeds through the log-mel front-end, and how far a model's probabilities are from the original's."""

from pathlib import Path

import numpy as np
import onnx

from onnxprune.core.runtime import make_session
from onnxprune.data import DataConfig, load_examples

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "models" / "zoo"
MODEL = ZOO / "kws_dscnn.onnx"
FRONT = str(ZOO / "logmel_frontend.onnx")


def kws_feeds(model: onnx.ModelProto, split: str, limit: int) -> list[dict]:
    """The first `limit` clips of the zoo's `calib` or `eval` (held-out voices) set, as model feeds."""
    config = DataConfig(str(ZOO / "data" / "kws" / split / "manifest.jsonl"), frontend=FRONT, limit=limit)
    return [ex.feeds for ex in load_examples(model, config)]


def kl_to_original(original: onnx.ModelProto, model: onnx.ModelProto, feeds) -> float:
    """Mean KL(original || model) of the softmax outputs over `feeds`."""
    a, b = make_session(original), make_session(model)
    total = 0.0
    for f in feeds:
        p, q = a.run(None, f)[0].astype(np.float64), b.run(None, f)[0].astype(np.float64)
        total += float(np.sum(p * (np.log(p + 1e-12) - np.log(q + 1e-12))))
    return total / len(feeds)
