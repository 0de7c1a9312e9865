"""Pooling works per channel over spatial axes: channels (axis 1) and batch pass through."""

from __future__ import annotations

from ...core.graph import node_label
from .base import Handler
from .registry import register


@register("MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool")
class PoolHandler(Handler):
    def propagate(self, node, ctx):
        if len(node.output) > 1 and node.output[1]:
            ctx.block_inputs(node, "MaxPool indices output encodes the channel index")
            return
        for axis, labels in ctx.tracked(node.input[0]).items():
            if axis in (0, 1):
                ctx.set_labels(node.output[0], axis, labels)
            else:
                ctx.block(labels, f"{node_label(node)}: channels sit on pooled spatial axis {axis}")
