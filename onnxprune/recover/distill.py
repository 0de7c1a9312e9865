"""Label-free recovery: update a pruned model's remaining weights so its outputs match the
original's on unlabeled calibration inputs (knowledge distillation), then write them back.

Only initializer values change: the graph, its interface and every shape stay those of the pruned
model (`write_back` copies values into the existing initializers). Loss per output: KL divergence
of the softmax over the logits that feed a Softmax/LogSoftmax output (classifiers, CTC
recognizers), else MSE normalised by the original output's variance. Adam with a cosine-decayed
learning rate; the held-out split decides when to stop and which weights to keep; a time budget
caps it; seeded.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import onnx

from ..errors import UsageError
from ._deps import require
from .check import ensure_same_structure, fidelity
from .engine import TorchModel, check


@dataclass(frozen=True)
class RecoverConfig:
    seconds: float = 120.0  # time budget for training (conversion and checks not counted)
    steps: int = 5000  # at most this many optimizer steps
    lr: float = 3e-3  # measured: 1e-3 -> 3e-3 took the zoo CTC from 13.8 to 11.6 % WER (KWS +0.3 points) in 150 s
    batch: int = 32
    temperature: float = 1.0  # for the KL of classifier outputs
    mixup: float = 0.5  # share of each batch replaced by mixes of two inputs (teacher relabels them)
    noise: float = 0.0  # Gaussian noise added to float inputs, times each input's standard deviation
    holdout: float = 0.2  # share of the feeds kept for early stopping and the before/after fidelity
    holdout_max: int = 512  # at most this many held out, the rest train (openwakeword's embedding model with
    # 2,457 of 12,286 windows held out, evaluated every 25 steps: 113 steps in 240 s, 4.5 GB peak)
    eval_every: int = 25
    # evaluations without improvement before stopping: 1000 steps. 8 (200 steps) stopped the zoo KWS's
    # recovery on 2,200 clips after 35 s, 3 points short of running its budget (the best weights are
    # kept either way, so a longer wait costs only time)
    patience: int = 40
    feature_weight: float = 1.0  # weight of the intermediate-feature loss at the start
    feature_share: float = 0.5  # share of training over which it decays to 0
    seed: int = 0
    # variable-length inputs: each batch is a run of examples of similar length, cropped to its shortest
    # (False: every example cropped to the shortest of all, which can be a fraction of a typical utterance)
    bucket: bool = True
    threads: int = 1  # torch threads: small models step fastest on one (2 spin on a loaded 2-core machine)


@dataclass
class RecoverResult:
    model: onnx.ModelProto
    before: dict = field(default_factory=dict)  # held-out loss/metrics vs the original, before
    after: dict = field(default_factory=dict)
    steps: int = 0
    seconds: float = 0.0
    stop: str = ""
    check_diff: float = 0.0  # |torch - onnxruntime| of the converted pruned model (relative)
    trained: int = 0  # initializers updated (0: no held-out improvement, the pruned weights are kept)
    history: list = field(default_factory=list)
    train_examples: int = 0
    held_out_examples: int = 0

    def report(self) -> dict:
        return {"before": self.before, "after": self.after, "steps": self.steps, "seconds": round(self.seconds, 2),
                "stop": self.stop, "converted_max_rel_diff": self.check_diff, "initializers_trained": self.trained,
                "train_examples": self.train_examples, "held_out_examples": self.held_out_examples}


def logit_taps(model: onnx.ModelProto) -> dict[str, tuple[str, int]]:
    """Graph output -> (logits feeding its Softmax/LogSoftmax, axis)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    taps = {}
    for out in model.graph.output:
        node = producer.get(out.name)
        if node is not None and node.op_type in ("Softmax", "LogSoftmax"):
            axis = next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), -1)
            taps[out.name] = (node.input[0], int(axis))
    return taps


def recover(original: onnx.ModelProto, pruned: onnx.ModelProto, feeds: list[dict],
            config: RecoverConfig | None = None, features: dict | None = None) -> RecoverResult:
    """Distil `original` into `pruned` on `feeds` (dicts of input arrays); returns the pruned
    model with updated initializers and the held-out fidelity before and after.
    `features`: intermediate tensor -> (axis, kept indices), matched to the original's kept
    channels during the first `config.feature_share` of training (layer-wise reconstruction)."""
    config = config or RecoverConfig()
    torch, _ = require()
    if len(feeds) < 4:
        raise UsageError(f"recovery needs at least 4 calibration examples (got {len(feeds)})")
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _recover(original, pruned, feeds, config, features, torch, start)
    finally:
        torch.set_num_threads(threads)


def _recover(original, pruned, feeds, config, features, torch, start) -> RecoverResult:
    def interface(m):
        return [v.SerializeToString() for v in list(m.graph.input) + list(m.graph.output)
                if v.name not in {t.name for t in m.graph.initializer}]

    if interface(original) != interface(pruned):
        raise UsageError("recovery needs the pruned model to keep the original's inputs and outputs "
                         "(not with --allow-io-change)")
    taps = logit_taps(original)
    features = _present(features or {}, original, pruned)
    extra = [t for t, _ in taps.values()] + list(features)
    teacher, student = TorchModel(original, extra), TorchModel(pruned, extra)
    checked = feeds[:2]
    diff = max(check(original, teacher, checked), check(pruned, student, checked))
    for p in student.params.values():
        p.requires_grad_(True)
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(feeds))
    n_val = max(2, min(config.holdout_max, int(round(config.holdout * len(feeds)))))
    val, train = [feeds[i] for i in order[:n_val]], [feeds[i] for i in order[n_val:]]
    inputs = student.input_names
    train_x, val_x = _tensors(train, inputs), _tensors(val, inputs)
    crop = _crop_axis(train_x + val_x)
    by_length = (sorted(range(len(train_x)), key=lambda i: (train_x[i][crop[0]].shape[crop[1]], i))
                 if crop is not None and config.bucket else None)
    batched = _can_batch(teacher, [_crop(t, crop, rng) for t in train_x[:2]])
    batch = config.batch if batched else 1
    kinds = _loss_kinds(original, taps) + [("feat", axis, torch.as_tensor(np.asarray(keep)))
                                           for axis, keep in features.values()]
    if batched and crop is None:  # evaluate in chunks of 64
        val_x = [tuple(torch.cat([v[k] for v in val_x[i:i + 64]], 0) for k in range(len(inputs)))
                 for i in range(0, len(val_x), 64)]
    scale = _scales(teacher, train_x[:64], kinds)
    stds = [float(torch.cat([x[k].reshape(-1) for x in train_x[:64]]).float().std()) for k in range(len(inputs))]
    with torch.no_grad():
        # the held-out loss reads outputs only: the teacher's intermediate features are not kept
        val_t = [tuple(None if k[0] == "feat" else o for o, k in zip(teacher(*x), kinds)) for x in val_x]

    def held_out() -> float:
        with torch.no_grad():
            return float(np.mean([_loss(kinds, scale, t, student(*x), config.temperature).item()
                                  for x, t in zip(val_x, val_t)]))

    before = held_out()
    best, best_state, bad, history = before, student.state(), 0, [(0, before)]
    opt = torch.optim.Adam(list(student.params.values()), lr=config.lr)
    step, stop, t0 = 0, "steps", time.perf_counter()
    horizon = config.steps  # schedule length in steps; shortened once if the time budget will bind first
    while step < config.steps:
        if time.perf_counter() - t0 > config.seconds:
            stop = "time"
            break
        if step == 10:  # the schedule depends on the clock only when the time budget binds
            per_step = max(time.perf_counter() - t0, 1e-9) / 10
            horizon = min(config.steps, max(20, int(0.85 * config.seconds / per_step)))
        progress = min(1.0, step / horizon)
        lr = config.lr * 0.5 * (1 + math.cos(math.pi * progress))
        for group in opt.param_groups:
            group["lr"] = lr
        x = _batch(train_x, rng, batch, config.mixup, crop, by_length)
        if config.noise:
            x = tuple(t + config.noise * sd * torch.randn(t.shape, dtype=t.dtype) if t.is_floating_point() else t
                      for t, sd in zip(x, stds))
        with torch.no_grad():
            target = teacher(*x)
        w = config.feature_weight * max(0.0, 1.0 - progress / config.feature_share) if config.feature_share else 0.0
        loss = _loss(kinds, scale, target, student(*x), config.temperature, w)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % config.eval_every == 0:
            v = held_out()
            history.append((step, v))
            if v < best:
                best, best_state, bad = v, student.state(), 0
            else:
                bad += 1
                if bad >= config.patience:
                    stop = "early stop"
                    break
    if step % config.eval_every and stop != "early stop":  # the steps since the last evaluation count too
        v = held_out()
        history.append((step, v))
        if v < best:
            best, best_state = v, student.state()
    student.load_state(best_state)
    model = student.write_back(pruned)
    ensure_same_structure(pruned, model)
    written = check(model, TorchModel(model, extra), checked)  # the file computes what was trained
    fid = fidelity(original, [pruned, model], val, taps)
    trained = len(student.params) if best < before else 0  # else the pruned weights are kept as they were
    return RecoverResult(model, {"loss": before, **fid[0]}, {"loss": best, **fid[1]}, step,
                         time.perf_counter() - start, stop, max(diff, written), trained, history,
                         len(train), len(val))


def _present(features: dict, original, pruned) -> dict:
    """The feature taps whose tensor both graphs compute (names kept by the rewrite)."""
    def produced(m):
        return {o for n in m.graph.node for o in n.output}

    both = produced(original) & produced(pruned)
    return {k: (int(a), np.flatnonzero(np.asarray(keep)) if np.asarray(keep).dtype == bool else np.asarray(keep))
            for k, (a, keep) in features.items() if k in both}


def _loss_kinds(model, taps) -> list:
    """Per torch output (graph outputs, then taps): ('kl', axis) for a tapped logits tensor,
    ('skip',) for the probability output it replaces, ('mse',) for other float outputs."""
    kinds = [("skip",) if o.name in taps else ("mse",) for o in model.graph.output]
    kinds += [("kl", axis) for _, axis in taps.values()]
    return kinds


def _loss(kinds, scale, target, got, temperature, feature_weight=0.0):
    import torch

    total = 0.0
    for kind, s, t, g in zip(kinds, scale, target, got):
        if kind[0] == "feat":
            if feature_weight > 0:
                t = t.index_select(kind[1], kind[2])
                total = total + feature_weight * ((g - t) ** 2).mean() / s
        elif kind[0] == "kl":
            lt = torch.log_softmax(t / temperature, kind[1])
            lg = torch.log_softmax(g / temperature, kind[1])
            total = total + (lt.exp() * (lt - lg)).sum(kind[1]).mean() * temperature ** 2
        elif kind[0] == "mse" and t.is_floating_point():
            total = total + ((g - t) ** 2).mean() / s
    return total


def _scales(teacher, xs, kinds) -> list[float]:
    """Variance of each original output (feature: its kept channels) over the feeds; MSE is divided by it."""
    import torch

    with torch.no_grad():
        outs = [teacher(*x) for x in xs]
    scales = []
    for i, kind in enumerate(kinds):
        pick = (lambda v, k=kind: v.index_select(k[1], k[2])) if kind[0] == "feat" else (lambda v: v)
        t = torch.cat([pick(o[i]).reshape(-1) for o in outs]) if outs[0][i].is_floating_point() else None
        scales.append(max(float(t.var()), 1e-12) if t is not None and t.numel() > 1 else 1.0)
    return scales


def _tensors(feeds, inputs) -> list[tuple]:
    import torch

    return [tuple(torch.from_numpy(np.asarray(f[n])) for n in inputs) for f in feeds]


def _crop_axis(xs) -> tuple[int, int, int] | None:
    """(input, axis, shortest length) when examples differ in length along one axis of one input
    (variable-length utterances): training batches are random crops of that length."""
    shapes = {tuple(tuple(t.shape) for t in x) for x in xs}
    if len(shapes) == 1:
        return None
    ref = next(iter(shapes))
    diff = {(k, ax) for s in shapes for k in range(len(s)) for ax in range(len(s[k])) if s[k][ax] != ref[k][ax]}
    if len(diff) != 1:
        return None
    k, ax = diff.pop()
    return k, ax, min(s[k][ax] for s in shapes)


def _crop(x: tuple, crop, rng) -> tuple:
    if crop is None:
        return x
    k, ax, length = crop
    start = int(rng.integers(0, x[k].shape[ax] - length + 1))
    return tuple(t.narrow(ax, start, length) if i == k else t for i, t in enumerate(x))


def _batch(train_x, rng, size, mixup, crop, by_length=None):
    import torch

    if by_length is not None:  # a random run of examples adjacent in length, cropped to its shortest
        n = min(size, len(by_length))
        start = int(rng.integers(0, len(by_length) - n + 1))
        picks = np.asarray(by_length[start:start + n])
        crop = (crop[0], crop[1], min(train_x[i][crop[0]].shape[crop[1]] for i in picks))
        pool = picks
    else:
        picks = rng.choice(len(train_x), size=min(size, len(train_x)), replace=len(train_x) < size)
        pool = np.arange(len(train_x))
    rows = [_crop(train_x[i], crop, rng) for i in picks]
    x = [torch.cat([r[k] for r in rows], 0) for k in range(len(rows[0]))]
    n_mix = int(round(mixup * len(picks))) if len(picks) > 1 else 0
    if n_mix:
        mates = [_crop(train_x[i], crop, rng) for i in pool[rng.choice(len(pool), size=n_mix)]]
        lam = torch.from_numpy(rng.uniform(0.0, 1.0, n_mix).astype(np.float32))
        for k, xk in enumerate(x):
            if not xk.is_floating_point() or xk.shape[0] != len(picks):
                continue
            mate = torch.cat([m[k] for m in mates], 0)
            shape = (n_mix,) + (1,) * (xk.dim() - 1)
            xk = xk.clone()
            xk[:n_mix] = lam.view(shape) * xk[:n_mix] + (1 - lam.view(shape)) * mate
            x[k] = xk
    return tuple(x)


def _can_batch(tm, xs) -> bool:
    """Whether examples stack along axis 0 of every input: each input has batch 1 and the model
    computes each row of a batch as it computes that example alone (no batch-1 Reshape)."""
    import torch

    if len(xs) < 2 or any(t.dim() == 0 or t.shape[0] != 1 for x in xs for t in x):
        return False
    if any(a.shape != b.shape for a, b in zip(xs[0], xs[1])):
        return False
    try:
        with torch.no_grad():
            joint = tm(*[torch.cat([x[k] for x in xs], 0) for k in range(len(xs[0]))])
            alone = [tm(*x) for x in xs]
    except Exception:
        return False
    for i, j in enumerate(joint):
        parts = [a[i] for a in alone]
        if not any(j.dim() == parts[0].dim() and j.shape[ax] == len(parts) * parts[0].shape[ax]
                   and torch.allclose(torch.cat(parts, ax), j, rtol=1e-4, atol=1e-5)
                   for ax in range(parts[0].dim())):
            return False
    return True
