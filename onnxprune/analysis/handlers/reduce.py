"""Reductions: channels pass through when the reduced axes do not include them (with the axis
renumbered when keepdims=0); reducing over the channel axis blocks."""

from __future__ import annotations

from ...core.graph import attr, node_label
from ..reasons import Reason
from .base import Handler, int_list, norm_axis
from .registry import register

REDUCE = ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
          "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin")


@register(*REDUCE)
class ReduceHandler(Handler):
    def propagate(self, node, ctx):
        x = node.input[0]
        rank = ctx.rank(x)
        if node.op_type in ("ArgMax", "ArgMin"):
            axes = [int(attr(node, "axis", 0))]
        elif len(node.input) > 1 and node.input[1]:
            value = ctx.const(node.input[1])
            if value is None:
                ctx.block_inputs(node, "reduction axes are computed at run time")
                return
            axes = int_list(value.reshape(-1))
        else:
            axes = attr(node, "axes", None)
            axes = list(axes) if axes is not None else []
        if not axes:
            if int(attr(node, "noop_with_empty_axes", 0)):
                ctx.passthrough(node, x, node.output[0])
                return
            axes = list(range(rank))
        axes = sorted(norm_axis(a, rank) for a in axes)
        keep = int(attr(node, "keepdims", 1))
        for axis, labels in ctx.tracked(x).items():
            if axis in axes:
                ctx.block(labels, Reason(f"{node_label(node)}: reduces over the channel axis {axis}",
                                         "mixes-channels", node.name))
            else:
                out_axis = axis if keep else axis - sum(1 for a in axes if a < axis)
                ctx.set_labels(node.output[0], out_axis, labels)
