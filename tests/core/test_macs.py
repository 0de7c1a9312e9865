"""MACs (docs/counting.md): every op that multiplies-and-accumulates and that we handle is counted,
com.microsoft's fused ops count what their unfused networks count (ONNX Runtime computes the
same outputs from both), and per node the counts agree with an independent counter, onnx-tool,
once its bias adds and recurrent gate arithmetic are taken out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprune.core.cost import count_macs, counted_ops, node_macs
from onnxprune.core.runtime import make_session
from onnxprune.core.shapes import infer_value_shapes

ROOT = Path(__file__).resolve().parents[2]
B, S, HIN, H, HEADS = 1, 5, 16, 32, 4
RNG = np.random.default_rng(7)


def _const(name, array):
    return numpy_helper.from_array(np.asarray(array, np.float32), name)


def _model(nodes, inits, out_dims, ms=False):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [B, S, HIN])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_dims)], inits)
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("com.microsoft", 1)] if ms else [])
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def _heads(src, dst, perm, nodes):
    nodes += [helper.make_node("Reshape", [src, "heads_shape"], [dst + "_r"]),
              helper.make_node("Transpose", [dst + "_r"], [dst], perm=perm)]


def _scores(q, k, v, nodes):
    """softmax(q k^T / sqrt(d)) v over heads, then back to [B, S, H]: the unfused attention core."""
    _heads(q, "q4", [0, 2, 1, 3], nodes)
    _heads(k, "k4", [0, 2, 3, 1], nodes)
    _heads(v, "v4", [0, 2, 1, 3], nodes)
    nodes += [helper.make_node("MatMul", ["q4", "k4"], ["s"]),
              helper.make_node("Mul", ["s", "scale"], ["s2"]),
              helper.make_node("Softmax", ["s2"], ["p"], axis=-1),
              helper.make_node("MatMul", ["p", "v4"], ["o4"]),
              helper.make_node("Transpose", ["o4"], ["o"], perm=[0, 2, 1, 3]),
              helper.make_node("Reshape", ["o", "out_shape"], ["y"])]
    return [numpy_helper.from_array(np.array([B, S, HEADS, H // HEADS], np.int64), "heads_shape"),
            numpy_helper.from_array(np.array([B, S, H], np.int64), "out_shape"),
            _const("scale", 1 / np.sqrt(H // HEADS))]


def _attention_pair():
    w, b = RNG.standard_normal((HIN, 3 * H)) * 0.3, RNG.standard_normal(3 * H) * 0.1
    fused = _model([helper.make_node("Attention", ["x", "w", "b"], ["y"], domain="com.microsoft", num_heads=HEADS)],
                   [_const("w", w), _const("b", b)], [B, S, H], ms=True)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["qkv0"]), helper.make_node("Add", ["qkv0", "b"], ["qkv"]),
             helper.make_node("Split", ["qkv", "sizes"], ["q", "k", "v"], axis=2)]
    inits = [_const("w", w), _const("b", b), numpy_helper.from_array(np.array([H] * 3, np.int64), "sizes")]
    return fused, _model(nodes, inits + _scores("q", "k", "v", nodes), [B, S, H])


def _mha_pair():
    ws = [RNG.standard_normal((HIN, H)) * 0.3 for _ in range(3)]
    proj = [helper.make_node("MatMul", ["x", f"w{i}"], [n]) for i, n in enumerate("qkv")]
    inits = [_const(f"w{i}", w) for i, w in enumerate(ws)]
    fused = _model(proj + [helper.make_node("MultiHeadAttention", ["q", "k", "v"], ["y"], domain="com.microsoft",
                                            num_heads=HEADS)], inits, [B, S, H], ms=True)
    nodes = list(proj)
    return fused, _model(nodes, inits + _scores("q", "k", "v", nodes), [B, S, H])


def _macs(model):
    return count_macs(model, infer_value_shapes(model, {"x": [B, S, HIN]}))


@pytest.mark.parametrize("pair", [_attention_pair, _mha_pair], ids=["Attention", "MultiHeadAttention"])
def test_fused_attention_counts_what_its_unfused_network_counts(pair):
    fused, unfused = pair()
    x = RNG.standard_normal((B, S, HIN)).astype(np.float32)
    got = [make_session(m).run(None, {"x": x})[0] for m in (fused, unfused)]
    np.testing.assert_allclose(got[0], got[1], rtol=1e-4, atol=1e-5)  # the same network, really
    projections = 3 * B * S * HIN * H
    assert _macs(unfused) == projections + 2 * B * HEADS * S * S * (H // HEADS)
    assert _macs(fused) == _macs(unfused)


def test_fused_conv_gemm_matmul_count_like_their_plain_ops():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 20])
    conv = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3], pads=[1, 1])
    fconv = helper.make_node("FusedConv", ["x", "w"], ["y"], domain="com.microsoft", kernel_shape=[3], pads=[1, 1],
                             activation="Relu")
    shapes = {"x": (1, 8, 20), "w": (16, 8, 3), "y": (1, 16, 20)}
    assert node_macs(fconv, shapes.get) == node_macs(conv, shapes.get) == 16 * 20 * 8 * 3
    shapes = {"a": (4, 6, 10), "bt": (12, 10), "b": (10, 12), "y": (4, 6, 12)}
    fm = helper.make_node("FusedMatMul", ["a", "bt"], ["y"], domain="com.microsoft", transB=1)
    mm = helper.make_node("MatMul", ["a", "b"], ["y"])
    assert node_macs(fm, shapes.get) == node_macs(mm, shapes.get) == 4 * 6 * 12 * 10
    shapes = {"a": (10, 3), "b": (10, 7), "y": (3, 7)}
    fg = helper.make_node("FusedGemm", ["a", "b"], ["y"], domain="com.microsoft", transA=1, activation="Relu")
    assert node_macs(fg, shapes.get) == 3 * 7 * 10
    assert x is not None


def test_every_handled_contraction_op_has_a_counter():
    from onnxprune.analysis.handlers.registry import supported_ops

    contraction = {"Conv", "ConvTranspose", "Gemm", "MatMul", "LSTM", "GRU", "RNN", "com.microsoft::FusedConv",
                   "com.microsoft::Attention", "com.microsoft::MultiHeadAttention"}
    assert contraction <= {o for v in supported_ops().values() for o in v}
    assert contraction <= set(counted_ops())


# ---------------------------------------------------------------- against onnx-tool
MODELS = {  # committed models: no download needed
    "kws_dscnn": (ROOT / "models/zoo/kws_dscnn.onnx", {"logmel": [1, 1, 49, 40]}),
    "crnn_ctc_ts": (ROOT / "models/zoo/crnn_ctc_ts.onnx", {"logmel": [1, 1, 100, 40]}),
    "intent_lstm": (ROOT / "models/zoo/intent_lstm.onnx", {"tokens": [1, 8]}),
    "lstm2_ts": (ROOT / "models/fixtures/lstm2_ts.onnx", {"x": [1, 50, 40]}),
    "transformer_dynamo": (ROOT / "models/fixtures/transformer_dynamo.onnx", {"x": [1, 50, 40]}),
    "conformer_dynamo": (ROOT / "models/fixtures/conformer_dynamo.onnx", {"x": [1, 50, 40]}),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_macs_agree_with_onnx_tool_node_by_node(name):
    from independent_macs import onnx_tool_contractions

    path, shapes = MODELS[name]
    model = onnx.load(str(path))
    value_shapes = infer_value_shapes(model, shapes)
    consts = {t.name: tuple(t.dims) for t in model.graph.initializer}
    theirs = onnx_tool_contractions(path, shapes)
    ours = {n.name: node_macs(n, lambda v: value_shapes.get(v) or consts.get(v)) for n in model.graph.node}
    ours = {k: v for k, v in ours.items() if v}
    assert ours and ours == theirs
    assert count_macs(model, value_shapes) == sum(theirs.values())
