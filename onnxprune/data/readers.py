"""Readers behind `load_examples`. Feature dumps (.npz/.npy) for now; audio readers follow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from ..io import load_model
from . import DataConfig, DataError, Example


def _model(model) -> onnx.ModelProto:
    return model if isinstance(model, onnx.ModelProto) else load_model(model)


def _input_names(model: onnx.ModelProto) -> list[str]:
    inits = {t.name for t in model.graph.initializer}
    return [v.name for v in model.graph.input if v.name not in inits]


def load_examples(model, config: DataConfig):
    path = Path(config.path)
    if not path.exists():
        raise DataError(f"--data {path}: no such file or directory")
    names = _input_names(_model(model))
    files = sorted(path.glob("*.np[yz]")) if path.is_dir() else [path]
    if not files:
        raise DataError(f"--data {path}: no .npy/.npz files in this folder")
    count = 0
    for f in files:
        for ex in _read_dump(f, names):
            if config.limit is not None and count >= config.limit:
                return
            count += 1
            yield ex


def _read_dump(f: Path, names: list[str]):
    """An .npz maps input names to arrays whose first axis indexes examples (an optional `label`
    array beside them); an .npy is one such array for a single-input model."""
    try:
        data = np.load(f, allow_pickle=False)
    except Exception as exc:
        raise DataError(f"--data {f}: cannot read ({type(exc).__name__}: {exc})") from None
    if isinstance(data, np.ndarray):
        if len(names) != 1:
            raise DataError(f"--data {f}: an .npy holds one array but the model has inputs {names}; use .npz keyed by input name")
        arrays = {names[0]: data}
    else:
        arrays = {k: data[k] for k in data.files}
    labels = arrays.pop("label", None)
    missing = [n for n in names if n not in arrays]
    if missing:
        raise DataError(f"--data {f}: no array for model input(s) {', '.join(missing)} (has {', '.join(arrays)})")
    count = len(arrays[names[0]])
    for i in range(count):
        label = None if labels is None else str(labels[i])
        yield Example({n: arrays[n][i:i + 1] for n in names}, label=label, source=f"{f}[{i}]")
