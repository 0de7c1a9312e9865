"""Unlabeled audio for recovery (distillation from the original model): new renditions of the
zoo's *training* voices, never its held-out evaluation voices, augmented at the waveform level
(speed, gain, time shift, coloured noise / hum) like the zoo's own sets.

Recovery needs no labels and reads none: this stands for "some unlabeled audio from where the
model is deployed" — keywords, other words and background noise (KWS) or spoken digit strings
and commands (CTC) by many speakers. Every utterance is a rendition the models never trained on
(rendition numbers from 1000 on, so each draws its own speed and pitch). Seeded and cached in
~/.cache/onnxprune/recover-synth/ (the first call synthesizes: about 1 minute per 1,000 words).

    python models/recover_data.py kws 2000     # 2,000 one-second clips
    python models/recover_data.py ctc 400      # 400 utterances
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ctc_data import make_utterance, sentence  # noqa: E402
from kws_data import KEYWORDS, UNKNOWN_WORDS, make_clip  # noqa: E402
from synth_speech import CACHE, seed_of, synthesize, voices  # noqa: E402

OUT = CACHE.parent / "recover-synth"
SILENCE = 0.08  # share of KWS clips that are background only


def _plan(n: int, seed: int, text) -> dict:
    """n jobs spread uniformly over the training voices; rendition numbers >= 1000 (new prosody)."""
    rng = np.random.default_rng(seed_of("recover", seed))
    train = [v for v in voices() if not v.heldout]
    plan: dict = {}
    for i, v in enumerate(rng.choice(len(train), n)):
        plan.setdefault(train[int(v)], []).append(("", text(rng), 1000 + i))
    return plan


def kws_clips(n: int, seed: int = 0) -> np.ndarray:
    """[n, 16000] float32 one-second clips: about half keywords, the rest other words and background."""
    path = OUT / f"kws_{n}_{seed}.npy"
    if path.exists():
        return np.load(path).astype(np.float32) / 32767
    n_sil = int(round(SILENCE * n))
    words = KEYWORDS + KEYWORDS + UNKNOWN_WORDS  # keywords about as often as all other words together
    records = synthesize(_plan(n - n_sil, seed, lambda rng: str(rng.choice(words))))
    rng = np.random.default_rng(seed_of("recover-kws-aug", seed))
    waves = [make_clip(r["audio"], rng) for r in records] + [make_clip(None, rng) for _ in range(n_sil)]
    waves = np.stack(waves)[rng.permutation(n)]
    _save(path, waves)
    return waves


def ctc_utterances(n: int, seed: int = 0) -> list[np.ndarray]:
    """n utterances (digit strings and device commands) with leading/trailing silence and noise."""
    path = OUT / f"ctc_{n}_{seed}.npz"
    if path.exists():
        z = np.load(path)
        return [a.astype(np.float32) / 32767 for a in np.split(z["audio"], z["offsets"][1:-1])]
    records = synthesize(_plan(n, seed, sentence))
    rng = np.random.default_rng(seed_of("recover-ctc-aug", seed))
    waves = [make_utterance(r["audio"], rng) for r in records]
    waves = [waves[i] for i in rng.permutation(len(waves))]
    OUT.mkdir(parents=True, exist_ok=True)
    offsets = np.cumsum([0] + [len(w) for w in waves])
    np.savez(path, audio=np.concatenate([_int16(w) for w in waves]), offsets=offsets)
    return waves


def _int16(x: np.ndarray) -> np.ndarray:
    return np.clip(x * 32767, -32768, 32767).astype(np.int16)


def _save(path: Path, waves: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, _int16(waves))


if __name__ == "__main__":
    kind, count = sys.argv[1], int(sys.argv[2])
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    got = kws_clips(count, seed) if kind == "kws" else ctc_utterances(count, seed)
    seconds = sum(len(w) for w in got) / 16000
    print(f"{kind}: {len(got)} unlabeled clips, {seconds / 60:.1f} minutes of audio, cached in {OUT}")
