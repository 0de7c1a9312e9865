"""Reshape, Flatten, Expand and Tile. Reshape and Flatten map channel positions by reshaping an index
tensor, so C×H×W blocks (NCHW or NHWC order) and head splits come out exact without special cases.
A target computed at run time (`Shape -> Gather -> Unsqueeze -> Concat`) is checked entry by entry
against the channels on each output axis (analysis/shape_program.py)."""

from __future__ import annotations

import numpy as np

from ...core.graph import attr, node_label
from ..shape_program import proportional
from .base import Handler
from .registry import register


def labels_through_reshape(in_shape, axes: tuple, labels: np.ndarray, out_shape):
    """Where channel labels land after a row-major reshape: (output axes they depend on, label
    array over those axes). Broadcasting the labels to the full tensor and reshaping it handles
    merges (C*H*W blocks, NHWC order), splits (C -> heads x head_dim) and both at once."""
    view = [1] * len(in_shape)
    for k, a in enumerate(axes):
        view[a] = labels.shape[k]
    full = np.broadcast_to(labels.reshape(view), tuple(in_shape)).reshape(tuple(out_shape))
    dep = tuple(j for j in range(len(out_shape)) if out_shape[j] > 1 and np.any(np.diff(full, axis=j) != 0))
    index = tuple(slice(None) if j in dep else 0 for j in range(len(out_shape)))
    return dep, full[index]


@register("Reshape", "Flatten")
class ReshapeHandler(Handler):
    """A constant target is rewritten in place. A target computed at run time (shape_program)
    is checked entry by entry: a channel axis reads -1, a constant (changed by adding a constant
    delta vector just before this Reshape, so a target shared with other Reshapes is untouched),
    or the size of a channel axis that shrinks in proportion; other axes must not depend on a
    channel count (a Shape read of one is accepted only here)."""

    multi_axis = True

    def propagate(self, node, ctx):
        x, out = node.input[0], node.output[0]
        entries = {**{(a,): v for a, v in ctx.tracked(x).items()}, **ctx.tracked_multi(x)}
        if not entries:
            return
        in_shape, out_shape = ctx.shape(x), ctx.shape(out)
        if in_shape is None or out_shape is None:
            ctx.block_inputs(node, "shapes unknown")
            return
        target = computed = None
        allowzero = int(attr(node, "allowzero", 0))
        if node.op_type == "Reshape":
            target = ctx.const(node.input[1])
            if target is None:
                computed = ctx.computed(node.input[1])
                if computed is None or computed.shape != (len(out_shape),):
                    ctx.block_inputs(node, "target shape is computed at run time by ops the shape analysis "
                                           "cannot follow")
                    return
                target = np.array([e.value for e in computed], dtype=np.int64)
        carried = set()
        for axes, labels in entries.items():
            dep, out_labels = labels_through_reshape(in_shape, axes, labels, out_shape)
            carried.update(dep)
            if not dep:
                continue  # a single channel: nothing to carry
            zero_copy = [j for j in dep if target is not None and int(target[j]) == 0]
            if zero_copy and (allowzero or any(j not in axes for j in zero_copy)):
                ctx.block(labels.reshape(-1), f"{node_label(node)}: shape entry 0 copies a different input axis")
                continue
            if computed is not None and not self._computed_ok(node, ctx, computed, dep, out_labels, labels):
                continue
            ctx.set_multi(out, dep, out_labels)
            if target is not None:
                ctx.needs_rewrite(node)
        if computed is not None:
            for j, e in enumerate(computed):
                if j not in carried and _unfolded(ctx, e):  # `B*H // H`: the batch read back from a folded axis
                    ctx.accept(node, 1, e.dim)
                    ctx.needs_rewrite(node)

    @staticmethod
    def _computed_ok(node, ctx, computed, dep, out_labels, labels) -> bool:
        for k, j in enumerate(dep):
            e = computed[j]
            if e.const or (e.static and not any(ctx.tracked(t).get(a) is not None for t, a in e.deps)):
                continue  # -1, or constant whatever the input shapes: the rewrite adds the difference
            t_labels = ctx.tracked(e.dim[0]).get(e.dim[1]) if e.dim is not None else None
            if t_labels is None and _folded(e, out_labels, k):  # `B * num_heads`: heads folded into the batch
                ctx.unite_rows(node.output[0], (j,), np.moveaxis(out_labels, k, 0))
                continue
            if t_labels is not None and not e.static and _batch_factor(t_labels) is None:
                ctx.block(labels.reshape(-1), f"{node_label(node)}: target entry {j} ({e}) reads an axis that mixes "
                                              f"channels with a run-time size in a layout the rewrite cannot follow")
                return False
            if t_labels is not None and proportional(ctx, t_labels, out_labels, k, e.num, e.den):
                if out_labels.ndim > 1:  # each slab along this axis is one unit (a head)
                    ctx.unite_rows(node.output[0], (j,), np.moveaxis(out_labels, k, 0))
                ctx.accept(node, 1, e.dim)
                continue
            if e.static:  # e.g. the width of a residual stream: not accepted, so the Shape read blocks
                continue  # those channels, the size stays, and the rewrite adds the difference
            ctx.block(labels.reshape(-1), f"{node_label(node)}: target entry {j} ({e}) does not follow the "
                                          f"channels on that axis")
            return False
        return True

    def rewrite(self, node, ctx):
        out = node.output[0]
        computed = ctx.analysis.program.get(node.input[1]) if node.op_type == "Reshape" else None
        if computed is None:
            shape = np.array(ctx.value(node, 1)).copy()
            for axis in ctx.tracked_axes(out):
                if shape[axis] > 0:
                    shape[axis] = int(ctx.kept(out, axis).sum())
            ctx.set_value(node, 1, shape)
            return
        delta = np.zeros(len(computed), dtype=np.int64)
        num, den = np.ones(len(computed), dtype=np.int64), np.ones(len(computed), dtype=np.int64)
        for axis in ctx.tracked_axes(out):
            e = computed[axis]
            if e.value > 0 and _folded_size(e, ctx):
                size = ctx.analysis.shapes[e.dim[0]][e.dim[1]]
                num[axis], den[axis] = int(ctx.kept(out, axis).sum()) // size, e.num // e.den
            elif e.value > 0 and _read_from_folded(e, ctx):
                # read from an axis that folds heads with the batch: `B*H // H * H` must become
                # `B*H' // H' * H'` at every batch size, so the entry is recomputed from that axis
                t, a = e.dim
                batch = _batch_factor(ctx.analysis.dims[t][a])
                kept_t, kept_out = ctx.kept(t, a), ctx.kept(out, axis)
                if not (kept_t.all() and kept_out.all()):
                    ctx.writer.size_entry(node, 1, axis, len(computed), t, a, int(kept_t.sum()) // batch,
                                          int(kept_out.sum()) // batch, f"{node.name or out}_folded")
            elif e.value > 0:
                delta[axis] = int(ctx.kept(out, axis).sum()) - _after_pruning(e, ctx)
        scale = (num, den) if np.any(num != den) else None
        if delta.any() or scale is not None:
            ctx.writer.offset_input(node, 1, delta, f"{node.name or out}_pruned_shape", scale=scale)
        for j, e in enumerate(computed):
            t, a = e.dim if e.dim is not None else (None, None)
            if j in ctx.tracked_axes(out) or e.const or e.dim is None or a not in ctx.analysis.dims.get(t, {}):
                continue
            kept = ctx.kept(t, a)
            if e.num == 1 and e.den > 1 and kept.any() and not kept.all():
                per_batch = int(kept.sum()) // (len(kept) // e.den)
                ctx.writer.size_entry(node, 1, j, len(computed), t, a, per_batch, 1, f"{node.name or out}_batch")


def _folded(e, out_labels: np.ndarray, k: int) -> bool:
    """Is this entry `dim(t, a) * P` with the output axis holding P units per index of that
    (batch) axis, batch-major: position b * P + h is unit h? Then it stays `dim * P'` when P'
    units remain, whatever the batch size (nn.MultiheadAttention's `bsz * num_heads`)."""
    if e.dim is None or e.num % e.den or e.num // e.den < 2:
        return False
    period = e.num // e.den
    rows = np.moveaxis(np.asarray(out_labels), k, 0).reshape(out_labels.shape[k], -1)
    return len(rows) == e.value and len(rows) % period == 0 and \
        all(np.array_equal(rows[i], rows[i % period]) for i in range(len(rows)))


def _batch_factor(labels) -> int | None:
    """How many times a labelled axis repeats its units, batch-major (positions b*U + u, U the
    distinct labels): heads folded into the batch at the probe batch size; 1 for a plain axis."""
    labels = np.asarray(labels).reshape(-1)
    units = len(np.unique(labels))
    if units == 0 or len(labels) % units or not all(labels[i] == labels[i % units] for i in range(len(labels))):
        return None
    return len(labels) // units


def _unfolded(ctx, e) -> bool:
    """Is this entry `dim(t, a) // P` where axis a of t holds P units per batch index, batch-major
    (heads folded into the batch, read back as the batch: Emformer's `view(B, H, T, -1)` with
    `B = size(0) // num_heads`)? In the pruned model the rewrite recomputes it as `dim // P'`."""
    if e.dim is None or e.num != 1 or e.den < 2:
        return False
    labels = ctx.tracked(e.dim[0]).get(e.dim[1])
    if labels is None or len(labels) != e.value * e.den:
        return False
    return all(labels[i] == labels[i % e.den] for i in range(len(labels)))


def _read_from_folded(e, ctx) -> bool:
    """A size read from a labelled axis that also depends on the input shapes (heads folded with
    the batch), batch-major, with something kept on it."""
    if e.dim is None or e.static or e.dim[1] not in ctx.analysis.dims.get(e.dim[0], {}):
        return False
    return _batch_factor(ctx.analysis.dims[e.dim[0]][e.dim[1]]) is not None and ctx.kept(*e.dim).any()


def _folded_size(e, ctx) -> bool:
    """A folded entry (see _folded): a scaled size of an axis that holds no channels."""
    return e.dim is not None and e.dim[1] not in ctx.analysis.dims.get(e.dim[0], {}) and \
        e.num % e.den == 0 and e.num // e.den > 1


def _after_pruning(e, ctx) -> int:
    """What a computed shape entry evaluates to in the pruned model."""
    if e.const or e.dim is None:
        return e.value  # a constant, or sizes the analysis proved unchanged
    t, a = e.dim
    size = int(ctx.kept(t, a).sum()) if a in ctx.analysis.dims.get(t, {}) else ctx.analysis.shapes[t][a]
    return size * e.num // e.den


@register("Expand")
class ExpandHandler(Handler):
    """Expand broadcasts x to a shape. A channel axis of x (not of size 1) needs its entry of the
    shape to be 1 (broadcast keeps it), a constant the rewrite changes, or the size of a channel
    axis that shrinks in proportion (computed from Shape)."""

    def propagate(self, node, ctx):
        x, out = node.input[0], node.output[0]
        tracked = ctx.tracked(x)
        if not tracked:
            return
        const = ctx.const(node.input[1])
        computed = ctx.computed(node.input[1]) if const is None else None
        if const is None and computed is None:
            ctx.block_inputs(node, "target shape is computed at run time by ops the shape analysis cannot follow")
            return
        entries = list(computed.reshape(-1)) if computed is not None else None
        values = [int(v) for v in const.reshape(-1)] if const is not None else [e.value for e in entries]
        out_rank, rank = ctx.rank(out), ctx.rank(x)
        for axis, labels in tracked.items():
            j = axis + out_rank - rank
            k = j - (out_rank - len(values))
            if k >= 0 and values[k] not in (1, len(labels)):
                ctx.block(labels, f"{node_label(node)}: expands the channel axis {axis}")
                continue
            if k >= 0 and values[k] != 1 and entries is not None and not entries[k].const:
                e = entries[k]
                t = ctx.tracked(e.dim[0]).get(e.dim[1]) if e.dim is not None else None
                if t is not None and e.num == e.den == 1 and len(t) == len(labels):
                    ctx.couple(t, labels, f"{node_label(node)}: expands to the size of '{e.dim[0]}'")  # expand_as
                elif t is None or not proportional(ctx, t, labels, 0, e.num, e.den):
                    ctx.block(labels, f"{node_label(node)}: target entry {k} ({e}) does not follow the channels")
                    continue
                ctx.accept(node, 1, e.dim)
            elif k >= 0 and values[k] != 1:
                ctx.needs_rewrite(node)
            ctx.set_labels(out, j, labels)

    def rewrite(self, node, ctx):
        out = node.output[0]
        computed = ctx.analysis.program.get(node.input[1])
        shape = np.array(ctx.value(node, 1) if computed is None else [e.value for e in computed.reshape(-1)])
        delta = np.zeros(len(shape), dtype=np.int64)
        offset = ctx.rank(out) - len(shape)
        for axis in ctx.tracked_axes(out):
            k = axis - offset
            if k >= 0 and shape[k] > 1 and (computed is None or computed.reshape(-1)[k].const):
                delta[k] = int(ctx.kept(out, axis).sum()) - int(shape[k])
        if not delta.any():
            return
        if computed is None:
            ctx.set_value(node, 1, (shape + delta).astype(ctx.value(node, 1).dtype))
        else:
            ctx.writer.offset_input(node, 1, delta, f"{node.name or out}_pruned_shape")


@register("Tile")
class TileHandler(Handler):
    """Tile repeats x along each axis (`x.repeat(1, 1, T)`: statistics pooling's global context).
    A channel axis passes where its repeat count is the constant 1, whatever the input shapes."""

    def propagate(self, node, ctx):
        x, out = node.input[0], node.output[0]
        if not ctx.tracked(x):
            return
        const = ctx.const(node.input[1])
        computed = ctx.computed(node.input[1]) if const is None else None
        if const is None and computed is None:
            ctx.block_inputs(node, "repeats are computed at run time by ops the shape analysis cannot follow")
            return
        ones = [int(v) == 1 for v in const.reshape(-1)] if const is not None else \
            [e.const and e.value == 1 for e in computed.reshape(-1)]
        for axis, labels in ctx.tracked(x).items():
            if not ones[axis]:
                ctx.block(labels, f"{node_label(node)}: repeats the channel axis {axis}")
            else:
                ctx.set_labels(out, axis, labels)
