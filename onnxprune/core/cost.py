"""Parameters, multiply-accumulates and op counts: the before/after numbers users look at first."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx

from .graph import attr, constant_node_value, subgraphs
from .op_table import OpTable


def _all_graphs(graph: onnx.GraphProto):
    yield graph
    for node in graph.node:
        for sub in subgraphs(node):
            yield from _all_graphs(sub)


_QUANTIZED = {onnx.TensorProto.INT8, onnx.TensorProto.UINT8, onnx.TensorProto.INT4, onnx.TensorProto.UINT4}


def count_params(model: onnx.ModelProto) -> int:
    """Elements of floating-point constants, and of 8/4-bit ones (quantized weights), in
    initializers and Constant nodes, subgraphs too. int64 shape constants are not parameters."""
    total = 0
    for g in _all_graphs(model.graph):
        for t in g.initializer:
            if t.data_type in _QUANTIZED or onnx.helper.tensor_dtype_to_np_dtype(t.data_type).kind == "f":
                total += int(np.prod(t.dims, dtype=np.int64))
        for n in g.node:
            if n.op_type == "Constant":
                v = constant_node_value(n)
                if v is not None and v.dtype.kind == "f":
                    total += int(v.size)
    return total


def op_histogram(model: onnx.ModelProto) -> dict[str, int]:
    return dict(sorted(Counter(n.op_type for g in _all_graphs(model.graph) for n in g.node).items()))


def count_macs(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> int:
    """MACs (docs/counting.md) of every contraction op, com.microsoft's fused ones included, at the
    given shapes. An If counts its costlier branch (one of them runs); Loop/Scan bodies are not
    counted (trip count unknown). Kept here, not in the handlers: counting is a core service that
    the layers below analysis (cost reports, the latency model) need."""
    consts = {}
    for g in _all_graphs(model.graph):
        consts.update({t.name: tuple(t.dims) for t in g.initializer})
        for n in g.node:
            if n.op_type == "Constant":
                v = constant_node_value(n)
                if v is not None:
                    consts[n.output[0]] = v.shape

    def shape(name):
        return shapes.get(name) or consts.get(name)

    return int(_graph_macs(model.graph, shape))


def _graph_macs(graph: onnx.GraphProto, shape) -> int:
    total = 0
    for n in graph.node:
        if n.op_type == "If":
            total += max(_graph_macs(a.g, shape) for a in n.attribute if a.type == onnx.AttributeProto.GRAPH)
            continue
        try:
            total += node_macs(n, shape)
        except (TypeError, IndexError, ValueError):
            continue  # a shape we do not know: count nothing rather than guess
    return total


# ---- MACs: one counter per op that multiplies-and-accumulates ----
# A MAC here is one multiply-accumulate of a contraction: each weight (or, in attention, each
# key/value element) used once per output position. Bias adds, activations, normalisation,
# pooling, softmax and the gate arithmetic of recurrent cells are not counted (docs/counting.md).
_COUNTERS: OpTable = OpTable("MAC counter")
_MS = "com.microsoft"


def _counter(*ops: str, domain: str = ""):
    def deco(fn):
        _COUNTERS.add(fn, *ops, domain=domain)
        return fn
    return deco


def _prod(dims) -> int:
    return int(np.prod([int(d) for d in dims], dtype=np.int64))


def _conv(w_index):
    def count(n, shape):  # output elements x (input channels per group x kernel): any layout
        w, out = shape(n.input[w_index]), shape(n.output[0])
        return _prod(out) * _prod(w[1:])
    return count


_counter("Conv", "ConvInteger")(_conv(1))
_counter("QLinearConv")(_conv(3))
_counter("FusedConv", "NhwcConv", "NhwcFusedConv", domain=_MS)(_conv(1))
_counter("QLinearConv", domain=_MS)(_conv(3))


@_counter("ConvTranspose")
def _conv_transpose(n, shape):  # every input element meets (output channels per group x kernel)
    w, x = shape(n.input[1]), shape(n.input[0])
    return _prod(x) * _prod(w[1:])


def _gemm(a_index):
    def count(n, shape):
        a, out = shape(n.input[a_index]), shape(n.output[0])
        return _prod(out) * int(a[0] if attr(n, "transA", 0) else a[1])
    return count


_counter("Gemm")(_gemm(0))
_counter("FusedGemm", domain=_MS)(_gemm(0))
_counter("QGemm", domain=_MS)(_gemm(0))


def _matmul(n, shape):  # output elements x the contracted length (last dim of A, or -2 if transposed)
    a, out = shape(n.input[0]), shape(n.output[0])
    k = a[-2] if (attr(n, "transA", 0) and len(a) >= 2) else a[-1]
    return _prod(out) * int(k)


_counter("MatMul", "MatMulInteger", "QLinearMatMul")(_matmul)
_counter("FusedMatMul", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "MatMulNBits",
         domain=_MS)(_matmul)


def _recurrent(n, shape):  # every step: W x_t and R h_{t-1} (both directions: W and R hold them)
    x, w, r = shape(n.input[0]), shape(n.input[1]), shape(n.input[2])
    return int(x[0]) * int(x[1]) * (_prod(w) + _prod(r))


_counter("LSTM", "GRU", "RNN")(_recurrent)
_counter("DynamicQuantizeLSTM", domain=_MS)(_recurrent)


def _scores(batch, q_len, kv_len, qk_width, v_width) -> int:
    """Q K^T and softmax(.) V over all heads: heads x head size = the widths."""
    return batch * q_len * kv_len * (qk_width + v_width)


@_counter("Attention", "QAttention", domain=_MS)
def _ms_attention(n, shape):
    """input [B, S, Hin] x packed weights [Hin, Hq + Hk + Hv], then the scores; a past adds its length."""
    x, w = shape(n.input[0]), shape(n.input[1])
    sizes = [int(s) for s in (attr(n, "qkv_hidden_sizes", None) or [])] or [int(w[1]) // 3] * 3
    b, s = int(x[0]), int(x[1])
    past_len = 0
    past_index = 4 if n.op_type == "Attention" else 8
    if len(n.input) > past_index and n.input[past_index]:
        past_len = int(shape(n.input[past_index])[3])  # past [2, B, heads, P, head size]
    return b * s * _prod(x[2:]) * int(w[1]) + _scores(b, s, s + past_len, sizes[0], sizes[2])


@_counter("MultiHeadAttention", domain=_MS)
def _ms_mha(n, shape):
    """Projections are separate MatMuls; this op is the scores. query [B, S, D] or packed
    [B, S, N, 3, H]; key [B, L, D], [B, N, L, H] or packed key/value [B, L, N, 2, H]."""
    q = shape(n.input[0])
    key = shape(n.input[1]) if len(n.input) > 1 and n.input[1] else None
    value = shape(n.input[2]) if len(n.input) > 2 and n.input[2] else None
    if len(q) == 5:  # packed QKV
        width = int(q[2]) * int(q[4])
        return _scores(int(q[0]), int(q[1]), int(q[1]), width, width)
    b, s, d = int(q[0]), int(q[1]), int(q[2])
    if key is None or len(key) == 5:  # packed KV [B, L, N, 2, H]
        length = int(key[1]) if key is not None else s
        return _scores(b, s, length, d, d)
    length = int(key[2]) if len(key) == 4 else int(key[1])
    if len(n.input) > 6 and n.input[6]:
        length += int(shape(n.input[6])[2])  # past_key [B, N, P, H]
    v_width = (int(value[1]) * int(value[3]) if len(value) == 4 else int(value[2])) if value else d
    return _scores(b, s, length, d, v_width)


@_counter("GroupQueryAttention", domain=_MS)
def _ms_gqa(n, shape):
    """query [B, S, Nq x H] (or packed Q, K, V); every query head reads a KV head of the same size."""
    q = shape(n.input[0])
    heads, kv_heads = int(attr(n, "num_heads", 1)), int(attr(n, "kv_num_heads", 1))
    packed = not (len(n.input) > 1 and n.input[1])
    head = int(q[2]) // (heads + 2 * kv_heads) if packed else int(q[2]) // heads
    length = int(q[1])
    if len(n.input) > 3 and n.input[3]:
        length += int(shape(n.input[3])[2])  # past_key [B, Nkv, P, H]
    return _scores(int(q[0]), int(q[1]), length, heads * head, heads * head)


@_counter("Attention")
def _onnx_attention(n, shape):
    """ai.onnx Attention (opset 23): Q, K, V 4-D [B, N, S, H] or 3-D with q/kv_num_heads."""
    q, k, v = shape(n.input[0]), shape(n.input[1]), shape(n.input[2])
    if len(q) == 4:
        b, heads, s, h = (int(d) for d in q)
        return _scores(b, s, int(k[2]), heads * h, heads * int(v[3]))
    heads, kv_heads = int(attr(n, "q_num_heads", 0)), int(attr(n, "kv_num_heads", 0))
    b, s = int(q[0]), int(q[1])
    return _scores(b, s, int(k[1]), heads * (int(k[2]) // kv_heads), heads * (int(v[2]) // kv_heads))


def node_macs(n, shape) -> int:
    """MACs of one node, 0 for ops without a contraction; raises on unknown shapes."""
    fn = _COUNTERS.get(n)
    return int(fn(n, shape)) if fn else 0


def counted_ops() -> list[str]:
    return sorted(f"{d + '::' if d else ''}{op}" for d, op in _COUNTERS)
