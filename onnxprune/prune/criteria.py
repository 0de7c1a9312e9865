"""Importance of each channel of a group: one number per channel class, higher = keep.

Criteria are objects in one registry (in the spirit of Torch-Pruning's `Importance`): each knows
whether it needs calibration data and which criterion it actually applied to a group (`bn` falls
back to l1 where a group has no BatchNorm; a data criterion where no calibrated consumer reads it).
"""

from __future__ import annotations

import numpy as np

from ..analysis import Analysis, Group
from ..analysis.atoms import FIXED
from ..analysis.handlers.quantized import dequantized_weight
from ..calibration.criteria import DATA_CRITERIA, score_group_data
from ..errors import UsageError

CRITERIA = ("l1", "l2", "bn", "random")  # magnitude and random: no data


class Criterion:
    """`score(analysis, group, rng=, calib=, refit=) -> (scores, criterion actually used)`."""
    needs_data = False
    external = False  # scored outside prune/ (PruneConfig.scores), e.g. by gradients in recover/

    def __init__(self, name: str):
        self.name = name

    def score(self, analysis: Analysis, group: Group, *, rng: np.random.Generator, calib=None,
              refit: bool = False) -> tuple[np.ndarray, str]:
        return score_group(analysis, group, self.name, rng), self.used(analysis, group)

    def used(self, analysis: Analysis, group: Group) -> str:
        return criterion_used(analysis, group, self.name)


class DataCriterion(Criterion):
    """activation / reconstruction on calibration statistics (calibration/criteria.py)."""
    needs_data = True

    def score(self, analysis, group, *, rng, calib=None, refit=False):
        scores = score_group_data(analysis, group, self.name, calib, refit=refit)
        if scores is None:  # no calibrated consumer reads this group
            return score_group(analysis, group, "l1", rng), "l1"
        return scores, self.name

    def used(self, analysis, group):
        return self.name


class ExternalCriterion(Criterion):
    """taylor / fisher: the gradient of a channel mask on calibration data (recover/criteria.py,
    torch through the optional recover extra). This layer never imports torch: the caller computes
    the scores (`onnxprune.recover.criteria.gradient_scores`; the CLI does it for --criterion) and
    hands them over as `PruneConfig.scores`, group name -> one score per channel."""
    needs_data = True
    external = True

    def score(self, analysis, group, *, rng, calib=None, refit=False):
        raise UsageError(f"criterion '{self.name}' is computed by the recover extra: pass its scores "
                         f"(PruneConfig.scores, from onnxprune.recover.criteria.gradient_scores)")

    def used(self, analysis, group):
        return self.name


GRADIENT_CRITERIA = ("taylor", "fisher")
REGISTRY: dict[str, Criterion] = {**{n: Criterion(n) for n in CRITERIA}, **{n: DataCriterion(n) for n in DATA_CRITERIA},
                                  **{n: ExternalCriterion(n) for n in GRADIENT_CRITERIA}}
NAMES = tuple(REGISTRY)
BUILTIN = tuple(n for n in NAMES if not REGISTRY[n].external)  # scored inside prune/ (no extra)


def needs_data(criterion: str, compensate: str = "none") -> bool:
    """The one place that decides whether a configuration reads calibration data."""
    return get(criterion).needs_data or compensate != "none"


def get(name: str) -> Criterion:
    if name not in REGISTRY:
        raise UsageError(f"unknown criterion '{name}' (choose from {', '.join(NAMES)})")
    return REGISTRY[name]


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
        value = dequantized_weight(p.node, p.input_index, analysis.index.const)
        if value is None:  # a float weight (a stored int8/uint8 one is ranked on (w - zero_point) * scale)
            value = analysis.index.const(p.tensor)
        if p.per_row:  # per direction: norms of each row's own positions, row after row
            per_position = np.concatenate([slice_norms(v, p.axis - 1, power, reduce) for v in value])
            roots = roots.reshape(-1)
        else:
            per_position = slice_norms(value, p.axis, power, reduce)
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


BLOCK_ELEMENTS = 1 << 22


def slice_norms(value: np.ndarray, axis: int, power: int, reduce: str = "sum") -> np.ndarray:
    """Per position along `axis`: the sum of |w|^power over the slice (or the mean of |w|), in
    float64. Computed over blocks of the first axis, so a weight left on disk is never copied
    whole (a 1 GiB float32 weight would otherwise need 2 GiB as float64, and more for |w|)."""
    rows = max(1, BLOCK_ELEMENTS // max(1, value.size // max(1, value.shape[0])))
    total = np.zeros(value.shape[axis])
    for start in range(0, max(1, value.shape[0]), rows):
        block = value[start:start + rows]
        flat = np.abs(np.moveaxis(block.astype(np.float64), axis, 0).reshape(block.shape[axis], -1))
        sums = (flat ** power).sum(axis=1)
        if axis == 0:
            total[start:start + block.shape[0]] = sums
        else:
            total += sums
    if reduce == "mean":
        total /= max(1, value.size // max(1, value.shape[axis]))
    return total
