"""What recovery guarantees and reports: the structure is untouched, and how close the model is
to the original on held-out feeds before and after."""

from __future__ import annotations

import copy
import math

import numpy as np
import onnx

from ..errors import VerificationError


def skeleton(model: onnx.ModelProto) -> bytes:
    """The model with every initializer's values removed (names, types, shapes kept)."""
    m = copy.deepcopy(model)
    for t in m.graph.initializer:
        dims, dtype, name = list(t.dims), t.data_type, t.name
        t.Clear()
        t.dims.extend(dims)
        t.data_type, t.name = dtype, name
    return m.SerializeToString(deterministic=True)


def ensure_same_structure(before: onnx.ModelProto, after: onnx.ModelProto) -> None:
    """Recovery changes initializer values only: graph, interface, shapes, dtypes identical."""
    if skeleton(before) != skeleton(after):
        raise VerificationError("recovery changed more than initializer values")
    onnx.checker.check_model(after, full_check=True)


def fidelity(original: onnx.ModelProto, models: list[onnx.ModelProto], feeds: list[dict], taps: dict) -> list[dict]:
    """Per model, against the original on the feeds: top-1 agreement of the first output (argmax
    over its last axis, per row) and SNR (dB) of the logits (the tapped Softmax inputs) or outputs."""
    from ..core.runtime import make_session

    def run(model):
        m = copy.deepcopy(model)
        for name, (tensor, _) in taps.items():
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(tensor))
        s = make_session(m, threads=1)
        names = [o.name for o in s.get_outputs()]
        return [s.run(names, f) for f in feeds], names

    ref, names = run(original)
    compared = [i for i, n in enumerate(names) if n not in taps]
    out = []
    for model in models:
        got, _ = run(model)
        agree = rows = 0
        signal = noise = 0.0
        for r, g in zip(ref, got):
            a, b = np.asarray(r[0]), np.asarray(g[0])
            if a.dtype.kind == "f" and a.ndim:
                same = a.reshape(-1, a.shape[-1]).argmax(-1) == b.reshape(-1, b.shape[-1]).argmax(-1)
                agree, rows = agree + int(same.sum()), rows + same.size
            for i in compared:
                if np.asarray(r[i]).dtype.kind == "f":
                    signal += float(np.sum(np.asarray(r[i], np.float64) ** 2))
                    noise += float(np.sum((np.asarray(g[i], np.float64) - r[i]) ** 2))
        out.append({"top1_agreement": 100.0 * agree / max(rows, 1),
                    "snr_db": math.inf if noise == 0 else 10 * math.log10(max(signal, 1e-30) / noise)})
    return out
