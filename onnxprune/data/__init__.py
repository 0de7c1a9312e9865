"""Calibration and evaluation data, turned into model feeds.

One entry point, `load_examples(model, config)`, yields `Example`s whose `feeds` can be passed
straight to an onnxruntime session of `model`. Every reader (audio folder, JSONL manifest, feature
dumps, front-end model, Python callable) streams, so memory stays bounded by one example; bad data
raises `DataError` naming the file. Pruning criteria, compensation, `bench` and `auto` all read data
through this module and nothing else.
"""

from __future__ import annotations

from .config import DataConfig, DataError, Example
from .readers import load_examples
from .split import split_counts, split_examples

__all__ = ["DataConfig", "DataError", "Example", "load_examples", "split_counts", "split_examples"]
