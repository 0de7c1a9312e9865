"""A deterministic calibration/evaluation split.

Each source item (an audio file, a manifest's audio file, a dump row) goes to the evaluation side
when a SHA-1 of its key (its path relative to the data root) falls in the first `holdout` fraction.
The split depends on nothing but the names, so it is the same on every machine and run, never
depends on --limit or the order of files, and all windows of one clip stay on the same side.
"""

from __future__ import annotations

import dataclasses
import hashlib

from . import DataConfig, DataError

SUBSETS = (None, "calib", "eval")


def is_eval(key: str, holdout: float) -> bool:
    digest = hashlib.sha1(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < holdout


def keep(key: str, config: DataConfig) -> bool:
    if config.subset is None:
        return True
    return is_eval(key, config.holdout) == (config.subset == "eval")


def check(config: DataConfig) -> None:
    if config.subset not in SUBSETS:
        raise DataError(f"data subset {config.subset!r}: expected 'calib' or 'eval'")
    if not 0.0 <= config.holdout < 1.0:
        raise DataError(f"--holdout {config.holdout}: expected a fraction in [0, 1)")


def split_examples(config: DataConfig) -> tuple[DataConfig, DataConfig]:
    """(calibration config, evaluation config) over the same data, disjoint by source item."""
    check(config)
    return dataclasses.replace(config, subset="calib"), dataclasses.replace(config, subset="eval")


def split_counts(config: DataConfig) -> dict[str, int]:
    """Source items on each side, {"calib": n, "eval": m}, without decoding audio.

    Items are files/manifest entries (dumps: rows); windowing can make more examples per item.
    """
    from .readers import dump_keys
    from .sources import discover

    check(config)
    kind, items = discover(config.path)
    keys = (k for it in items for k in dump_keys(it)) if kind == "dumps" else (it.key for it in items)
    counts = {"calib": 0, "eval": 0}
    for key in keys:
        counts["eval" if is_eval(key, config.holdout) else "calib"] += 1
    return counts
