"""Element-wise handlers: unary ops carry channels, broadcasting ops couple run-time operands,
slice per-channel constants and let scalars / size-1 axes broadcast."""

import numpy as np
import pytest

import onnxprune
from builders import GraphBuilder, assert_ratio0_identical
from prune_checks import group_for, input_shape, input_value, op_counts, producer, prune_ok

C = 8


def _two_convs(seed=40, opset=13, cin=3):
    b = GraphBuilder(seed=seed, opset=opset)
    x = b.input("x", [1, cin, 6, 6])
    return b, x


@pytest.mark.parametrize("opset", [9, 13, 17])
@pytest.mark.parametrize("bias", [True, False])
def test_residual_add_couples_two_convs(opset, bias):
    b, x = _two_convs(opset=opset)
    a1 = b.conv(x, 3, C, bias=bias)
    a2 = b.conv(b.op("Relu", [a1]), C, C, bias=bias)
    s = b.op("Add", [a1, a2])
    y = b.conv(b.op("Relu", [s]), C, 4)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    g1, g2 = group_for(r, m, a1), group_for(r, m, a2)
    assert g1 is g2 and g1.prunable and len(g1.sources) == 2
    assert "(+1 coupled)" in g1.name
    assert len(r.analysis.groups) == 2
    assert input_shape(r.model, a1, 1) == (4, 3, 3, 3)
    assert input_shape(r.model, a2, 1) == (4, 4, 3, 3)
    assert input_shape(r.model, y, 1) == (4, 4, 3, 3)
    # the same channel indices are removed from both branches
    keep = r.plan.groups[g1.name]
    w1, w2 = input_value(m, a1, 1), input_value(m, a2, 1)
    np.testing.assert_array_equal(input_value(r.model, a1, 1), w1[keep])
    np.testing.assert_array_equal(input_value(r.model, a2, 1), w2[keep][:, keep])
    assert_ratio0_identical(m)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("const_shape", [(C, 1, 1), (1, C, 1, 1), ()])
@pytest.mark.parametrize("const_first", [False, True])
def test_binary_with_constant(op, const_shape, const_first):
    b, x = _two_convs(seed=41)
    a = b.conv(x, 3, C)
    value = b.rng.uniform(0.5, 1.5, const_shape)
    c = b.const(value, "c")
    s = b.op(op, [c, a] if const_first else [a, c])
    y = b.conv(b.op("Relu", [s]), C, 4)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    keep = r.plan.groups[group_for(r, m, a).name]
    new_c = input_value(r.model, s, 0 if const_first else 1)
    if const_shape:
        axis = const_shape.index(C)
        np.testing.assert_array_equal(new_c, np.take(value.astype(np.float32), keep, axis=axis))
    else:
        assert new_c.shape == ()
    assert input_shape(r.model, y, 1) == (4, 4, 3, 3)
    assert_ratio0_identical(m)


def test_constant_aligned_with_spatial_axes_is_not_sliced():
    """A [6, 1] constant lines up with H and W of a [1, 8, 6, 6] tensor, not with its
    channels: it must be left whole."""
    b, x = _two_convs(seed=42)
    a = b.conv(x, 3, C)
    c = b.const(b.rng.uniform(0.5, 1.5, (6, 1)), "c")
    s = b.op("Mul", [a, c])
    y = b.conv(s, C, 4)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert input_shape(r.model, s, 1) == (6, 1)
    assert group_for(r, m, a).prunable
    assert_ratio0_identical(m)


@pytest.mark.parametrize("slope", ["per_channel", "scalar", "per_channel_4d"])
def test_prelu_slope(slope):
    b, x = _two_convs(seed=43)
    a = b.conv(x, 3, C)
    shape = {"per_channel": (C, 1, 1), "scalar": (1,), "per_channel_4d": (1, C, 1, 1)}[slope]
    p = b.op("PRelu", [a, b.const(b.rng.uniform(0.05, 0.3, shape), "slope")])
    y = b.conv(p, C, 4)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    expect = tuple(4 if d == C else d for d in shape)
    assert input_shape(r.model, p, 1) == expect
    assert_ratio0_identical(m)


@pytest.mark.parametrize("op", ["Max", "Min", "Sum", "Mean"])
def test_variadic_ops_couple_all_operands(op):
    b, x = _two_convs(seed=44)
    a1 = b.conv(x, 3, C)
    a2 = b.conv(x, 3, C)
    a3 = b.conv(x, 3, C)
    s = b.op(op, [a1, a2, a3])
    y = b.conv(s, C, 4)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    g = group_for(r, m, a1)
    assert g is group_for(r, m, a2) is group_for(r, m, a3)
    assert len(g.sources) == 3 and g.prunable
    for a in (a1, a2, a3):
        assert input_shape(r.model, a, 1) == (4, 3, 3, 3)
    assert_ratio0_identical(m)


@pytest.mark.parametrize("op", ["Max", "Min"])
def test_max_min_with_per_channel_constant(op):
    b, x = _two_convs(seed=45)
    a = b.conv(x, 3, C)
    s = b.op(op, [a, b.const(b.rng.standard_normal((C, 1, 1)) * 0.1, "c")])
    y = b.conv(s, C, 4)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert input_shape(r.model, s, 1) == (4, 1, 1)
    assert_ratio0_identical(m)


@pytest.mark.parametrize("opset", [9, 11, 13])
def test_clip_and_unary_ops_pass_through(opset):
    b, x = _two_convs(seed=46, opset=opset)
    a = b.conv(x, 3, C)
    h = b.op("Sigmoid", [a])
    h = b.op("LeakyRelu", [h], alpha=0.2)
    if opset >= 11:
        h = b.op("Clip", [h, b.const(np.float32(-0.5), "lo"), b.const(np.float32(0.5), "hi")])
    else:
        h = b.op("Clip", [h], min=-0.5, max=0.5)
    h = b.op("Identity", [b.op("Tanh", [h])])
    y = b.conv(h, C, 4)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert input_shape(r.model, y, 1) == (4, 4, 3, 3)
    assert op_counts(r.model) == op_counts(m)
    assert_ratio0_identical(m)


def test_runtime_operand_without_channels_blocks():
    """x + conv(x) where x is a graph input: the input's channels are fixed, so the conv's
    channels cannot shrink either."""
    b, x = _two_convs(seed=47, cin=C)
    a = b.conv(x, C, C)
    s = b.op("Add", [x, a])
    y = b.conv(s, C, 4)
    m = b.model([y])
    an = onnxprune.analyze(m)
    g = group_for(an, m, a)
    assert not g.prunable
    assert any(producer(m, s).name in why for why in g.blocked_by), g.blocked_by
    prune_ok(m, ratio=0.5, expect_removed=False)


@pytest.mark.parametrize("narrow_first", [False, True])
def test_single_channel_tensor_broadcasts_over_channels(narrow_first):
    """A one-channel tensor added to a C-channel tensor broadcasts; it must neither block the
    C-channel group nor put its single label on the sum, whatever the operand order."""
    b, x = _two_convs(seed=48)
    a = b.conv(x, 3, C)
    one = b.conv(x, 3, 1)
    s = b.op("Add", [one, a] if narrow_first else [a, one])
    y = b.conv(b.op("Relu", [s]), C, 4)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    g = group_for(r, m, a)
    assert g.prunable and len(g.sources) == 1, g.blocked_by
    assert input_shape(r.model, a, 1) == (4, 3, 3, 3)
    assert input_shape(r.model, one, 1) == (1, 3, 3, 3)
    assert input_shape(r.model, y, 1) == (4, 4, 3, 3)
    assert_ratio0_identical(m)


def test_where_with_runtime_condition_blocks_and_constant_branch_is_sliced():
    b, x = _two_convs(seed=49)
    a = b.conv(x, 3, C)
    cond = b.op("Greater", [a, b.const(np.float32(0.0), "z")])
    w = b.op("Where", [cond, a, b.const(b.rng.standard_normal((C, 1, 1)), "alt")])
    y = b.conv(w, C, 4)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert input_shape(r.model, w, 2) == (4, 1, 1)
    assert_ratio0_identical(m)


def test_dropout_mask_output_carries_channels():
    b, x = _two_convs(seed=50, opset=13)
    a = b.conv(x, 3, C)
    d, mask = b.op("Dropout", [a], n_out=2)
    y = b.conv(d, C, 4)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert input_shape(r.model, y, 1) == (4, 4, 3, 3)
