"""The `--data` family of options, shared by prune, bench, sweep and auto."""

from __future__ import annotations

import click

from ..data import DataConfig


def data_options(f):
    """Add --data/--frontend/--feeds/--sample-rate/--window/--hop/--limit/--holdout; the command
    receives `data` (a DataConfig over all the data, or None without --data). A command picks its
    side with `onnxprune.data.split_examples(data)` (calibration for prune, evaluation for bench)."""
    options = [
        click.option("--data", "data_path", type=click.Path(), help="Audio folder, JSONL manifest, .npy/.npz dumps."),
        click.option("--frontend", type=click.Path(dir_okay=False), help="ONNX front-end mapping audio to the model's input."),
        click.option("--feeds", "feeds_fn", metavar="MODULE:FUNCTION", help="Python callable yielding feeds."),
        click.option("--sample-rate", type=int, help="Sample rate the model (or front-end) expects."),
        click.option("--window", type=float, help="Seconds per example for raw-waveform models."),
        click.option("--hop", type=float, help="Seconds between windows (default: the window)."),
        click.option("--limit", type=int, help="Use at most this many examples."),
        click.option("--holdout", type=float, default=0.2, show_default=True,
                     help="Fraction of data files held out for evaluation (split by a hash of the path)."),
    ]
    for opt in reversed(options):
        f = opt(f)
    return _collect(f)


def _collect(f):
    import functools

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        path = kwargs.pop("data_path")
        cfg = dict(frontend=kwargs.pop("frontend"), feeds=kwargs.pop("feeds_fn"),
                   sample_rate=kwargs.pop("sample_rate"), window=kwargs.pop("window"),
                   hop=kwargs.pop("hop"), limit=kwargs.pop("limit"), holdout=kwargs.pop("holdout"))
        kwargs["data"] = DataConfig(path=path, shapes=None, **cfg) if path else None
        return f(*args, **kwargs)

    return wrapper
