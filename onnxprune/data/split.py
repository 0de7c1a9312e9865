"""A deterministic calibration/evaluation split.

Source items (an audio file, a manifest's audio file, a dump row) are ordered by a SHA-1 of their
key (the path relative to the data root) and the first round(holdout * n) go to the evaluation
side (at least one, and at least one left for calibration, when there are two or more). The split
depends only on the names, so it is the same on every machine and run, does not depend on --limit,
the order of files or where the folder lives, gives the asked-for proportion even for a small
folder (a per-file hash threshold put 20 of 40 files on a 25 % side), and keeps all windows of one
clip on the same side.
"""

from __future__ import annotations

import dataclasses
import hashlib
from .config import DataConfig, DataError
from .sources import discover, item_keys


SUBSETS = (None, "calib", "eval")


def _digest(key: str) -> bytes:
    return hashlib.sha1(key.encode("utf-8")).digest()


def eval_keys(keys, holdout: float) -> set[str]:
    """The keys on the evaluation side."""
    ordered = sorted(set(keys), key=lambda k: (_digest(k), k))
    n = len(ordered)
    count = int(round(holdout * n))
    if holdout > 0 and n > 1:
        count = min(max(count, 1), n - 1)
    return set(ordered[:count])


def check(config: DataConfig) -> None:
    if config.subset not in SUBSETS:
        raise DataError(f"data subset {config.subset!r}: expected 'calib' or 'eval'")
    if not 0.0 <= config.holdout < 1.0:
        raise DataError(f"--holdout {config.holdout}: expected a fraction in [0, 1)")


def keep_fn(config: DataConfig, keys):
    """A predicate on keys selecting `config.subset` (everything when it is None)."""
    if config.subset is None:
        return lambda key: True
    held = eval_keys(keys, config.holdout)
    want_eval = config.subset == "eval"
    return lambda key: (key in held) == want_eval


def split_examples(config: DataConfig) -> tuple[DataConfig, DataConfig]:
    """(calibration config, evaluation config) over the same data, disjoint by source item."""
    check(config)
    return dataclasses.replace(config, subset="calib"), dataclasses.replace(config, subset="eval")


def split_counts(config: DataConfig) -> dict[str, int]:
    """Source items on each side, {"calib": n, "eval": m}, without decoding audio.

    Items are files/manifest entries (dumps: rows); windowing can make more examples per item.
    """
    check(config)
    keys = set(item_keys(*discover(config.path)))
    held = eval_keys(keys, config.holdout)
    return {"calib": len(keys) - len(held), "eval": len(held)}
