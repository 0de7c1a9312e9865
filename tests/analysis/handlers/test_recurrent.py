"""LSTM/GRU/RNN hidden units: gate blocks, recurrence columns, bidirectional coupling,
stacked layers, zero initial states, and state I/O resized only with --allow-io-change."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxprune
from builders import assert_pruned_ok, assert_ratio0_identical, keras_lstm_with_state
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


@pytest.mark.parametrize("via", ["reshape", "unsqueeze"])
def test_state_through_run_time_ops_resizes_with_allow_io_change(via):
    model = keras_lstm_with_state(via)
    blocked = onnxprune.prune(model, ratio=0.5, round_to=1)
    assert blocked.after["params"] == blocked.before["params"]
    result = onnxprune.prune(model, ratio=0.5, round_to=1, allow_io_change=True)
    assert result.verify.passed, result.verify.message
    assert {(r["name"], r["old"], r["new"]) for r in result.resized_io} == \
        {("h", 8, 4), ("c", 8, 4), ("h_out", 8, 4), ("c_out", 8, 4)}
    # the dead half went: on the kept state slices the pruned model equals the original
    feeds = random_feeds(make_session(model), {}, seed=1)
    keep = np.arange(1, 8, 2)
    small = dict(feeds, h=feeds["h"][:, keep], c=feeds["c"][:, keep])
    full = make_session(model).run(None, dict(feeds, h=np.where(np.isin(np.arange(8), keep), feeds["h"], 0),
                                              c=np.where(np.isin(np.arange(8), keep), feeds["c"], 0)))
    pruned = make_session(result.model).run(None, small)
    np.testing.assert_allclose(pruned[0], full[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pruned[1], full[1][:, keep], rtol=1e-5, atol=1e-6)


def bidirectional_stack(op, hidden=8, feats=6, seq=5, dead=(((0, 1, 2, 3), (4, 5, 6, 7)), ((1, 3, 5, 7), (0, 2, 4, 6)))):
    """Two bidirectional layers and a MatMul head. dead[layer][direction] are units whose every
    producing and consuming weight is zero: each direction has a different dead half."""
    rng = np.random.default_rng(11)
    g = GATES[op]
    inits, nodes, x, width = [], [], "x", feats
    for layer, (dead_f, dead_b) in enumerate(dead):
        w = rng.standard_normal((2, g * hidden, width)).astype(np.float32) * 0.5
        r = rng.standard_normal((2, g * hidden, hidden)).astype(np.float32) * 0.5
        b = rng.standard_normal((2, 2 * g * hidden)).astype(np.float32) * 0.1
        for d, units in enumerate((dead_f, dead_b)):
            for u in units:
                w[d, u::hidden] = 0
                r[d, u::hidden] = 0
                r[d, :, u] = 0
                b[d, u::hidden] = 0
        if layer:  # this layer's input columns reading the previous layer's dead units
            for d, units in enumerate(dead[layer - 1]):
                for u in units:
                    w[:, :, d * hidden + u] = 0
        inits += [numpy_helper.from_array(a, f"{n}{layer}") for a, n in ((w, "W"), (r, "R"), (b, "B"))]
        nodes += [helper.make_node(op, [x, f"W{layer}", f"R{layer}", f"B{layer}"], [f"Y{layer}"], hidden_size=hidden,
                                   direction="bidirectional", name=f"rnn{layer}"),
                  helper.make_node("Transpose", [f"Y{layer}"], [f"Yt{layer}"], perm=[0, 2, 1, 3]),
                  helper.make_node("Reshape", [f"Yt{layer}", "shape"], [f"Yr{layer}"])]
        x, width = f"Yr{layer}", 2 * hidden
    head = rng.standard_normal((2 * hidden, 3)).astype(np.float32)
    for d, units in enumerate(dead[-1]):
        for u in units:
            head[d * hidden + u] = 0
    inits += [numpy_helper.from_array(head, "head"), numpy_helper.from_array(np.array([seq, 1, 2 * hidden]), "shape")]
    nodes.append(helper.make_node("MatMul", [x, "head"], ["out"]))
    g_ = helper.make_graph(nodes, "bi", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [seq, 1, feats])],
                           [helper.make_tensor_value_info("out", TensorProto.FLOAT, [seq, 1, 3])], inits)
    m = helper.make_model(g_, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


@pytest.mark.parametrize("op", ["GRU", "LSTM"])
def test_bidirectional_directions_keep_their_own_units(op):
    """Each direction keeps its live half although the halves differ: the pruned model computes
    exactly the original function and no dead weight is left."""
    model = bidirectional_stack(op)
    result = assert_pruned_ok(model, ratio=0.5, round_to=1)
    feeds = random_feeds(make_session(model), {}, seed=2)
    np.testing.assert_allclose(make_session(result.model).run(None, feeds)[0], make_session(model).run(None, feeds)[0],
                               rtol=1e-6, atol=1e-6)
    for t in result.model.graph.initializer:
        value = numpy_helper.to_array(t)
        if t.name[0] in "WRB" or t.name == "head":
            assert value.size and np.count_nonzero(value) == value.size, t.name  # every dead weight removed
    rnn = [n for n in result.model.graph.node if n.op_type == op]
    assert all(helper.get_attribute_value(next(a for a in n.attribute if a.name == "hidden_size")) == 4 for n in rnn)


def unrolled_cell(hidden=8, feats=6, dead=()):
    """silero-vad's ifless LSTM cell: h, c = Gather(state, 0), Gather(state, 1) of a [2, B, H]
    input; gates = Gemm(x, W_ih) + Gemm(h, W_hh) split four ways; stateN = Concat(h', c');
    h' also feeds a 1x1 decoder. Units in `dead` have all-zero weights (exactly dead)."""
    from builders import GraphBuilder

    b = GraphBuilder(seed=340, opset=17)
    x = b.input("x", ["batch", feats])
    state = b.input("state", [2, "batch", hidden])
    w_ih, w_hh = b.weight(4 * hidden, feats), b.weight(4 * hidden, hidden)
    for j in dead:
        w_ih[j::hidden], w_hh[j::hidden], w_hh[:, j] = 0, 0, 0
    h, c = (b.op("Gather", [state, b.const(np.array(k), "i", dtype=np.int64)], axis=0) for k in (0, 1))
    gates = b.op("Add", [b.op("Gemm", [x, b.const(w_ih)], transB=1), b.op("Gemm", [h, b.const(w_hh)], transB=1)])
    i, f, g, o = b.op("Split", [gates], n_out=4, axis=1, num_outputs=4) if b.opset >= 18 else \
        b.op("Split", [gates, b.const(np.full(4, hidden), "s", dtype=np.int64)], n_out=4, axis=1)
    c2 = b.op("Add", [b.op("Mul", [b.op("Sigmoid", [f]), c]), b.op("Mul", [b.op("Sigmoid", [i]), b.op("Tanh", [g])])])
    h2 = b.op("Mul", [b.op("Sigmoid", [o]), b.op("Tanh", [c2])])
    one = b.const(np.array([0]), "ax", dtype=np.int64)
    state_n = b.op("Concat", [b.op("Unsqueeze", [h2, one]), b.op("Unsqueeze", [c2, one])], axis=0)
    y = b.op("Gemm", [b.op("Relu", [h2]), b.const(b.weight(2, hidden))], transB=1)
    return b.model([y, state_n])


def test_unrolled_cell_state_through_gather_resizes_with_allow_io_change():
    model = unrolled_cell(dead=(1, 3, 4, 6))
    shapes = {"x": [2, 6], "state": [2, 2, 8]}
    r = onnxprune.prune(model, ratio=0.5, shapes=shapes)
    cell = next(g for g in r.analysis.groups if g.size == 8)
    assert not cell.prunable and any("graph input 'state'" in m for m in cell.blocked_by)
    r = onnxprune.prune(model, ratio=0.5, round_to=1, shapes=shapes, allow_io_change=True)
    assert r.verify.passed, r.verify.message
    assert {(x["name"], x["old"], x["new"]) for x in r.resized_io} == {("state", 8, 4), (model.graph.output[1].name, 8, 4)}
    # the dead half went: on the kept state slices the pruned model equals the original
    rng = np.random.default_rng(1)
    xs, st = rng.standard_normal((3, 6)).astype(np.float32), rng.standard_normal((2, 3, 8)).astype(np.float32)
    live = [0, 2, 5, 7]
    st[:, :, [1, 3, 4, 6]] = 0
    want = make_session(model).run(None, {"x": xs, "state": st})
    got = make_session(r.model).run(None, {"x": xs, "state": st[:, :, live]})
    np.testing.assert_allclose(got[0], want[0], atol=1e-5)
    np.testing.assert_allclose(got[1], want[1][:, :, live], atol=1e-5)
