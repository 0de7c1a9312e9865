"""Label-free gradient criteria: Taylor (first order) and Fisher, per channel of every prunable group.

For a channel mask m multiplying a source's output a, dL/dm_c = sum over the channel's positions of
a * dL/da. The loss needs no labels: for an output made by Softmax/LogSoftmax, the cross-entropy to a
label *sampled from the model's own prediction*; for other outputs, a random Gaussian projection of
the output (the sampled-target form of the Gaussian Fisher). Per example:
`taylor` scores |dL/dm_c| (Molchanov et al.), `fisher` (dL/dm_c)^2 (Kwon et al. 2022), averaged over
the feeds and summed over the sources of a group. Higher = keep, as every criterion here.
"""

from __future__ import annotations

import numpy as np
import onnx

from ..analysis import Analysis
from ..errors import UsageError
from ..prune.criteria import GRADIENT_CRITERIA
from ._deps import require
from .distill import logit_taps
from .engine import TorchModel, check

KINDS = GRADIENT_CRITERIA


def gradient_scores(analysis: Analysis, feeds: list[dict], kind: str = "fisher", *, seed: int = 0,
                    examples: int = 128) -> dict[int, np.ndarray]:
    """Group id -> one score per channel, from up to `examples` feeds."""
    if kind not in KINDS:
        raise UsageError(f"unknown gradient criterion '{kind}' (choose from {', '.join(KINDS)})")
    torch, _ = require()
    model = analysis.model
    taps = logit_taps(model)
    sources = [s for s in analysis.sources if any(g.prunable for g in _groups_of(analysis, s))]
    names = list(dict.fromkeys(s.output for s in sources))
    tm = TorchModel(model, [t for t, _ in taps.values()] + names)
    check(model, tm, feeds[:2])
    gen = torch.Generator().manual_seed(seed)
    per_source = {n: 0.0 for n in names}
    used = feeds[:examples]
    for feed in used:
        x = [torch.from_numpy(np.asarray(feed[n])) for n in tm.input_names]
        acts = {}
        hooks = _capture(tm, names, acts)
        try:
            outs = tm(*x)
        finally:
            for h in hooks:
                h.remove()
        loss = _label_free_loss(model, taps, outs, gen, torch)
        grads = torch.autograd.grad(loss, [acts[n] for n in names], allow_unused=True)
        for n, s, g in zip(names, [next(s for s in sources if s.output == n) for n in names], grads):
            if g is None:
                continue
            a = acts[n]
            dims = [d for d in range(a.dim()) if d != s.axis % a.dim()]
            dm = (a * g).sum(dims).detach().double().numpy()
            per_source[n] = per_source[n] + (np.abs(dm) if kind == "taylor" else dm ** 2)
    return _to_groups(analysis, sources, {n: v / len(used) for n, v in per_source.items()})


def _groups_of(analysis, source):
    group_of = analysis.group_of()
    return [group_of[r] for r in set(analysis.atoms.roots(source.atoms).tolist()) if r in group_of]


def _capture(tm: TorchModel, names: list[str], acts: dict):
    """Forward hooks that keep each source output (the module that computes it in the fx graph)."""
    producer = {}
    for node in tm.gm.graph.nodes:
        if node.op == "call_module":
            module = tm.gm.get_submodule(node.target)
            for k, out in enumerate(getattr(module, "onnx_mapping").outputs):
                if out in names:
                    producer.setdefault(node.target, []).append((k, out))
    hooks = []
    for target, outs in producer.items():
        def hook(_m, _inp, output, outs=outs):
            for k, name in outs:
                acts[name] = output[k] if isinstance(output, (tuple, list)) else output
        hooks.append(tm.gm.get_submodule(target).register_forward_hook(hook))
    return hooks


def _label_free_loss(model: onnx.ModelProto, taps, outs, gen, torch):
    n_out = len(model.graph.output)
    total = 0.0
    logits = dict(zip([o for o in taps], outs[n_out:n_out + len(taps)]))
    for o, y in zip(model.graph.output, outs[:n_out]):
        if o.name in taps:
            z, axis = logits[o.name], taps[o.name][1]
            logp = torch.log_softmax(z, axis)
            flat = logp.movedim(axis, -1).reshape(-1, logp.shape[axis])
            label = torch.multinomial(flat.detach().exp(), 1, generator=gen)
            total = total - flat.gather(1, label).sum()
        elif y.is_floating_point():
            total = total + (y * torch.randn(y.shape, generator=gen, dtype=y.dtype)).sum()
    return total


def _to_groups(analysis, sources, per_source) -> dict[int, np.ndarray]:
    """Sum each source channel's score into its group's channel (class) position."""
    out = {g.id: np.zeros(g.size) for g in analysis.groups if g.prunable}
    index = {g.id: {c: i for i, c in enumerate(g.classes)} for g in analysis.groups if g.prunable}
    group_of = analysis.group_of()
    for s in sources:
        score = np.asarray(per_source.get(s.output, 0.0))
        if score.ndim == 0:
            continue
        for c, root in enumerate(analysis.atoms.roots(s.atoms).tolist()):
            g = group_of.get(root)
            if g is not None and g.id in out and c < score.size:
                out[g.id][index[g.id][root]] += float(score[c])
    return out


def gradient_plan(model: onnx.ModelProto, feeds: list[dict], *, ratio: float, kind: str = "fisher",
                  round_to: int = 4, shapes: dict | None = None, seed: int = 0):
    """A prune Plan (uniform `ratio` per group) ranked by a gradient criterion; replay it with
    `prune(model, config=PruneConfig(plan=plan, ...))`, e.g. with `compensate="lstsq"`."""
    from ..analysis import analyze_model
    from ..core.io import fingerprint
    from ..prune.plan import make_plan

    analysis = analyze_model(model, shapes={k: list(v) for k, v in (shapes or {}).items()})
    scores = gradient_scores(analysis, list(feeds), kind, seed=seed)
    plan = make_plan(analysis, scores, ratio=ratio, global_ranking=False, round_to=round_to,
                     fingerprint=fingerprint(model))
    plan.meta["criterion"] = kind
    return plan
