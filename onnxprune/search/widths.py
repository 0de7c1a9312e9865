"""The search space of automatic pruning: one kept width per prunable group.

Sensitivity, the latency model and `auto` all ask the same question — "what is the model with
these groups at these widths?" — so the analysis and channel scores are computed once here and
every candidate is a cheap rewrite (no verification; the final choice goes through `prune`,
which verifies it).
"""

from __future__ import annotations

from dataclasses import replace

import onnx

from ..core import external
from ..core.cost import count_macs, count_params
from ..core.shapes import infer_value_shapes
from ..prune import pipeline
from ..prune.pipeline import Apply, Compensate, PruneConfig
from ..prune.plan import (
    Plan,
    effective_round_to,
    group_names,
    kept_count,
    make_plan,
    removed_classes,
)
from ..prune.resized import kept_shapes, resized_io, tag

LEVELS = 16  # candidate widths per group: ratios 0, 1/16, ..., 15/16, rounded up to round_to


class WidthSpace:
    """Kept widths per group -> Plan -> pruned model (and its exact MACs/params), memoised."""

    def __init__(self, model: onnx.ModelProto, config: PruneConfig | None = None, **options):
        """`config` (or PruneConfig's fields as keywords) as for `prune`: its criterion ranks the
        channels; with calibration feeds, data-aware criteria and `compensate` (bias/lstsq) repair
        every candidate's consumers as `prune --compensate` would. Ratio and plan are the space's."""
        self.model = model
        self.config = replace(config or PruneConfig(**options), ratio=0.0, plan=None, verify=False)
        c = self.config
        self.criterion, self.round_to, self.seed, self.compensate = c.criterion, c.round_to, c.seed, c.compensate
        round_to = c.round_to
        prepared = pipeline.run(model, self.config, pipeline.PREPARE)
        self.analysis, self.fingerprint = prepared.analysis, prepared.fingerprint
        self.calib, self.scores = prepared.calib, prepared.scores
        names = group_names(self.analysis)
        self.groups = {names[g.id]: g for g in self.analysis.groups if g.prunable}
        self.sizes = {n: g.size for n, g in self.groups.items()}
        self.steps = {n: effective_round_to(g, round_to) for n, g in self.groups.items()}
        self._stats: dict[tuple, dict] = {}
        self.builds = 0

    def recipe(self) -> "SpaceRecipe":
        """What rebuilds this space in another process (a Ray worker): the model's bytes and config."""
        from ..core.io import model_bytes

        return SpaceRecipe(model_bytes(self.model), self.config)

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
        """The candidate exactly as `prune` would write it for `self.plan(keep)` (unverified)."""
        st = pipeline.State(self.model, self.config, analysis=self.analysis, fingerprint=self.fingerprint,
                            calib=self.calib, scores=self.scores, plan=self.plan(keep))
        self.builds += 1
        Compensate()(st)
        if not st.removed:
            return self.model
        pruned = Apply(verify=False, reference=False)(st).pruned
        return tag(pruned, resized_io(self.analysis, st.removed)) if self.config.allow_io_change else pruned

    def resized(self, keep: dict[str, int]) -> list[dict]:
        """The graph inputs/outputs (state, --allow-io-change) these widths shrink, as prune's resized_io."""
        return resized_io(self.analysis, removed_classes(self.analysis, self.plan(keep)))

    def stats(self, keep: dict[str, int]) -> dict:
        """Exact MACs and parameters of the model at these widths (memoised)."""
        key = tuple(sorted(keep.items()))
        if key not in self._stats:
            with external.scratch():
                model = self.build(keep)
                try:
                    shapes = infer_value_shapes(model, kept_shapes(self.analysis.input_shapes, model))
                except Exception:
                    shapes = {}
                self._stats[key] = {"macs": count_macs(model, shapes), "params": count_params(model)}
        return self._stats[key]


class SpaceRecipe:
    """A WidthSpace as bytes and its PruneConfig; `build()` makes the same space (same analysis,
    scores, statistics) in another process."""

    def __init__(self, model: bytes, config: PruneConfig):
        import uuid

        self.model, self.config, self.key = model, config, uuid.uuid4().hex

    def build(self) -> WidthSpace:
        return WidthSpace(onnx.ModelProto.FromString(self.model), self.config)
