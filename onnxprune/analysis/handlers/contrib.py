"""com.microsoft element-wise and MatMul fusions that onnxruntime's transformer optimizer emits:
Gelu, FastGelu, QuickGelu, BiasGelu, BiasAdd, FusedMatMul. The activations act per element, so
channels pass through on every axis; a 1-D bias input runs along the last axis and is sliced with
it. FusedMatMul is MatMul with optional transposes and a scale `alpha`: its constant weight is
sliced like MatMul's (the scale does not care which columns remain)."""

from __future__ import annotations

from ...core.graph import attr, node_label
from .base import Handler
from .gemm import MatMulHandler
from .registry import register

MS = "com.microsoft"


def _present(node, k: int) -> bool:
    return len(node.input) > k and bool(node.input[k])


@register("Gelu", "QuickGelu", "FastGelu", "BiasGelu", "BiasAdd", domain=MS)
class BiasActivationHandler(Handler):
    """out = act(x + bias [+ skip]): bias is 1-D over the last axis; BiasAdd's skip (input 2)
    must shrink with x, like the operands of a residual Add."""

    def propagate(self, node, ctx):
        x, out = node.input[0], node.output[0]
        rank = ctx.rank(x)
        bias = 1 if node.op_type in ("FastGelu", "BiasGelu", "BiasAdd") and _present(node, 1) else None
        skip = 2 if node.op_type == "BiasAdd" else None
        last = rank - 1 if rank else None
        for k in (bias, skip):
            if k is not None and ctx.tracked(node.input[k]):
                for axis, labels in ctx.tracked(node.input[k]).items():
                    if ctx.tracked(x).get(axis + rank - ctx.rank(node.input[k])) is None:
                        ctx.block(labels, f"{node_label(node)}: input {k} carries channels that input 0 does not")
        for axis, labels in ctx.tracked(x).items():
            if axis == last and bias is not None:
                if ctx.const(node.input[bias]) is None:
                    ctx.block(labels, f"{node_label(node)}: bias '{node.input[bias]}' is computed at run time")
                    continue
                ctx.param(node, bias, 0, labels, "channelwise")
            if skip is not None:
                other = ctx.tracked(node.input[skip]).get(axis)
                if other is None:
                    ctx.block(labels, f"{node_label(node)}: skip operand '{node.input[skip]}' cannot shrink along "
                                      f"the channel axis")
                    continue
                ctx.couple(labels, other, node_label(node))
            ctx.set_labels(out, axis, labels)


@register("FusedMatMul", domain=MS)
class FusedMatMulHandler(Handler):
    """alpha * op(A) @ op(B). Without transposes it is MatMul; a transposed constant weight
    swaps which of its axes is sliced."""

    def propagate(self, node, ctx):
        if int(attr(node, "transBatchA", 0)) or int(attr(node, "transBatchB", 0)):
            ctx.block_inputs(node, "FusedMatMul with transBatchA/transBatchB is not supported")
            return
        trans_a, trans_b = int(attr(node, "transA", 0)), int(attr(node, "transB", 0))
        a, b, out = node.input[0], node.input[1], node.output[0]
        wb = ctx.const(b)
        if not trans_a and not trans_b:
            MatMulHandler().propagate(node, ctx)
            return
        ra, out_rank = ctx.rank(a), ctx.rank(out)
        if wb is None or wb.ndim != 2 or ctx.const(a) is not None or ra is None or ra < 2:
            ctx.block_inputs(node, "transposed FusedMatMul without a constant 2-D weight B")
            return
        k_axis, m_axis = (ra - 2, ra - 1) if trans_a else (ra - 1, ra - 2)
        for axis, labels in ctx.tracked(a).items():
            if axis == k_axis:
                ctx.param(node, 1, 1 if trans_b else 0, labels, "consumer")
            elif axis == m_axis:
                ctx.set_labels(out, out_rank - 2, labels)
            else:
                ctx.set_labels(out, axis + out_rank - ra, labels)
        n = wb.shape[0] if trans_b else wb.shape[1]
        labels = ctx.new_source(node, out, out_rank - 1, n)
        ctx.param(node, 1, 0 if trans_b else 1, labels, "producer")
