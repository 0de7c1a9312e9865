"""Tiny seeded ONNX graphs built in code, and the assertions every pruning test makes."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import onnxprune
from onnxprune.core.runtime import make_session, random_feeds


class GraphBuilder:
    """Append nodes by name; weights are seeded normals with per-channel scale spread."""

    def __init__(self, seed: int = 0, opset: int = 17):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.opset = opset
        self.k = 0

    def name(self, prefix: str) -> str:
        self.k += 1
        return f"{prefix}{self.k}"

    def const(self, array, prefix="w", dtype=np.float32) -> str:
        n = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(array, dtype=dtype), n))
        return n

    def weight(self, *shape, axis0_spread=True) -> np.ndarray:
        w = self.rng.standard_normal(shape) / np.sqrt(max(1, int(np.prod(shape[1:]))))
        if axis0_spread:
            w *= np.exp(self.rng.uniform(-1, 1, size=(shape[0],) + (1,) * (len(shape) - 1)))
        return w

    def input(self, name: str, shape, elem=TensorProto.FLOAT) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, elem, shape))
        return name

    def op(self, op_type: str, inputs, n_out: int = 1, domain: str = "", **attrs):
        outs = [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=self.name(op_type + "_"),
                                           domain=domain or None, **attrs))
        return outs[0] if n_out == 1 else outs

    # Common layers ------------------------------------------------------------------------------
    def conv(self, x, cin, cout, k=3, group=1, bias=True, stride=1):
        w = self.const(self.weight(cout, cin // group, k, k))
        ins = [x, w] + ([self.const(self.rng.standard_normal(cout) * 0.1, "b")] if bias else [])
        return self.op("Conv", ins, kernel_shape=[k, k], pads=[k // 2] * 4, group=group, strides=[stride, stride])

    def bn(self, x, c):
        r = self.rng
        return self.op("BatchNormalization", [x, self.const(np.abs(r.standard_normal(c)) + 0.1, "g"),
                                              self.const(r.standard_normal(c) * 0.1, "be"),
                                              self.const(r.standard_normal(c) * 0.1, "m"),
                                              self.const(r.uniform(0.5, 1.5, c), "v")])

    def gemm(self, x, k, n, trans_b=False, bias=True):
        w = self.weight(n, k) if trans_b else self.weight(n, k).T
        ins = [x, self.const(w)] + ([self.const(self.rng.standard_normal(n) * 0.1, "b")] if bias else [])
        return self.op("Gemm", ins, transB=int(trans_b))

    def matmul(self, x, k, n):
        return self.op("MatMul", [x, self.const(self.weight(n, k).T)])

    def model(self, outputs, ir_version: int = 8) -> onnx.ModelProto:
        outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs]
        graph = helper.make_graph(self.nodes, "test", self.inputs, outs, self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        m.ir_version = ir_version
        _fill_output_types(m)
        return m


def _fill_output_types(m: onnx.ModelProto) -> None:
    """Give graph outputs their inferred type and shape: the full checker rejects a graph output
    whose type has no shape, and every pruned model is checked with it."""
    bare = onnx.ModelProto()
    bare.CopyFrom(m)
    for out in bare.graph.output:
        out.ClearField("type")  # let inference pick the element type too (MaxPool indices are int64)
    try:
        inferred = onnx.shape_inference.infer_shapes(bare, data_prop=True)
    except Exception:
        return
    known = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    for out in m.graph.output:
        vi = known.get(out.name)
        if vi is not None and vi.type.tensor_type.HasField("shape"):
            out.type.CopyFrom(vi.type)


def run(model: onnx.ModelProto, feeds: dict):
    sess = make_session(model)
    return sess.run(None, feeds)


def assert_pruned_ok(model: onnx.ModelProto, *, ratio=0.5, shapes=None, expect_removed=True, **options):
    """Prune, then check what every rewrite must satisfy: verification passed, full checker,
    onnxruntime loads it, interface unchanged, and (if asked) fewer parameters."""
    result = onnxprune.prune(model, ratio=ratio, shapes=shapes, **options)
    assert result.verify.passed, result.verify.message
    onnx.checker.check_model(result.model, full_check=True)
    sess = make_session(result.model)
    orig = make_session(model)
    assert [(i.name, i.shape) for i in sess.get_inputs()] == [(i.name, i.shape) for i in orig.get_inputs()]
    feeds = random_feeds(orig, result.analysis.input_shapes, seed=3)
    out_p = sess.run(None, feeds)
    out_o = orig.run(None, feeds)
    assert [o.shape for o in out_p] == [o.shape for o in out_o]
    if expect_removed:
        assert result.after["params"] < result.before["params"]
    return result


def assert_ratio0_identical(model: onnx.ModelProto, shapes=None):
    result = onnxprune.prune(model, ratio=0.0, shapes=shapes)
    sess_o, sess_p = make_session(model), make_session(result.model)
    feeds = random_feeds(sess_o, result.analysis.input_shapes, seed=5)
    for a, b in zip(sess_o.run(None, feeds), sess_p.run(None, feeds)):
        assert np.array_equal(a, b)
    assert result.model.graph == model.graph
    return result


def bundled_model():
    """The seeded, untrained DS-CNN shipped as a small fixture (onnxprune/assets/kws_dscnn.onnx;
    built by models/build_kws_dscnn.py). The demo uses the trained one in assets/kws/."""
    from pathlib import Path

    return Path(onnxprune.__file__).parent / "assets" / "kws_dscnn.onnx"


def keras_lstm_with_state(via="reshape", hidden=8, feats=6, seq=5, dead=True):
    """tf2onnx's shape of a Keras LSTM denoiser: state inputs h, c [1, H] reach the LSTM through
    Reshape (or Unsqueeze) to [1, 1, H]; Y_h, Y_c leave through Squeeze as [1, H]; half of the
    units are exactly dead (dead=False: every unit live), so the pruned model must match the
    original on the kept state."""
    rng = np.random.default_rng(7)
    w = rng.standard_normal((1, 4 * hidden, feats)).astype(np.float32) * 0.5
    r = rng.standard_normal((1, 4 * hidden, hidden)).astype(np.float32) * 0.5
    b = rng.standard_normal((1, 8 * hidden)).astype(np.float32) * 0.1
    head = rng.standard_normal((hidden, 3)).astype(np.float32)
    for u in range(0, hidden if dead else 0, 2):
        w[0, u::hidden] = 0
        r[0, u::hidden] = 0
        r[0, :, u] = 0
        b[0, u::hidden] = 0
        head[u] = 0
    inits = [numpy_helper.from_array(a, n) for a, n in ((w, "W"), (r, "R"), (b, "B"), (head, "head"),
                                                        (np.array([1, 1, hidden]), "state_shape"),
                                                        (np.array([0]), "ax0"))]
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2])]
    for s in ("h", "c"):
        if via == "reshape":
            nodes.append(helper.make_node("Reshape", [s, "state_shape"], [f"{s}3"]))
        else:
            nodes.append(helper.make_node("Unsqueeze", [s, "ax0"], [f"{s}3"]))
    nodes += [helper.make_node("LSTM", ["xt", "W", "R", "B", "", "h3", "c3"], ["Y", "Yh", "Yc"], hidden_size=hidden,
                               name="lstm"),
              helper.make_node("Squeeze", ["Yh", "ax0"], ["h_out"]),
              helper.make_node("Squeeze", ["Yc", "ax0"], ["c_out"]),
              helper.make_node("Squeeze", ["Y", "ax0_1"], ["y2"]),
              helper.make_node("MatMul", ["y2", "head"], ["out"])]
    inits.append(numpy_helper.from_array(np.array([1]), "ax0_1"))
    f = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("x", f, [1, seq, feats]), helper.make_tensor_value_info("h", f, [1, hidden]),
              helper.make_tensor_value_info("c", f, [1, hidden])]
    outputs = [helper.make_tensor_value_info("out", f, [seq, 1, 3]), helper.make_tensor_value_info("h_out", f, [1, hidden]),
               helper.make_tensor_value_info("c_out", f, [1, hidden])]
    m = helper.make_model(helper.make_graph(nodes, "keras_lstm", inputs, outputs, inits),
                          opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m
