"""Recurrent converters (LSTM/GRU/RNN) against onnxruntime on small seeded nodes: every direction,
layout, linear_before_reset, peepholes, clip, sequence_lens, initial states; fused path and loop."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprune.recover._deps import available

if not available():
    pytest.skip("needs the recover extra (torch, onnx2torch)", allow_module_level=True)

from onnxprune.recover.engine import TorchModel, check  # noqa: E402

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
CASES = [
    ("LSTM", {}, {}), ("LSTM", {"direction": "bidirectional"}, {"h": 1, "c": 1}),
    ("LSTM", {"direction": "reverse", "layout": 1}, {}), ("LSTM", {}, {"p": 1, "lens": 1}),
    ("LSTM", {"clip": 0.5}, {}), ("LSTM", {"direction": "bidirectional"}, {"lens": 1}),
    ("GRU", {}, {}), ("GRU", {"linear_before_reset": 1, "direction": "bidirectional"}, {"h": 1}),
    ("GRU", {"linear_before_reset": 1, "direction": "reverse"}, {"lens": 1}), ("GRU", {"layout": 1}, {}),
    ("RNN", {}, {}), ("RNN", {"activations": ["Relu", "Relu"], "direction": "bidirectional"}, {"h": 1}),
]


def build(op, attrs, extra, seq=5, batch=3, inp=4, hid=6, seed=0):
    rng = np.random.default_rng(seed)
    dirs = 2 if attrs.get("direction") == "bidirectional" else 1
    g = GATES[op]
    layout = attrs.get("layout", 0)
    inits = [numpy_helper.from_array(rng.standard_normal((dirs, g * hid, inp)).astype(np.float32) * 0.5, "W"),
             numpy_helper.from_array(rng.standard_normal((dirs, g * hid, hid)).astype(np.float32) * 0.5, "R"),
             numpy_helper.from_array(rng.standard_normal((dirs, 2 * g * hid)).astype(np.float32) * 0.1, "B")]
    ins = ["X", "W", "R", "B", "", "", ""]
    graph_inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, [batch, seq, inp] if layout else [seq, batch, inp])]
    if extra.get("lens"):
        inits.append(numpy_helper.from_array(np.array([seq, 2, 4][:batch], np.int32), "lens"))
        ins[4] = "lens"
    state = [batch, dirs, hid] if layout else [dirs, batch, hid]
    if extra.get("h"):
        graph_inputs.append(helper.make_tensor_value_info("h0", TensorProto.FLOAT, state))
        ins[5] = "h0"
    if extra.get("c"):
        graph_inputs.append(helper.make_tensor_value_info("c0", TensorProto.FLOAT, state))
        ins[6] = "c0"
    if extra.get("p"):
        inits.append(numpy_helper.from_array(rng.standard_normal((dirs, 3 * hid)).astype(np.float32), "P"))
        ins.append("P")
    outs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    while ins and ins[-1] == "":
        ins.pop()
    node = helper.make_node(op, ins, outs, hidden_size=hid, **attrs)
    graph = helper.make_graph([node], "rec", graph_inputs, [helper.make_tensor_value_info(o, TensorProto.FLOAT, None)
                                                          for o in outs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    feeds = [{i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(np.float32)
              for i in graph_inputs} for _ in range(2)]
    return model, feeds


@pytest.mark.parametrize("op,attrs,extra", CASES)
def test_recurrent_matches_onnxruntime(op, attrs, extra):
    model, feeds = build(op, attrs, extra)
    tm = TorchModel(model)
    if attrs.get("layout"):  # onnxruntime refuses layout=1: onnx's reference evaluator instead
        import torch
        from onnx.reference import ReferenceEvaluator

        ref = ReferenceEvaluator(model)
        for feed in feeds:
            with torch.no_grad():
                got = tm(*[torch.from_numpy(feed[n]) for n in tm.input_names])
            for r, g in zip(ref.run(None, feed), got):
                np.testing.assert_allclose(g.numpy(), r, atol=1e-5)
    else:
        assert check(model, tm, feeds, tol=1e-5) <= 1e-5
    assert set(tm.params) >= {"W", "R", "B"}


def test_fused_path_equals_loop():
    import torch

    model, feeds = build("LSTM", {"direction": "bidirectional"}, {"h": 1, "c": 1})
    tm = TorchModel(model)
    module = next(m for m in tm.gm.modules() if type(m).__name__ == "OnnxRecurrent")
    assert module._fast_ok()
    x = [torch.from_numpy(feeds[0][n]) for n in tm.input_names]
    with torch.no_grad():
        fast = tm(*x)
        module._fast_ok = lambda: False
        slow = tm(*x)
    for a, b in zip(fast, slow):
        assert torch.allclose(a, b, atol=1e-5)
