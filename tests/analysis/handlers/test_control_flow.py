"""If branches are analysed and rewritten like the main graph; both branches are verified by
inlining; Loop/Scan bodies block what they read (not analysed)."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxprune
from builders import GraphBuilder, assert_ratio0_identical
from onnxprune.core.graph import attr
from onnxprune.core.runtime import make_session, random_feeds
from onnxprune.prune.verify import verify
from prune_checks import group_for, prune_ok, reasons

C, D = 8, 6


def _branch(b: GraphBuilder, name: str, x: str, *, relu: bool, weight_as_constant: bool):
    """A branch computing Conv(x) 8 -> 6 (optionally after Relu); the weight lives either in a
    Constant node inside the branch or in an outer-scope initializer."""
    nodes = []
    src = x
    if relu:
        src = f"{name}_relu"
        nodes.append(helper.make_node("Relu", [x], [src], name=f"{name}_Relu"))
    w = b.weight(D, C, 3, 3).astype(np.float32)
    if weight_as_constant:
        nodes.append(helper.make_node("Constant", [], [f"{name}_w"], name=f"{name}_W",
                                      value=numpy_helper.from_array(w, f"{name}_wv")))
    else:
        b.inits.append(numpy_helper.from_array(w, f"{name}_w"))
    out = f"{name}_out"
    nodes.append(helper.make_node("Conv", [src, f"{name}_w"], [out], name=f"{name}_Conv", pads=[1, 1, 1, 1]))
    return helper.make_graph(nodes, name, [], [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, D, 8, 8])])


def if_model(else_branch=None, always_then=False) -> onnx.ModelProto:
    b = GraphBuilder(seed=140, opset=17)
    x = b.input("x", [1, 3, 8, 8])
    c = b.const(np.array(True), "c", np.bool_) if always_then else b.input("c", [], TensorProto.BOOL)
    a = b.conv(x, 3, C)
    then_g = _branch(b, "then", a, relu=True, weight_as_constant=True)
    else_g = else_branch(b, a) if else_branch else _branch(b, "else", a, relu=False, weight_as_constant=False)
    b.nodes.append(helper.make_node("If", [c], ["branch_out"], name="If_0", then_branch=then_g, else_branch=else_g))
    y = b.conv("branch_out", D, 4, k=1)
    return b.model([y], ir_version=8)


def test_if_branches_are_pruned_and_both_verified():
    m = if_model()
    r = prune_ok(m, ratio=0.5)
    assert r.verify.paths == 2  # both branches forced in turn (the seeded path replayed for every seed)
    outer = group_for(r, m, m.graph.node[0].output[0])
    assert outer.prunable and outer.size == C
    coupled = [g for g in r.analysis.groups if {"then_Conv", "else_Conv"} <= set(g.members())]
    assert len(coupled) == 1 and coupled[0].prunable  # If output k couples both branches' channels
    if_node = next(n for n in r.model.graph.node if n.op_type == "If")
    then_w = next(n for n in attr(if_node, "then_branch").node if n.op_type == "Constant")
    assert numpy_helper.to_array(then_w.attribute[0].t).shape == (3, 4, 3, 3)
    assert [d.dim_value for d in attr(if_node, "then_branch").output[0].type.tensor_type.shape.dim] == [1, 3, 8, 8]
    assert_ratio0_identical(m)


def test_verification_covers_the_branch_seeded_inputs_do_not_take():
    m = if_model(always_then=True)  # seeded inputs never take the else-branch
    r = onnxprune.prune(m, ratio=0.5, round_to=1)
    assert r.verify.passed
    broken = onnx.ModelProto()
    broken.CopyFrom(r.model)
    if_node = next(n for n in broken.graph.node if n.op_type == "If")
    conv = next(n for n in attr(if_node, "else_branch").node if n.op_type == "Conv")
    w = next(t for t in broken.graph.initializer if t.name == conv.input[1])
    arr = numpy_helper.to_array(w).copy()
    arr[0] += 1.0
    w.CopyFrom(numpy_helper.from_array(arr, w.name))
    sess, ref = make_session(broken), make_session(r.reference)
    feeds = random_feeds(ref, r.analysis.input_shapes, 0)
    assert np.allclose(sess.run(None, feeds)[0], ref.run(None, feeds)[0], atol=1e-5)  # damage unseen
    res = verify(broken, r.reference, r.analysis.input_shapes)
    res = verify(broken, r.reference, r.analysis.input_shapes, paths=r.analysis.paths)
    assert not res.passed and "branch_out: else" in res.message


def test_branch_that_cannot_run_blocks_its_channels():
    def unrunnable_else(b, a):
        """Conv then a Reshape to a shape the data cannot have: the branch fails at run time."""
        g = _branch(b, "else", a, relu=False, weight_as_constant=False)
        shape = numpy_helper.from_array(np.array([1, D, 7, 9], np.int64), "bad_shape")
        g.initializer.append(shape)
        g.node.append(helper.make_node("Reshape", ["else_out", "bad_shape"], ["else_res"], name="else_Reshape"))
        del g.output[:]
        g.output.append(helper.make_tensor_value_info("else_res", TensorProto.FLOAT, None))
        return g

    m = if_model(unrunnable_else)
    analysis = onnxprune.analyze(m, inputs={"c": [1]})
    else_group = next(g for g in analysis.groups if "else_Conv" in g.members())
    assert not else_group.prunable
    assert any("else_branch could not run on the seeded inputs" in n for n in analysis.notes)
    outer = group_for(analysis, m, m.graph.node[0].output[0])  # read inside the else-branch too
    assert any("cannot be verified" in reason for reason in outer.blocked_by)
    r = onnxprune.prune(m, ratio=0.5, inputs={"c": [1]})
    assert r.verify.passed and r.after["params"] == r.before["params"]


def test_input_values_select_the_branch(tmp_path):
    from click.testing import CliRunner
    from onnxprune.cli import main

    m = if_model()
    path = tmp_path / "if.onnx"
    onnx.save(m, path)
    res = CliRunner().invoke(main, ["inspect", str(path), "--input", "c=0"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["inspect", str(path), "--input", "nope=1"])
    assert res.exit_code == 2 and "not a model input" in res.output
    res = CliRunner().invoke(main, ["inspect", str(path), "--input", "c"])
    assert res.exit_code == 2 and "NAME=VALUE" in res.output


def test_branch_output_without_channels_blocks():
    def constant_else(b, a):
        zeros = numpy_helper.from_array(np.zeros((1, D, 8, 8), np.float32), "z")
        return helper.make_graph([helper.make_node("Constant", [], ["else_out"], value=zeros)], "else", [],
                                 [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, [1, D, 8, 8])])

    m = if_model(constant_else)
    analysis = onnxprune.analyze(m)
    assert any("only one branch carries channels" in reason for reason in reasons(analysis))
    then_group = next(g for g in analysis.groups if "then_Conv" in g.members())
    assert not then_group.prunable
    prune_ok(m, ratio=0.5)  # the outer conv still prunes


def test_loop_body_blocks_what_it_reads():
    b = GraphBuilder(seed=141, opset=17)
    x = b.input("x", [1, 3, 8, 8])
    a = b.conv(x, 3, C)
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Relu", [a], ["acc_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, None)])
    trip = b.const(np.array(2), "trip", np.int64)
    cond = b.const(np.array(True), "cond", np.bool_)
    b.nodes.append(helper.make_node("Loop", [trip, cond, a], ["loop_out"], name="Loop_0", body=body))
    y = b.conv("loop_out", C, 4, k=1)
    m = b.model([y])
    analysis = onnxprune.analyze(m)
    g = group_for(analysis, m, a)
    assert not g.prunable and any("read by name inside its Loop body" in r for r in g.blocked_by)
    assert any("enter its body as loop-carried value 0" in r for r in g.blocked_by)
    assert any("Loop 'Loop_0'" in note and "not analysed" in note for note in analysis.notes)


def test_scan_says_which_input_carries_channels():
    """inspect explains a Scan block: the channels enter the body as scan input 0."""
    b = GraphBuilder(seed=142, opset=17)
    x = b.input("x", [1, 3, 8, 8])
    conv = b.conv(x, 3, C)
    a = b.op("Squeeze", [conv, b.const(np.array([0]), "ax", np.int64)])  # [C, 8, 8]
    body = helper.make_graph(
        [helper.make_node("Add", ["s_in", "row"], ["s_out"]), helper.make_node("Identity", ["s_out"], ["y_out"])],
        "body",
        [helper.make_tensor_value_info("s_in", TensorProto.FLOAT, [8, 8]),
         helper.make_tensor_value_info("row", TensorProto.FLOAT, [8, 8])],
        [helper.make_tensor_value_info("s_out", TensorProto.FLOAT, [8, 8]),
         helper.make_tensor_value_info("y_out", TensorProto.FLOAT, [8, 8])])
    init = b.const(np.zeros((8, 8)), "s0")
    b.nodes.append(helper.make_node("Scan", [init, a], ["final", "ys"], name="Scan_0", body=body, num_scan_inputs=1))
    m = b.model(["final"])
    g = group_for(onnxprune.analyze(m), m, conv)
    assert not g.prunable
    assert any("Scan 'Scan_0': channels enter its body as scan input 0; Scan bodies are not analysed (body ops: Add"
               in r for r in g.blocked_by), g.blocked_by


@pytest.mark.realmodel
def test_silero_vad_with_25_ifs_prunes_both_rates(real_model):
    """silero-vad 6.2.3's TorchScript export: the 16 kHz and 8 kHz nets in one If, LSTMs under
    rank-check Ifs. 256-sample chunks run both nets; sr picks the natural path."""
    path = real_model("silero_vad")
    r = onnxprune.prune(path, ratio=0.5, shapes={"input": [1, 256], "state": [2, 1, 128]}, inputs={"sr": [8000]})
    assert r.verify.passed and r.verify.paths >= 1
    names = [g.name for g in r.analysis.groups if g.prunable]
    assert any("then_branch" in n for n in names) and any("else_branch" in n for n in names)


@pytest.mark.realmodel
def test_silero_vad_ifless_prunes_inside_its_if(real_model):
    path = real_model("silero_vad_op18_ifless")
    r = onnxprune.prune(path, ratio=0.5, shapes={"input": [1, 512], "state": [2, 1, 128]})
    assert r.verify.passed and r.verify.paths == 2
    assert r.after["params"] < 0.6 * r.before["params"]
    assert sum(g.prunable for g in r.analysis.groups) >= 10  # the convs of both the 16 kHz and 8 kHz nets


@pytest.mark.realmodel
def test_silero_vad_ifless_unrolled_cell_state_resizes_with_allow_io_change(real_model):
    """The ifless export unrolls the LSTM cell and reads h, c with Gather(state, 0/1): the state
    buffer is the interface (blocked, and says so) until --allow-io-change resizes it with the
    cell's units in both the 16 kHz and the 8 kHz nets, verified on both paths."""
    path = real_model("silero_vad_op18_ifless")
    shapes = {"input": [1, 512], "state": [2, 1, 128]}
    r = onnxprune.prune(path, ratio=0.5, shapes=shapes)
    cell = next(g for g in r.analysis.groups if "node_linear" in g.name)
    assert not cell.prunable and "graph input 'state'" in cell.blocked_by[0]
    r = onnxprune.prune(path, ratio=0.5, shapes=shapes, allow_io_change=True)
    assert r.verify.passed and r.verify.paths == 2, r.verify.message
    assert {(x["name"], x["old"], x["new"]) for x in r.resized_io} == {("state", 128, 64), ("stateN", 128, 64)}
    assert r.after["params"] < 0.35 * r.before["params"]
