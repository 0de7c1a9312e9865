"""onnx-tool's per-node MACs reduced to the contractions onnxprune counts (docs/counting.md):
its Conv/Gemm count adds one per output element for the bias, its LSTM/GRU/RNN count adds the
gate arithmetic (sigmoid/tanh weighted by its own cost table); both are taken out with its own
constants, so what is compared is its shape inference and contraction count against ours."""

from __future__ import annotations

import numpy as np
import onnx

CONTRACTIONS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "LSTM", "GRU", "RNN")


def _volume(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1


def onnx_tool_contractions(path, shapes: dict) -> dict[str, int]:
    import onnx_tool
    from onnx_tool.node import ADD_MACS, EXP_MACS, MUL_MACS, TANH_MACS

    model = onnx_tool.Model(str(path), {"verbose": False})
    graph = model.graph
    feeds = {}
    for vi in onnx.load(str(path), load_external_data=False).graph.input:
        if vi.name in shapes:
            feeds[vi.name] = np.zeros(shapes[vi.name], onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type))
    graph.shape_infer(feeds)
    graph.profile()
    out = {}
    for node in graph.nodemap.values():
        if node.op_type not in CONTRACTIONS:
            continue
        macs = int(node.macs[0])
        shape = lambda k: graph.tensormap[node.input[k]].get_shape()  # noqa: E731
        if node.op_type in ("Conv", "ConvTranspose", "Gemm") and len(node.input) > 2 and node.input[2]:
            macs -= _volume(graph.tensormap[node.output[0]].get_shape()) * ADD_MACS
        elif node.op_type in ("LSTM", "GRU"):
            x, w = shape(0), shape(1)
            seq, batch, gates = x[0], x[1], (4 if node.op_type == "LSTM" else 3)
            ht = batch * seq * (w[1] // gates)
            macs -= _volume(shape(3)) * ADD_MACS * batch * seq if len(node.input) > 3 and node.input[3] else 0
            if node.op_type == "LSTM":
                macs -= ht * (ADD_MACS * 4 + EXP_MACS * 3 + TANH_MACS * 2 + ADD_MACS + 3 * MUL_MACS)
            else:
                macs -= ht * (ADD_MACS * 3 + EXP_MACS * 2 + TANH_MACS + 2 * ADD_MACS + 3 * MUL_MACS)
        if macs:
            out[node.name] = macs
    return out


def onnx_tool_total(path, shapes: dict) -> int:
    """onnx-tool's own total (every op, its cost table)."""
    import onnx_tool

    model = onnx_tool.Model(str(path), {"verbose": False})
    feeds = {}
    for vi in onnx.load(str(path), load_external_data=False).graph.input:
        if vi.name in shapes:
            feeds[vi.name] = np.zeros(shapes[vi.name], onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type))
    model.graph.shape_infer(feeds)
    model.graph.profile()
    return int(model.graph.macs[0])
