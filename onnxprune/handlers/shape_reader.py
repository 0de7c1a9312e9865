"""Shape and Size read a tensor's dimensions. Exporters use Shape to read the batch or time
size (Shape -> Gather(0)); that survives pruning. Reading the channel count does not: every
value computed from it would change, so it blocks."""

from __future__ import annotations

from ..graph import attr, node_label
from .base import Handler, int_list, norm_axis
from .registry import register


@register("Shape", "Size")
class ShapeHandler(Handler):
    def propagate(self, node, ctx):
        x = node.input[0]
        tracked = ctx.tracked(x)
        if not tracked:
            return
        if node.op_type == "Size":
            ctx.block_all(x, f"{node_label(node)}: reads the element count, which pruning changes")
            return
        rank = ctx.rank(x)
        start = norm_axis(int(attr(node, "start", 0)), rank)
        end = attr(node, "end", None)
        end = rank if end is None else norm_axis(int(end), rank)
        read = set(range(start, min(end, rank)))
        entries_read = self._entries_read(node, ctx, len(read))
        for axis, labels in tracked.items():
            if axis not in read:
                continue
            if entries_read is None or (axis - start) in entries_read:
                ctx.block(labels, f"{node_label(node)}: reads the channel count of axis {axis}, "
                                  f"so computed shapes downstream would change")

    @staticmethod
    def _entries_read(node, ctx, n):
        """Indices of the shape vector that consumers read, or None if not provably limited."""
        if node.output[0] in ctx.index.graph_outputs:
            return None  # the caller reads every entry
        used = set()
        for use in ctx.index.consumers(node.output[0]):
            user = use.node
            if user.op_type != "Gather" or use.index != 0:
                return None
            idx = ctx.const(user.input[1])
            if idx is None:
                return None
            used.update(i + n if i < 0 else i for i in int_list(idx.reshape(-1)))
        return used
