"""QDQ int8 graphs: DequantizeLinear of constant int8 weights, QuantizeLinear/DequantizeLinear on
activations. A weight behind `DequantizeLinear(w_q, scale, zero_point)` is pruned where it is
stored: the int8 rows/columns are sliced, and so are a per-channel scale and zero point along the
same axis (per-tensor ones stay). The reference fills removed int8/uint8 consumer columns with the
weight's zero point (`weight_zero_point`), so they dequantize to exactly 0 whatever the zero point
(uint8 weights have nonzero ones). Activation Q/DQ with a per-tensor scale act per element; a
per-channel one is sliced with the channels."""

from __future__ import annotations

import numpy as np

from ...core.graph import attr, node_label
from ..atoms import FIXED
from ..context import ParamSlice
from ..reasons import Reason
from .base import Handler, norm_axis
from .conv import ConvHandler
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
    out = [ParamSlice(node, 0, p.axis, p.labels, p.role, p.tag)]
    scale = index.const(node.input[1])
    if np.ndim(scale) == 1 and x.ndim > 1 and norm_axis(int(attr(node, "axis", 1)), x.ndim) == p.axis \
            and p.role != "consumer":
        out.append(ParamSlice(node, 1, 0, p.labels, "channelwise"))
        if zp is not None:
            out.append(ParamSlice(node, 2, 0, p.labels, "channelwise"))
    elif np.ndim(scale) == 1 and x.ndim == 1 and scale.size == x.size > 1:  # a 1-D bias quantized per element
        out.append(ParamSlice(node, 1, 0, p.labels, "channelwise"))  # (a [1] scale is per-tensor: it stays)
        if zp is not None and np.size(zp) == x.size:
            out.append(ParamSlice(node, 2, 0, p.labels, "channelwise"))
    return out, None


def _quantization(node, input_index: int, const):
    """(scale, zero point) of a stored integer weight, each None or shaped to broadcast against
    it; None when `node.input[input_index]` is not a quantized weight. DequantizeLinear's input 0
    and the weight input of the QOperator ops (scales along the output-channel axis)."""
    if node.op_type == "DequantizeLinear" and input_index == 0 and node.domain in ("", "ai.onnx"):
        ndim, axis = np.ndim(const(node.input[0])), int(attr(node, "axis", 1))
        scale_k, zp_k = 1, 2
    else:
        kind = QUANTIZED_WEIGHT_OPS.get(node.op_type)
        if kind is None or input_index != kind.W:
            return None
        ndim = 2 if issubclass(kind, _QuantizedMatMul) else np.ndim(const(node.input[kind.W]))
        axis = (0 if kind().trans_b(node) else 1) if issubclass(kind, _QuantizedMatMul) else 0
        scale_k, zp_k = kind.SCALE, kind.ZP

    def shaped(k):
        value = const(node.input[k]) if k is not None and len(node.input) > k and node.input[k] else None
        if value is None or np.ndim(value) == 0 or ndim <= 1:
            return value
        view = [1] * ndim
        view[norm_axis(axis, ndim)] = -1
        return np.reshape(value, view)

    return shaped(scale_k), shaped(zp_k)


def weight_zero_point(node, input_index: int, const):
    """What a removed column of a stored integer weight is filled with in the reference model: its
    zero point (broadcast to the weight), so it dequantizes to exactly 0 — `(zp - zp) * scale` in
    QDQ, `(x - x_zp) * (zp - zp)` in the integer accumulators of QLinearConv/QLinearMatMul/...;
    None: not a quantized weight, or a zero point of 0 (plain zeroing is exact)."""
    found = _quantization(node, input_index, const)
    if found is None or found[1] is None or not np.any(found[1]):
        return None
    return found[1]


def dequantized_weight(node, input_index: int, const):
    """`(w - zero_point) * scale` of a stored integer weight, what magnitude criteria rank on
    (raw uint8 values around a zero point of 128 say nothing about a channel's size); None when
    the input is not a quantized weight."""
    found = _quantization(node, input_index, const)
    if found is None:
        return None
    scale, zp = found
    w = const(node.input[input_index]).astype(np.float64)
    if zp is not None:
        w = w - zp.astype(np.float64)
    return w * scale.astype(np.float64) if scale is not None else w


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


# ---- QOperator format: int8 ops that carry their own scales and zero points ----------------------
# (onnxruntime.quantization's quantize_static(QuantFormat.QOperator) and quantize_dynamic). Output
# channels take their int8 weight rows, int32 bias and per-channel scale/zero point with them
# (per-tensor ones stay); input channels are weight columns, filled with the weight zero point in the
# reference model (`weight_zero_point`): (x - x_zp) * (w_zp - w_zp) is exactly 0 in the integer
# accumulator, so uint8 weights with nonzero zero points prune exactly too.

def _per_channel(ctx, node, k: int, n: int) -> bool:
    value = ctx.const(node.input[k]) if len(node.input) > k and node.input[k] else None
    return value is not None and value.ndim == 1 and value.size == n and n > 1


class _QuantizedConv(ConvHandler):
    SCALE: int | None = None
    ZP: int | None = None
    linear = None  # calibration and compensation work on float weights

    def rows(self, node, ctx, labels, role):
        super().rows(node, ctx, labels, role)
        for k in (self.SCALE, self.ZP):
            if k is not None and _per_channel(ctx, node, k, len(labels)):
                ctx.param(node, k, 0, labels, "channelwise")


@register("QLinearConv")
class QLinearConvHandler(_QuantizedConv):
    """x, x_scale, x_zp, w (int8), w_scale, w_zp, y_scale, y_zp, B (int32)."""
    W, B, SCALE, ZP = 3, 8, 4, 5


@register("ConvInteger")
class ConvIntegerHandler(_QuantizedConv):
    """x, w (int8), x_zp, w_zp -> int32; the scales are applied by the Mul that follows."""
    W, B, SCALE, ZP = 1, None, None, 3


class _QuantizedMatMul(Handler):
    """A (run-time) x B (constant, [K, N] or [N, K] with transB): B's columns are sources."""
    unit = "neurons"
    A = 0
    W = 1
    SCALE: int | None = None
    ZP: int | None = None
    BIAS: int | None = None

    def trans_b(self, node) -> bool:
        return False

    def propagate(self, node, ctx):
        a, out = node.input[self.A], node.output[0]
        weight = ctx.const(node.input[self.W])
        if weight is None or weight.ndim != 2 or ctx.const(a) is not None or int(attr(node, "transA", 0)):
            ctx.block_inputs(node, "int8 MatMul without a constant 2-D right operand is not supported")
            return
        k_axis, n_axis = (1, 0) if self.trans_b(node) else (0, 1)
        n = weight.shape[n_axis]
        rank, out_rank = ctx.rank(a), ctx.rank(out)
        for axis, labels in ctx.tracked(a).items():
            if axis != rank - 1:
                ctx.set_labels(out, axis + out_rank - rank, labels)
            else:
                ctx.param(node, self.W, k_axis, labels, "consumer")
        labels = ctx.new_source(node, out, out_rank - 1, n)
        ctx.param(node, self.W, n_axis, labels, "producer")
        for k in (self.SCALE, self.ZP, self.BIAS):
            if k is not None and _per_channel(ctx, node, k, n):
                ctx.param(node, k, 0, labels, "producer" if k == self.BIAS else "channelwise")


@register("QLinearMatMul")
class QLinearMatMulHandler(_QuantizedMatMul):
    """a, a_scale, a_zp, b (int8), b_scale, b_zp, y_scale, y_zp."""
    W, SCALE, ZP = 3, 4, 5


@register("MatMulInteger")
class MatMulIntegerHandler(_QuantizedMatMul):
    """a, b (int8), a_zp, b_zp -> int32; per-column scales follow in a Mul (see elementwise)."""
    W, ZP = 1, 3


@register("QGemm", domain="com.microsoft")
class QGemmHandler(_QuantizedMatMul):
    """A, a_scale, a_zp, B (int8), b_scale, b_zp, C (int32), y_scale, y_zp."""
    W, SCALE, ZP, BIAS = 3, 4, 5, 6

    def trans_b(self, node) -> bool:
        return bool(int(attr(node, "transB", 0)))


QUANTIZED_WEIGHT_OPS = {"QLinearConv": QLinearConvHandler, "ConvInteger": ConvIntegerHandler,
                        "QLinearMatMul": QLinearMatMulHandler, "MatMulInteger": MatMulIntegerHandler,
                        "QGemm": QGemmHandler}


@register("QLinearSoftmax", domain="com.microsoft")
class QLinearSoftmaxHandler(Handler):
    def propagate(self, node, ctx):
        x = node.input[0]
        rank = ctx.rank(x)
        axis = norm_axis(int(attr(node, "axis", -1)), rank)
        for a, labels in ctx.tracked(x).items():
            if a >= axis:
                ctx.block(labels, Reason(f"{node_label(node)}: QLinearSoftmax over the channel axis", "mixes-channels",
                                         node.name))
            else:
                ctx.set_labels(node.output[0], a, labels)


@register("DynamicQuantizeLinear")
class DynamicQuantizeHandler(Handler):
    """quantize_dynamic's activation quantizer: one scale and zero point from the min and max over
    the whole tensor, every channel included, so removing a channel changes how all the others
    are rounded. It mixes channels."""

    def propagate(self, node, ctx):
        for labels in ctx.tracked(node.input[0]).values():
            ctx.block(labels, Reason(f"{node_label(node)}: its scale is the min/max over every channel (removing one "
                                     f"changes how the others are quantized)", "mixes-channels", node.name))


@register("QLinearGlobalAveragePool", "QLinearAveragePool", domain="com.microsoft")
class QLinearPoolHandler(Handler):
    """x, x_scale, x_zp, y_scale, y_zp (per-tensor): per-channel pooling over the spatial axes;
    channels sit on axis 1, or last with channels_last=1."""

    def propagate(self, node, ctx):
        x = node.input[0]
        rank = ctx.rank(x)
        channel = rank - 1 if int(attr(node, "channels_last", 0)) else 1
        for axis, labels in ctx.tracked(x).items():
            if axis in (0, channel):
                ctx.set_labels(node.output[0], axis, labels)
            else:
                ctx.block(labels, f"{node_label(node)}: channels sit on pooled spatial axis {axis}")


@register("QLinearConcat", domain="com.microsoft")
class QLinearConcatHandler(Handler):
    """Y_scale, Y_zero_point, then (X, X_scale, X_zero_point) per input: positions along the axis
    concatenate as Concat does (constant inputs' positions cannot be removed)."""

    def propagate(self, node, ctx):
        out = node.output[0]
        data = list(node.input[2::3])
        cat = norm_axis(int(attr(node, "axis", 0)), ctx.rank(out))
        for a in sorted({a for name in data for a in ctx.tracked(name)}):
            if a == cat:
                parts = [ctx.tracked(n).get(a, np.full(ctx.shape(n)[a], FIXED, dtype=np.int64)) for n in data]
                ctx.set_labels(out, a, np.concatenate(parts))
                continue
            first = next(ctx.tracked(n)[a] for n in data if a in ctx.tracked(n))
            for name in data:
                if a in ctx.tracked(name):
                    ctx.couple(first, ctx.tracked(name)[a], node_label(node))
                else:
                    ctx.block(first, f"{node_label(node)}: operand '{name}' cannot shrink along the channel axis")
            ctx.set_labels(out, a, first)
