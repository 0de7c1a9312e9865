"""com.microsoft Attention and MultiHeadAttention, as ONNX Runtime's transformer optimizer
emits them. A head is the unit: its Q, K and V columns go together, the output keeps the
remaining heads' columns, `num_heads` shrinks. The head size stays, so the softmax scale
(1/sqrt(head size)) is unchanged and removal is exact: the reference zeroes the removed heads'
rows of the output projection, which is the only place their values go."""

from __future__ import annotations

import numpy as np

from ...core.graph import attr, node_label, set_attr
from .base import Handler
from .registry import register


def _present(node, k: int) -> bool:
    return len(node.input) > k and bool(node.input[k])


def _heads(node, ctx, hidden: int) -> int | None:
    heads = int(attr(node, "num_heads", 0))
    if heads <= 0 or hidden % heads:
        ctx.block_inputs(node, f"num_heads {heads} does not divide the hidden size {hidden}")
        return None
    return heads


def _unite_heads(ctx, name: str, labels: np.ndarray, heads: int) -> np.ndarray:
    return ctx.unite_rows(name, (2,), np.asarray(labels).reshape(heads, -1))


def _block_extras(node, ctx, inputs: dict[int, str], outputs: dict[int, str]) -> bool:
    for k, what in inputs.items():
        if _present(node, k):
            ctx.block_inputs(node, f"{what} input is not supported for head pruning")
            return True
    for k, what in outputs.items():
        if len(node.output) > k and node.output[k]:
            ctx.block_inputs(node, f"{what} output is not supported for head pruning")
            return True
    return False


@register("Attention", domain="com.microsoft")
class AttentionHandler(Handler):
    """input [B, S, Hin] x weights [Hin, 3H] (+ bias [3H]) -> output [B, S, H]."""

    def propagate(self, node, ctx):
        x, w_name = node.input[0], node.input[1]
        weight = ctx.const(w_name)
        bias = ctx.const(node.input[2]) if _present(node, 2) else None
        sizes = attr(node, "qkv_hidden_sizes", None)
        if weight is None or weight.ndim != 2 or weight.shape[1] % 3 or (_present(node, 2) and bias is None):
            ctx.block_inputs(node, "weights or bias are not constants of shape [Hin, 3H] / [3H]")
            return
        if sizes and len(set(int(s) for s in sizes)) != 1:
            ctx.block_inputs(node, "unequal qkv_hidden_sizes")
            return
        if _block_extras(node, ctx, {4: "past", 5: "attention_bias"}, {1: "present"}):
            return
        for axis, labels in ctx.tracked(x).items():
            if axis == 2:
                ctx.param(node, 1, 0, labels, "consumer")
            else:
                ctx.block(labels, f"{node_label(node)}: attention mixes axis {axis}")
        hidden = weight.shape[1] // 3
        heads = _heads(node, ctx, hidden)
        if heads is None:
            return
        out = node.output[0]
        atoms = ctx.new_source(node, out, 2, hidden)
        _unite_heads(ctx, out, atoms, heads)
        packed = np.concatenate([atoms] * 3)
        ctx.param(node, 1, 1, packed, "producer")
        if bias is not None:
            ctx.param(node, 2, 0, packed, "producer")
        ctx.needs_rewrite(node)

    def rewrite(self, node, ctx):
        _set_heads(node, ctx)


@register("MultiHeadAttention", domain="com.microsoft")
class MultiHeadAttentionHandler(Handler):
    """query, key, value [B, S, H] from separate projections (+ bias [3H]) -> output [B, S, H]."""

    def propagate(self, node, ctx):
        names = list(node.input[:3])
        if len(names) < 3 or not all(names) or any(ctx.rank(n) != 3 for n in names):
            ctx.block_inputs(node, "packed or 5-D query/key/value layouts are not supported")
            return
        if _block_extras(node, ctx, {5: "attention_bias", 6: "past_key", 7: "past_value"},
                         {1: "present_key", 2: "present_value"}):
            return
        for name in names:
            for axis, labels in ctx.tracked(name).items():
                if axis != 2:
                    ctx.block(labels, f"{node_label(node)}: attention mixes axis {axis}")
        tracked = [ctx.tracked(n).get(2) for n in names]
        if any(t is None for t in tracked) or len({len(t) for t in tracked}) != 1:
            for t in tracked:
                if t is not None:
                    ctx.block(t, f"{node_label(node)}: query, key and value must all carry the same heads")
            return
        heads = _heads(node, ctx, len(tracked[0]))
        if heads is None:
            return
        rows = [_unite_heads(ctx, n, t, heads) for n, t in zip(names, tracked)]
        for other in rows[1:]:
            ctx.couple(rows[0][:, 0], other[:, 0], f"{node_label(node)}: a head's Q, K and V go together")
        if _present(node, 3):
            if ctx.const(node.input[3]) is None:
                ctx.block_inputs(node, "bias is computed at run time")
                return
            ctx.param(node, 3, 0, np.concatenate(tracked), "channelwise")
        ctx.set_labels(node.output[0], 2, tracked[2])
        ctx.needs_rewrite(node)

    def rewrite(self, node, ctx):
        _set_heads(node, ctx)


def _set_heads(node, ctx) -> None:
    keep = ctx.kept(node.output[0], 2)
    if keep is None:
        return
    heads = int(attr(node, "num_heads"))
    width = len(keep) // heads
    set_attr(node, "num_heads", int(keep.sum()) // width)
