"""LSTM/GRU/RNN as consumers: input features are read by the `W` weight's last axis.
(Their hidden units as prunable groups live with the recurrent-structures work.)"""

from __future__ import annotations

from ..graph import attr, node_label
from .base import Handler
from .registry import register


@register("LSTM", "GRU", "RNN")
class RecurrentHandler(Handler):
    def propagate(self, node, ctx):
        x, w = node.input[0], node.input[1]
        if ctx.const(w) is None:
            ctx.block_inputs(node, f"weight '{w}' is computed at run time")
            return
        for axis, labels in ctx.tracked(x).items():
            if axis == 2:
                ctx.param(node, 1, 2, labels, "consumer")
            else:
                layout = int(attr(node, "layout", 0))
                what = "time" if axis == (1 if layout else 0) else "batch"
                ctx.block(labels, f"{node_label(node)}: channels sit on the {what} axis of the sequence")
        for name in node.input[2:]:
            ctx.block_all(name, f"{node_label(node)}: channels reach a recurrent state or bias input")
