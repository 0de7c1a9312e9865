"""Reading audio: any file soundfile decodes, mixed to mono float32 in [-1, 1], resampled by soxr.

soxr is a high-quality band-limited resampler (the one librosa and torchaudio's sox backend use),
so a 44.1 kHz file and a 16 kHz file of the same sound give the model nearly the same samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from .config import DataError


AUDIO_SUFFIXES = {".wav", ".flac", ".ogg"}


def read_audio(path: Path, rate: int, offset: float = 0.0, duration: float | None = None) -> np.ndarray:
    """Mono float32 samples of `path` (from `offset` s, for `duration` s) at `rate` Hz."""
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as fh:
            native = fh.samplerate
            start = int(round(offset * native))
            if start:
                fh.seek(min(start, fh.frames))
            frames = -1 if duration is None else int(round(duration * native))
            data = fh.read(frames, dtype="float32", always_2d=True)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"--data {path}: cannot read audio ({_first_line(exc)})") from None
    if data.shape[0] == 0:
        raise DataError(f"--data {path}: no audio samples" + (f" at offset {offset}s" if offset else ""))
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    return resample(mono, native, rate, path)


def resample(samples: np.ndarray, native: int, rate: int, path) -> np.ndarray:
    if rate == native:
        return np.ascontiguousarray(samples, dtype=np.float32)
    import soxr

    try:
        out = soxr.resample(samples, native, rate)
    except Exception as exc:
        raise DataError(f"--data {path}: cannot resample {native} Hz to {rate} Hz ({_first_line(exc)})") from None
    if out.shape[0] == 0:
        raise DataError(f"--data {path}: {samples.shape[0]} samples at {native} Hz give no samples at {rate} Hz")
    return out.astype(np.float32, copy=False)


def to_dtype(samples: np.ndarray, dtype) -> np.ndarray:
    """float32 [-1, 1] samples as the model's input type: int16 models get int16 samples."""
    dtype = np.dtype(dtype)
    if dtype == np.int16:
        return np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)
    if np.issubdtype(dtype, np.floating):
        return samples.astype(dtype, copy=False)
    raise DataError(f"a waveform input of type {dtype} is not supported (float or int16); use --feeds")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
