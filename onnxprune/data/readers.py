"""`load_examples`: discover the items, read each one, and turn it into feeds for the model.

Audio goes one of three ways: straight into a raw-waveform input, through a `--frontend` model,
or to a `--feeds` callable. Items are read one at a time (memory holds one clip), with a progress
bar on stderr only when stderr is a terminal.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx

from ..core.io import load_model
from .config import DataConfig, DataError, Example
from .audio import read_audio
from .fit import fit_features, input_specs, is_waveform, shape_text, waveform_feeds
from .sources import Item, discover, item_keys
from .split import check, keep_fn

DEFAULT_RATE = 16000


def _model(model) -> onnx.ModelProto:
    return model if isinstance(model, onnx.ModelProto) else load_model(model)


def load_examples(model, config: DataConfig):
    _check_config(config)
    model = _model(model)
    kind, items = discover(config.path)
    keep = keep_fn(config, item_keys(kind, items) if config.subset else ())
    if kind == "dumps":
        examples = _dump_examples(model, config, items, keep)
    else:
        examples = _audio_examples(model, config, [it for it in items if keep(it.key)])
    count = 0
    for ex in examples:
        if config.limit is not None and count >= config.limit:
            return
        count += 1
        yield ex


def _check_config(config: DataConfig) -> None:
    check(config)
    for name in ("sample_rate", "window", "hop"):
        value = getattr(config, name)
        if value is not None and value <= 0:
            raise DataError(f"--{name.replace('_', '-')} {value}: must be positive")
    if config.limit is not None and config.limit < 0:
        raise DataError(f"--limit {config.limit}: must be >= 0")
    if config.frontend and config.feeds:
        raise DataError("--frontend and --feeds both given; use one (a --feeds callable can run a front-end itself)")


def _audio_examples(model: onnx.ModelProto, config: DataConfig, items: list[Item]):
    rate = config.sample_rate or DEFAULT_RATE
    to_feeds = _converter(model, config, rate)
    for item in _progress(items):
        samples = read_audio(item.path, rate, item.offset, item.duration)
        source = str(item.path) + (f"@{item.offset:g}s" if item.offset else "")
        seconds = len(samples) / rate
        for index, (start, feeds) in enumerate(to_feeds(samples, source, seconds)):
            # a window covers --window seconds (the rest of the clip for the last one), not the clip
            span = seconds if start is None or not config.window else min(config.window, seconds - start)
            yield Example(feeds, label=item.label, text=item.text, source=source, seconds=span,
                          meta={"start": None if start is None else item.offset + start, "index": index,
                                "key": item.key, "file": str(item.path), "clip_seconds": seconds})


def _converter(model: onnx.ModelProto, config: DataConfig, rate: int):
    """A function (samples, source, seconds) -> iterable of (start seconds, feeds)."""
    if config.feeds:
        from ..core.runtime import make_session
        from .callable import FeedsCallable

        call = FeedsCallable(config.feeds, make_session(model))
        return lambda samples, source, seconds: ((None, f) for f in call(samples, rate, source))
    specs = input_specs(model, config.shapes)
    described = ", ".join(f"{s.name} {shape_text(s.dims)}" for s in specs)
    if len(specs) != 1:
        raise DataError(f"model has inputs {described}; audio can fill only one: use --feeds for the others")
    spec = specs[0]
    if config.frontend:
        if config.window:  # would be silently ignored: the model's input length sets the window
            raise DataError("--window applies to raw-waveform models; with --frontend the model's input length "
                            "sets the window along the front-end's time axis (--hop sets the step)")
        from .frontend import Frontend

        front = Frontend(config.frontend)

        def through_frontend(samples, source, seconds):
            out = front(samples, source)
            for start, arr in fit_features(out, spec, source, seconds, config.hop):
                yield start, {spec.name: arr}

        return through_frontend
    if not is_waveform(spec):
        raise DataError(f"model input {described} is not a waveform [B,T] or [B,1,T]; give --frontend or --feeds")

    def raw(samples, source, seconds):
        for start, arr in waveform_feeds(samples, spec, rate, config.window, config.hop):
            yield start, {spec.name: arr}

    return raw


def _progress(items: list):
    """The items, with a progress bar on stderr when it is a terminal (never in pipes or logs)."""
    if not sys.stderr.isatty() or len(items) < 2:
        yield from items
        return
    for done, item in enumerate(items, 1):
        yield item
        width = 30 * done // len(items)
        sys.stderr.write(f"\rreading data [{'#' * width}{'-' * (30 - width)}] {done}/{len(items)}")
        sys.stderr.flush()
    sys.stderr.write("\n")


def _dump_examples(model: onnx.ModelProto, config: DataConfig, items: list[Item], keep):
    specs = input_specs(model, config.shapes)
    for item in _progress(items):
        for i, ex in enumerate(_read_dump(item.path, specs, item.key)):
            if keep(f"{item.key}[{i}]"):
                yield ex


def _read_dump(f: Path, specs, key: str):
    """An .npz maps input names to arrays whose first axis indexes examples (an optional `label`
    array beside them); an .npy is one such array for a single-input model. An array with one
    dim fewer than the input is a single example."""
    names = [s.name for s in specs]
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
    for s in specs:
        if arrays[s.name].ndim == len(s.dims) - 1:
            arrays[s.name] = arrays[s.name][None]
        elif arrays[s.name].ndim != len(s.dims):
            raise DataError(f"--data {f}: array '{s.name}' {shape_text(arrays[s.name].shape)} does not fit "
                            f"input {shape_text(s.dims)}")
    count = len(arrays[names[0]])
    rows = {n: len(arrays[n]) for n in names} | ({"label": len(labels)} if labels is not None else {})
    if len(set(rows.values())) > 1:
        raise DataError(f"--data {f}: arrays hold different numbers of examples ({rows})")
    for s in specs:
        if s.dtype is not None and arrays[s.name].dtype != s.dtype:
            if not np.can_cast(arrays[s.name].dtype, s.dtype, casting="same_kind"):
                raise DataError(f"--data {f}: array '{s.name}' is {arrays[s.name].dtype}, the input takes {np.dtype(s.dtype)}")
            arrays[s.name] = arrays[s.name].astype(s.dtype)
    for i in range(count):
        label = None if labels is None else str(labels[i])
        yield Example({n: arrays[n][i:i + 1] for n in names}, label=label, source=f"{f}[{i}]",
                      meta={"key": f"{key}[{i}]"})
