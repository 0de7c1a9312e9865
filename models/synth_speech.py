"""Speech synthesized with the TTS engines Debian ships (espeak-ng, flite, festival): the raw
material of the zoo's training, calibration and evaluation sets.

Why synthesized: the zoo models must be trainable by anyone, offline, in minutes, with data whose
licence is ours. Many *voices* (espeak-ng accents x voice variants, flite and festival voices)
stand in for speakers, and the split is **by voice**: evaluation voices (held-out espeak variants,
a held-out accent, one flite and one festival voice) are never heard in training.

    python models/kws_data.py     # base utterances (cached in ~/.cache/onnxprune/zoo-synth/) + the committed sets

Everything is seeded: the same command gives the same utterances and the same split.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

RATE = 16000
CACHE = Path(os.environ.get("ONNXPRUNE_CACHE", Path.home() / ".cache" / "onnxprune")) / "zoo-synth"

ESPEAK_ACCENTS = ["en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd"]
HELDOUT_ACCENT = "en-029"
ESPEAK_TRAIN_VARIANTS = ["m1", "m2", "m3", "m5", "m6", "m7", "f1", "f2", "f3", "f5", "klatt", "klatt2", "klatt4",
                         "adam", "Alex", "Andy", "Annie", "aunty", "benjamin", "david", "ed", "edward", "Gene",
                         "john", "linda", "max", "Michael", "paul", "quincy", "rob", "robert", "steph", "steph2",
                         "zac", "grandma", "norbert", "shelby", "travis", "victor"]
ESPEAK_HELDOUT_VARIANTS = ["m4", "m8", "f4", "klatt3", "Alicia", "belinda", "Mike", "iven", "steph3", "sandro",
                           "grandpa"]
FLITE_TRAIN, FLITE_HELDOUT = ["kal16", "awb", "slt"], ["rms"]
FESTIVAL_TRAIN, FESTIVAL_HELDOUT = ["kal_diphone", "cmu_us_slt_arctic_hts"], ["ked_diphone"]


@dataclass(frozen=True)
class Voice:
    engine: str   # espeak | flite | festival
    name: str     # e.g. "en-us+f3", "rms", "ked_diphone"
    heldout: bool

    @property
    def is_espeak(self) -> bool:
        return self.engine == "espeak"


def voices() -> list[Voice]:
    out = [Voice("espeak", f"{a}+{v}", False) for a in ESPEAK_ACCENTS for v in ESPEAK_TRAIN_VARIANTS]
    out += [Voice("espeak", f"{a}+{v}", True) for a in ESPEAK_ACCENTS for v in ESPEAK_HELDOUT_VARIANTS]
    out += [Voice("espeak", f"{HELDOUT_ACCENT}+{v}", True) for v in ESPEAK_HELDOUT_VARIANTS[::2]]
    out += [Voice("flite", v, False) for v in FLITE_TRAIN] + [Voice("flite", v, True) for v in FLITE_HELDOUT]
    out += [Voice("festival", v, False) for v in FESTIVAL_TRAIN] + [Voice("festival", v, True) for v in FESTIVAL_HELDOUT]
    return out


def seed_of(*parts) -> int:
    """A stable seed from strings (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "little")


def _read(path: str) -> np.ndarray:
    audio, rate = sf.read(path, dtype="float32", always_2d=False)
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    if rate != RATE:
        audio = soxr.resample(audio, rate, RATE).astype(np.float32)
    return audio


def synth_espeak(voice: str, text: str, speed: float, pitch: int) -> np.ndarray:
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(int(160 * speed)), "-p", str(pitch), "-w", tmp.name, text],
                       check=True, capture_output=True)
        return _read(tmp.name)


def synth_flite(voice: str, text: str, speed: float, f0: float) -> np.ndarray:
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        subprocess.run(["flite", "-voice", voice, "--setf", f"duration_stretch={1 / speed:.3f}",
                        "--setf", f"int_f0_target_mean={f0:.0f}", "-t", text, "-o", tmp.name],
                       check=True, capture_output=True)
        return _read(tmp.name)


def synth_festival(voice: str, jobs: list[tuple[str, float]]) -> list[np.ndarray]:
    """One festival process per voice (its start-up dominates a single word)."""
    with tempfile.TemporaryDirectory() as tmp:
        lines = [f"(voice_{voice})"]
        for i, (text, speed) in enumerate(jobs):
            safe = text.replace('"', "")
            lines.append(f"(Parameter.set 'Duration_Stretch {1 / speed:.3f})")
            lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{safe}")) "{tmp}/{i}.wav" \'riff)')
        Path(tmp, "s.scm").write_text("\n".join(lines) + "\n")
        subprocess.run(["festival", "-b", f"{tmp}/s.scm"], check=True, capture_output=True)
        return [_read(f"{tmp}/{i}.wav") for i in range(len(jobs))]


def trim(audio: np.ndarray, db: float = -40.0) -> np.ndarray:
    """Cut leading/trailing near-silence (relative to the peak), keeping 20 ms margins."""
    if audio.size == 0:
        return audio
    frame = 160
    n = len(audio) // frame
    if n == 0:
        return audio
    energy = np.sqrt((audio[: n * frame].reshape(n, frame) ** 2).mean(axis=1) + 1e-12)
    loud = np.nonzero(20 * np.log10(energy / energy.max()) > db)[0]
    start, end = max(loud[0] - 2, 0) * frame, min(loud[-1] + 3, n) * frame
    return audio[start:end]


def render(voice: Voice, items: list[tuple[str, int]]) -> list[np.ndarray]:
    """Synthesize (text, rendition) items with this voice; each rendition varies speed and pitch."""
    params = []
    for text, k in items:
        rng = np.random.default_rng(seed_of(voice.name, text, k))
        params.append((text, float(rng.uniform(0.8, 1.25)), int(rng.integers(25, 80)), float(rng.uniform(80, 220))))
    if voice.engine == "festival":
        audios = synth_festival(voice.name, [(t, s) for t, s, _, _ in params])
    elif voice.engine == "flite":
        audios = [synth_flite(voice.name, t, s, f0) for t, s, _, f0 in params]
    else:
        audios = [synth_espeak(voice.name, t, s, p) for t, s, p, _ in params]
    out = []
    for a in audios:
        a = trim(a)
        peak = np.abs(a).max() if a.size else 0.0
        out.append((a / peak * 0.5).astype(np.float32) if peak > 0 else a)
    return out


def synthesize(plan: dict[Voice, list[tuple[str, str, int]]], threads: int = int(os.environ.get("SYNTH_THREADS", 2))) -> list[dict]:
    """plan: voice -> [(label, text, rendition)]; returns records with audio, label, text, voice."""
    def one(item):
        voice, jobs = item
        audios = render(voice, [(text, k) for _, text, k in jobs])
        return [dict(audio=a, label=label, text=text, voice=voice.name, engine=voice.engine, heldout=voice.heldout)
                for (label, text, _), a in zip(jobs, audios)]

    records = []
    with ThreadPoolExecutor(threads) as pool:
        for i, recs in enumerate(pool.map(one, plan.items())):
            records.extend(recs)
            if i % 40 == 0:
                print(f"  {i + 1}/{len(plan)} voices, {len(records)} utterances", file=sys.stderr, flush=True)
    return records


def save_records(path: Path, records: list[dict]) -> None:
    """Concatenated int16 audio + offsets, so the cache is one small file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = [np.clip(r["audio"] * 32767, -32768, 32767).astype(np.int16) for r in records]
    offsets = np.cumsum([0] + [len(a) for a in audio])
    meta = {k: np.array([r[k] for r in records]) for k in ("label", "text", "voice", "engine", "heldout")}
    np.savez(path, audio=np.concatenate(audio), offsets=offsets, **meta)


def load_records(path: Path) -> list[dict]:
    z = np.load(path)
    audio, off = z["audio"], z["offsets"]
    keys = ("label", "text", "voice", "engine", "heldout")
    return [dict(audio=audio[off[i]:off[i + 1]].astype(np.float32) / 32767, **{k: z[k][i].item() for k in keys})
            for i in range(len(off) - 1)]


def cached_base(path: Path, plan) -> list[dict]:
    """The synthesized utterances of `plan()` (voice -> jobs), read from `path` or made and saved
    there once (synthesis takes minutes; every training and evaluation run reuses it)."""
    if path.exists():
        return load_records(path)
    records = synthesize(plan())
    save_records(path, records)
    print(f"wrote {path} ({len(records)} utterances)", file=sys.stderr)
    return records
