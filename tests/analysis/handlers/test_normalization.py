"""Normalisation handlers: per-channel statistics are sliced; normalising across channels blocks."""

import numpy as np
import pytest

import onnxprune
from builders import GraphBuilder, assert_ratio0_identical
from prune_checks import group_for, input_shape, input_value, producer, prune_ok

C = 8


def _conv_input(seed, opset=13, shape=(1, 3, 6, 6)):
    b = GraphBuilder(seed=seed, opset=opset)
    return b, b.input("x", list(shape))


@pytest.mark.parametrize("opset", [9, 13, 17])
@pytest.mark.parametrize("bias", [True, False])
def test_batchnorm_statistics_are_sliced(opset, bias):
    b, x = _conv_input(60, opset)
    a = b.conv(x, 3, C, bias=bias)
    n = b.bn(a, C)
    y = b.conv(b.op("Relu", [n]), C, 4)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    keep = r.plan.groups[group_for(r, m, a).name]
    for k in range(1, 5):
        np.testing.assert_array_equal(input_value(r.model, n, k), input_value(m, n, k)[keep])
    assert input_shape(r.model, y, 1) == (4, 4, 3, 3)
    assert_ratio0_identical(m)


def test_batchnorm_on_2d_features():
    b, x = _conv_input(61, shape=(2, 10))
    h = b.gemm(x, 10, C, trans_b=True)
    n = b.bn(h, C)
    y = b.gemm(b.op("Relu", [n]), C, 3)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert input_shape(r.model, n, 1) == (4,)
    assert input_shape(r.model, y, 1) == (4, 3)
    assert_ratio0_identical(m)


@pytest.mark.parametrize("criterion", ["bn", "l1", "l2"])
def test_bn_criterion_uses_the_scale(criterion):
    """With criterion 'bn' the kept channels are those with the largest |gamma|."""
    b, x = _conv_input(62)
    a = b.conv(x, 3, C)
    n = b.bn(a, C)
    y = b.conv(b.op("Relu", [n]), C, 4)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5, criterion=criterion)
    g = group_for(r, m, a)
    keep = r.plan.groups[g.name]
    if criterion == "bn":
        gamma = np.abs(input_value(m, n, 1))
        assert sorted(keep) == sorted(np.argsort(-gamma)[:4].tolist())
    assert r.groups[g.id]["criterion"] == criterion


def test_bn_criterion_falls_back_to_l1_without_batchnorm():
    b, x = _conv_input(63)
    a = b.conv(x, 3, C)
    m = b.model([b.conv(a, C, 4)])
    r1 = prune_ok(m, ratio=0.5, criterion="bn")
    r2 = prune_ok(m, ratio=0.5, criterion="l1")
    g = group_for(r1, m, a)
    assert r1.plan.groups[g.name] == r2.plan.groups[g.name]
    assert r1.groups[g.id]["criterion"] == "l1"


@pytest.mark.parametrize("opset", [9, 13, 17])
def test_instance_norm(opset):
    b, x = _conv_input(64, opset)
    a = b.conv(x, 3, C)
    n = b.op("InstanceNormalization", [a, b.const(b.rng.uniform(0.5, 1.5, C), "s"),
                                       b.const(b.rng.standard_normal(C) * 0.1, "b")])
    y = b.conv(b.op("Relu", [n]), C, 4)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert input_shape(r.model, n, 1) == (4,)
    assert input_shape(r.model, n, 2) == (4,)
    assert input_shape(r.model, y, 1) == (4, 4, 3, 3)
    assert_ratio0_identical(m)


def test_instance_norm_over_channels_on_a_spatial_axis_blocks():
    b, x = _conv_input(65, shape=(1, 3, 5, 5))
    a = b.conv(x, 3, 5)
    t = b.op("Transpose", [a], perm=[0, 2, 1, 3])  # channels to axis 2, which InstanceNorm averages
    n = b.op("InstanceNormalization", [t, b.const(np.ones(5), "s"), b.const(np.zeros(5), "b")])
    y = b.conv(n, 5, 2)
    m = b.model([y])
    an = onnxprune.analyze(m)
    assert any("spatial axis 2" in why and producer(m, n).name in why for why in group_for(an, m, a).blocked_by)
    prune_ok(m, ratio=0.5, expect_removed=False)


@pytest.mark.parametrize("axis", [1, -3])
def test_layernorm_over_the_channel_axis_blocks_naming_the_node(axis):
    b, x = _conv_input(66, opset=17, shape=(1, 3, 10))
    a = b.op("Conv", [x, b.const(b.weight(C, 3, 3))], kernel_shape=[3], pads=[1, 1])   # [1, C, 10]
    ln = b.op("LayerNormalization", [a, b.const(np.ones((C, 10)), "s"), b.const(np.zeros((C, 10)), "b")],
              axis=axis)
    y = b.op("Conv", [ln, b.const(b.weight(4, C, 1))], kernel_shape=[1])
    m = b.model([y])
    an = onnxprune.analyze(m)
    g = group_for(an, m, a)
    assert not g.prunable
    assert any(producer(m, ln).name in why and "LayerNormalization" in why for why in g.blocked_by), g.blocked_by
    prune_ok(m, ratio=0.5, expect_removed=False)


def test_layernorm_over_channels_last_blocks():
    """tf/transformer layout [B, T, C] normalised over C (axis -1)."""
    b, x = _conv_input(67, opset=17, shape=(1, 5, 6))
    h = b.matmul(x, 6, C)
    ln = b.op("LayerNormalization", [h, b.const(np.ones(C), "s"), b.const(np.zeros(C), "b")], axis=-1)
    y = b.matmul(ln, C, 3)
    m = b.model([y])
    an = onnxprune.analyze(m)
    g = group_for(an, m, h)
    assert any(producer(m, ln).name in why for why in g.blocked_by)
    prune_ok(m, ratio=0.5, expect_removed=False)


def test_layernorm_over_time_passes_channels():
    b, x = _conv_input(68, opset=17, shape=(1, 3, 10))
    a = b.op("Conv", [x, b.const(b.weight(C, 3, 3))], kernel_shape=[3], pads=[1, 1])   # [1, C, 10]
    ln = b.op("LayerNormalization", [a, b.const(np.ones(10), "s"), b.const(np.zeros(10), "b")], axis=-1)
    y = b.op("Conv", [ln, b.const(b.weight(4, C, 1))], kernel_shape=[1])
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert input_shape(r.model, a, 1) == (4, 3, 3)
    assert input_shape(r.model, ln, 1) == (10,)
    assert input_shape(r.model, y, 1) == (4, 4, 1)
    assert_ratio0_identical(m)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("opset", [11, 13])
def test_softmax_over_channel_axis_blocks(op, opset):
    b, x = _conv_input(69, opset)
    a = b.conv(x, 3, C)
    s = b.op(op, [a], axis=1)
    y = b.conv(s, C, 4)
    m = b.model([y])
    an = onnxprune.analyze(m)
    assert any(f"{op} over the channel axis" in why and producer(m, s).name in why
               for why in group_for(an, m, a).blocked_by)
    prune_ok(m, ratio=0.5, expect_removed=False)


@pytest.mark.parametrize("opset", [9, 11, 13, 17])
@pytest.mark.parametrize("axis", [2, 3, -1])
def test_softmax_over_a_later_axis_passes_nchw_channels(opset, axis):
    """Before opset 13 Softmax flattens axes >= axis into one; channels on axis 1 are outside."""
    b, x = _conv_input(70, opset)
    a = b.conv(x, 3, C)
    s = b.op("Softmax", [a], axis=axis)
    y = b.conv(s, C, 4)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert input_shape(r.model, y, 1) == (4, 4, 3, 3)
    assert_ratio0_identical(m)


@pytest.mark.parametrize("opset,blocked", [(11, True), (13, False)])
def test_softmax_axis_semantics_change_at_13(opset, blocked):
    """Channels on the last axis (NHWC), Softmax axis=2: opset 11 coerces axes 2 and 3 into one
    (mixes channels); opset 13 normalises axis 2 alone (does not)."""
    b, x = _conv_input(71, opset)
    a = b.conv(x, 3, C)
    t = b.op("Transpose", [a], perm=[0, 2, 3, 1])
    s = b.op("Softmax", [t], axis=2)
    back = b.op("Transpose", [s], perm=[0, 3, 1, 2])
    y = b.conv(back, C, 4)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5, expect_removed=not blocked)
    g = group_for(r, m, a)
    assert g.prunable is (not blocked)
    if blocked:
        assert any(producer(m, s).name in why for why in g.blocked_by)
    else:
        assert input_shape(r.model, y, 1) == (4, 4, 3, 3)


@pytest.mark.parametrize("op,attrs", [("LRN", {"size": 3}), ("LpNormalization", {"axis": 1})])
def test_cross_channel_normalisations_block(op, attrs):
    b, x = _conv_input(72)
    a = b.conv(x, 3, C)
    n = b.op(op, [a], **attrs)
    y = b.conv(n, C, 4)
    m = b.model([y])
    an = onnxprune.analyze(m)
    assert any("mixes values across channels" in why and producer(m, n).name in why
               for why in group_for(an, m, a).blocked_by)
    prune_ok(m, ratio=0.5, expect_removed=False)
