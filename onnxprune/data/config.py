"""The data module's shared types: what to read (DataConfig), what comes out (Example), what goes wrong (DataError)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import UsageError


class DataError(UsageError):
    """Calibration/evaluation data that cannot be used (names the file and the problem)."""


@dataclass(frozen=True)
class DataConfig:
    path: str
    frontend: str | None = None      # ONNX model mapping audio to this model's input(s)
    feeds: str | None = None         # "module:function" producing feeds itself
    sample_rate: int | None = None   # rate the model or front-end expects (audio is resampled to it)
    window: float | None = None      # seconds per example for raw-waveform models
    hop: float | None = None         # seconds between windows (default: window)
    limit: int | None = None         # at most this many examples
    shapes: dict | None = None       # concrete input shapes (as from --shape)
    subset: str | None = None        # None: all; "calib"/"eval": one side of the held-out split
    holdout: float = 0.2             # fraction of source files on the "eval" side (see split.py)


@dataclass
class Example:
    feeds: dict[str, np.ndarray]
    label: str | None = None         # class label (classify/wakeword tasks)
    text: str | None = None          # transcript (ctc task)
    source: str = ""                 # file it came from, for messages
    seconds: float | None = None     # audio duration it covers
    meta: dict = field(default_factory=dict)
