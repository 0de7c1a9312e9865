"""LSTM/GRU/RNN hidden units: gate blocks, recurrence columns, bidirectional coupling,
stacked layers, zero initial states, and state I/O resized only with --allow-io-change."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxprune
from builders import assert_pruned_ok, assert_ratio0_identical
from onnxprune.core.runtime import make_session, random_feeds

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def recurrent_model(op="LSTM", hidden=8, feats=6, direction="forward", dead=(), seq=5, layout=0, with_state=False):
    """x -> RNN op -> (Y reshaped to [seq, batch, dirs*H]) -> MatMul head. Units in `dead` have
    every producing and consuming weight zero, so removing them cannot change the output."""
    rng = np.random.default_rng(0)
    dirs = 2 if direction == "bidirectional" else 1
    g = GATES[op]
    w = rng.standard_normal((dirs, g * hidden, feats)).astype(np.float32) * 0.5
    r = rng.standard_normal((dirs, g * hidden, hidden)).astype(np.float32) * 0.5
    b = rng.standard_normal((dirs, 2 * g * hidden)).astype(np.float32) * 0.1
    head = rng.standard_normal((dirs * hidden, 3)).astype(np.float32)
    for u in dead:
        for k in range(g):
            w[:, k * hidden + u] = 0
            r[:, k * hidden + u] = 0
        r[:, :, u] = 0
        for k in range(2 * g):
            b[:, k * hidden + u] = 0
        for d in range(dirs):
            head[d * hidden + u] = 0
    inits = [numpy_helper.from_array(a, n) for a, n in ((w, "W"), (r, "R"), (b, "B"), (head, "head"),
                                                        (np.array([seq, 1, dirs * hidden]), "shape"))]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [seq, 1, feats])]
    ins = ["x", "W", "R", "B"]
    outs = ["Y"]
    if with_state:
        ins += ["", "h0"]
        inputs.append(helper.make_tensor_value_info("h0", TensorProto.FLOAT, [dirs, 1, hidden]))
        outs += ["Yh"]
    nodes = [helper.make_node(op, ins, outs, hidden_size=hidden, direction=direction, name="rnn"),
             helper.make_node("Transpose", ["Y"], ["Yt"], perm=[0, 2, 1, 3]),
             helper.make_node("Reshape", ["Yt", "shape"], ["Yr"]),
             helper.make_node("MatMul", ["Yr", "head"], ["out"])]
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, [seq, 1, 3])]
    if with_state:
        outputs.append(helper.make_tensor_value_info("Yh", TensorProto.FLOAT, [dirs, 1, hidden]))
    m = helper.make_model(helper.make_graph(nodes, "rnn", inputs, outputs, inits),
                          opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_hidden_units_pruned_and_verified(op, direction):
    model = recurrent_model(op, direction=direction)
    result = assert_pruned_ok(model, ratio=0.5, round_to=1)
    group = next(g for g in result.groups if g["name"] == "rnn")
    assert (group["size"], group["kept"]) == (8, 4)
    shapes = {t.name: list(t.dims) for t in result.model.graph.initializer}
    dirs = 2 if direction == "bidirectional" else 1
    assert shapes["W"] == [dirs, GATES[op] * 4, 6] and shapes["R"] == [dirs, GATES[op] * 4, 4]
    assert shapes["B"] == [dirs, 2 * GATES[op] * 4]
    assert shapes["head"] == [dirs * 4, 3]
    node = next(n for n in result.model.graph.node if n.op_type == op)
    assert next(a.i for a in node.attribute if a.name == "hidden_size") == 4
    assert_ratio0_identical(model)


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_dead_units_are_the_ones_removed_and_output_is_unchanged(op):
    dead = (1, 2, 5, 6)
    model = recurrent_model(op, direction="bidirectional", dead=dead)
    result = onnxprune.prune(model, ratio=0.5, round_to=1)
    assert result.verify.passed
    assert result.plan.groups["rnn"] == [0, 3, 4, 7]
    so, sp = make_session(model), make_session(result.model)
    feeds = random_feeds(so, {}, seed=2)
    np.testing.assert_allclose(so.run(None, feeds)[0], sp.run(None, feeds)[0], rtol=1e-5, atol=1e-6)


def test_state_io_blocks_by_default_and_resizes_with_flag():
    model = recurrent_model("GRU", with_state=True)
    result = onnxprune.prune(model, ratio=0.5, round_to=1)
    group = next(g for g in result.groups if g["name"] == "rnn")
    assert any("graph input 'h0'" in r for r in group["blocked_by"])
    assert result.after["params"] == result.before["params"]
    result = onnxprune.prune(model, ratio=0.5, round_to=1, allow_io_change=True)
    assert result.verify.passed
    resized = {(r["name"], r["old"], r["new"]) for r in result.resized_io}
    assert resized == {("h0", 8, 4), ("Yh", 8, 4)}
    dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in result.model.graph.input}
    assert dims["h0"] == [1, 1, 4]


def test_silero_vad_v6_lstm_with_state_io(real_model):
    model = onnxprune.load_model(real_model("silero_vad_v6"))
    result = onnxprune.prune(model, ratio=0.5, shapes={"input": [1, 576]}, allow_io_change=True)
    assert result.verify.passed, result.verify.message
    onnx.checker.check_model(result.model, full_check=True)
    dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in result.model.graph.input}
    assert dims["h"] == [1, 1, 64] and dims["c"] == [1, 1, 64]
    lstm = next(layer for layer in result.layers if layer["op"] == "LSTM")
    assert (lstm["channels_before"], lstm["channels_after"]) == (128, 64)
    assert {r["name"] for r in result.resized_io} == {"h", "c", "hn", "cn"}
