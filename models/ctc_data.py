"""Sentences for the CTC recognizer: 2-4 spoken digits ("three seven one") or a device command
("turn on the light"), synthesized by many voices (split by voice, as for keyword spotting), with
augmentation (speed, gain, coloured noise, leading/trailing silence).

    python models/ctc_data.py        # base utterances (cached) + models/zoo/data/ctc/{eval,calib}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kws_data import noise, split_of  # noqa: E402
from synth_speech import CACHE, RATE, cached_base, seed_of, voices  # noqa: E402

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
VERBS = ["turn on", "turn off"]
DEVICES = ["light", "fan", "radio", "heater"]
VOCAB = ["<blank>"] + DIGITS + ["turn", "on", "off", "the"] + DEVICES
BASE = CACHE / "ctc_base.npz"
DATA = Path(__file__).resolve().parent / "zoo" / "data" / "ctc"


def sentence(rng: np.random.Generator) -> str:
    if rng.random() < 0.7:
        return " ".join(rng.choice(DIGITS, int(rng.integers(2, 5))))
    return f"{rng.choice(VERBS)} the {rng.choice(DEVICES)}"


def plan() -> dict:
    out = {}
    for v in voices():
        rng = np.random.default_rng(seed_of("ctc", v.name))
        n = 8 if v.is_espeak else 60
        out[v] = [("", sentence(rng), k) for k in range(n)]
    return out


def build_base() -> list[dict]:
    return cached_base(BASE, plan)


def make_utterance(audio: np.ndarray, rng: np.random.Generator, snr_db=(10.0, 40.0)) -> np.ndarray:
    import soxr

    a = soxr.resample(audio, RATE, RATE / rng.uniform(0.9, 1.1)).astype(np.float32)
    a = a * 10 ** (rng.uniform(-15, 3) / 20)
    lead, tail = (int(rng.uniform(0.05, 0.3) * RATE) for _ in range(2))
    out = np.concatenate([np.zeros(lead, np.float32), a, np.zeros(tail, np.float32)])
    rms = np.sqrt(np.mean(a ** 2)) + 1e-9
    out += noise(rng, len(out)) * rms * 10 ** (-rng.uniform(*snr_db) / 20)
    return np.clip(out, -1, 1).astype(np.float32)


def utterances(records: list[dict], split: str, copies: int, seed: int):
    rng = np.random.default_rng(seed)
    recs = [r for r in records if split_of(r) == split]
    return [(make_utterance(r["audio"], rng), r["text"]) for r in recs for _ in range(copies)]


def write_set(name: str, items: list, count: int, seed: int) -> None:
    out = DATA / name
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for j, i in enumerate(sorted(rng.choice(len(items), min(count, len(items)), replace=False))):
        wave, text = items[i]
        rel = f"utt_{j:03d}.flac"
        sf.write(out / rel, wave, RATE, subtype="PCM_16")
        rows.append({"audio_filepath": rel, "text": text, "duration": round(len(wave) / RATE, 3)})
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {out} ({len(rows)} utterances)", file=sys.stderr)


if __name__ == "__main__":
    records = build_base()
    write_set("eval", utterances(records, "eval", 1, seed=21), 120, seed=3)
    write_set("calib", utterances(records, "calib", 1, seed=22), 60, seed=4)
