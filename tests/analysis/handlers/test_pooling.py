"""Pooling handler: channels (axis 1) and batch pass; channels on a pooled axis block."""

import pytest

import onnxprune
from builders import GraphBuilder, assert_ratio0_identical
from prune_checks import group_for, input_shape, op_counts, producer, prune_ok

C = 8


@pytest.mark.parametrize("opset", [9, 11, 13, 17, 21])
@pytest.mark.parametrize("pool", ["MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool",
                                  "GlobalLpPool"])
def test_pool_passes_channels(opset, pool):
    b = GraphBuilder(seed=80, opset=opset)
    x = b.input("x", [1, 3, 8, 8])
    a = b.conv(x, 3, C)
    attrs = {} if pool.startswith("Global") else {"kernel_shape": [2, 2], "strides": [2, 2]}
    p = b.op(pool, [b.op("Relu", [a])], **attrs)
    y = b.conv(p, C, 4, k=1)
    m = b.model([y], ir_version=10 if opset >= 21 else 8)
    r = prune_ok(m, ratio=0.5)
    assert group_for(r, m, a).prunable
    assert input_shape(r.model, a, 1) == (4, 3, 3, 3)
    assert input_shape(r.model, y, 1) == (4, 4, 1, 1)
    assert op_counts(r.model) == op_counts(m)
    assert_ratio0_identical(m)


def test_gap_flatten_gemm_head():
    b = GraphBuilder(seed=81, opset=13)
    x = b.input("x", [2, 3, 8, 8])
    a = b.conv(x, 3, C)
    f = b.op("Flatten", [b.op("GlobalAveragePool", [b.op("Relu", [a])])])
    h = b.gemm(f, C, 6, trans_b=True)
    y = b.gemm(b.op("Relu", [h]), 6, 3)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert input_shape(r.model, a, 1) == (4, 3, 3, 3)
    assert input_shape(r.model, h, 1) == (3, 4)
    assert input_shape(r.model, y, 1) == (3, 3)
    assert_ratio0_identical(m)


def test_maxpool_indices_output_blocks():
    b = GraphBuilder(seed=82, opset=13)
    x = b.input("x", [1, 3, 8, 8])
    a = b.conv(x, 3, C)
    p, idx = b.op("MaxPool", [a], n_out=2, kernel_shape=[2, 2], strides=[2, 2])
    y = b.conv(p, C, 4)
    m = b.model([y, idx])
    an = onnxprune.analyze(m)
    assert any("indices" in why and producer(m, p).name in why for why in group_for(an, m, a).blocked_by)
    prune_ok(m, ratio=0.5, expect_removed=False)


def test_pool_over_channels_on_a_spatial_axis_blocks():
    b = GraphBuilder(seed=83, opset=13)
    x = b.input("x", [1, 3, 6, 6])
    a = b.conv(x, 3, 6)
    t = b.op("Transpose", [a], perm=[0, 3, 2, 1])      # channels on axis 3
    p = b.op("MaxPool", [t], kernel_shape=[2, 2], strides=[2, 2])
    y = b.conv(p, 6, 4)
    m = b.model([y])
    an = onnxprune.analyze(m)
    assert any("pooled spatial axis 3" in why for why in group_for(an, m, a).blocked_by)
    prune_ok(m, ratio=0.5, expect_removed=False)


def test_maxpool_1d():
    b = GraphBuilder(seed=84, opset=13)
    x = b.input("x", [1, 3, 16])
    a = b.op("Conv", [x, b.const(b.weight(C, 3, 3))], kernel_shape=[3], pads=[1, 1])
    p = b.op("MaxPool", [a], kernel_shape=[2], strides=[2])
    y = b.op("Conv", [p, b.const(b.weight(2, C, 1))], kernel_shape=[1])
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert input_shape(r.model, y, 1) == (2, 4, 1)
    assert_ratio0_identical(m)
