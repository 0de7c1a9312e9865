"""int8 QDQ graphs: weights stored as int8 behind DequantizeLinear are sliced where stored, with
their per-channel scales and zero points; activation Q/DQ pairs pass channels through. Verified
like every prune: against the reference that zeroes the removed int8 columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxprune
from builders import assert_ratio0_identical
from onnxprune.data import DataConfig
from onnxprune.quantize import QuantizeConfig, quantize
from prune_checks import prune_ok

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


def _qdq_pair(zero_point=0):
    """x -> Conv(DQ(int8 w1, per-channel)) -> Relu -> Q/DQ (per tensor) -> Conv(DQ(int8 w2))."""
    rng = np.random.default_rng(320)
    w1 = rng.integers(-127, 128, (8, 3, 3, 3)).astype(np.int8)
    w2 = rng.integers(-127, 128, (4, 8, 1, 1)).astype(np.int8)
    inits = [numpy_helper.from_array(a, n) for a, n in (
        (w1, "w1_q"), (rng.uniform(0.001, 0.01, 8).astype(np.float32), "w1_s"), (np.zeros(8, np.int8), "w1_z"),
        (w2, "w2_q"), (np.array(0.01, np.float32), "w2_s"), (np.array(zero_point, np.int8), "w2_z"),
        (np.array(0.05, np.float32), "a_s"), (np.array(0, np.uint8), "a_z"))]
    nodes = [helper.make_node("DequantizeLinear", ["w1_q", "w1_s", "w1_z"], ["w1"], axis=0),
             helper.make_node("DequantizeLinear", ["w2_q", "w2_s", "w2_z"], ["w2"]),
             helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("QuantizeLinear", ["r1", "a_s", "a_z"], ["r1_q"]),
             helper.make_node("DequantizeLinear", ["r1_q", "a_s", "a_z"], ["r1_d"]),
             helper.make_node("Conv", ["r1_d", "w2"], ["y"], name="conv2")]
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


def test_nonzero_weight_zero_point_on_the_consumer_blocks():
    a = onnxprune.analyze(_qdq_pair(zero_point=3))
    g = next(g for g in a.groups if g.size == 8)
    assert not g.prunable and any("nonzero weight zero point" in r for r in g.blocked_by)
