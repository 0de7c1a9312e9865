"""The search space of automatic pruning: one kept width per prunable group.

Sensitivity, the latency model and `auto` all ask the same question — "what is the model with
these groups at these widths?" — so the analysis and channel scores are computed once here and
every candidate is a cheap rewrite (no verification; the final choice goes through `prune`,
which verifies it).
"""

from __future__ import annotations

import numpy as np
import onnx

from . import weights
from .analysis import analyze_model
from .io import fingerprint
from .plan import Plan, effective_round_to, group_names, kept_count, make_plan, removed_classes
from .rewrite import apply_removal
from .api import PruneConfig, channel_scores, data_statistics
from .compensate import compensate
from .shapes import infer_value_shapes, parse_shape_specs
from .stats import count_macs, count_params

LEVELS = 16  # candidate widths per group: ratios 0, 1/16, ..., 15/16, rounded up to round_to


class WidthSpace:
    """Kept widths per group -> Plan -> pruned model (and its exact MACs/params), memoised."""

    def __init__(self, model: onnx.ModelProto, *, shapes: dict | None = None, criterion: str = "l1",
                 round_to: int = 4, exclude=(), allow_io_change: bool = False, seed: int = 0,
                 calibration=None, compensate: str = "none"):
        """calibration: feed dicts for data-aware criteria and for `compensate` (bias/lstsq), which
        then repairs every candidate's consumers as `prune --compensate` would."""
        self.model = model
        self.criterion, self.round_to, self.seed, self.compensate = criterion, round_to, seed, compensate
        if shapes is not None and not isinstance(shapes, dict):
            shapes = parse_shape_specs(shapes)  # as given to --shape
        self._analyze = dict(shapes=shapes or {}, exclude=tuple(exclude), allow_io_change=allow_io_change)
        self.analysis = analyze_model(model, **self._analyze)
        self.fingerprint = fingerprint(model)
        config = PruneConfig(criterion=criterion, compensate=compensate, calibration=calibration, seed=seed)
        self.calib = data_statistics(self.analysis, config)
        rng = np.random.default_rng(seed)  # same draw order as api.prune, so 'random' agrees
        self.scores = {g.id: channel_scores(self.analysis, g, config, rng, self.calib)
                       for g in self.analysis.groups if g.prunable}
        names = group_names(self.analysis)
        self.groups = {names[g.id]: g for g in self.analysis.groups if g.prunable}
        self.sizes = {n: g.size for n, g in self.groups.items()}
        self.steps = {n: effective_round_to(g, round_to) for n, g in self.groups.items()}
        self._stats: dict[tuple, dict] = {}
        self.builds = 0

    @property
    def full(self) -> dict[str, int]:
        return dict(self.sizes)

    def levels(self, name: str) -> list[int]:
        """Allowed kept widths of a group, widest first (aligned to round_to, never zero)."""
        size, step = self.sizes[name], self.steps[name]
        return sorted({kept_count(size, i / LEVELS, step) for i in range(LEVELS)}, reverse=True)

    def width_at(self, name: str, ratio: float) -> int:
        return kept_count(self.sizes[name], ratio, self.steps[name])

    def plan(self, keep: dict[str, int]) -> Plan:
        """The plan keeping the `keep[name]` best-scored channels of each group (others whole)."""
        ratios = {n: (self.sizes[n] - k) / self.sizes[n] for n, k in keep.items()}
        plan = make_plan(self.analysis, self.scores, ratio=0.0, global_ranking=False, round_to=1,
                         fingerprint=self.fingerprint, ratios=ratios)
        plan.meta.update({"criterion": self.criterion, "round_to": self.round_to})
        return plan

    def build(self, keep: dict[str, int]) -> onnx.ModelProto:
        plan = self.plan(keep)
        removed = removed_classes(self.analysis, plan)
        self.builds += 1
        if not removed:
            return self.model
        if self.compensate == "none":
            return apply_removal(self.analysis, removed, mode="prune")
        repaired, _ = compensate(self.analysis, removed, self.calib, self.compensate)  # as api.prune does
        analysis = analyze_model(repaired, **self._analyze)
        return apply_removal(analysis, removed_classes(analysis, plan), mode="prune")

    def stats(self, keep: dict[str, int]) -> dict:
        """Exact MACs and parameters of the model at these widths (memoised)."""
        key = tuple(sorted(keep.items()))
        if key not in self._stats:
            with weights.scratch():
                model = self.build(keep)
                try:
                    shapes = infer_value_shapes(model, self.analysis.input_shapes)
                except Exception:
                    shapes = {}
                self._stats[key] = {"macs": count_macs(model, shapes), "params": count_params(model)}
        return self._stats[key]
