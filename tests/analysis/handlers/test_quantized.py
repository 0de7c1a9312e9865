"""int8 QDQ graphs: weights stored as int8 behind DequantizeLinear are sliced where stored, with
their per-channel scales and zero points; activation Q/DQ pairs pass channels through. Verified
like every prune: against the reference whose removed int8/uint8 columns hold the weight's zero point
(they dequantize to exactly 0, so uint8 weights with zero point 128 prune too)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from builders import assert_ratio0_identical
from onnx import TensorProto, helper, numpy_helper
from prune_checks import prune_ok

import onnxprune
from onnxprune.data import DataConfig
from onnxprune.quantize import QuantizeConfig, quantize

ASSETS = Path(onnxprune.__file__).parent / "assets" / "kws"


@pytest.fixture(scope="module")
def kws_int8(tmp_path_factory):
    """The bundled trained keyword spotter, quantized static per-channel QDQ on its calib clips."""
    out = tmp_path_factory.mktemp("qdq") / "kws_int8.onnx"
    data = DataConfig(path=str(ASSETS / "calib"), frontend=str(ASSETS / "logmel.onnx"))
    quantize(ASSETS / "kws.onnx", out, QuantizeConfig(mode="static", data=data, per_channel=True))
    return onnx.load(str(out))


def test_int8_keyword_spotter_prunes_and_verifies(kws_int8):
    r = prune_ok(kws_int8, ratio=0.5)
    assert r.after["params"] < 0.6 * r.before["params"]
    inits = {t.name: t for t in r.model.graph.initializer}
    for node in r.model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits and len(inits[node.input[0]].dims) == 4:
            w, scale = inits[node.input[0]], inits[node.input[1]]
            assert w.data_type == TensorProto.INT8
            assert len(scale.dims) == 1 and scale.dims[0] == w.dims[0]  # per-channel scale sliced with the rows
    assert_ratio0_identical(kws_int8)


def _qdq_conv_pair_nodes():
    """conv1 on DQ(w1_q, per-channel) -> Relu -> Q/DQ of the activation (a_s, a_z) -> conv2 on DQ(w2_q)."""
    return [helper.make_node("DequantizeLinear", ["w1_q", "w1_s", "w1_z"], ["w1"], axis=0),
            helper.make_node("DequantizeLinear", ["w2_q", "w2_s", "w2_z"], ["w2"]),
            helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
            helper.make_node("Relu", ["c1"], ["r1"]),
            helper.make_node("QuantizeLinear", ["r1", "a_s", "a_z"], ["r1_q"]),
            helper.make_node("DequantizeLinear", ["r1_q", "a_s", "a_z"], ["r1_d"]),
            helper.make_node("Conv", ["r1_d", "w2"], ["y"], name="conv2")]


def _qdq_pair(zero_point=0):
    """x -> Conv(DQ(int8 w1, per-channel)) -> Relu -> Q/DQ (per tensor) -> Conv(DQ(int8 w2))."""
    rng = np.random.default_rng(320)
    w1 = rng.integers(-127, 128, (8, 3, 3, 3)).astype(np.int8)
    w2 = rng.integers(-127, 128, (4, 8, 1, 1)).astype(np.int8)
    inits = [numpy_helper.from_array(a, n) for a, n in (
        (w1, "w1_q"), (rng.uniform(0.001, 0.01, 8).astype(np.float32), "w1_s"), (np.zeros(8, np.int8), "w1_z"),
        (w2, "w2_q"), (np.array(0.01, np.float32), "w2_s"), (np.array(zero_point, np.int8), "w2_z"),
        (np.array(0.05, np.float32), "a_s"), (np.array(0, np.uint8), "a_z"))]
    nodes = _qdq_conv_pair_nodes()
    g = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def test_per_channel_scale_and_zero_point_go_with_their_rows():
    r = prune_ok(_qdq_pair(), ratio=0.5)
    inits = {t.name: numpy_helper.to_array(t) for t in r.model.graph.initializer}
    assert inits["w1_q"].shape == (4, 3, 3, 3) and inits["w1_s"].shape == (4,) and inits["w1_z"].shape == (4,)
    assert inits["w2_q"].shape == (4, 4, 1, 1) and inits["w2_s"].shape == ()  # per-tensor scale kept


def test_nonzero_weight_zero_point_on_the_consumer_prunes_exactly():
    """The reference fills removed columns with the zero point (they dequantize to 0), so a
    nonzero one prunes and verifies; zero-filling instead would not (checked by mutation below)."""
    r = prune_ok(_qdq_pair(zero_point=3), ratio=0.5)
    ref = {t.name: numpy_helper.to_array(t) for t in r.reference.graph.initializer}["w2_q"]
    removed = [c for c in range(8) if (ref[:, c] == 3).all()]  # filled with the zero point, not 0
    assert len(removed) == 4


def _uint8_dead_half(fmt: str):
    """uint8 weights with zero point 128 (what QUInt8 quantization writes), per-channel on w1;
    channels 0, 2, 4, 6 are exactly dead (stored value = zero point in w1's rows and w2's
    columns) and the live ones are stored closer to 128 than the dead are to 0, so raw-value
    magnitudes would rank the dead channels highest; dequantized magnitudes find them."""
    rng = np.random.default_rng(321)
    zp1 = np.full(8, 128, np.uint8)
    w1 = rng.integers(118, 139, (8, 3, 3, 3)).astype(np.uint8)
    w2 = rng.integers(118, 139, (4, 8, 1, 1)).astype(np.uint8)
    w1[0::2], w2[:, 0::2] = 128, 128
    f = TensorProto.FLOAT
    x = helper.make_tensor_value_info("x", f, [1, 3, 6, 6])
    y = helper.make_tensor_value_info("y", f, [1, 4, 6, 6])
    consts = [(w1, "w1_q"), (np.full(8, 0.02, np.float32), "w1_s"), (zp1, "w1_z"),
              (w2, "w2_q"), (np.array(0.02, np.float32), "w2_s"), (np.array(128, np.uint8), "w2_z"),
              (np.array(0.05, np.float32), "a_s"), (np.array(128, np.uint8), "a_z")]
    if fmt == "qdq":
        nodes = _qdq_conv_pair_nodes()
    else:  # QOperator: QLinearConv with uint8 activations and weights
        nodes = [helper.make_node("QuantizeLinear", ["x", "a_s", "a_z"], ["x_q"]),
                 helper.make_node("QLinearConv", ["x_q", "a_s", "a_z", "w1_q", "w1_s", "w1_z", "a_s", "a_z"], ["c1"],
                                  pads=[1, 1, 1, 1], name="conv1"),
                 helper.make_node("QLinearConv", ["c1", "a_s", "a_z", "w2_q", "w2_s", "w2_z", "a_s", "a_z"], ["y_q"],
                                  name="conv2"),
                 helper.make_node("DequantizeLinear", ["y_q", "a_s", "a_z"], ["y"])]
    inits = [numpy_helper.from_array(a, n) for a, n in consts]
    m = helper.make_model(helper.make_graph(nodes, "u8", [x], [y], inits), opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


@pytest.mark.parametrize("fmt", ["qdq", "qoperator"])
def test_uint8_weights_rank_dequantized_and_prune_exactly(fmt):
    """l1 ranks on (w - zero_point) * scale: the four dead channels go, so the pruned model is the
    original function exactly; the reference (removed columns = zero point) verifies it."""
    import onnxruntime as ort

    m = _uint8_dead_half(fmt)
    r = prune_ok(m, ratio=0.5)
    inits = {t.name: numpy_helper.to_array(t) for t in r.model.graph.initializer}
    assert inits["w1_q"].shape[0] == 4 and inits["w2_q"].shape[1] == 4 and inits["w1_z"].shape == (4,)
    assert (inits["w1_q"] != 128).any(axis=(1, 2, 3)).all()  # every dead (all-zero-point) row went
    x = np.random.default_rng(0).standard_normal((1, 3, 6, 6)).astype(np.float32)
    run = lambda model: ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    np.testing.assert_array_equal(run(r.model), run(m))


def test_uint8_reference_needs_the_zero_point_fill(monkeypatch):
    """Mutation: a reference that zeroes the removed uint8 columns (the old rule) fails verify."""
    import importlib

    rewrite = importlib.import_module("onnxprune.prune.rewrite")
    monkeypatch.setattr(rewrite, "weight_zero_point", lambda *a: None)
    r = onnxprune.prune(_qdq_pair(zero_point=3), ratio=0.5, round_to=1)
    assert not r.verify.passed


# ---- QOperator format (QLinearConv, QGemm, QLinearMatMul, ...) and quantize_dynamic ------------------

@pytest.fixture(scope="module")
def kws_qoperator(tmp_path_factory):
    out = tmp_path_factory.mktemp("qop") / "kws_qop.onnx"
    data = DataConfig(path=str(ASSETS / "calib"), frontend=str(ASSETS / "logmel.onnx"))
    quantize(ASSETS / "kws.onnx", out, QuantizeConfig(mode="static", data=data, format="qoperator", per_channel=True))
    return onnx.load(str(out))


def test_qoperator_keyword_spotter_prunes_and_verifies(kws_qoperator):
    """QLinearConv (depthwise and pointwise) and QGemm: int8 rows, int32 bias and per-channel
    scale/zero point go together; the classifier (QLinearSoftmax) is the interface."""
    assert {"QLinearConv", "QGemm"} <= {n.op_type for n in kws_qoperator.graph.node}
    r = prune_ok(kws_qoperator, ratio=0.5)
    assert r.after["params"] < 0.4 * r.before["params"]
    inits = {t.name: numpy_helper.to_array(t) for t in r.model.graph.initializer}
    for node in r.model.graph.node:
        if node.op_type == "QLinearConv":
            w, scale, zp, bias = (inits[node.input[k]] for k in (3, 4, 5, 8))
            assert w.dtype == np.int8 and bias.dtype == np.int32
            assert scale.shape == zp.shape == bias.shape == (w.shape[0],)
    blocked = [g for g in r.analysis.groups if g.blocked_by]
    assert len(blocked) == 1 and "QLinearSoftmax" in blocked[0].blocked_by[0]
    assert_ratio0_identical(kws_qoperator)


def test_dynamic_quantization_blocks_with_its_reason(tmp_path):
    """quantize_dynamic's DynamicQuantizeLinear rounds with one scale from the min/max over all
    channels: removing one changes the others, so every group it reads is blocked and says so."""
    out = tmp_path / "kws_dyn.onnx"
    quantize(ASSETS / "kws.onnx", out, QuantizeConfig(mode="dynamic", per_channel=True))
    m = onnx.load(str(out))
    assert "ConvInteger" in {n.op_type for n in m.graph.node}
    a = onnxprune.analyze(m)
    inner = [g for g in a.groups if g.size != 12]
    assert inner and all("DynamicQuantizeLinear" in g.blocked_by[0] and "min/max over every channel" in g.blocked_by[0]
                         for g in inner)
    classifier = next(g for g in a.groups if g.size == 12)  # MatMulInteger's per-column scale Mul is followed
    assert classifier.blocked_by[0].startswith("Softmax")


def _mlp_qoperator(tmp_path, per_channel, symmetric):
    """x -> MatMul+bias -> Relu -> MatMul -> Relu -> MatMul, quantize_static(QOperator): QLinearMatMul, QLinearAdd."""
    from builders import GraphBuilder
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    b = GraphBuilder(seed=330, opset=17)
    x = b.input("x", [4, 16])
    h = b.op("Relu", [b.op("Add", [b.matmul(x, 16, 32), b.const(b.rng.normal(0, 0.1, 32), "b")])])
    m = b.model([b.matmul(b.op("Relu", [b.matmul(h, 32, 24)]), 24, 8)])
    src, dst = tmp_path / "mlp.onnx", tmp_path / "mlp_q.onnx"
    onnx.save(m, str(src))

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.feeds = iter([{"x": rng.standard_normal((4, 16)).astype(np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self.feeds, None)

    qtype = QuantType.QInt8 if symmetric else QuantType.QUInt8  # uint8 weights get nonzero zero points
    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QOperator, per_channel=per_channel,
                    weight_type=qtype, activation_type=qtype)
    return onnx.load(str(dst))


@pytest.mark.parametrize("per_channel", [False, True])
def test_qlinear_matmul_prunes_and_verifies(tmp_path, per_channel):
    m = _mlp_qoperator(tmp_path, per_channel, symmetric=True)
    assert {"QLinearMatMul", "QLinearAdd"} <= {n.op_type for n in m.graph.node}
    r = prune_ok(m, ratio=0.5)
    assert sorted(g.size for g in r.analysis.groups if g.prunable) == [24, 32]
    assert r.after["params"] < 0.5 * r.before["params"]


@pytest.mark.parametrize("per_channel", [False, True])
def test_qlinear_matmul_uint8_weights_prune_and_verify(tmp_path, per_channel):
    """quantize_static with QUInt8 weights (nonzero zero points): the removed columns are the zero
    point in the reference, (x - x_zp) * 0 in the accumulator, so the pruned model verifies."""
    m = _mlp_qoperator(tmp_path, per_channel, symmetric=False)
    zps = [numpy_helper.to_array(t) for t in m.graph.initializer if t.data_type == TensorProto.UINT8 and
           any(n.op_type == "QLinearMatMul" and n.input[5] == t.name for n in m.graph.node)]
    assert zps and any(z.any() for z in zps)
    r = prune_ok(m, ratio=0.5)
    assert sorted(g.size for g in r.analysis.groups if g.prunable) == [24, 32]


@pytest.mark.parametrize("fmt", ["qdq", "qoperator"])
@pytest.mark.parametrize("per_channel", [False, True])
def test_uint8_keyword_spotter_prunes_and_verifies(tmp_path, fmt, per_channel):
    """The bundled keyword spotter quantized by onnxruntime with QUInt8 weights and activations."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from onnxprune.quantize.ort import _Reader

    out = tmp_path / "kws_u8.onnx"
    data = DataConfig(path=str(ASSETS / "calib"), frontend=str(ASSETS / "logmel.onnx"))
    quantize_static(str(ASSETS / "kws.onnx"), str(out), _Reader(ASSETS / "kws.onnx", data),
                    quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator, per_channel=per_channel,
                    weight_type=QuantType.QUInt8, activation_type=QuantType.QUInt8)
    m = onnx.load(str(out))
    assert any(t.data_type == TensorProto.UINT8 and numpy_helper.to_array(t).ndim >= 2 for t in m.graph.initializer)  # (per-channel
    # QOperator stores its convs int8 and only the QGemm weight uint8)
    r = prune_ok(m, ratio=0.5)
    assert r.verify.max_abs_diff == 0.0
    assert r.after["params"] < 0.35 * r.before["params"]
    assert next(g for g in r.analysis.groups if g.blocked_by).blocked_by[0].startswith(("Softmax", "QLinearSoftmax"))


def test_qoperator_cnn_with_concat_sigmoid_and_pooling(tmp_path):
    """conv -> two conv branches -> Concat -> conv -> Sigmoid -> GlobalAveragePool -> Flatten ->
    Gemm, quantize_static(QOperator, per channel): QLinearConcat, QLinearSigmoid,
    QLinearGlobalAveragePool and int8 Flatten carry the channels; every inner group prunes."""
    from builders import GraphBuilder
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        quantize_static,
    )

    b = GraphBuilder(seed=331, opset=17)
    x = b.input("x", [2, 3, 8, 8])
    a = b.op("Relu", [b.conv(x, 3, 8)])
    cat = b.op("Concat", [b.op("Relu", [b.conv(a, 8, 8)]), b.op("Relu", [b.conv(a, 8, 6)])], axis=1)
    pooled = b.op("Flatten", [b.op("GlobalAveragePool", [b.op("Sigmoid", [b.conv(cat, 14, 12)])])])
    src, dst = tmp_path / "cnn.onnx", tmp_path / "cnn_q.onnx"
    onnx.save(b.model([b.gemm(pooled, 12, 5)]), str(src))

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.feeds = iter([{"x": rng.standard_normal((2, 3, 8, 8)).astype(np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self.feeds, None)

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QOperator, per_channel=True)
    m = onnx.load(str(dst))
    assert {"QLinearConcat", "QLinearSigmoid", "QLinearGlobalAveragePool"} <= {n.op_type for n in m.graph.node}
    r = prune_ok(m, ratio=0.5)
    assert sorted(g.size for g in r.analysis.groups if g.prunable) == [6, 8, 8, 12]
