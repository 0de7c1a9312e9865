"""The whole rewrite: what blocks, how constants are written back (initializers, Constant
nodes, IR-3 initializers that are also graph inputs, weights shared across groups), and a
mutation test showing that verification does catch a wrong rewrite."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxprune
from builders import GraphBuilder, assert_ratio0_identical, run
from onnxprune.core.runtime import make_session, random_feeds
from onnxprune.prune.verify import verify
from prune_checks import (graph_input_names, group_for, input_shape, input_value, op_counts, producer,
                          prune_ok, reasons)

C = 8


def _as_ir3(m: onnx.ModelProto) -> onnx.ModelProto:
    """IR 3 style: every initializer is also listed in graph.input."""
    m = onnx.ModelProto.FromString(m.SerializeToString())
    m.ir_version = 3
    for t in m.graph.initializer:
        m.graph.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    return m


# ---- what blocks ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["TopK", "custom"])
def test_op_without_handler_blocks_naming_the_node(kind):
    b = GraphBuilder(seed=200, opset=13)
    x = b.input("x", [1, 3, 6, 6])
    a = b.conv(x, 3, C)
    other = b.conv(x, 3, C)
    if kind == "TopK":
        vals, _ = b.op("TopK", [a, b.const(np.array([2]), "k", dtype=np.int64)], n_out=2, axis=3)
        tail = b.conv(vals, C, 2, k=1)
    else:
        tail = b.op("MyOp", [a], domain="my.domain")
    y = b.conv(b.op("Relu", [other]), C, 2, k=1)
    m = b.model([y, tail])
    if kind == "custom":
        m.opset_import.append(helper.make_opsetid("my.domain", 1))
        # onnxruntime cannot run the custom op, so analyse only (shapes of its output are unknown)
        m.graph.output.pop()
        m.graph.output.append(helper.make_tensor_value_info(tail, TensorProto.FLOAT, [1, C, 6, 6]))
        an = onnxprune.analyze(m)
        g = group_for(an, m, a)
        node = producer(m, tail)
        assert not g.prunable
        assert any(f"'{node.name}'" in why and "no handler for op my.domain::MyOp" in why for why in g.blocked_by)
        assert any(why.code == "no-handler" and why.node == node.name for why in g.blocked_by)
        assert group_for(an, m, other).prunable
        return
    r = prune_ok(m, ratio=0.5)
    g = group_for(r, m, a)
    node = producer(m, vals)
    assert not g.prunable
    assert any(f"'{node.name}'" in why and "no handler for op TopK" in why for why in g.blocked_by), g.blocked_by
    assert group_for(r, m, other).prunable
    assert input_shape(r.model, a, 1) == (C, 3, 3, 3)
    assert input_shape(r.model, other, 1) == (4, 3, 3, 3)
    assert_ratio0_identical(m)


def test_group_reaching_a_graph_output_is_blocked():
    b = GraphBuilder(seed=201, opset=13)
    x = b.input("x", [1, 3, 6, 6])
    a = b.conv(x, 3, C)
    h = b.op("Relu", [a])
    y = b.conv(h, C, 4)
    m = b.model([y, h])                 # the Relu output is a graph output too
    an = onnxprune.analyze(m)
    g = group_for(an, m, a)
    assert not g.prunable
    assert any(f"reaches graph output '{h}'" in why for why in g.blocked_by)
    assert [why.code for why in g.blocked_by if why.node == h] == ["fixed-output"]  # not state: never resized
    assert not any("--" in why for why in g.blocked_by)  # the library names no CLI flag; the CLI adds hints
    r = prune_ok(m, ratio=0.5, expect_removed=False)
    assert r.after["params"] == r.before["params"]


def test_exclude_blocks_a_named_node():
    b = GraphBuilder(seed=202, opset=13)
    x = b.input("x", [1, 3, 6, 6])
    a = b.conv(x, 3, C)
    y = b.conv(b.op("Relu", [a]), C, 4)
    m = b.model([y])
    name = producer(m, a).name
    r = prune_ok(m, ratio=0.5, exclude=[name], expect_removed=False)
    assert any(f"excluded by --exclude {name}" in why for why in group_for(r, m, a).blocked_by)
    assert any(why.code == "excluded" and why.node == name for why in group_for(r, m, a).blocked_by)


def test_single_channel_groups_are_not_prunable():
    b = GraphBuilder(seed=203, opset=13)
    x = b.input("x", [1, 3, 6, 6])
    a = b.conv(x, 3, 1)
    y = b.conv(a, 1, 4)
    m = b.model([y])
    g = group_for(onnxprune.analyze(m), m, a)
    assert g.size == 1 and not g.prunable and not g.blocked_by
    prune_ok(m, ratio=0.5, expect_removed=False)


# ---- how constants are written back ------------------------------------------------------------

def _chain(seed=204, opset=9):
    b = GraphBuilder(seed=seed, opset=opset)
    x = b.input("x", [1, 3, 6, 6])
    a = b.conv(x, 3, C)
    n = b.bn(a, C)
    h = b.conv(b.op("Relu", [n]), C, 6)
    f = b.op("Flatten", [b.op("GlobalAveragePool", [b.op("Relu", [h])])])
    y = b.gemm(f, 6, 3, trans_b=True)
    return b, b.model([y]), (a, n, h, y)


def test_ir3_initializers_listed_as_graph_inputs_keep_their_names():
    _, m, (a, n, h, y) = _chain()
    m = _as_ir3(m)
    onnx.checker.check_model(m, full_check=True)
    r = prune_ok(m, ratio=0.5)
    assert graph_input_names(r.model) == graph_input_names(m)
    # the input declarations follow the new initializer shapes
    declared = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in r.model.graph.input}
    for t in r.model.graph.initializer:
        assert declared[t.name] == list(t.dims), t.name
    assert input_shape(r.model, a, 1) == (4, 3, 3, 3)
    assert input_shape(r.model, n, 1) == (4,)
    assert input_shape(r.model, h, 1) == (3, 4, 3, 3)
    assert input_shape(r.model, y, 1) == (3, 3)
    assert r.model.ir_version == 3
    assert_ratio0_identical(m)


def test_ir3_model_with_a_weight_shared_across_groups():
    """A copy made to un-share a weight must be declared as a graph input too (IR < 4)."""
    m = _shared_weight_model(opset=9)
    m = _as_ir3(m)
    onnx.checker.check_model(m, full_check=True)
    r = prune_ok(m, ratio=0.5)
    names = graph_input_names(r.model)
    assert names[:len(m.graph.input)] == graph_input_names(m)
    assert {t.name for t in r.model.graph.initializer} <= set(names)
    # one reader takes over the shared name (its declaration follows), the other gets a copy
    c1, c2 = m.graph.node[0].output[0], m.graph.node[1].output[0]
    assert input_shape(r.model, c1, 1) == input_shape(r.model, c2, 1) == (4, 3, 3, 3)
    declared = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in r.model.graph.input}
    for t in r.model.graph.initializer:
        assert declared[t.name] == list(t.dims), t.name


def _shared_weight_model(opset=13, seed=205):
    """Two Convs read the same weight initializer but sit in different groups (different inputs,
    different consumers), so each group prunes its own rows."""
    b = GraphBuilder(seed=seed, opset=opset)
    x1 = b.input("x1", [1, 3, 6, 6])
    x2 = b.input("x2", [1, 3, 6, 6])
    w = b.const(b.weight(C, 3, 3, 3))
    c1 = b.op("Conv", [x1, w], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    c2 = b.op("Conv", [x2, w], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    # consumers that value opposite halves, so the two groups keep different rows of `w`
    scale = np.exp(np.linspace(-2, 2, C))
    y1 = b.op("Conv", [b.op("Relu", [c1]), b.const(b.weight(2, C, 1, 1, axis0_spread=False) * scale[:, None, None])],
              kernel_shape=[1, 1])
    y2 = b.op("Conv", [b.op("Sigmoid", [c2]),
                       b.const(b.weight(2, C, 1, 1, axis0_spread=False) * scale[::-1, None, None])],
              kernel_shape=[1, 1])
    return b.model([y1, y2])


def test_weight_shared_by_two_convs_in_different_groups_is_unshared():
    m = _shared_weight_model()
    w_name = producer(m, m.graph.node[0].output[0]).input[1]
    c1, c2 = m.graph.node[0].output[0], m.graph.node[1].output[0]
    an = onnxprune.analyze(m)
    g1, g2 = group_for(an, m, c1), group_for(an, m, c2)
    assert g1 is not g2 and g1.prunable and g2.prunable
    r = prune_ok(m, ratio=0.5)
    w = input_value(m, c1, 1)
    k1, k2 = r.plan.groups[g1.name], r.plan.groups[g2.name]
    assert k1 != k2, "the seeds should make the two groups keep different channels"
    np.testing.assert_array_equal(input_value(r.model, c1, 1), w[k1])
    np.testing.assert_array_equal(input_value(r.model, c2, 1), w[k2])
    n1, n2 = producer(r.model, c1).input[1], producer(r.model, c2).input[1]
    assert n1 != n2
    # the original is not left behind unused
    used = {i for n in r.model.graph.node for i in n.input}
    assert all(t.name in used for t in r.model.graph.initializer), [t.name for t in r.model.graph.initializer]
    assert r.after["params"] < r.before["params"]
    assert w_name in (n1, n2) or w_name not in {t.name for t in r.model.graph.initializer}
    assert_ratio0_identical(m)


def test_weight_that_is_also_a_graph_output_is_copied_not_rewritten():
    b = GraphBuilder(seed=209, opset=13)
    x = b.input("x", [1, 3, 6, 6])
    a = b.conv(x, 3, C)
    y = b.conv(b.op("Relu", [a]), C, 2)
    m = b.model([y])
    w = producer(m, a).input[1]
    m.graph.output.append(helper.make_tensor_value_info(w, TensorProto.FLOAT, [C, 3, 3, 3]))
    r = prune_ok(m, ratio=0.5, expect_removed=False)
    assert input_shape(r.model, a, 1) == (4, 3, 3, 3)
    assert producer(r.model, a).input[1] != w
    np.testing.assert_array_equal(next(numpy_helper.to_array(t) for t in r.model.graph.initializer if t.name == w),
                                  input_value(m, a, 1))


def test_weight_shared_by_a_pruned_and_a_blocked_conv():
    """One reader shrinks, the other (blocked: it feeds a graph output) keeps the full weight."""
    b = GraphBuilder(seed=206, opset=13)
    x1 = b.input("x1", [1, 3, 6, 6])
    x2 = b.input("x2", [1, 3, 6, 6])
    w = b.const(b.weight(C, 3, 3, 3))
    c1 = b.op("Conv", [x1, w], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    c2 = b.op("Conv", [x2, w], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    y1 = b.conv(b.op("Relu", [c1]), C, 2)
    m = b.model([y1, c2])
    r = prune_ok(m, ratio=0.5, expect_removed=False)  # the copy for c1 costs more than y1 saves
    assert input_shape(r.model, c1, 1) == (4, 3, 3, 3)
    assert input_shape(r.model, c2, 1) == (C, 3, 3, 3)
    assert producer(r.model, c2).input[1] == w


def test_bias_shared_by_two_convs_of_one_group_is_written_once():
    b = GraphBuilder(seed=207, opset=13)
    x = b.input("x", [1, 3, 6, 6])
    w1, w2 = b.const(b.weight(C, 3, 3, 3)), b.const(b.weight(C, 3, 3, 3))
    bias = b.const(b.rng.standard_normal(C), "b")
    c1 = b.op("Conv", [x, w1, bias], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    c2 = b.op("Conv", [x, w2, bias], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    y = b.conv(b.op("Add", [c1, c2]), C, 2)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert producer(r.model, c1).input[2] == producer(r.model, c2).input[2] == bias
    assert len(r.model.graph.initializer) == len(m.graph.initializer)


def test_constant_node_shared_by_two_readers_with_different_needs():
    b = GraphBuilder(seed=208, opset=13)
    x1 = b.input("x1", [1, 3, 6, 6])
    x2 = b.input("x2", [1, 3, 6, 6])
    w = b.op("Constant", [], value=numpy_helper.from_array(b.weight(C, 3, 3, 3).astype(np.float32)))
    c1 = b.op("Conv", [x1, w], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    c2 = b.op("Conv", [x2, w], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    y1 = b.conv(b.op("Relu", [c1]), C, 2)
    y2 = b.conv(b.op("Tanh", [c2]), C, 2)
    m = b.model([y1, y2])
    r = prune_ok(m, ratio=0.5)
    assert input_shape(r.model, c1, 1) == (4, 3, 3, 3)
    assert input_shape(r.model, c2, 1) == (4, 3, 3, 3)
    assert_ratio0_identical(m)


def test_value_info_is_refreshed():
    """Stale intermediate shapes must not survive (the full checker would reject them)."""
    _, m, (a, n, h, y) = _chain(opset=13)
    m = onnx.shape_inference.infer_shapes(m)
    assert len(m.graph.value_info) > 0
    r = prune_ok(m, ratio=0.5)
    vi = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in r.model.graph.value_info}
    assert vi[a] == [1, 4, 6, 6]


def test_ratio0_is_a_byte_identical_no_op():
    _, m, _ = _chain(opset=13)
    r = assert_ratio0_identical(m)
    assert r.model.SerializeToString() == m.SerializeToString()


def test_plan_round_trip_replays_the_same_model():
    _, m, _ = _chain(opset=13)
    r1 = onnxprune.prune(m, ratio=0.5, round_to=1)
    plan = onnxprune.Plan.from_json(r1.plan.to_json())
    r2 = onnxprune.prune(m, plan=plan, round_to=1)
    assert r2.model.SerializeToString() == r1.model.SerializeToString()


# ---- verification can fail -------------------------------------------------------------------

def _swap_columns(model, output, i, j, axis=1):
    """Return a copy of `model` with positions i and j of the consumer weight's `axis` swapped."""
    bad = onnx.ModelProto.FromString(model.SerializeToString())
    node = producer(bad, output)
    t = next(t for t in bad.graph.initializer if t.name == node.input[1])
    arr = numpy_helper.to_array(t).copy()
    index_i = [slice(None)] * arr.ndim
    index_j = [slice(None)] * arr.ndim
    index_i[axis], index_j[axis] = i, j
    arr[tuple(index_i)], arr[tuple(index_j)] = arr[tuple(index_j)].copy(), arr[tuple(index_i)].copy()
    t.CopyFrom(numpy_helper.from_array(arr, t.name))
    return bad


def test_verification_catches_swapped_consumer_columns():
    _, m, (a, n, h, y) = _chain(opset=13)
    r = prune_ok(m, ratio=0.5)
    ok = verify(r.model, r.reference, r.analysis.input_shapes)
    assert ok.passed and ok.max_abs_diff <= 1e-5
    bad = _swap_columns(r.model, h, 0, 1)
    res = verify(bad, r.reference, r.analysis.input_shapes)
    assert not res.passed
    assert "differs from the reference" in res.message and res.max_abs_diff > 1e-3


def test_verification_catches_a_kept_channel_swapped_with_its_bn_stats_out_of_step():
    """Swapping two producer rows without the BN statistics is also a different function."""
    _, m, (a, n, h, y) = _chain(opset=13)
    r = prune_ok(m, ratio=0.5)
    bad = _swap_columns(r.model, a, 0, 1, axis=0)
    assert not verify(bad, r.reference, r.analysis.input_shapes).passed


def test_verification_catches_wrong_shapes_and_checker_failures():
    _, m, (a, n, h, y) = _chain(opset=13)
    r = prune_ok(m, ratio=0.5)
    # drop a kept column in the consumer only: the model no longer loads/type-checks
    bad = onnx.ModelProto.FromString(r.model.SerializeToString())
    node = producer(bad, h)
    t = next(t for t in bad.graph.initializer if t.name == node.input[1])
    t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t)[:, 1:], t.name))
    res = verify(bad, r.reference, r.analysis.input_shapes)
    assert not res.passed and res.message


def test_reference_differs_from_the_original_only_by_zeroed_consumer_columns():
    _, m, (a, n, h, y) = _chain(opset=13)
    r = prune_ok(m, ratio=0.5)
    keep = r.plan.groups[group_for(r, m, a).name]
    removed = [c for c in range(C) if c not in keep]
    w_ref, w_orig = input_value(r.reference, h, 1), input_value(m, h, 1)
    assert not w_ref[:, removed].any()
    np.testing.assert_array_equal(w_ref[:, keep], w_orig[:, keep])
    np.testing.assert_array_equal(input_value(r.reference, a, 1), input_value(m, a, 1))
    assert op_counts(r.reference) == op_counts(m)


def test_pruned_differs_from_original_but_matches_reference():
    """Sanity that the reference is not trivially the pruned model's own output."""
    _, m, _ = _chain(opset=13)
    r = prune_ok(m, ratio=0.5)
    sess = make_session(m)
    feeds = random_feeds(sess, r.analysis.input_shapes, seed=9)
    o, p, ref = run(m, feeds)[0], run(r.model, feeds)[0], run(r.reference, feeds)[0]
    np.testing.assert_allclose(p, ref, rtol=1e-4, atol=1e-5)
    assert not np.allclose(o, p, rtol=1e-4, atol=1e-5)
    assert reasons(r)  # the head Gemm's group reaches the output
