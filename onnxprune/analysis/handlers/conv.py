"""Conv, ConvTranspose and com.microsoft FusedConv: output channels are sources, input
channels are consumed by weight columns; depthwise convs carry channels straight through."""

from __future__ import annotations

import numpy as np

from ...core.graph import attr, node_label, set_attr
from .base import Handler, LinearView, optional_const, set_or_add
from .registry import register


def _block_non_channel_axes(node, ctx, x):
    for axis, labels in ctx.tracked(x).items():
        if axis == 0:
            ctx.set_labels(node.output[0], 0, labels)  # a batch-like axis passes through
        elif axis != 1:
            ctx.block(labels, f"{node_label(node)}: channels sit on spatial axis {axis}, which the kernel mixes")


@register("Conv")
@register("FusedConv", domain="com.microsoft")
class ConvHandler(Handler):
    W, B = 1, 2  # input positions of the weight and the bias (QLinearConv: 3 and 8)

    def bias(self, node) -> str:
        return node.input[self.B] if self.B is not None and len(node.input) > self.B and node.input[self.B] else ""

    def rows(self, node, ctx, labels, role) -> None:
        """Constants indexed by output channel: weight rows, bias (and per-channel quantization)."""
        ctx.param(node, self.W, 0, labels, role)
        if self.bias(node):
            ctx.param(node, self.B, 0, labels, role)

    def columns(self, node, ctx, labels) -> None:
        """The weight columns that read input channels (zeroed in the reference model)."""
        ctx.param(node, self.W, 1, labels, "consumer")

    def propagate(self, node, ctx):
        x, w = node.input[0], node.input[self.W]
        weight = ctx.const(w)
        if weight is None:
            ctx.block_inputs(node, f"weight '{w}' is computed at run time, not a constant")
            return
        group = int(attr(node, "group", 1))
        out = node.output[0]
        cout, cin = weight.shape[0], weight.shape[1] * group
        _block_non_channel_axes(node, ctx, x)
        x_labels = ctx.tracked(x).get(1)
        if group == 1:
            labels = ctx.new_source(node, out, 1, cout)
            self.rows(node, ctx, labels, "producer")
            if x_labels is not None:
                self.columns(node, ctx, x_labels)
        elif group == cin and x_labels is not None:
            # Depthwise: output channel j reads only input channel j // mult.
            labels = np.repeat(x_labels, cout // cin)
            ctx.set_labels(out, 1, labels)
            self.rows(node, ctx, labels, "channelwise")
            ctx.needs_rewrite(node)
        elif x_labels is not None and cin % group == 0 and cout % group == 0:
            # Grouped: group j's outputs read only group j's inputs. Whole groups go (their inputs
            # and outputs are one unit, `group` shrinks); the weight's per-group input axis stays.
            units = ctx.unite_rows(x, (1,), np.asarray(x_labels).reshape(group, cin // group))
            labels = np.repeat(units[:, 0], cout // group)
            ctx.set_labels(out, 1, labels)
            self.rows(node, ctx, labels, "channelwise")
            ctx.needs_rewrite(node)
        elif x_labels is not None:
            ctx.block(x_labels, f"{node_label(node)}: grouped Conv (group={group}) does not divide its channels")
        if node.op_type == "FusedConv" and len(node.input) > 3 and node.input[3]:
            z = node.input[3]
            out_labels = ctx.tracked(out).get(1)
            z_labels = ctx.tracked(z).get(1)
            if out_labels is not None and z_labels is not None:
                ctx.couple(out_labels, z_labels, node_label(node))
            elif out_labels is not None:
                ctx.block(out_labels, f"{node_label(node)}: sum input '{z}' cannot shrink with the output")

    def rewrite(self, node, ctx):
        kept = ctx.kept(node.input[0], 1)
        if kept is not None:
            weight = ctx.const(node.input[self.W])
            group = int(attr(node, "group", 1))
            per_group = len(kept) // group if weight is None else weight.shape[1]  # inputs per group (1: depthwise)
            set_attr(node, "group", int(kept.sum()) // per_group)


@register("ConvTranspose")
class ConvTransposeHandler(Handler):
    def propagate(self, node, ctx):
        x, w = node.input[0], node.input[1]
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else ""
        weight = ctx.const(w)
        group = int(attr(node, "group", 1))
        if weight is None or group != 1:
            why = f"weight '{w}' is computed at run time" if weight is None else f"group={group} is not supported"
            ctx.block_inputs(node, why)
            return
        _block_non_channel_axes(node, ctx, x)
        x_labels = ctx.tracked(x).get(1)
        if x_labels is not None:
            ctx.param(node, 1, 0, x_labels, "consumer")
        labels = ctx.new_source(node, node.output[0], 1, weight.shape[1])
        ctx.param(node, 1, 1, labels, "producer")
        if bias:
            ctx.param(node, 2, 0, labels, "producer")


class ConvLinear(LinearView):
    """An ungrouped Conv as y = W x + b: per pixel for a 1x1 one, over kernel windows (im2col)
    for a 1-D/2-D k x k one; W read along its input-channel axis."""
    kind = "conv"

    def reads(self, index, p) -> bool:
        node = p.node
        return (node.op_type == "Conv" and node.domain in ("", "ai.onnx") and p.input_index == 1 and p.axis == 1
                and index.const(node.input[1]).ndim >= 3)

    def geometry(self, index, node):
        pointwise = _is_pointwise(index, node)
        return pointwise, None if pointwise else _patch_geometry(index, node)

    def rows_exact(self, site) -> bool:
        return site.pointwise or site.patches is not None

    def open(self, node, writer, index):
        if int(attr(node, "group", 1)) != 1:
            return None
        w = writer.current(node, 1).astype(np.float64)
        return w, optional_const(writer, node, 2, w.shape[0]), None, True

    def write(self, lin, w_new, b_new, new_adds, node_pos):
        node, writer = lin.node, lin.writer
        dtype = writer.current(node, 1).dtype
        w = lin.w if np.array_equal(w_new, lin.matrix()) else w_new.reshape(lin.w.shape)
        writer.set(node, 1, w.astype(dtype))
        set_or_add(writer, node, 2, b_new.astype(dtype), "bias")


ConvHandler.linear = ConvLinear()


def _patch_geometry(index, node):
    """(kernel, pads, strides, dilations, auto_pad) of an ungrouped 1-D/2-D Conv, else None."""
    kernel = tuple(index.const(node.input[1]).shape[2:])
    if int(attr(node, "group", 1)) != 1 or not 1 <= len(kernel) <= 2:
        return None
    n = len(kernel)
    auto_pad = attr(node, "auto_pad", "NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    pads = tuple(attr(node, "pads", None) or [0] * 2 * n)
    strides = tuple(attr(node, "strides", None) or [1] * n)
    dilations = tuple(attr(node, "dilations", None) or [1] * n)
    if auto_pad not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER") or len(pads) != 2 * n:
        return None
    return kernel, pads if auto_pad == "NOTSET" else (0,) * 2 * n, strides, dilations, auto_pad


def _is_pointwise(index, node) -> bool:
    kernel = index.const(node.input[1]).shape[2:]
    pads = attr(node, "pads", None) or []
    auto_pad = attr(node, "auto_pad", "NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    return (all(k == 1 for k in kernel) and not any(pads) and int(attr(node, "group", 1)) == 1
            and auto_pad in ("NOTSET", "VALID"))
