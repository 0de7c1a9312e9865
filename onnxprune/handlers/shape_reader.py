"""Shape and Size read a tensor's dimensions. Exporters use Shape to read the batch or time
size (Shape -> Gather(0)); that survives pruning. Reading the channel count does not: every
value computed from it would change, so it blocks."""

from __future__ import annotations

from ..graph import node_label
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
        start = norm_axis(int(_attr(node, "start", 0)), rank)
        end = norm_axis(int(_attr(node, "end", rank)), rank) if _attr(node, "end", None) is not None else rank
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


def _attr(node, name, default):
    from ..graph import attr

    return attr(node, name, default)
