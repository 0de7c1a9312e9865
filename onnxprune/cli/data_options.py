"""The `--data` family of options, shared by prune, bench, sweep and auto."""

from __future__ import annotations

import click

from ..data import DataConfig


HOLDOUT_HELP = {
    "calib": "Calibrate only on the files outside this held-out fraction (split by a hash of each path: "
             "bench --holdout with the same fraction evaluates on exactly the held-out ones). Default: all files.",
    "eval": "Evaluate only on this held-out fraction of the files (the ones prune/quantize --holdout with the "
            "same fraction never calibrate on). Default: all files.",
    "both": "Fraction of the files held out for evaluation; the rest calibrate (split by a hash of each path).",
}


def data_options(side: str, holdout_default: float | None = None):
    """Add --data/--frontend/--feeds/--sample-rate/--window/--hop/--limit/--holdout. The command
    receives `data`, a DataConfig or None without --data. side 'calib' (prune, quantize) or 'eval'
    (bench): with --holdout, `data` is that side of the split (one folder then serves both without
    overlap), else all of it; side 'both' (auto, sweep): `data` covers everything with the holdout
    fraction set, split by the command with `onnxprune.data.split_examples`: always when there is
    a default fraction (auto, 0.2), else the command also receives `split` (was --holdout given;
    sweep)."""
    assert side in HOLDOUT_HELP

    def decorate(f):
        options = [
            click.option("--data", "data_path", type=click.Path(), help="Audio folder, JSONL manifest, .npy/.npz dumps."),
            click.option("--frontend", type=click.Path(dir_okay=False), help="ONNX front-end mapping audio to the model's input."),
            click.option("--feeds", "feeds_fn", metavar="MODULE:FUNCTION", help="Python callable yielding feeds."),
            click.option("--sample-rate", type=int, help="Sample rate the model (or front-end) expects."),
            click.option("--window", type=float, help="Seconds per example for raw-waveform models."),
            click.option("--hop", type=float, help="Seconds between windows (default: the window)."),
            click.option("--limit", type=int, help="Use at most this many examples."),
            click.option("--holdout", type=float, default=holdout_default, show_default=holdout_default is not None,
                         help=HOLDOUT_HELP[side]),
        ]
        for opt in reversed(options):
            f = opt(f)
        return _collect(f, side, holdout_default)

    return decorate


def _collect(f, side: str, holdout_default):
    import functools

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        path = kwargs.pop("data_path")
        holdout = kwargs.pop("holdout")
        cfg = dict(frontend=kwargs.pop("frontend"), feeds=kwargs.pop("feeds_fn"),
                   sample_rate=kwargs.pop("sample_rate"), window=kwargs.pop("window"),
                   hop=kwargs.pop("hop"), limit=kwargs.pop("limit"))
        if holdout is not None:
            cfg["holdout"] = holdout
            if side != "both":
                cfg["subset"] = side
        kwargs["data"] = DataConfig(path=path, shapes=None, **cfg) if path else None
        if side == "both" and holdout_default is None:
            kwargs["split"] = holdout is not None
        return f(*args, **kwargs)

    return wrapper
