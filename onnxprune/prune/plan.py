"""From scores and ratios to the kept channels of every group. A Plan is plain JSON: it can be
saved, read back and replayed on the same model."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from ..analysis import Analysis
from ..analysis.atoms import FIXED
from ..errors import UsageError

PLAN_FORMAT = "onnxprune-plan/1"


@dataclass
class Plan:
    fingerprint: str
    groups: dict[str, list[int]] = field(default_factory=dict)  # group name -> kept channel indices
    sizes: dict[str, int] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    blocks: list[str] = field(default_factory=list)  # residual blocks dropped before widths (prune/depth.py)
    ranks: dict[str, int] = field(default_factory=dict)  # layer -> rank, factorized after widths (prune/lowrank.py)

    def to_json(self) -> str:
        data = {"format": PLAN_FORMAT, "fingerprint": self.fingerprint, "meta": self.meta,
                "groups": {k: {"size": self.sizes[k], "keep": v} for k, v in self.groups.items()}}
        if self.blocks:  # written only when used: width-only plans keep their bytes
            data["blocks"] = list(self.blocks)
        if self.ranks:
            data["lowrank"] = dict(self.ranks)
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"plan is not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
            raise UsageError(f"plan format is not {PLAN_FORMAT}")
        groups = {k: list(map(int, v["keep"])) for k, v in data["groups"].items()}
        sizes = {k: int(v["size"]) for k, v in data["groups"].items()}
        return cls(data["fingerprint"], groups, sizes, data.get("meta", {}), [str(b) for b in data.get("blocks", [])],
                   {str(k): int(v) for k, v in data.get("lowrank", {}).items()})


def group_names(analysis: Analysis) -> dict[int, str]:
    """Unique, stable names (the first source's node name, de-duplicated)."""
    seen: dict[str, int] = {}
    out = {}
    for g in analysis.groups:
        n = seen.get(g.name, 0)
        seen[g.name] = n + 1
        out[g.id] = g.name if n == 0 else f"{g.name}#{n}"
    return out


def kept_count(size: int, ratio: float, round_to: int) -> int:
    """Channels to keep: never zero, rounded *up* to a multiple of round_to (never above size)."""
    keep = size - math.floor(size * ratio + 1e-9)
    if round_to > 1:
        keep = min(size, math.ceil(keep / round_to) * round_to)
    return max(1, keep)


def effective_round_to(group, round_to: int) -> int:
    """round_to counts tensor positions: a unit that spans w positions (an attention head of
    head_dim 16) needs only round_to / gcd(round_to, w) units per step."""
    width = min(len(s.atoms) // max(1, group.size) for s in group.sources) or 1
    return max(1, round_to // math.gcd(round_to, width))


def make_plan(analysis: Analysis, scores: dict[int, np.ndarray], *, ratio: float, global_ranking: bool,
              round_to: int, fingerprint: str, ratios: dict[str, float] | None = None) -> Plan:
    if not 0.0 <= ratio < 1.0:
        raise UsageError(f"--ratio {ratio} is out of range: use 0 <= ratio < 1")
    if round_to < 1:
        raise UsageError(f"--round-to {round_to} must be at least 1")
    names = group_names(analysis)
    prunable = [g for g in analysis.groups if g.prunable]
    keep_n: dict[int, int] = {}
    if global_ranking and prunable:
        pooled = []
        for g in prunable:
            s = scores[g.id]
            norm = s / s.mean() if s.mean() > 0 else s
            pooled.extend((v, g.id) for v in norm.tolist())
        pooled.sort()
        budget = math.floor(len(pooled) * ratio + 1e-9)
        removed = {g.id: 0 for g in prunable}
        for _, gid in pooled[:budget]:
            removed[gid] += 1
        for g in prunable:
            keep = max(1, g.size - removed[g.id])
            step = effective_round_to(g, round_to)
            keep_n[g.id] = min(g.size, math.ceil(keep / step) * step)
    else:
        for g in prunable:
            r = (ratios or {}).get(names[g.id], ratio)
            keep_n[g.id] = kept_count(g.size, r, effective_round_to(g, round_to))
    plan = Plan(fingerprint, meta={"ratio": ratio, "global": global_ranking, "round_to": round_to})
    for g in analysis.groups:
        plan.sizes[names[g.id]] = g.size
        if g.id in keep_n:
            order = np.argsort(-scores[g.id], kind="stable")
            plan.groups[names[g.id]] = sorted(order[:keep_n[g.id]].tolist())
        else:
            plan.groups[names[g.id]] = list(range(g.size))
    _repair_empty_dims(analysis, plan, scores, names)
    return plan


def removed_classes(analysis: Analysis, plan: Plan) -> set[int]:
    """Union-find roots of every channel the plan removes; checks the plan fits this model."""
    names = group_names(analysis)
    by_name = {names[g.id]: g for g in analysis.groups}
    unknown = sorted(set(plan.groups) - set(by_name))
    if unknown:
        raise UsageError(f"plan names group '{unknown[0]}', which this model does not have (plan made for another model?)")
    removed: set[int] = set()
    for name, keep in plan.groups.items():
        g = by_name[name]
        if plan.sizes.get(name, g.size) != g.size or any(not 0 <= k < g.size for k in keep):
            raise UsageError(f"plan group '{name}' has {plan.sizes.get(name)} channels, model has {g.size}")
        if len(keep) < g.size and not g.prunable:
            raise UsageError(f"plan prunes group '{name}', which is blocked: {g.blocked_by[0] if g.blocked_by else 'single channel'}")
        if not keep:
            raise UsageError(f"plan removes every channel of group '{name}'")
        kept = set(keep)
        removed.update(r for i, r in enumerate(g.classes) if i not in kept)
    return removed


def _repair_empty_dims(analysis, plan, scores, names) -> None:
    """A Slice or Split can expose a subset of a group; never let such a tensor lose every channel."""
    group_of = analysis.group_of()
    kept_all = {g.classes[i] for g in analysis.groups for i in plan.groups[names[g.id]]}
    for axes in analysis.dims.values():
        for labels in axes.values():
            roots = set(analysis.atoms.roots(labels.reshape(-1)).tolist())
            if FIXED in roots or roots & kept_all:
                continue
            g = group_of[next(iter(roots))]
            idx = max((g.classes.index(r) for r in roots if r in group_of and group_of[r] is g),
                      key=lambda i: scores[g.id][i])
            plan.groups[names[g.id]] = sorted(plan.groups[names[g.id]] + [idx])
            kept_all.add(g.classes[idx])
