"""Calibration feeds for `prune`: read through the shared data interface, checked up front so a
data-aware option without --data is one line of usage error."""

from __future__ import annotations

from ..data import DataConfig, load_examples
from ..errors import UsageError
from ..prune import criteria


def calibration_feeds(model, data: DataConfig | None, shapes, criterion: str, compensate: str, *, lowrank: bool = False,
                      recover: bool = False):
    """The feed dicts of --data (a one-pass generator; a list when low-rank, --recover or a gradient criterion reads them too), or None.
    Data-aware criteria and compensation (and --recover) require --data; low-rank factorization uses it when given."""
    needs = criteria.needs_data(criterion, compensate) or recover
    if data is None:
        if needs:
            what = (f"--criterion {criterion}" if criteria.get(criterion).needs_data else
                    f"--compensate {compensate}" if compensate != "none" else "--recover")
            raise UsageError(f"{what} needs calibration data: pass --data (audio folder, manifest or .npz dumps)")
        return None
    if lowrank or recover or criteria.get(criterion).external:  # read more than once (gradient scores too)
        return [ex.feeds for ex in load_examples(model, data)]
    if not needs:  # --data then serves only to measure the result against the original on real inputs
        return None
    # --shape fixes the dims analysis and verification use; calibration clips keep their own length
    # where the model's dim is symbolic (a recognizer's time axis), as the model will see in use
    return (ex.feeds for ex in load_examples(model, data))  # streamed: calibration reads it once
