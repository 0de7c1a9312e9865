"""Importance of each channel of a group: one number per channel class, higher = keep."""

from __future__ import annotations

import numpy as np

from .analysis import Analysis, Group
from .analysis.atoms import FIXED
from .errors import UsageError

CRITERIA = ("l1", "l2", "bn", "random")


def score_group(analysis: Analysis, group: Group, criterion: str, rng: np.random.Generator) -> np.ndarray:
    """Magnitude criteria sum, over every weight slice that produces or consumes a channel, that
    slice's norm normalised by the member's mean, so a wide consumer does not drown a narrow
    producer (the group-level L1/L2 of Torch-Pruning's GroupMagnitudeImportance)."""
    if criterion not in CRITERIA:
        raise UsageError(f"unknown criterion '{criterion}' (choose from {', '.join(CRITERIA)})")
    if criterion == "random":
        return rng.random(group.size)
    local = {root: i for i, root in enumerate(group.classes)}
    members = analysis.params_of(group)
    if criterion == "bn":
        bn = [(p, r) for p, r in members if p.tag == "bn_scale"]
        if bn:
            return _accumulate(analysis, bn, local, group.size, power=1, reduce="mean")
        criterion = "l1"  # no BatchNorm in this group (often folded into the conv): fall back
    weights = [(p, r) for p, r in members if p.role in ("producer", "consumer")]
    return _accumulate(analysis, weights, local, group.size, power=1 if criterion == "l1" else 2)


def criterion_used(analysis: Analysis, group: Group, criterion: str) -> str:
    if criterion == "bn" and not any(p.tag == "bn_scale" for p, _ in analysis.params_of(group)):
        return "l1"
    return criterion


def _accumulate(analysis, members, local, size, *, power: int, reduce: str = "sum") -> np.ndarray:
    total = np.zeros(size)
    for p, roots in members:
        value = analysis.index.const(p.tensor)
        flat = np.abs(np.moveaxis(value.astype(np.float64), p.axis, 0).reshape(value.shape[p.axis], -1))
        per_position = (flat ** power).sum(axis=1) if reduce == "sum" else flat.mean(axis=1)
        vec = np.zeros(size)
        count = np.zeros(size)
        for pos, root in enumerate(roots.tolist()):
            if root != FIXED and root in local:
                vec[local[root]] += per_position[pos]
                count[local[root]] += 1
        if reduce == "mean":
            vec = np.divide(vec, count, out=np.zeros(size), where=count > 0)
        if power == 2:
            vec = np.sqrt(vec)
        positive = vec[vec > 0]
        if positive.size:
            total += vec / positive.mean()
    return total
