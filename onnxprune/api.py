"""The Python API: `analyze` and `prune`, keyword-only, mirroring the CLI. A facade: the prune
sequence itself lives in `prune/pipeline.py`."""

from __future__ import annotations

import onnx

from .analysis import Analysis, analyze_model
from .core.io import load_model
from .core.shapes import parse_input_values, parse_shape_specs
from .prune.pipeline import PruneConfig, PruneResult, check_verified, model_stats, prune

__all__ = ["Analysis", "PruneConfig", "PruneResult", "analyze", "check_verified", "model_stats", "prune"]


def analyze(model_or_path, *, shapes=None, exclude=(), allow_io_change: bool = False, inputs=None) -> Analysis:
    """Dependency groups of a model, each prunable or blocked with the reason."""
    model = model_or_path if isinstance(model_or_path, onnx.ModelProto) else load_model(model_or_path)
    if shapes is not None and not isinstance(shapes, dict):
        shapes = parse_shape_specs(shapes)
    if inputs is not None and not isinstance(inputs, dict):
        inputs = parse_input_values(inputs)
    return analyze_model(model, shapes={k: list(v) for k, v in (shapes or {}).items()}, exclude=tuple(exclude),
                         allow_io_change=allow_io_change, values=inputs)
