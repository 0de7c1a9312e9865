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
* `nmse`: the inverse of that ratio, a continuous distortion used to rank sensitivity.
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from ..bench.metrics import decisions
from ..core.runtime import make_session, random_feeds


def make_feeds(model: onnx.ModelProto, shapes: dict, *, count: int, seed: int, data=None,
               part: int = 0, parts: int = 2, pool: list | None = None) -> list[dict]:
    """`count` feeds: with `data` (a DataConfig), examples of its calibration split (part 0) or
    held-out split (part 1; the data module's deterministic split by file, so the two never
    share a clip), or of `pool` when that split was read already; else seeded random inputs
    (seeds seed+part*100000 onwards)."""
    if pool is not None:
        return [ex.feeds for ex in spread(pool, count)]
    if data is not None:
        return [ex.feeds for ex in held_out_examples(model, data, count=count, part=part)]
    session = make_session(model)
    return [random_feeds(session, shapes, seed + part * 100000 + i) for i in range(count)]


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
    """Evaluator against the original's outputs on fixed feeds; counts forward passes."""

    def __init__(self, original: onnx.ModelProto, feeds: list[dict], *, threads: int = 1):
        self.feeds, self.threads = feeds, threads
        self.taps = logit_taps(original)
        session = make_session(with_outputs(original, self.taps), threads=threads)
        self.names = [o.name for o in session.get_outputs()]
        self.compared = [i for i, n in enumerate(self.names) if n not in self.taps]
        self.reference = [session.run(self.names, f) for f in feeds]
        self.passes = len(feeds)
        self.signal = sum(_energy(i, self.reference) for i in self.compared)

    def __call__(self, model: onnx.ModelProto) -> dict:
        return self.measure(model)[0]

    def measure(self, model: onnx.ModelProto) -> tuple[dict, list]:
        """(metrics, the model's first output on each feed): one run serves the fidelity figures
        and a caller's own metric (task_eval)."""
        session = make_session(with_outputs(model, self.taps), threads=self.threads)
        signal, noise, agree, rows = self.signal, 0.0, 0, 0
        firsts = []
        for feed, ref in zip(self.feeds, self.reference):
            got = session.run(self.names, feed)
            firsts.append(got[0])
            same = _agreeing(got[0], ref[0])
            agree, rows = agree + int(same.sum()), rows + same.size
            for i in self.compared:
                r, g = np.asarray(ref[i]), got[i]
                if np.issubdtype(r.dtype, np.floating):
                    noise += float(np.sum((np.asarray(g, dtype=np.float64) - r.astype(np.float64)) ** 2))
        self.passes += len(self.feeds)
        nmse = noise / signal if signal > 0 else float(noise > 0)
        snr = math.inf if noise == 0 else 10 * math.log10(signal / noise) if signal > 0 else -math.inf
        return {"top1_agreement": 100.0 * agree / max(1, rows), "snr_db": snr, "nmse": nmse}, firsts


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
