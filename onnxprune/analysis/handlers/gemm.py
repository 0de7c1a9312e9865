"""Gemm and MatMul with a constant weight: the weight's output columns are sources, the
activation's contracted axis is consumed by the weight's rows (on either side of MatMul)."""

from __future__ import annotations

from ...core.graph import attr, node_label
from .base import Handler
from .registry import register


@register("Gemm")
class GemmHandler(Handler):
    def propagate(self, node, ctx):
        a, b = node.input[0], node.input[1]
        c = node.input[2] if len(node.input) > 2 and node.input[2] else ""
        trans_a, trans_b = int(attr(node, "transA", 0)), int(attr(node, "transB", 0))
        weight = ctx.const(b)
        out = node.output[0]
        k_axis, m_axis = (0, 1) if trans_a else (1, 0)
        if ctx.tracked(b):
            ctx.block_inputs(node, "the B operand is a run-time tensor")
            return
        c_value = ctx.const(c) if c else None
        if c and c_value is None:
            ctx.block_inputs(node, f"bias '{c}' is computed at run time")
            return
        for axis, labels in ctx.tracked(a).items():
            if axis == k_axis:
                if weight is None:
                    ctx.block(labels, f"{node_label(node)}: weight '{b}' is computed at run time")
                else:
                    ctx.param(node, 1, 1 if trans_b else 0, labels, "consumer")
            elif axis == m_axis:
                ctx.set_labels(out, 0, labels)
                if c_value is not None and c_value.ndim == 2 and c_value.shape[0] == len(labels) > 1:
                    ctx.param(node, 2, 0, labels, "channelwise")
        if weight is not None:
            n = weight.shape[0] if trans_b else weight.shape[1]
            labels = ctx.new_source(node, out, 1, n)
            ctx.param(node, 1, 0 if trans_b else 1, labels, "producer")
            if c_value is not None and c_value.ndim >= 1 and c_value.shape[-1] == n and n > 1:
                ctx.param(node, 2, c_value.ndim - 1, labels, "producer")


@register("MatMul")
class MatMulHandler(Handler):
    def propagate(self, node, ctx):
        a, b = node.input[0], node.input[1]
        wa, wb = ctx.const(a), ctx.const(b)
        out = node.output[0]
        out_rank = ctx.rank(out)
        if wb is not None and wb.ndim == 2 and (ctx.rank(a) or 0) >= 2:
            last = ctx.rank(a) - 1
            for axis, labels in ctx.tracked(a).items():
                if axis == last:
                    ctx.param(node, 1, 0, labels, "consumer")
                else:
                    ctx.set_labels(out, axis + out_rank - ctx.rank(a), labels)
            labels = ctx.new_source(node, out, out_rank - 1, wb.shape[1])
            ctx.param(node, 1, 1, labels, "producer")
        elif wa is not None and wa.ndim == 2 and (ctx.rank(b) or 0) >= 2:
            rb = ctx.rank(b)
            for axis, labels in ctx.tracked(b).items():
                if axis == rb - 2:
                    ctx.param(node, 0, 1, labels, "consumer")
                else:
                    ctx.set_labels(out, axis + out_rank - rb, labels)
            labels = ctx.new_source(node, out, out_rank - 2, wa.shape[0])
            ctx.param(node, 0, 0, labels, "producer")
        else:
            self._batched(node, ctx, a, b, out_rank)

    @staticmethod
    def _batched(node, ctx, a, b, out_rank):
        """Two run-time operands (attention scores, attention x values): batch axes (heads) pass
        through and must match between the operands; M and N pass; a contracted axis blocks,
        since no weight holds the slices that a reference model would zero."""
        ra, rb = ctx.rank(a), ctx.rank(b)
        if ra is None or rb is None or ra < 2 or rb < 2 or (ctx.const(a) is not None) or (ctx.const(b) is not None):
            ctx.block_inputs(node, "MatMul with a 1-D or batched constant operand")
            return
        sides = ((a, ra, ra - 1, ra - 2, out_rank - 2), (b, rb, rb - 2, rb - 1, out_rank - 1))
        for name, rank, contracted, kept_axis, out_axis in sides:
            for axis, labels in ctx.tracked(name).items():
                if axis == contracted:
                    ctx.block(labels, f"{node_label(node)}: contracts channels between two run-time tensors")
                elif axis == kept_axis:
                    ctx.set_labels(node.output[0], out_axis, labels)
                else:
                    o = axis + out_rank - rank
                    for other, orank in ((a, ra), (b, rb)):
                        oa = o - (out_rank - orank)
                        if other == name or oa < 0 or ctx.shape(other)[oa] == 1:
                            continue
                        if oa in ctx.tracked(other):
                            ctx.couple(labels, ctx.tracked(other)[oa], node_label(node))
                        else:
                            ctx.block(labels, f"{node_label(node)}: operand '{other}' cannot shrink along batch axis {oa}")
                    ctx.set_labels(node.output[0], o, labels)
