"""Conv / ConvTranspose handler: output channels are sources, input channels are weight columns,
depthwise convs carry channels through, other grouped convs prune whole groups."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxprune
from builders import GraphBuilder, assert_ratio0_identical
from prune_checks import attr_of, group_for, input_shape, op_counts, producer, prune_ok

OPSETS = (9, 11, 13, 17, 21)


def ir_for(opset):
    return 10 if opset >= 21 else 8


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("bias", [True, False])
def test_conv_chain_prunes_rows_bias_and_columns(opset, bias):
    b = GraphBuilder(seed=1, opset=opset)
    x = b.input("x", [1, 3, 8, 8])
    a = b.conv(x, 3, 8, bias=bias)
    h = b.op("Relu", [a])
    y = b.conv(h, 8, 6, bias=bias)
    m = b.model([y], ir_version=ir_for(opset))

    r = prune_ok(m, ratio=0.5)
    ga, gy = group_for(r, m, a), group_for(r, m, y)
    assert ga.prunable and ga.size == 8
    assert not gy.prunable and any("reaches graph output" in s for s in gy.blocked_by)
    assert input_shape(r.model, a, 1) == (4, 3, 3, 3)
    assert input_shape(r.model, y, 1) == (6, 4, 3, 3)
    if bias:
        assert input_shape(r.model, a, 2) == (4,)
        assert input_shape(r.model, y, 2) == (6,)
    assert op_counts(r.model) == op_counts(m)
    assert r.verify.max_abs_diff <= 1e-5
    assert_ratio0_identical(m)


@pytest.mark.parametrize("mult", [1, 2])
@pytest.mark.parametrize("bias", [True, False])
def test_depthwise_carries_channels_and_rewrites_group(mult, bias):
    b = GraphBuilder(seed=2, opset=13)
    x = b.input("x", [1, 3, 8, 8])
    a = b.conv(x, 3, 8)
    dw = b.conv(a, 8, 8 * mult, group=8, bias=bias)
    h = b.op("Relu", [dw])
    y = b.conv(h, 8 * mult, 5)
    m = b.model([y])

    r = prune_ok(m, ratio=0.5)
    g = group_for(r, m, a)
    assert g.prunable and g.size == 8 and len(g.sources) == 1  # the depthwise conv is no source
    assert len(r.analysis.groups) == 2
    assert input_shape(r.model, a, 1) == (4, 3, 3, 3)
    assert input_shape(r.model, dw, 1) == (4 * mult, 1, 3, 3)
    if bias:
        assert input_shape(r.model, dw, 2) == (4 * mult,)
    assert attr_of(r.model, dw, "group") == 4
    assert input_shape(r.model, y, 1) == (5, 4 * mult, 3, 3)
    assert_ratio0_identical(m)


def test_depthwise_multiplier_keeps_each_inputs_copies_together():
    """Output j of a multiplier-2 depthwise conv reads input j // 2: removing input channel c
    must remove outputs 2c and 2c+1, and the consumer's columns 2c, 2c+1."""
    b = GraphBuilder(seed=3, opset=17)
    x = b.input("x", [1, 2, 6, 6])
    a = b.conv(x, 2, 6)
    dw = b.conv(a, 6, 12, group=6)
    y = b.conv(dw, 12, 3, k=1)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    keep = r.plan.groups[group_for(r, m, a).name]
    assert len(keep) == 3
    w_dw = onnxprune.core.graph.GraphIndex.build(m).const(producer(m, dw).input[1])
    w_y = onnxprune.core.graph.GraphIndex.build(m).const(producer(m, y).input[1])
    rows = [2 * c + j for c in keep for j in (0, 1)]
    np.testing.assert_array_equal(
        onnxprune.core.graph.GraphIndex.build(r.model).const(producer(r.model, dw).input[1]), w_dw[rows])
    np.testing.assert_array_equal(
        onnxprune.core.graph.GraphIndex.build(r.model).const(producer(r.model, y).input[1]), w_y[:, rows])


def test_grouped_conv_prunes_whole_groups():
    """Group j's outputs read only group j's inputs: a group (its 4 inputs and 2 outputs) is one
    unit, removed whole; `group` shrinks and the weight's per-group input axis stays."""
    b = GraphBuilder(seed=4, opset=13)
    x = b.input("x", [1, 3, 8, 8])
    a = b.conv(x, 3, 16)
    g4 = b.conv(a, 16, 8, group=4)
    h = b.op("Relu", [g4])
    y = b.conv(h, 8, 4)
    m = b.model([y])

    an = onnxprune.analyze(m)
    ga = group_for(an, m, a)
    assert ga.prunable and ga.size == 4 and ga.unit == "heads"  # one unit per group of channels
    assert all(producer(m, g4).name not in g.members() for g in an.groups)  # no source of its own
    r = prune_ok(m, ratio=0.5)
    assert attr_of(r.model, g4, "group") == 2
    assert input_shape(r.model, g4) == (4, 4, 3, 3) and input_shape(r.model, a) == (8, 3, 3, 3)
    assert input_shape(r.model, y) == (4, 4, 3, 3)
    assert_ratio0_identical(m)


def test_grouped_conv_with_unequal_in_and_out_widths():
    b = GraphBuilder(seed=4, opset=13)
    x = b.input("x", [1, 3, 8, 8])
    a = b.conv(x, 3, 8)
    w = b.const(b.weight(6, 4, 3, 3))
    g = b.op("Conv", [a, w], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=2)
    m = b.model([b.conv(g, 6, 4)])
    ga = group_for(onnxprune.analyze(m), m, a)
    assert ga.prunable  # 8 inputs, 6 outputs, 2 groups: divides, so whole groups go
    prune_ok(m, ratio=0.5)


def test_graph_input_into_depthwise_is_not_a_group():
    b = GraphBuilder(seed=5, opset=13)
    x = b.input("x", [1, 4, 8, 8])
    dw = b.conv(x, 4, 4, group=4)
    y = b.conv(dw, 4, 6)
    m = b.model([y])
    an = onnxprune.analyze(m)
    assert [g.members() for g in an.groups] == [[producer(m, y).name]]
    prune_ok(m, ratio=0.5, expect_removed=False)


def test_runtime_conv_weight_blocks_the_channels_it_reads():
    b = GraphBuilder(seed=6, opset=13)
    x = b.input("x", [1, 3, 6, 6])
    wdyn = b.input("wdyn", [4, 8, 3, 3])
    a = b.conv(x, 3, 8)
    y = b.op("Conv", [a, wdyn], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    m = b.model([y])
    an = onnxprune.analyze(m)
    ga = group_for(an, m, a)
    assert not ga.prunable
    assert any("computed at run time" in s and producer(m, y).name in s for s in ga.blocked_by)
    prune_ok(m, ratio=0.5, expect_removed=False)


@pytest.mark.parametrize("bias", [True, False])
def test_conv1d_chain(bias):
    """Speech models are mostly 1-D convolutions."""
    rng = np.random.default_rng(7)
    w1 = rng.standard_normal((8, 4, 3)).astype(np.float32)
    w2 = rng.standard_normal((5, 8, 3)).astype(np.float32)
    b1 = rng.standard_normal(8).astype(np.float32)
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")]
    ins1 = ["x", "w1"]
    if bias:
        inits.append(numpy_helper.from_array(b1, "b1"))
        ins1.append("b1")
    nodes = [helper.make_node("Conv", ins1, ["c1"], name="c1", pads=[1, 1], kernel_shape=[3]),
             helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
             helper.make_node("Conv", ["r1", "w2"], ["y"], name="c2", pads=[1, 1], kernel_shape=[3])]
    g = helper.make_graph(nodes, "c1d", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 20])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, 20])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    r = prune_ok(m, ratio=0.25)
    assert input_shape(r.model, "c1", 1) == (6, 4, 3)
    assert input_shape(r.model, "y", 1) == (5, 6, 3)
    assert_ratio0_identical(m)


@pytest.mark.parametrize("bias", [True, False])
def test_conv_transpose_input_rows_and_output_columns(bias):
    b = GraphBuilder(seed=8, opset=13)
    x = b.input("x", [1, 3, 6, 6])
    a = b.conv(x, 3, 8)
    wt = b.const(b.weight(8, 6, 2, 2))
    ins = [a, wt] + ([b.const(b.rng.standard_normal(6), "b")] if bias else [])
    t = b.op("ConvTranspose", ins, kernel_shape=[2, 2], strides=[2, 2])
    h = b.op("Relu", [t])
    y = b.conv(h, 6, 4)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert input_shape(r.model, a, 1) == (4, 3, 3, 3)
    assert input_shape(r.model, t, 1) == (4, 3, 2, 2)
    if bias:
        assert input_shape(r.model, t, 2) == (3,)
    assert input_shape(r.model, y, 1) == (4, 3, 3, 3)
    assert group_for(r, m, t).prunable
    assert_ratio0_identical(m)


def test_grouped_conv_transpose_blocks():
    b = GraphBuilder(seed=9, opset=13)
    x = b.input("x", [1, 3, 6, 6])
    a = b.conv(x, 3, 8)
    t = b.op("ConvTranspose", [a, b.const(b.weight(8, 2, 2, 2))], kernel_shape=[2, 2], strides=[2, 2], group=2)
    m = b.model([b.conv(t, 4, 2)])
    an = onnxprune.analyze(m)
    assert any("group=2 is not supported" in s for s in group_for(an, m, a).blocked_by)
    prune_ok(m, ratio=0.5, expect_removed=False)


def test_channels_on_a_spatial_axis_block_at_conv():
    """An NHWC tensor fed to Conv puts channels under the kernel: they mix, so block."""
    b = GraphBuilder(seed=10, opset=13)
    x = b.input("x", [1, 3, 6, 6])
    a = b.conv(x, 3, 6)
    t = b.op("Transpose", [a], perm=[0, 2, 1, 3])  # channels move to axis 2, under the kernel
    y = b.conv(t, 6, 4)
    m = b.model([y])
    an = onnxprune.analyze(m)
    ga = group_for(an, m, a)
    assert not ga.prunable
    assert any("spatial axis 2" in s for s in ga.blocked_by)
    prune_ok(m, ratio=0.5, expect_removed=False)


def test_constant_node_conv_weights():
    b = GraphBuilder(seed=11, opset=13)
    x = b.input("x", [1, 3, 6, 6])
    w1 = b.op("Constant", [], value=numpy_helper.from_array(b.weight(8, 3, 3, 3).astype(np.float32)))
    b1 = b.op("Constant", [], value=numpy_helper.from_array((b.rng.standard_normal(8) * 0.1).astype(np.float32)))
    w2 = b.op("Constant", [], value=numpy_helper.from_array(b.weight(4, 8, 3, 3).astype(np.float32)))
    a = b.op("Conv", [x, w1, b1], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    y = b.op("Conv", [b.op("Relu", [a]), w2], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert input_shape(r.model, a, 1) == (4, 3, 3, 3)
    assert input_shape(r.model, a, 2) == (4,)
    assert input_shape(r.model, y, 1) == (4, 4, 3, 3)
    assert op_counts(r.model) == op_counts(m)
    assert len(r.model.graph.initializer) == 0  # rewritten in place, not copied out
    assert_ratio0_identical(m)
