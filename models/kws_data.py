"""Keyword-spotting data: 10 keywords + _unknown_ + _silence_, 1 s clips at 16 kHz, built from the
synthesized utterances of `synth_speech.py` with augmentation (speed, gain, coloured noise, hum,
time shift).

Splits (by voice, see synth_speech.voices):
  train  - training voices, all but ~6 % of their utterances
  calib  - the other ~6 % of the training voices' utterances (separate clips, never trained on)
  eval   - held-out voices only

    python models/kws_data.py            # base utterances (cached) + models/zoo/data/kws/{eval,calib}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth_speech import CACHE, RATE, cached_base, seed_of, voices  # noqa: E402

KEYWORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
UNKNOWN_WORDS = ["bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin", "nine", "one",
                 "seven", "sheila", "six", "three", "tree", "two", "wow", "zero", "learn", "follow", "forward",
                 "backward", "visual", "yellow", "table", "water", "music", "window", "paper", "green"]
LABELS = KEYWORDS + ["_unknown_", "_silence_"]
BASE = CACHE / "kws_base.npz"
DATA = Path(__file__).resolve().parent / "zoo" / "data" / "kws"


def plan() -> dict:
    out = {}
    for v in voices():
        reps = 2 if v.is_espeak else 10
        jobs = [(w, w, k) for w in KEYWORDS for k in range(reps)]
        rng = np.random.default_rng(seed_of("unknown", v.name))
        n_unk = 6 if v.is_espeak else 30
        jobs += [("_unknown_", str(w), k) for k, w in enumerate(rng.choice(UNKNOWN_WORDS, n_unk))]
        out[v] = jobs
    return out


def build_base() -> list[dict]:
    return cached_base(BASE, plan)


def split_of(record: dict) -> str:
    if record["heldout"]:
        return "eval"
    return "calib" if seed_of("calib", record["voice"], record["text"], len(record["audio"])) % 16 == 0 else "train"


def noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """White, pink or brown noise, or mains hum, at unit RMS."""
    kind = rng.integers(4)
    if kind == 3:
        t = np.arange(n) / RATE
        f = rng.choice([50.0, 60.0])
        x = sum(rng.uniform(0.2, 1) * np.sin(2 * np.pi * f * h * t + rng.uniform(0, 6.3)) for h in (1, 2, 3, 5))
        x = x + 0.05 * rng.standard_normal(n)
    else:
        spec = np.fft.rfft(rng.standard_normal(n))
        freqs = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
        spec /= freqs ** (0.5 * kind)  # 0 white, 1 pink, 2 brown
        x = np.fft.irfft(spec, n)
    return (x / (np.sqrt(np.mean(x ** 2)) + 1e-9)).astype(np.float32)


def make_clip(audio: np.ndarray | None, rng: np.random.Generator, snr_db=(5.0, 40.0)) -> np.ndarray:
    """One 1 s clip: speed-perturbed, gain-scaled utterance at a random offset, plus noise."""
    import soxr

    n = RATE
    clip = np.zeros(n, dtype=np.float32)
    if audio is None:  # _silence_: noise (or nothing) at a low level
        level = 10 ** (rng.uniform(-75, -25) / 20)
        return (noise(rng, n) * level).astype(np.float32) if rng.random() > 0.1 else clip
    speed = rng.uniform(0.88, 1.12)
    a = soxr.resample(audio, RATE, RATE / speed).astype(np.float32)
    if len(a) > n:
        start = int(rng.integers(0, len(a) - n + 1)) if len(a) > n + 1600 else (len(a) - n) // 2
        a = a[start:start + n]
    offset = int(rng.integers(0, n - len(a) + 1))
    clip[offset:offset + len(a)] = a * 10 ** (rng.uniform(-20, 3) / 20)
    rms = np.sqrt(np.mean(clip[offset:offset + len(a)] ** 2)) + 1e-9
    clip += noise(rng, n) * rms * 10 ** (-rng.uniform(*snr_db) / 20)
    return np.clip(clip, -1, 1).astype(np.float32)


def clips(records: list[dict], split: str, copies: int, seed: int, silence: int):
    """(waveforms [N, 16000], labels) for a split: `copies` augmentations per utterance + silences."""
    recs = [r for r in records if split_of(r) == split]
    rng = np.random.default_rng(seed)
    waves, labels = [], []
    for r in recs:
        for _ in range(copies):
            waves.append(make_clip(r["audio"], rng))
            labels.append(r["label"])
    for _ in range(silence):
        waves.append(make_clip(None, rng))
        labels.append("_silence_")
    return np.stack(waves), np.array(labels)


def write_set(name: str, waves: np.ndarray, labels: np.ndarray, per_class: int, seed: int) -> None:
    """A committed FLAC set with a NeMo-style manifest: `per_class` clips of each label."""
    out = DATA / name
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for label in LABELS:
        idx = np.nonzero(labels == label)[0]
        for j, i in enumerate(sorted(rng.choice(idx, min(per_class, len(idx)), replace=False))):
            rel = f"{label.strip('_')}_{j:03d}.flac"
            sf.write(out / rel, waves[i], RATE, subtype="PCM_16")
            rows.append({"audio_filepath": rel, "label": label, "duration": 1.0})
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {out} ({len(rows)} clips)", file=sys.stderr)


if __name__ == "__main__":
    records = build_base()
    waves, labels = clips(records, "eval", 1, seed=11, silence=60)
    write_set("eval", waves, labels, per_class=25, seed=1)
    waves, labels = clips(records, "calib", 1, seed=12, silence=20)
    write_set("calib", waves, labels, per_class=17, seed=2)
