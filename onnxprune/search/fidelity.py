"""Label-free evaluation: how closely a pruned model reproduces the original's outputs.

An evaluator is any callable `evaluate(model_proto) -> dict of metrics`; task metrics (accuracy,
WER) plug in with the same signature. This one compares every output with the original's over
fixed feeds — held-out examples from `--data`, or seeded random inputs without it:

* `top1_agreement` (%): the share of the first output's rows whose decision agrees with the
  original's (`bench.metrics.decisions`: argmax over the last axis, or for a last axis of size 1
  `y >= 0.5` for probabilities / `y >= 0`) — what `bench` reports as a fraction; per row, so a
  recognizer's frames count one by one;
* `snr_db`: 10·log10(Σ (y₀ − ȳ₀)² / Σ (y − y₀)²) over all float outputs (∞ when identical) — not
  bench's raw-energy SNR of one output: a budget needs the distortion of what the model decides on —, with
  ȳ₀ the original's mean over the feeds (the signal is what depends on the input), where an
  output made by Softmax/LogSoftmax/Sigmoid is replaced by that node's input: saturated
  probabilities (one-hot in float32) hide distortion that the logits show;
* `nmse`: the inverse of that ratio, a continuous distortion used to rank sensitivity;
* `cosine`: the cosine of each feed's flattened output with the original's, averaged over feeds
  and compared outputs (1 when identical); `detail()` gives all three per graph output, with
  top-1 agreement for classifier outputs (`output_kinds`).
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from ..bench.metrics import decisions
from ..core.runtime import make_session, random_feeds
from ..prune.resized import kept_outputs, state_plan, stream, tagged


def make_feeds(model: onnx.ModelProto, shapes: dict, *, count: int, seed: int, data=None,
               part: int = 0, parts: int = 2, pool: list | None = None, values: dict | None = None) -> list[dict]:
    """`count` feeds: with `data` (a DataConfig), examples of its calibration split (part 0) or
    held-out split (part 1; the data module's deterministic split by file, so the two never
    share a clip), or of `pool` when that split was read already; else seeded random inputs
    (seeds seed+part*100000 onwards)."""
    if pool is not None:
        return [ex.feeds for ex in spread(pool, count)]
    if data is not None:
        return [ex.feeds for ex in held_out_examples(model, data, count=count, part=part)]
    session = make_session(model)
    return [random_feeds(session, shapes, seed + part * 100000 + i, values) for i in range(count)]


def held_out_examples(model: onnx.ModelProto, data, *, count: int, part: int) -> list:
    """Up to `count` Examples of the calibration (part 0) or evaluation (part 1) split."""
    return spread(split_part(model, data, part), count)


def split_part(model: onnx.ModelProto, data, part: int) -> list:
    """Every Example of the calibration (part 0) or evaluation (part 1) split, read once."""
    from ..data import DataError, load_examples, split_examples

    examples = list(load_examples(model, split_examples(data)[part]))
    if not examples:
        raise DataError(f"--data {data.path}: too few examples to split into calibration and evaluation")
    return examples


def spread(examples: list, count: int) -> list:
    """`count` examples spread over the list, not its first files (often one class)."""
    if len(examples) <= count:
        return examples
    picks = np.linspace(0, len(examples) - 1, count).round().astype(int)
    return [examples[i] for i in picks]


class Fidelity:
    """Evaluator against the original's outputs on fixed feeds; counts forward passes.

    `io` (name -> (axis, kept mask)): graph inputs/outputs a prune resized (`--allow-io-change`):
    the evaluated model gets the kept slice of each resized input, and its resized outputs are
    compared with the kept slice of the original's. `carry` ((input, output) pairs, recurrent state
    fed back by the caller): the feeds are one stream; from the second feed on, each model's state
    input is its own previous state output (the original its full state, the pruned its kept units),
    so errors that build up across calls show, as they would in a streaming caller."""

    def __init__(self, original: onnx.ModelProto, feeds: list[dict], *, threads: int = 1, logits: bool = True,
                 io: dict | None = None, carry: list | None = None):
        self.feeds, self.threads = feeds, threads
        self.io, self.carry = dict(io or {}), list(carry or [])
        self.taps = logit_taps(original) if logits else {}  # off for a model that renames them (quantized)
        session = make_session(with_outputs(original, self.taps), threads=threads)
        self.names = [o.name for o in session.get_outputs()]
        self.compared = [i for i, n in enumerate(self.names) if n not in self.taps]
        self.shift_free = softmax_axes(original, self.taps)  # tap index -> the softmax axis
        self.shift_free = {self.names.index(t): ax for t, ax in self.shift_free.items() if t in self.names}
        self._whole = [self._centred(outs) for outs in self._stream(session, evaluated=False)]
        self._against = {}
        self.passes = len(feeds)
        self.reference, self.signals, self.signal = self._compared_with(self.io)
        self._kinds = output_kinds(original)
        graph_outputs = [o.name for o in original.graph.output]
        self._reported = [(n, self.names.index(self.taps[n]) if n in self.taps else self.names.index(n))
                          for n in graph_outputs if n in self.names]

    def __call__(self, model: onnx.ModelProto) -> dict:
        return self.measure(model)[0]

    def measure(self, model: onnx.ModelProto) -> tuple[dict, list]:
        """(metrics, the model's first output on each feed): one run serves the fidelity figures
        and a caller's own metric (task_eval)."""
        metrics, firsts, _ = self._run(model)
        return metrics, firsts

    def detail(self, model: onnx.ModelProto) -> dict:
        """The metrics plus, per graph output, SNR and cosine (and top-1 agreement for a
        classifier output): what `prune`/`quantize`/`auto` print and report as `fidelity`."""
        metrics, _, outputs = self._run(model)
        return metrics | {"examples": len(self.feeds), "outputs": outputs}

    def _run(self, model: onnx.ModelProto) -> tuple[dict, list, list]:
        session = make_session(with_outputs(model, self.taps), threads=self.threads)
        io = state_plan(tagged(model))[0] if tagged(model) else self.io  # an auto candidate: its own kept state
        reference, signals, signal = self._compared_with(io)
        noise, agree, rows = 0.0, 0, 0
        firsts, per = [], {i: [0.0, [], 0, 0, [0.0, 0.0, 0.0]] for i in self.compared}  # noise, cos, agree, rows, dots
        kinds = self.kinds
        for got, ref in zip(self._stream(session, evaluated=True, io=io), reference):
            got = self._centred(got)
            firsts.append(got[0])
            same = _agreeing(got[0], ref[0])
            agree, rows = agree + int(same.sum()), rows + same.size
            for i in self.compared:
                r, g = np.asarray(ref[i]), np.asarray(got[i])
                acc = per[i]
                if np.issubdtype(r.dtype, np.floating) and r.shape == g.shape:
                    d = float(np.sum((g.astype(np.float64) - r.astype(np.float64)) ** 2))
                    noise, acc[0] = noise + d, acc[0] + d
                    acc[1].append(_cosine(r, g))
                    r64, g64 = r.astype(np.float64).ravel(), g.astype(np.float64).ravel()
                    acc[4] = [acc[4][0] + float(r64 @ g64), acc[4][1] + float(r64 @ r64), acc[4][2] + float(g64 @ g64)]
                elif np.issubdtype(r.dtype, np.floating):  # shapes differ: all of it is distortion
                    d = float(np.sum(r.astype(np.float64) ** 2)) or 1.0
                    noise, acc[0] = noise + d, acc[0] + d
                    acc[1].append(0.0)
            for name, i in self.reported:
                if kinds.get(name) == "classifier":
                    j = self.names.index(name)
                    ok = _agreeing(got[j], ref[j])
                    per[i][2], per[i][3] = per[i][2] + int(ok.sum()), per[i][3] + ok.size
        self.passes += len(self.feeds)
        nmse = noise / signal if signal > 0 else float(noise > 0)
        snr = _snr(signal, noise)
        for i in self.compared:  # one value per feed (a probability): a cosine over the feeds instead
            if reference and np.asarray(reference[0][i]).size <= 1 and per[i][1]:
                dot, rr, gg = per[i][4]
                per[i][1] = [dot / math.sqrt(rr * gg) if rr > 0 and gg > 0 else float(rr == gg)]
        cosines = [c for i in self.compared for c in per[i][1]]
        metrics = {"top1_agreement": 100.0 * agree / max(1, rows), "snr_db": snr, "nmse": nmse,
                   "cosine": float(np.mean(cosines)) if cosines else 1.0}
        outputs = []
        for name, i in self.reported:
            noise_i, cos_i, agree_i, rows_i, _ = per[i]
            entry = {"name": name, "kind": kinds.get(name, "other"),
                     "snr_db": _snr(signals[i], noise_i), "cosine": float(np.mean(cos_i)) if cos_i else None}
            if name in self.taps:
                entry["compared"] = self.taps[name]
            if rows_i:
                entry["top1_agreement"] = 100.0 * agree_i / rows_i
            outputs.append(entry)
        return metrics, firsts, outputs

    def _compared_with(self, io: dict) -> tuple[list, dict, float]:
        """(the original's outputs with resized ones cut to `io`'s kept units, per-output signal
        energy, its sum), once per distinct `io`."""
        key = tuple(sorted((n, ax, keep.tobytes()) for n, (ax, keep) in io.items()))
        if key not in self._against:
            reference = [kept_outputs(self.names, outs, io) for outs in self._whole]
            signals = {i: _energy(i, reference) for i in self.compared}
            self._against[key] = (reference, signals, sum(signals.values()))
        return self._against[key]

    def _stream(self, session, *, evaluated: bool, io: dict | None = None):
        """Outputs on each feed, in order (prune.resized.stream): the evaluated model gets resized
        inputs' kept slices (`io`, else the `io` given); the original's are returned whole, its
        resized outputs cut to their kept slices when they are compared (`_kept`)."""
        io = self.io if io is None else io
        yield from stream(session, self.names, self.feeds, self.carry, io if evaluated else None)

    def _centred(self, outs: list) -> list:
        """Softmax/LogSoftmax logits less their mean over the softmax axis: a shift the softmax
        ignores is no distortion of what the model decides."""
        for i, axis in self.shift_free.items():
            a = np.asarray(outs[i])
            if np.issubdtype(a.dtype, np.floating) and a.ndim:
                outs[i] = a - a.mean(axis=axis, keepdims=True)
        return outs

    @property
    def kinds(self) -> dict:
        return self._kinds

    @property
    def reported(self) -> list:
        """(graph output, index of what is compared for it: its logits tap, else itself)."""
        return self._reported


def _snr(signal: float, noise: float) -> float:
    return math.inf if noise == 0 else 10 * math.log10(signal / noise) if signal > 0 else -math.inf


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    fa, fb = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    na, nb = np.linalg.norm(fa), np.linalg.norm(fb)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(fa @ fb / (na * nb))


PASS_THROUGH = ("Reshape", "Squeeze", "Unsqueeze", "Flatten", "Transpose", "Identity", "Cast", "Slice", "Gather",
                "Concat")
CLASSIFIER_OPS = ("Softmax", "LogSoftmax", "Sigmoid", "ArgMax", "ArgMin", "TopK", "HardSigmoid")


def output_kinds(model: onnx.ModelProto) -> dict[str, str]:
    """Graph output -> "classifier" when it is made by Softmax/LogSoftmax/Sigmoid/ArgMax (through
    reshapes, transposes, casts), or is not floating point (class indices); else "continuous"
    (an embedding, a regression, a recurrent state): what a top-1 decision means only for the first."""
    producer = {o: n for n in model.graph.node for o in n.output}
    kinds = {}
    for out in model.graph.output:
        elem = out.type.tensor_type.elem_type if out.type.HasField("tensor_type") else 0
        if elem and elem not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
                                 onnx.TensorProto.BFLOAT16):
            kinds[out.name] = "classifier"
            continue
        name, seen, kind = out.name, 0, "continuous"
        while name in producer and seen < 16:
            node = producer[name]
            if node.op_type in CLASSIFIER_OPS:
                kind = "classifier"
                break
            if node.op_type not in PASS_THROUGH or not node.input:
                break
            name, seen = node.input[0], seen + 1
        kinds[out.name] = kind
    return kinds


def _energy(i: int, reference: list) -> float:
    """Energy of output i's input-dependent part: its deviation from the mean over the feeds
    (an output that is mostly a constant offset would otherwise hide any distortion); the raw
    energy when there is one feed, shapes vary, or the output does not vary."""
    arrays = [np.asarray(ref[i]) for ref in reference]
    if not arrays or not np.issubdtype(arrays[0].dtype, np.floating):
        return 0.0
    raw = float(sum(np.sum(a.astype(np.float64) ** 2) for a in arrays))
    if len(arrays) < 2 or len({a.shape for a in arrays}) > 1:
        return raw
    stack = np.stack(arrays).astype(np.float64)
    centred = float(np.sum((stack - stack.mean(axis=0)) ** 2))
    return centred if centred > 0 else raw


def softmax_axes(model: onnx.ModelProto, taps: dict[str, str]) -> dict[str, int]:
    """Tapped logits tensor -> the axis its Softmax/LogSoftmax normalises (opset >= 13: -1 default)."""
    consumers = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    out = {}
    for tensor in taps.values():
        for n in consumers.get(tensor, []):
            if n.op_type in ("Softmax", "LogSoftmax"):
                axis = next((a.i for a in n.attribute if a.name == "axis"), None)
                out[tensor] = -1 if axis is None else axis
    return out


def logit_taps(model: onnx.ModelProto) -> dict[str, str]:
    """Graph output -> the logits tensor feeding the Softmax/LogSoftmax/Sigmoid that makes it."""
    producer = {o: n for n in model.graph.node for o in n.output}
    taps = {}
    for out in model.graph.output:
        node = producer.get(out.name)
        if node is not None and node.op_type in ("Softmax", "LogSoftmax", "Sigmoid") and node.input[0] not in \
                {o.name for o in model.graph.output}:
            taps[out.name] = node.input[0]
    return taps


def with_outputs(model: onnx.ModelProto, taps: dict[str, str]) -> onnx.ModelProto:
    """A copy whose graph also returns the tapped tensors, in place of the outputs they feed when
    comparing (the outputs themselves stay first, so decisions still read the first output)."""
    if not taps:
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for tensor in taps.values():
        copy.graph.output.append(onnx.helper.make_empty_tensor_value_info(tensor))
    return copy


def _agreeing(y, ref) -> np.ndarray:
    """Per row of the first output: does its decision agree with the original's (non-float
    outputs, e.g. class indices: does each value)."""
    y, ref = np.asarray(y), np.asarray(ref)
    if y.shape != ref.shape:
        return np.zeros(1, dtype=bool)
    if ref.dtype.kind not in "fc" or ref.size == 0:
        return y.reshape(-1) == ref.reshape(-1) if ref.size else np.ones(1, dtype=bool)
    return decisions(y, ref) == decisions(ref)
