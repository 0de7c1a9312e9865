"""Real-audio feeds for the criteria benchmarks: the zoo's 1 s keyword clips (FLAC, 16 kHz,
models/zoo/data/kws/{calib,eval}) turned into model inputs.

kws_dscnn: the zoo's log-mel front-end (models/logmel.py) re-done in numpy: 25 ms periodic-Hann
window, 20 ms hop, 512-point DFT power, 40 HTK mel bands (20 Hz - 8 kHz), log(x + 1e-6), giving
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
RATE, WIN, HOP, NFFT, MELS = 16000, 400, 320, 512, 40


def clips(folder: Path) -> list[np.ndarray]:
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines() if line.strip()]
    out = []
    for r in rows:
        audio, rate = sf.read(folder / r["audio_filepath"], dtype="float32")
        if rate != RATE:
            raise SystemExit(f"{r['audio_filepath']}: {rate} Hz, expected {RATE}")
        out.append(np.pad(audio, (0, max(0, RATE - len(audio))))[:RATE])
    return out


def _mel_matrix(fmin=20.0, fmax=8000.0) -> np.ndarray:
    hz2mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    mel2hz = lambda m: 700.0 * (10 ** (m / 2595.0) - 1.0)  # noqa: E731
    bins = np.fft.rfftfreq(NFFT, 1.0 / RATE)
    edges = mel2hz(np.linspace(hz2mel(fmin), hz2mel(fmax), MELS + 2))
    fb = np.zeros((MELS, len(bins)))
    for m in range(MELS):
        lo, c, hi = edges[m], edges[m + 1], edges[m + 2]
        fb[m] = np.clip(np.minimum((bins - lo) / (c - lo), (hi - bins) / (hi - c)), 0, None)
    return fb


def kws_logmel(wave: np.ndarray) -> np.ndarray:
    n = (len(wave) - WIN) // HOP + 1
    frames = np.stack([wave[i * HOP:i * HOP + WIN] for i in range(n)]).astype(np.float64)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WIN) / WIN)
    spec = np.fft.rfft(frames * window, n=NFFT)
    mel = (np.abs(spec) ** 2) @ _mel_matrix().T
    return np.log(mel + 1e-6).astype(np.float32)[None, None]  # [1, 1, 49, 40]


def kws_feeds(folder: Path) -> list[dict]:
    return [{"logmel": kws_logmel(w)} for w in clips(folder)]


def embedding_feeds(folder: Path, melspectrogram: Path) -> list[dict]:
    from onnxprune.runtime import make_session

    mel = make_session(str(melspectrogram))
    name = mel.get_inputs()[0].name
    out = []
    for w in clips(folder):
        spec = mel.run(None, {name: w[None, :]})[0].squeeze() / 10.0 + 2.0  # [frames, 32]
        out.append({"input_1": spec[:76].astype(np.float32)[None, :, :, None]})
    return out
