"""Shape and Size read a tensor's dimensions. Exporters use Shape to read the batch or time
size (Shape -> Gather(0)); that survives pruning. A channel count read this way is allowed when
every value computed from it reaches a consumer that stays exact as it shrinks (a Reshape target
entry on that channel axis; see analysis/shape_program.py); the check runs after the whole
graph is analysed. Where the shape program cannot follow the values, reading a count blocks."""

from __future__ import annotations

import numpy as np

from ...core.graph import attr, node_label
from .base import Handler, norm_axis
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
        if node.op_type == "Shape" and ctx.computed(node.output[0]) is not None:
            for axis, labels in tracked.items():
                if axis in read:
                    ctx.dim_reads.append((node, x, axis, labels))
            return
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
        return _entries_read(ctx, node.output[0], np.arange(n), depth=12)


def _entries_read(ctx, name: str, entries: np.ndarray, depth: int) -> set[int] | None:
    """Which shape entries reach a consumer that computes with them. `entries[i]` is the entry
    of the original Shape held at position i of `name` (-1: from elsewhere). Gather, Slice,
    Concat, Cast, Squeeze and Unsqueeze only move entries (tf2onnx permutes the shape with a
    Gather, then slices the batch size out); anything else reads what it is given."""
    if name in ctx.index.graph_outputs or depth == 0:
        return None
    read: set[int] = set()
    for use in ctx.index.consumers(name):
        moved = _moved(ctx, use, entries)
        if moved is None:  # a computing consumer: it reads every entry it is given
            read.update(int(e) for e in entries.reshape(-1) if e >= 0)
            continue
        out, out_entries = moved
        inner = _entries_read(ctx, out, out_entries, depth - 1)
        if inner is None:
            return None
        read.update(inner)
    return read


def _moved(ctx, use, entries: np.ndarray):
    """(output, its entries) if `use` only moves shape entries, else None."""
    user, op = use.node, use.node.op_type
    if use.index < 0 or not user.output or not user.output[0]:
        return None
    if op in ("Cast", "Identity", "Squeeze", "Unsqueeze") and use.index == 0:
        return user.output[0], entries
    if op == "Gather" and use.index == 0 and int(attr(user, "axis", 0)) == 0:
        idx = ctx.const(user.input[1])
        if idx is None:
            return None
        return user.output[0], entries.reshape(-1)[np.asarray(idx, dtype=np.int64).reshape(-1)]
    if op == "Slice" and use.index == 0 and entries.ndim == 1:
        bounds = [ctx.const(i) if i else None for i in list(user.input[1:5]) + [""] * (5 - len(user.input))]
        if bounds[0] is None or bounds[1] is None or (len(user.input) > 3 and user.input[3] and bounds[2] is None) \
                or (len(user.input) > 4 and user.input[4] and bounds[3] is None):
            return None
        start, end = int(bounds[0].reshape(-1)[0]), int(bounds[1].reshape(-1)[0])
        step = int(bounds[3].reshape(-1)[0]) if bounds[3] is not None else 1
        return user.output[0], entries[slice(start, end, step)]
    if op == "Concat" and int(attr(user, "axis", 0)) in (0, -1) and entries.ndim <= 1:
        parts = []
        for k, inp in enumerate(user.input):
            if k == use.index:
                parts.append(entries.reshape(-1))
            else:
                shape = ctx.shape(inp)
                if shape is None or len(shape) > 1:
                    return None
                parts.append(np.full(int(np.prod(shape)) if shape else 1, -1))
        return user.output[0], np.concatenate(parts)
    return None
