"""QDQ int8 graphs: DequantizeLinear of constant int8 weights, QuantizeLinear/DequantizeLinear on
activations. A weight behind `DequantizeLinear(w_q, scale, zero_point)` is pruned where it is
stored: the int8 rows/columns are sliced, and so are a per-channel scale and zero point along the
same axis (per-tensor ones stay). The reference zeroes int8 consumer columns, which dequantize to
exactly 0 only with a zero point of 0: a nonzero one blocks. Activation Q/DQ with a per-tensor
scale act per element; a per-channel one is sliced with the channels."""

from __future__ import annotations

import numpy as np

from ..context import ParamSlice
from ...core.graph import attr, node_label
from .base import Handler, norm_axis
from .registry import register

QDQ = ("QuantizeLinear", "DequantizeLinear")


def _dq_of_constants(index, name: str):
    """The DequantizeLinear node producing `name` from constant inputs, or None."""
    producer = index.producer.get(name)
    if producer is None or producer[0].op_type != "DequantizeLinear" or producer[0].domain not in ("", "ai.onnx"):
        return None
    node = producer[0]
    if not all(index.is_const(i) for i in node.input if i) or attr(node, "block_size", 0):
        return None
    return node


def dequantized_const(index, name: str):
    """The float value of a dequantized constant weight (what the analysis reads as the weight)."""
    node = _dq_of_constants(index, name)
    if node is None:
        return None
    x = index.const(node.input[0]).astype(np.float64)
    scale = index.const(node.input[1]).astype(np.float64)
    zp = index.const(node.input[2]).astype(np.float64) if len(node.input) > 2 and node.input[2] else 0.0
    if np.ndim(scale) == 1 and x.ndim > 1:
        axis = norm_axis(int(attr(node, "axis", 1)), x.ndim)
        view = [1] * x.ndim
        view[axis] = -1
        scale = scale.reshape(view)
        zp = np.reshape(zp, view) if np.ndim(zp) == 1 else zp
    return ((x - zp) * scale).astype(np.float32)


def redirect(index, p: ParamSlice):
    """ParamSlices on the stored int8 weight (and per-channel scale/zero point) for a slice of a
    dequantized constant; (slices, None) or (None, reason)."""
    node = _dq_of_constants(index, p.tensor)
    if node is None:
        return None, None
    x = index.const(node.input[0])
    zp = index.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if p.role == "consumer" and zp is not None and np.any(zp):
        return None, f"{node_label(node)}: nonzero weight zero point (zeroed int8 columns would not dequantize to 0)"
    out = [ParamSlice(node, 0, p.axis, p.labels, p.role, p.tag)]
    scale = index.const(node.input[1])
    if np.ndim(scale) == 1 and x.ndim > 1 and norm_axis(int(attr(node, "axis", 1)), x.ndim) == p.axis \
            and p.role != "consumer":
        out.append(ParamSlice(node, 1, 0, p.labels, "channelwise"))
        if zp is not None:
            out.append(ParamSlice(node, 2, 0, p.labels, "channelwise"))
    elif np.ndim(scale) == 1 and x.ndim == 1:  # a 1-D bias quantized per element
        out.append(ParamSlice(node, 1, 0, p.labels, "channelwise"))
        if zp is not None and np.ndim(zp) == 1:
            out.append(ParamSlice(node, 2, 0, p.labels, "channelwise"))
    return out, None


@register(*QDQ)
class QdqHandler(Handler):
    multi_axis = True

    def propagate(self, node, ctx):
        x, out = node.input[0], node.output[0]
        scale = ctx.const(node.input[1]) if len(node.input) > 1 else None
        if ctx.index.is_const(x) or not (ctx.tracked(x) or ctx.tracked_multi(x)):
            return
        if scale is None:
            ctx.block_inputs(node, "quantization scale is computed at run time")
            return
        per_axis = norm_axis(int(attr(node, "axis", 1)), ctx.rank(x)) if np.ndim(scale) == 1 else None
        for axes, labels in ctx.tracked_multi(x).items():
            if per_axis in axes:
                ctx.block(labels.reshape(-1), f"{node_label(node)}: per-channel scale on a multi-axis channel entry")
            else:
                ctx.set_multi(out, axes, labels)
        for axis, labels in ctx.tracked(x).items():
            if axis == per_axis:
                for k in (1, 2):
                    if len(node.input) > k and node.input[k]:
                        ctx.param(node, k, 0, labels, "channelwise")
            ctx.set_labels(out, axis, labels)
