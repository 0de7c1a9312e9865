"""Iterative pruning: prune a little, recover briefly, repeat (the classic prune -> fine-tune loop),
label-free.

Round k of K prunes the current model (the previous round's recovered one) so that every group
keeps the width one-shot pruning at ratio `k/K * ratio` would keep on the original, ranking and
compensating on the current model, and `prune` verifies that rewrite exactly against its own
reference (the current model with the same weight changes). Recovery then distils the *original*
into it for `seconds / K` (each pruned layer's output first matched to the original's surviving
channels, composed over the rounds). The last round lands on exactly the one-shot widths, so the
two schedules compare at equal MACs and equal total recovery time. Recovery changes initializer
values only (checked every round).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import onnx

from ..analysis import analyze_model
from ..errors import UsageError, VerificationError
from ..prune import pipeline
from ..prune.pipeline import PruneConfig, PruneResult, check_verified, prune
from ..prune.plan import effective_round_to, group_names, kept_count, make_plan
from .distill import RecoverConfig, RecoverResult, recover
from .pairs import kept_channels


@dataclass
class IterativeResult:
    model: onnx.ModelProto           # the last round's recovered model
    result: PruneResult              # the last round's prune, its before/layers/groups against the original
    recovered: RecoverResult         # the last round's recovery
    rounds: list[dict] = field(default_factory=list)

    def report(self) -> dict:
        return {"rounds": self.rounds, "final": self.recovered.report()}


def round_ratios(ratio: float, rounds: int) -> list[float]:
    """Cumulative ratio after each round: equal shares of the channels removed per round."""
    return [ratio * (k + 1) / rounds for k in range(rounds)]


def iterative_prune(original: onnx.ModelProto, config: PruneConfig, feeds: list[dict], rounds: int,
                    recover_config: RecoverConfig | None = None, progress=None) -> IterativeResult:
    """Prune `original` to `config.ratio` in `rounds` rounds, recovering after each for
    `recover_config.seconds / rounds` (and at most `steps / rounds` optimizer steps)."""
    recover_config = recover_config or RecoverConfig()
    if rounds < 1:
        raise UsageError(f"--recover-rounds {rounds} must be at least 1")
    if config.plan is not None or config.global_ranking or config.drop_blocks or config.low_rank or config.ranks \
            or config.scores is not None:
        raise UsageError("--recover-rounds ranks and prunes uniform widths afresh each round: drop --plan/--global/"
                         "--drop-blocks/--low-rank/--rank and precomputed scores (taylor/fisher)")
    feeds = list(feeds)
    per_round = replace(recover_config, seconds=recover_config.seconds / rounds,
                        steps=max(1, recover_config.steps // rounds))
    base = analyze_model(original, **config.analyze_options())
    names = group_names(base)
    targets = {names[g.id]: (g.size, effective_round_to(g, config.round_to)) for g in base.groups if g.prunable}
    current, features, first, out = original, {}, None, []
    result = rec = None
    for k, ratio in enumerate(round_ratios(config.ratio, rounds)):
        cfg = replace(config, ratio=0.0, calibration=feeds, plan=None)
        prepared = pipeline.run(current, cfg, pipeline.PREPARE)
        ratios = {}
        for g in prepared.analysis.groups:
            name = group_names(prepared.analysis)[g.id]
            if g.prunable and name in targets:
                size, step = targets[name]
                ratios[name] = max(0, g.size - kept_count(size, ratio, step)) / g.size
        plan = make_plan(prepared.analysis, prepared.scores, ratio=0.0, global_ranking=False, round_to=1,
                         fingerprint=prepared.fingerprint, ratios=ratios)
        plan.meta.update({"criterion": config.criterion, "compensate": config.compensate,
                          "round": k + 1, "rounds": rounds, "ratio": ratio})
        result = prune(current, config=replace(cfg, plan=plan))
        check_verified(result)  # each round's rewrite is exact against its own reference
        first = first or result
        features = compose(features, kept_channels(result))
        rec = recover(original, result.model, feeds, replace(per_round, seed=recover_config.seed + k),
                      features=features)
        out.append({"round": k + 1, "ratio": round(ratio, 6), "macs": result.after["macs"],
                    "verify_max_abs_diff": None if result.verify is None else result.verify.max_abs_diff,
                    "recover": rec.report()})
        if progress:
            progress(out[-1])
        current = rec.model
    if rec is None:
        raise VerificationError("no round ran")
    final = _against_original(result, first, rec.model)
    return IterativeResult(rec.model, final, rec, out)


def compose(previous: dict, kept: dict) -> dict:
    """Tensor -> (axis, indices into the ORIGINAL's channels) after one more round: this round's
    kept indices (into the current model's channels) looked up in the previous map."""
    out = dict(previous)
    for tensor, (axis, idx) in kept.items():
        idx = np.asarray(idx)
        out[tensor] = (axis, np.asarray(previous[tensor][1])[idx] if tensor in previous else idx)
    return out


def _against_original(last: PruneResult, first: PruneResult, model: onnx.ModelProto) -> PruneResult:
    """The last round's result with the original's figures as 'before' (params, MACs, widths)."""
    layers = {layer["node"]: layer["channels_before"] for layer in first.layers}
    sizes = {g["name"]: g["size"] for g in first.groups}
    return replace(last, model=model, before=first.before,
                   layers=[dict(layer, channels_before=layers.get(layer["node"], layer["channels_before"]))
                           for layer in last.layers],
                   groups=[dict(g, size=sizes.get(g["name"], g["size"])) for g in last.groups])
