"""Calibration and evaluation data, turned into model feeds.

One entry point, `load_examples(model, config)`, yields `Example`s whose `feeds` can be passed
straight to an onnxruntime session of `model`. Every reader (audio folder, JSONL manifest, feature
dumps, front-end model, Python callable) streams, so memory stays bounded by one example; bad data
raises `DataError` naming the file. Pruning criteria, compensation, `bench` and `auto` all read data
through this module and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

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


def load_examples(model, config: DataConfig) -> Iterator[Example]:
    """Examples for `model` (an onnx.ModelProto or path) from `config.path`."""
    from .readers import load_examples as _load

    return _load(model, config)


def split_examples(config: DataConfig) -> tuple[DataConfig, DataConfig]:
    """(calibration, evaluation) configs over `config.path`: disjoint, deterministic (split.py)."""
    from .split import split_examples as _split

    return _split(config)


def split_counts(config: DataConfig) -> dict[str, int]:
    """{"calib": n, "eval": m}: source files (dump rows) on each side of the split."""
    from .split import split_counts as _counts

    return _counts(config)
