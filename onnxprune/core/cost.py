"""Parameters, multiply-accumulates and op counts: the before/after numbers users look at first."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx

from .graph import attr, constant_node_value, subgraphs


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
    """MACs of Conv/ConvTranspose/Gemm/MatMul/LSTM/GRU/RNN at the given shapes. An If counts its
    costlier branch (one of them runs); Loop/Scan bodies are not counted (trip count unknown)."""
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
            total += _node_macs(n, shape)
        except (TypeError, IndexError, ValueError):
            continue  # a shape we do not know: count nothing rather than guess
    return total


def _node_macs(n, shape) -> int:
    op = n.op_type
    if op in ("Conv", "FusedConv"):
        w, out = shape(n.input[1]), shape(n.output[0])
        return int(np.prod(out, dtype=np.int64)) * int(np.prod(w[1:], dtype=np.int64))
    if op == "ConvTranspose":
        w, x = shape(n.input[1]), shape(n.input[0])
        return int(np.prod(x, dtype=np.int64)) * int(np.prod(w[1:], dtype=np.int64))
    if op == "Gemm":
        a, out = shape(n.input[0]), shape(n.output[0])
        k = a[0] if attr(n, "transA", 0) else a[1]
        return int(np.prod(out, dtype=np.int64)) * int(k)
    if op == "MatMul":
        a, out = shape(n.input[0]), shape(n.output[0])
        return int(np.prod(out, dtype=np.int64)) * int(a[-1])
    if op == "FusedMatMul":  # com.microsoft: alpha * op(A) @ op(B)
        a, out = shape(n.input[0]), shape(n.output[0])
        return int(np.prod(out, dtype=np.int64)) * int(a[-2] if attr(n, "transA", 0) else a[-1])
    if op in ("LSTM", "GRU", "RNN"):
        x, w, r = shape(n.input[0]), shape(n.input[1]), shape(n.input[2])
        steps = x[0] * x[1]
        return int(steps * (int(np.prod(w, dtype=np.int64)) + int(np.prod(r, dtype=np.int64))))
    return 0
