"""Normalisations and softmax. Per-channel statistics (BatchNorm, InstanceNorm over axis 1) are
sliced; anything that normalises *across* the channel axis (LayerNorm, Softmax over it,
GroupNorm) blocks, because removing a channel would change every other channel's value."""

from __future__ import annotations

from ...core.graph import attr, node_label
from ..reasons import Reason
from .base import Handler, norm_axis
from .registry import register


@register("BatchNormalization")
class BatchNormHandler(Handler):
    def propagate(self, node, ctx):
        if len([o for o in node.output if o]) > 1:
            ctx.block_inputs(node, "training-mode BatchNormalization (running statistics are outputs)")
            return
        for axis, labels in ctx.tracked(node.input[0]).items():
            ctx.set_labels(node.output[0], axis, labels)
            if axis == 1:
                for k in range(1, 5):
                    ctx.param(node, k, 0, labels, "channelwise", tag="bn_scale" if k == 1 else "")


@register("InstanceNormalization")
class InstanceNormHandler(Handler):
    def propagate(self, node, ctx):
        for axis, labels in ctx.tracked(node.input[0]).items():
            if axis == 1:
                ctx.set_labels(node.output[0], 1, labels)
                ctx.param(node, 1, 0, labels, "channelwise", tag="bn_scale")
                ctx.param(node, 2, 0, labels, "channelwise")
            elif axis == 0:
                ctx.set_labels(node.output[0], 0, labels)
            else:
                ctx.block(labels, f"{node_label(node)}: normalises over spatial axis {axis}, which holds channels")


@register("LayerNormalization", "SimplifiedLayerNormalization")
@register("LayerNormalization", "SkipLayerNormalization", "SimplifiedLayerNormalization",
          "SkipSimplifiedLayerNormalization", domain="com.microsoft")
class LayerNormHandler(Handler):
    """Skip*LayerNormalization normalises input + skip (+ bias, input 4 or 3): all three are
    summed over the normalised axis, so channels on any of them block the same way."""

    def propagate(self, node, ctx):
        x = node.input[0]
        rank = ctx.rank(x)
        first = norm_axis(int(attr(node, "axis", -1)), rank)
        skip = node.op_type.startswith("Skip")
        summed = [x] + ([node.input[1]] if skip else [])
        if skip:
            summed.append(node.input[4 if node.op_type == "SkipLayerNormalization" else 3]
                          if len(node.input) > (4 if node.op_type == "SkipLayerNormalization" else 3) else "")
        for name in summed:
            for axis, labels in ctx.tracked(name).items():
                if axis + rank - ctx.rank(name) >= first:
                    ctx.block(labels, Reason(f"{node_label(node)}: normalises over the channel axis (removing a channel "
                                             f"changes the others)", "mixes-channels", node.name))
                else:
                    for out in [node.output[0]] + ([node.output[3]] if skip and len(node.output) > 3 and node.output[3] else []):
                        ctx.set_labels(out, axis + rank - ctx.rank(name), labels)
        for other in node.input[1:]:
            if other not in summed:
                ctx.block_all(other, f"{node_label(node)}: channels reach a LayerNorm parameter input")


@register("GroupNormalization", "LRN", "MeanVarianceNormalization", "LpNormalization")
class CrossChannelNormHandler(Handler):
    def propagate(self, node, ctx):
        ctx.block_inputs(node, f"{node.op_type} mixes values across channels")


@register("Softmax", "LogSoftmax", "Hardmax")
class SoftmaxHandler(Handler):
    def propagate(self, node, ctx):
        x = node.input[0]
        rank = ctx.rank(x)
        if ctx.index.opset >= 13:
            axis = norm_axis(int(attr(node, "axis", -1)), rank)
            mixes = lambda a: a == axis  # noqa: E731
        else:  # before opset 13 the input is coerced to 2-D at `axis`: every later axis mixes
            axis = norm_axis(int(attr(node, "axis", 1)), rank)
            mixes = lambda a: a >= axis  # noqa: E731
        for a, labels in ctx.tracked(x).items():
            if mixes(a):
                ctx.block(labels, Reason(f"{node_label(node)}: {node.op_type} over the channel axis",
                                         "mixes-channels", node.name))
            else:
                ctx.set_labels(node.output[0], a, labels)
