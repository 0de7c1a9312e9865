"""Ops that move data without computing on it: Transpose, Squeeze/Unsqueeze, Concat, Slice, Split,
Pad, Gather (Reshape, Flatten and Expand, whose targets are often computed at run time, are in
reshape.py). Slice and Pad accept bounds computed at run time off the channel axis."""

from __future__ import annotations

import numpy as np

from ..atoms import FIXED
from ...core.graph import attr, node_label, set_attr
from .base import Handler, int_list, norm_axis
from .registry import register

INT64_MAX = np.iinfo(np.int64).max


def remap_multi(ctx, node, x, out, axis_map) -> None:
    """Carry multi-axis entries through an op that only renumbers axes."""
    for axes, labels in ctx.tracked_multi(x).items():
        remap_entry(ctx, node, out, axes, labels, axis_map)


def remap_entry(ctx, node, out, axes, labels, axis_map) -> None:
    """One multi-axis entry under an axis renumbering (None: the axis is removed, allowed only
    where the entry has size 1 along it)."""
    new_axes, keep_dims = [], []
    for k, a in enumerate(axes):
        b = axis_map(a)
        if b is None:
            if labels.shape[k] != 1:
                ctx.block(labels.reshape(-1), f"{node_label(node)}: removes an axis that holds channels")
                return
            continue
        new_axes.append(b)
        keep_dims.append(k)
    sub = labels.reshape([labels.shape[k] for k in keep_dims])
    order = np.argsort(new_axes)
    ctx.set_multi(out, tuple(int(new_axes[i]) for i in order), np.transpose(sub, order))


@register("Transpose")
class TransposeHandler(Handler):
    multi_axis = True

    def propagate(self, node, ctx):
        x = node.input[0]
        rank = ctx.rank(x)
        perm = attr(node, "perm", None)
        perm = list(perm) if perm is not None else list(reversed(range(rank)))
        ctx.passthrough(node, x, node.output[0], lambda a: perm.index(a))
        remap_multi(ctx, node, x, node.output[0], lambda a: perm.index(a))


def _axes_input(node, ctx, attr_name="axes", input_index=1):
    """Axes from the attribute (older opsets) or a constant input (newer); None if run-time."""
    if len(node.input) > input_index and node.input[input_index]:
        value = ctx.const(node.input[input_index])
        return None if value is None else int_list(value.reshape(-1))
    value = attr(node, attr_name, None)
    return [] if value is None else list(value)


@register("Squeeze")
class SqueezeHandler(Handler):
    multi_axis = True

    def propagate(self, node, ctx):
        x = node.input[0]
        rank = ctx.rank(x)
        axes = _axes_input(node, ctx)
        if axes is None:
            ctx.block_inputs(node, "squeeze axes are computed at run time")
            return
        axes = [norm_axis(a, rank) for a in axes] or [i for i, d in enumerate(ctx.shape(x)) if d == 1]
        mapping = lambda a: None if a in axes else a - sum(1 for s in axes if s < a)  # noqa: E731
        ctx.passthrough(node, x, node.output[0], mapping)
        remap_multi(ctx, node, x, node.output[0], mapping)


@register("Unsqueeze")
class UnsqueezeHandler(Handler):
    multi_axis = True

    def propagate(self, node, ctx):
        x = node.input[0]
        axes = _axes_input(node, ctx)
        if axes is None:
            ctx.block_inputs(node, "unsqueeze axes are computed at run time")
            return
        out_rank = ctx.rank(x) + len(axes)
        axes = sorted(norm_axis(a, out_rank) for a in axes)
        kept_positions = [i for i in range(out_rank) if i not in axes]  # input axis k -> output axis
        ctx.passthrough(node, x, node.output[0], lambda a: kept_positions[a])
        remap_multi(ctx, node, x, node.output[0], lambda a: kept_positions[a])


@register("Concat")
class ConcatHandler(Handler):
    def propagate(self, node, ctx):
        out = node.output[0]
        rank = ctx.rank(out)
        cat_axis = norm_axis(int(attr(node, "axis", 0)), rank)
        axes = {a for name in node.input for a in ctx.tracked(name)}
        for a in sorted(axes):
            if a == cat_axis:
                parts = [ctx.tracked(n).get(a, np.full(ctx.shape(n)[a], FIXED, dtype=np.int64)) for n in node.input]
                ctx.set_labels(out, a, np.concatenate(parts))
                continue
            first = next(ctx.tracked(n)[a] for n in node.input if a in ctx.tracked(n))
            ok = True
            for k, name in enumerate(node.input):
                if a in ctx.tracked(name):
                    ctx.couple(first, ctx.tracked(name)[a], node_label(node))
                elif ctx.const(name) is not None:
                    ctx.param(node, k, a, first, "channelwise")
                else:
                    ctx.block(first, f"{node_label(node)}: operand '{name}' cannot shrink along the channel axis")
                    ok = False
            if ok:
                ctx.set_labels(out, a, first)


def _clamp(v: int, dim: int) -> int:
    if v < 0:
        v += dim
    return max(0, min(v, dim))


@register("Slice")
class SliceHandler(Handler):
    """Bounds computed at run time (from the time length, say) are fine while no channel axis is
    sliced: the channels pass; slicing a channel axis needs constant bounds the rewrite changes."""

    def _params(self, node, ctx, computed_ok=False):
        if ctx.index.opset < 10:
            starts, ends = attr(node, "starts"), attr(node, "ends")
            axes = attr(node, "axes", None)
            steps = None
        else:
            vals = [ctx.const(node.input[i]) if len(node.input) > i and node.input[i] else None for i in range(1, 5)]
            for i, v in zip(range(1, 5), vals):
                if v is None and len(node.input) > i and node.input[i]:
                    if not computed_ok or i == 3 or _computed_const(ctx, node.input[i], want_const=False) is None:
                        return None
                    vals[i - 1] = _computed_const(ctx, node.input[i], want_const=False)
            starts, ends, axes, steps = [None if v is None else int_list(v.reshape(-1)) for v in vals]
        rank = ctx.rank(node.input[0])
        axes = list(range(len(starts))) if axes is None else [norm_axis(a, rank) for a in axes]
        steps = steps or [1] * len(starts)
        return list(starts), list(ends), axes, steps

    def propagate(self, node, ctx):
        x = node.input[0]
        if not ctx.tracked(x):
            return
        params = self._params(node, ctx, computed_ok=True)
        if params is None:
            ctx.block_inputs(node, "slice bounds are computed at run time")
            return
        starts, ends, axes, steps = params
        if self._params(node, ctx) is None and any(a in axes for a in ctx.tracked(x)):
            fixed = _fixed_bounds(ctx, node)
            if fixed is None:
                ctx.block_inputs(node, "slice bounds on the channel axis are computed at run time")
                return
            for k, dims in fixed.items():  # the rewrite writes constant bounds: the Shape read no longer matters
                for dim in dims:
                    ctx.accept(node, k, dim)
        for a, labels in ctx.tracked(x).items():
            if a not in axes:
                ctx.set_labels(node.output[0], a, labels)
                continue
            i = axes.index(a)
            if steps[i] != 1:
                ctx.block(labels, f"{node_label(node)}: strided slice (step {steps[i]}) along the channel axis")
                continue
            s, e = _clamp(starts[i], len(labels)), _clamp(min(ends[i], INT64_MAX), len(labels))
            ctx.set_labels(node.output[0], a, labels[s:max(s, e)])
            ctx.needs_rewrite(node)

    def rewrite(self, node, ctx):
        x = node.input[0]
        program = ctx.analysis.program
        computed = {k: program.concrete(node.input[k]) for k in (1, 2)
                    if ctx.index.opset >= 10 and ctx.const(node.input[k]) is None}
        if computed:  # static bounds computed from channel counts (torch.chunk): replaced by constants
            starts, ends, axes, _ = self._params(node, _WithComputed(ctx))
        else:
            starts, ends, axes, _ = self._params(node, ctx)
        for a in ctx.analysis.dims.get(x, {}):
            if a not in axes:
                continue
            i = axes.index(a)
            kept = ctx.kept(x, a)
            s, e = _clamp(starts[i], len(kept)), _clamp(min(ends[i], INT64_MAX), len(kept))
            starts[i], ends[i] = int(kept[:s].sum()), int(kept[:max(s, e)].sum())
        if ctx.index.opset < 10:
            set_attr(node, "starts", starts)
            set_attr(node, "ends", ends)
        else:
            for k, values in ((1, starts), (2, ends)):
                if k not in computed:
                    ctx.set_value(node, k, np.array(values, dtype=ctx.value(node, k).dtype))
                else:  # always: in the pruned model the computed value would read the new count
                    ctx.writer.add_input(node, k, np.array(values, dtype=np.int64), f"{node.name or x}_pruned_bound{k}")


class _WithComputed:
    """A rewrite context whose `const` answers computed slice bounds with their probe values."""

    def __init__(self, ctx):
        self.index, self._ctx = ctx.index, ctx

    def const(self, name):
        value = self._ctx.const(name)
        return value if value is not None else self._ctx.analysis.program.concrete(name)

    def rank(self, name):
        return self._ctx.rank(name)


def _fixed_bounds(ctx, node):
    """{input index: sizes read} when every computed start/end of this Slice is fixed whatever the
    input shapes (torch.chunk's `(C + n - 1) // n * i` from a channel count); None otherwise.
    Axes and steps must be constants."""
    if len(node.input) > 3 and node.input[3] and ctx.const(node.input[3]) is None:
        return None
    if len(node.input) > 4 and node.input[4] and ctx.const(node.input[4]) is None:
        return None
    fixed = {}
    for k in (1, 2):
        if ctx.const(node.input[k]) is not None:
            continue
        entries = ctx.computed(node.input[k])
        if entries is None or not all(e.const or e.static for e in entries.reshape(-1)):
            return None
        fixed[k] = set().union(*(e.deps for e in entries.reshape(-1)))
    return fixed


def _computed_const(ctx, name, want_const=True):
    """Concrete values of an integer vector the shape program follows (None if it does not);
    want_const: only when every entry is a constant."""
    entries = ctx.computed(name)
    if entries is None or (want_const and any(not e.const for e in entries.reshape(-1))):
        return None
    return np.array([e.value for e in entries.reshape(-1)], dtype=np.int64).reshape(entries.shape)


@register("Split")
class SplitHandler(Handler):
    def _sizes(self, node, ctx, dim):
        if ctx.index.opset >= 13 and len(node.input) > 1 and node.input[1]:
            value = ctx.const(node.input[1])
            return None if value is None else int_list(value.reshape(-1))
        sizes = attr(node, "split", None) if ctx.index.opset < 13 else None
        if sizes:
            return list(sizes)
        n = len(node.output)
        chunk = -(-dim // n)
        return [min(chunk, dim - k * chunk) for k in range(n)]

    def propagate(self, node, ctx):
        x = node.input[0]
        if not ctx.tracked(x):
            return
        axis = norm_axis(int(attr(node, "axis", 0)), ctx.rank(x))
        for a, labels in ctx.tracked(x).items():
            if a != axis:
                for out in node.output:
                    ctx.set_labels(out, a, labels)
                continue
            sizes = self._sizes(node, ctx, len(labels))
            if sizes is None:
                ctx.block(labels, f"{node_label(node)}: split sizes are computed at run time")
                continue
            offset = 0
            for out, size in zip(node.output, sizes):
                ctx.set_labels(out, a, labels[offset:offset + size])
                offset += size
            ctx.needs_rewrite(node)

    def rewrite(self, node, ctx):
        x = node.input[0]
        axis = norm_axis(int(attr(node, "axis", 0)), len(ctx.analysis.shapes[x]))
        kept = ctx.kept(x, axis)
        sizes = self._sizes(node, ctx, len(kept))
        new, offset = [], 0
        for size in sizes:
            new.append(int(kept[offset:offset + size].sum()))
            offset += size
        if ctx.index.opset < 13:
            set_attr(node, "split", new)
            return
        for i, a in enumerate(node.attribute):
            if a.name == "num_outputs":
                del node.attribute[i]
                break
        if len(node.input) > 1 and node.input[1]:
            ctx.set_value(node, 1, np.array(new, dtype=np.int64))
        else:
            ctx.writer.add_input(node, 1, np.array(new, dtype=np.int64), f"{node.name or node.output[0]}_split")


@register("Pad")
class PadHandler(Handler):
    """Pads computed at run time ("same" padding from the time length) are fine when the channel
    axes' entries are constant zeros."""

    def propagate(self, node, ctx):
        x = node.input[0]
        if not ctx.tracked(x):
            return
        rank = ctx.rank(x)
        computed = None
        if ctx.index.opset < 11:
            pads = list(attr(node, "pads"))
        else:
            value = ctx.const(node.input[1])
            computed = ctx.computed(node.input[1]) if value is None else None
            if value is None and computed is None:
                ctx.block_inputs(node, "pads are computed at run time")
                return
            pads = int_list(value.reshape(-1)) if value is not None else [e.value for e in computed.reshape(-1)]
        axes = list(range(rank))
        if len(node.input) > 3 and node.input[3]:
            value = ctx.const(node.input[3])
            if value is None:
                ctx.block_inputs(node, "pad axes are computed at run time")
                return
            axes = [norm_axis(a, rank) for a in int_list(value.reshape(-1))]
        n = len(axes)
        for a, labels in ctx.tracked(x).items():
            if a in axes and (pads[axes.index(a)] != 0 or pads[axes.index(a) + n] != 0):
                ctx.block(labels, f"{node_label(node)}: pads the channel axis {a}")
            elif a in axes and computed is not None and not all(
                    computed.reshape(-1)[k].const for k in (axes.index(a), axes.index(a) + n)):
                ctx.block(labels, f"{node_label(node)}: pads of the channel axis {a} are computed at run time")
            else:
                ctx.set_labels(node.output[0], a, labels)


@register("Gather")
class GatherHandler(Handler):
    multi_axis = True

    def propagate(self, node, ctx):
        x, idx = node.input[0], node.input[1]
        ctx.block_all(idx, f"{node_label(node)}: channels used as gather indices")
        if not ctx.tracked(x) and not ctx.tracked_multi(x):
            return
        rank = ctx.rank(x)
        axis = norm_axis(int(attr(node, "axis", 0)), rank)
        idx_rank = ctx.rank(idx)
        mapping = lambda a: None if a == axis else (a if a < axis else a + idx_rank - 1)  # noqa: E731
        ctx.passthrough(node, x, node.output[0], mapping)
        indices = ctx.const(idx)
        for axes, labels in ctx.tracked_multi(x).items():
            if axis not in axes:
                remap_entry(ctx, node, node.output[0], axes, labels, mapping)
            elif indices is None or indices.ndim != 0:
                ctx.block(labels.reshape(-1), f"{node_label(node)}: gathers along an axis that holds channels")
            else:  # selecting one slab, e.g. Q out of a packed Q/K/V projection
                k = axes.index(axis)
                picked = np.take(labels, int(indices) % labels.shape[k], axis=k)
                rest = [mapping(a) for a in axes if a != axis]
                ctx.set_multi(node.output[0], tuple(rest), picked)
