"""Post-passes after pruning (prune/finish.py): OnnxSlim and onnxruntime's offline BASIC graph are kept
only when a caller cannot tell them from the pruned model; a changed interface or changed outputs
is refused and the pruned model kept."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import onnxprune
from onnxprune.core.runtime import make_session, random_feeds
from onnxprune.prune import finish

ROOT = Path(__file__).resolve().parents[2]
TRANSFORMER = ROOT / "models" / "fixtures" / "transformer_dynamo.onnx"
KWS = ROOT / "onnxprune" / "assets" / "kws_dscnn.onnx"


@pytest.fixture(scope="module")
def pruned():
    result = onnxprune.prune(TRANSFORMER, ratio=0.5)
    assert result.verify.passed
    return result.model, result.analysis.input_shapes


def outputs(model, shapes, seed=5):
    sess = make_session(model)
    feeds = random_feeds(sess, shapes, seed=seed)
    return sess.run(None, feeds)


def test_slim_is_kept_fuses_and_computes_the_same(pruned):
    pytest.importorskip("onnxslim")
    model, shapes = pruned
    done = finish.slim(model, shapes)
    assert done.kept, done.message
    assert finish.interface(done.model) == finish.interface(model)
    assert done.model.ir_version == model.ir_version
    ops = Counter(n.op_type for n in done.model.graph.node)
    assert ops["Gemm"] > Counter(n.op_type for n in model.graph.node)["Gemm"]  # MatMul + Add -> Gemm
    for a, b in zip(outputs(done.model, shapes), outputs(model, shapes)):  # a seed the check did not use
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_ort_offline_is_portable_onnx(pruned):
    model, shapes = pruned
    done = finish.ort_offline(model, shapes, ep="cpu")
    assert done.kept, done.message
    assert {n.domain for n in done.model.graph.node} <= {"", "ai.onnx"}  # BASIC: no contrib ops
    assert {o.domain for o in done.model.opset_import} <= {o.domain for o in model.opset_import} | {""}
    assert done.model.ir_version == model.ir_version
    for a, b in zip(outputs(done.model, shapes), outputs(model, shapes)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_changed_outputs_are_refused(pruned):
    model, shapes = pruned
    bad = onnx.ModelProto()
    bad.CopyFrom(model)
    big = max(bad.graph.initializer, key=lambda t: np.prod(t.dims))
    w = numpy_helper.to_array(big).copy()
    w.flat[0] += 0.5  # one weight off: what a wrong fold would do
    big.CopyFrom(numpy_helper.from_array(w, big.name))
    done = finish.check("test", bad, model, shapes)
    assert not done.kept and "outputs differ" in done.message
    assert done.model is model


def test_changed_interface_is_refused_and_a_proved_output_dim_restored():
    model = onnx.load(KWS)
    shapes = {"logmel": [1, 1, 49, 40]}
    renamed = onnx.ModelProto()
    renamed.CopyFrom(model)
    renamed.graph.output[0].name = "other"
    renamed.graph.node[-1].output[0] = "other"
    done = finish.check("test", renamed, model, shapes)
    assert not done.kept and "interface changed" in done.message
    # a symbolic output dim the simplifier proved to be 1: the pruned (less specific, true) declaration is restored
    symbolic = onnx.ModelProto()
    symbolic.CopyFrom(model)
    symbolic.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    done = finish.check("test", onnx.ModelProto.FromString(model.SerializeToString()), symbolic, shapes)
    assert done.kept and finish.interface(done.model) == finish.interface(symbolic)
    # an input made concrete is never restored: the graph may be specialised to it
    narrowed = onnx.ModelProto()
    narrowed.CopyFrom(model)
    symbolic.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "frames"
    assert not finish.check("test", narrowed, symbolic, shapes).kept


def test_contrib_ops_are_refused(pruned):
    model, shapes = pruned
    odd = onnx.ModelProto()
    odd.CopyFrom(model)
    odd.graph.node[0].domain = "com.microsoft"
    odd.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    done = finish.check("test", odd, model, shapes)
    assert not done.kept and "com.microsoft" in done.message


def _if_model(else_factor: float) -> onnx.ModelProto:
    """y = If(c) then x + 1 else x * else_factor; seeded inputs take one branch only."""
    from onnx import TensorProto, helper

    def branch(name, op, value):
        k = helper.make_node("Constant", [], [f"{name}_k"], value=numpy_helper.from_array(np.full(4, value, np.float32)))
        n = helper.make_node(op, ["x", f"{name}_k"], [f"{name}_y"])
        return helper.make_graph([k, n], name, [], [helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, [4])])

    node = helper.make_node("If", ["c"], ["y"], then_branch=branch("then", "Add", 1.0),
                            else_branch=branch("else", "Mul", else_factor))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4]),
                                            helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_every_if_branch_is_checked_and_a_removed_if_refused():
    shapes = {"x": [4], "c": []}
    same = finish.check("test", _if_model(2.0), _if_model(2.0), shapes)
    assert same.kept, same.message
    for value in (True, False):  # whichever branch the seeded inputs take, the other one is checked too
        done = finish.check("test", _if_model(3.0), _if_model(2.0), shapes, values={"c": np.array(value)})
        assert not done.kept and "outputs differ" in done.message, done.message
    renamed = _if_model(2.0)
    renamed.graph.node[0].output[0] = "t"
    renamed.graph.node.append(onnx.helper.make_node("Identity", ["t"], ["y"]))
    done = finish.check("test", renamed, _if_model(2.0), shapes)
    assert not done.kept and "If nodes renamed or removed" in done.message
