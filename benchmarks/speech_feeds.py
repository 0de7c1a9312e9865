"""Real-audio feeds for the criteria benchmarks: the zoo's 1 s keyword clips (FLAC, 16 kHz,
models/zoo/data/kws/{calib,eval}) turned into model inputs.

kws_dscnn: the zoo's ONNX log-mel front-end (models/zoo/logmel_frontend.onnx, built by
models/logmel.py) chained through onnxprune's data module, exactly as `--data --frontend` does:
[1, 1, 49, 40]. openwakeword embedding_model: its own melspectrogram.onnx, scaled x/10 + 2 as
openwakeword does, first 76 frames -> [1, 76, 32, 1].
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
CLIPS = ROOT / "models" / "zoo" / "data" / "kws"
FRONTEND = ROOT / "models" / "zoo" / "logmel_frontend.onnx"
KWS_INPUT = ROOT / "models" / "zoo" / "kws_dscnn.onnx"  # any model taking logmel [1, 1, 49, 40]
RATE = 16000


def clips(folder: Path) -> list[np.ndarray]:
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines() if line.strip()]
    out = []
    for r in rows:
        audio, rate = sf.read(folder / r["audio_filepath"], dtype="float32")
        if rate != RATE:
            raise SystemExit(f"{r['audio_filepath']}: {rate} Hz, expected {RATE}")
        out.append(np.pad(audio, (0, max(0, RATE - len(audio))))[:RATE])
    return out


def kws_feeds(folder: Path) -> list[dict]:
    from onnxprune.data import DataConfig, load_examples

    config = DataConfig(path=str(folder / "manifest.jsonl"), frontend=str(FRONTEND))
    return [ex.feeds for ex in load_examples(str(KWS_INPUT), config)]


def embedding_feeds(folder: Path, melspectrogram: Path) -> list[dict]:
    from onnxprune.core.runtime import make_session

    mel = make_session(str(melspectrogram))
    name = mel.get_inputs()[0].name
    out = []
    for w in clips(folder):
        spec = mel.run(None, {name: w[None, :]})[0].squeeze() / 10.0 + 2.0  # [frames, 32]
        out.append({"input_1": spec[:76].astype(np.float32)[None, :, :, None]})
    return out
