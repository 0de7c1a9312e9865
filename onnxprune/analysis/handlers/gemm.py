"""Gemm and MatMul with a constant weight: the weight's output columns are sources, the
activation's contracted axis is consumed by the weight's rows (on either side of MatMul)."""

from __future__ import annotations

import numpy as np

from ...core.graph import attr, node_label
from .base import Handler, LinearView, set_or_add
from .registry import register


@register("Gemm")
class GemmHandler(Handler):
    unit = "neurons"

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
    unit = "neurons"

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


class GemmLinear(LinearView):
    """Gemm as y = alpha B' x + beta C: W = alpha B' (outputs x inputs), b = beta C where C is per
    output; a C that varies along the batch cannot absorb a correction (bias_per_output False)."""
    kind = "gemm"

    def reads(self, index, p) -> bool:
        return p.node.domain in ("", "ai.onnx") and p.input_index == 1

    def open(self, node, writer, index):
        w = writer.current(node, 1).astype(np.float64)
        alpha, beta = float(attr(node, "alpha", 1.0)), float(attr(node, "beta", 1.0))
        trans_b = int(attr(node, "transB", 0))
        n = w.shape[0] if trans_b else w.shape[1]
        c = writer.current(node, 2) if len(node.input) > 2 and node.input[2] else None
        if beta == 0.0:  # the bias term is switched off: nowhere to fold a correction
            return None
        per_output = c is None or c.ndim == 0 or (c.size == n) or c.size == 1
        b = np.zeros(n)
        if c is not None and per_output:  # C of shape (), (1,), (N,) or (1, N)
            b = np.broadcast_to(beta * c.astype(np.float64).reshape(-1), (n,)).copy()
        wm = (w if trans_b else w.T) * alpha
        return wm, b, (alpha, beta, trans_b, c), per_output

    def write(self, lin, w_new, b_new, new_adds, node_pos):
        node, writer = lin.node, lin.writer
        dtype = writer.current(node, 1).dtype
        alpha, beta, trans_b, c = lin.extra
        wm = w_new / alpha
        writer.set(node, 1, (wm if trans_b else wm.T).astype(dtype))
        if c is None:
            set_or_add(writer, node, 2, (b_new / beta).astype(dtype), "bias")
        else:
            shape = np.broadcast_shapes(c.shape, b_new.shape)
            writer.set(node, 2, (np.broadcast_to(c, shape) + (b_new - lin.bias) / beta).astype(c.dtype))


class MatMulLinear(LinearView):
    """MatMul with a constant 2-D right operand: W = B^T; its bias is the constant Add that
    follows (the only reader), or a new Add inserted after it."""
    kind = "matmul"

    def reads(self, index, p) -> bool:
        return p.node.domain in ("", "ai.onnx") and p.input_index == 1 and p.axis == 0

    def open(self, node, writer, index):
        w = writer.current(node, 1).astype(np.float64)
        if w.ndim != 2:
            return None
        add = _following_add(index, node, w.shape[1])
        b = np.zeros(w.shape[1]) if add is None else index.const(add[0].input[add[1]]).astype(np.float64).reshape(-1)
        return w.T, b, add, True

    def write(self, lin, w_new, b_new, new_adds, node_pos):
        node, writer = lin.node, lin.writer
        dtype = writer.current(node, 1).dtype
        writer.set(node, 1, w_new.T.astype(dtype))
        if lin.extra is None:
            new_adds.append((node_pos, b_new.astype(dtype)))
        else:
            add, k = lin.extra
            c = lin.index.const(add.input[k])
            writer.set(add, k, (c + (b_new - lin.bias).reshape(c.shape)).astype(c.dtype))


GemmHandler.linear = GemmLinear()
MatMulHandler.linear = MatMulLinear()


def _following_add(index, node, n: int):
    """The Add that adds a constant bias of n values to this MatMul's output, if it is the only reader."""
    uses = index.consumers(node.output[0])
    if len(uses) != 1 or uses[0].node.op_type != "Add":
        return None
    add = uses[0].node
    other = 1 - list(add.input).index(node.output[0])
    value = index.const(add.input[other])
    if value is None or value.size != n or value.shape[-1] != n or len(index.consumers(add.input[other])) != 1:
        return None
    return add, other
