"""Per-group sensitivity: how far the model's outputs move when one group alone is pruned.

For every prunable group and each ratio (0.25/0.5/0.75 by default; channels chosen by the
configured criterion, widths rounded like `prune` rounds them) the model with only that group
pruned is built and evaluated over the calibration feeds in one onnxruntime session. Distortion
is the evaluator's `nmse` (noise-to-signal of all outputs vs the original): continuous, so it
ranks groups even where top-1 decisions do not change. Cost: (groups × ratios) × feeds forward
passes, plus one pass over the feeds for the original; `passes` counts them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..core import external
from .widths import WidthSpace

RATIOS = (0.25, 0.5, 0.75)


@dataclass
class Sensitivity:
    sizes: dict[str, int]
    table: dict[str, list[dict]] = field(default_factory=dict)  # group -> [{kept, ratio, nmse, ...}]
    passes: int = 0
    seconds: float = 0.0

    def at(self, name: str, kept: int) -> float:
        """Distortion at any width: linear between measured widths (0 at full width), extended
        beyond the narrowest measured width with the last segment's slope."""
        points = [(self.sizes[name], 0.0)] + [(e["kept"], e["nmse"]) for e in self.table.get(name, [])]
        points.sort(key=lambda p: -p[0])
        for (k0, d0), (k1, d1) in zip(points, points[1:]):
            if k1 <= kept <= k0:
                return d0 if k0 == k1 else d0 + (d1 - d0) * (k0 - kept) / (k0 - k1)
        if len(points) < 2:
            return 0.0
        (k0, d0), (k1, d1) = points[-2], points[-1]
        slope = max(0.0, (d1 - d0) / (k0 - k1)) if k0 != k1 else 0.0
        return d1 + slope * (k1 - kept)

    def ranking(self) -> list[tuple[str, float]]:
        """Groups, most sensitive first, by distortion at the middle ratio measured."""
        def mid(name):
            rows = self.table.get(name) or [{"nmse": 0.0}]
            return rows[len(rows) // 2]["nmse"]
        return sorted(((n, mid(n)) for n in self.sizes), key=lambda t: -t[1])

    def to_dict(self) -> dict:
        return {"metric": "nmse of all outputs vs the original", "forward_passes": self.passes,
                "seconds": round(self.seconds, 3), "groups": self.table}


def measure_sensitivity(space: WidthSpace, evaluate, *, ratios=RATIOS, progress=None, executor=None) -> Sensitivity:
    """`evaluate(model) -> {"nmse", "top1_agreement", ...}` (a fidelity.Fidelity); its `passes`
    attribute, when present, is used to report the cost in forward passes. `executor`
    (core.executor: e.g. distributed.RayExecutor) measures the groups in parallel: the same
    rows, each group's candidates built and evaluated on a worker from the space's recipe."""
    start = time.perf_counter()
    passes0 = getattr(evaluate, "passes", 0)
    sens = Sensitivity(dict(space.sizes))
    if executor is None:
        for name in space.groups:
            sens.table[name] = group_rows((space, evaluate, ratios), name)[0]
            if progress:
                progress(name, sens.table[name])
        sens.passes = getattr(evaluate, "passes", 0) - passes0
    else:
        context = GroupWork(space.recipe(), evaluate, tuple(ratios))
        found = executor.map_values(group_rows, list(space.groups), context=context, title="sensitivity")
        for name, (rows, passes) in zip(space.groups, found):
            sens.table[name] = rows
            sens.passes += passes
            if progress:
                progress(name, rows)
    sens.seconds = time.perf_counter() - start
    return sens


class GroupWork:
    """What a worker needs to measure any group: the space's recipe, the evaluator, the ratios."""

    def __init__(self, recipe, evaluate, ratios):
        self.recipe, self.evaluate, self.ratios, self.key = recipe, evaluate, ratios, recipe.key

    def materialize(self):
        return self.recipe.build(), self.evaluate, self.ratios


def group_rows(context, name: str) -> tuple[list[dict], int]:
    """One group's sensitivity rows and the forward passes they took."""
    space, evaluate, ratios = context
    rows, seen, passes0 = [], set(), getattr(evaluate, "passes", 0)
    for r in ratios:
        kept = space.width_at(name, r)
        if kept in seen or kept == space.sizes[name]:
            continue
        seen.add(kept)
        with external.scratch():
            metrics = evaluate(space.build({name: kept}))
        rows.append({"ratio": r, "kept": kept, **{k: _json_float(v) for k, v in metrics.items()}})
    return rows, getattr(evaluate, "passes", 0) - passes0


def _json_float(v):
    return v if not isinstance(v, float) or abs(v) != float("inf") else (1e9 if v > 0 else -1e9)
