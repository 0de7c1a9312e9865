"""Gemm and MatMul handlers: weight columns are sources, contracted activation axes are weight
rows, on either side of MatMul, with or without transposes."""

import numpy as np
import pytest

import onnxprune
from builders import GraphBuilder, assert_ratio0_identical
from prune_checks import group_for, input_shape, input_value, op_counts, prune_ok


def _gemm(b, x, k, n, trans_b, bias, trans_a=False, bias_shape=None):
    w = b.weight(n, k) if trans_b else b.weight(n, k).T
    ins = [x, b.const(w)]
    if bias:
        c = b.rng.standard_normal(n) * 0.1
        ins.append(b.const(c.reshape(bias_shape) if bias_shape else c, "b"))
    return b.op("Gemm", ins, transA=int(trans_a), transB=int(trans_b))


@pytest.mark.parametrize("trans_b", [False, True])
# Gemm's C input is optional only from opset 11
@pytest.mark.parametrize("opset,bias", [(9, True), (9, "2d"), (13, True), (13, False), (13, "2d")])
def test_gemm_chain(trans_b, bias, opset):
    b = GraphBuilder(seed=20, opset=opset)
    x = b.input("x", [2, 12])
    h = _gemm(b, x, 12, 10, trans_b, bool(bias), bias_shape=(1, 10) if bias == "2d" else None)
    r1 = b.op("Relu", [h])
    y = _gemm(b, r1, 10, 3, not trans_b, bool(bias))
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    g = group_for(r, m, h)
    assert g.prunable and g.size == 10
    assert input_shape(r.model, h, 1) == ((5, 12) if trans_b else (12, 5))
    assert input_shape(r.model, y, 1) == ((5, 3) if trans_b else (3, 5))  # y uses the other layout
    if bias:
        assert input_shape(r.model, h, 2) == ((1, 5) if bias == "2d" else (5,))
        assert input_shape(r.model, y, 2) == (3,)
    assert_ratio0_identical(m)


@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm_trans_a_reads_channels_on_axis0(trans_b):
    """Features [1, K] transposed to [K, 1] and fed with transA=1: K is still the contracted axis."""
    b = GraphBuilder(seed=21, opset=13)
    x = b.input("x", [1, 12])
    h = _gemm(b, x, 12, 8, trans_b=True, bias=True)
    t = b.op("Transpose", [b.op("Relu", [h])], perm=[1, 0])
    y = _gemm(b, t, 8, 4, trans_b, bias=True, trans_a=True)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert input_shape(r.model, h, 1) == (4, 12)
    assert input_shape(r.model, y, 1) == (4, 4)
    w = input_value(m, y, 1)
    keep = r.plan.groups[group_for(r, m, h).name]
    np.testing.assert_array_equal(input_value(r.model, y, 1), w[:, keep] if trans_b else w[keep])
    assert_ratio0_identical(m)


@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("bias", ["rows", "full", None])
def test_gemm_channels_on_the_m_axis_pass_through(trans_b, bias):
    """A = [C, 1] with channels on rows: Gemm output rows are the same channels; a [C, N] bias is
    sliced with them, a [N] bias is not."""
    b = GraphBuilder(seed=22, opset=13)
    x = b.input("x", [1, 3, 4, 4])
    a = b.conv(x, 3, 6)
    f = b.op("Flatten", [b.op("GlobalAveragePool", [a])])          # [1, 6]
    t = b.op("Transpose", [f], perm=[1, 0])                         # [6, 1]
    w = b.weight(5, 1) if trans_b else b.weight(5, 1).T
    ins = [t, b.const(w)]
    if bias == "rows":
        ins.append(b.const(b.rng.standard_normal((6, 5)), "b"))
    elif bias == "full":
        ins.append(b.const(b.rng.standard_normal(5), "b"))
    g = b.op("Gemm", ins, transB=int(trans_b))                      # [6, 5]
    back = b.op("Transpose", [b.op("Relu", [g])], perm=[1, 0])      # [5, 6]
    y = _gemm(b, back, 6, 2, trans_b=False, bias=True)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    ga = group_for(r, m, a)
    assert ga.prunable
    if bias == "rows":
        assert input_shape(r.model, g, 2) == (3, 5)
    elif bias == "full":
        assert input_shape(r.model, g, 2) == (5,)
    assert input_shape(r.model, y, 1) == (3, 2)
    assert_ratio0_identical(m)


def test_gemm_runtime_b_blocks():
    b = GraphBuilder(seed=23, opset=13)
    x = b.input("x", [4, 6])
    z = b.input("z", [4, 3])
    h = _gemm(b, x, 6, 4, trans_b=True, bias=False)                # [4, 4]
    y = b.op("Gemm", [z, h], transA=1)                              # h as B operand: [3, 4]
    m = b.model([y])
    an = onnxprune.analyze(m)
    assert any("B operand is a run-time tensor" in s for s in group_for(an, m, h).blocked_by)
    prune_ok(m, ratio=0.5, expect_removed=False)


@pytest.mark.parametrize("opset", [9, 13, 17])
def test_matmul_weight_on_the_right(opset):
    b = GraphBuilder(seed=24, opset=opset)
    x = b.input("x", [1, 5, 8])
    h = b.matmul(x, 8, 12)
    y = b.matmul(b.op("Relu", [h]), 12, 6)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert group_for(r, m, h).prunable
    assert input_shape(r.model, h, 1) == (8, 6)
    assert input_shape(r.model, y, 1) == (6, 6)
    assert_ratio0_identical(m)


@pytest.mark.parametrize("opset", [9, 13, 17])
def test_matmul_weight_on_the_left(opset):
    """W[M, K] @ x[..., K, N]: the sources are W's rows and land on axis -2 of the output."""
    b = GraphBuilder(seed=25, opset=opset)
    x = b.input("x", [1, 8, 5])
    h = b.op("MatMul", [b.const(b.weight(12, 8)), x])              # [1, 12, 5]
    y = b.op("MatMul", [b.const(b.weight(6, 12)), b.op("Relu", [h])])
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert group_for(r, m, h).prunable
    assert input_shape(r.model, h, 0) == (6, 8)
    assert input_shape(r.model, y, 0) == (6, 6)
    assert_ratio0_identical(m)


def test_matmul_left_and_right_mixed():
    """Channels born on the right (last axis) are consumed on the left after a Transpose."""
    b = GraphBuilder(seed=26, opset=13)
    x = b.input("x", [1, 5, 8])
    h = b.matmul(x, 8, 10)                                          # [1, 5, 10]
    t = b.op("Transpose", [b.op("Relu", [h])], perm=[0, 2, 1])      # [1, 10, 5]
    y = b.op("MatMul", [b.const(b.weight(4, 10)), t])               # [1, 4, 5]
    m = b.model([y])
    r = prune_ok(m, ratio=0.4)
    assert input_shape(r.model, h, 1) == (8, 6)
    assert input_shape(r.model, y, 0) == (4, 6)
    assert_ratio0_identical(m)


def test_matmul_over_time_carries_conv_channels():
    """Conv1d output [1, C, T] times a [T, T'] weight mixes time, not channels."""
    b = GraphBuilder(seed=27, opset=13)
    x = b.input("x", [1, 4, 7])
    w = b.const(b.weight(6, 4, 3))
    a = b.op("Conv", [x, w], kernel_shape=[3], pads=[1, 1])       # [1, 6, 7]
    t = b.matmul(a, 7, 9)                                           # [1, 6, 9]; 9 columns are a source too
    y = b.op("Conv", [b.op("Relu", [t]), b.const(b.weight(3, 6, 1))], kernel_shape=[1])
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert group_for(r, m, a).prunable
    assert input_shape(r.model, a, 1) == (3, 4, 3)
    assert input_shape(r.model, y, 1) == (3, 3, 1)
    # the time columns of the MatMul reach the output's last axis: blocked
    assert not group_for(r, m, t).prunable
    assert_ratio0_identical(m)


def test_matmul_of_two_runtime_tensors_blocks():
    b = GraphBuilder(seed=28, opset=13)
    x = b.input("x", [1, 5, 8])
    h = b.matmul(x, 8, 6)                                           # [1, 5, 6]
    t = b.op("Transpose", [h], perm=[0, 2, 1])                      # [1, 6, 5]
    y = b.op("MatMul", [h, t])                                      # [1, 5, 5]
    m = b.model([y])
    an = onnxprune.analyze(m)
    assert any("two run-time tensors" in s for s in group_for(an, m, h).blocked_by)
    prune_ok(m, ratio=0.5, expect_removed=False)


@pytest.mark.parametrize("nhwc", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_flatten_then_gemm(nhwc, trans_b):
    """Flatten after NCHW (channel blocks of H*W rows) or after a tf2onnx NHWC Transpose
    (channels interleaved every C rows)."""
    b = GraphBuilder(seed=29, opset=13)
    x = b.input("x", [1, 3, 4, 4])
    a = b.conv(x, 3, 6)
    h = b.op("Relu", [a])
    if nhwc:
        h = b.op("Transpose", [h], perm=[0, 2, 3, 1])
    f = b.op("Flatten", [h])                                        # [1, 96]
    y = _gemm(b, f, 96, 5, trans_b, bias=True)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    keep = r.plan.groups[group_for(r, m, a).name]
    assert len(keep) == 3
    w = input_value(m, y, 1)
    if nhwc:
        rows = [p * 6 + c for p in range(16) for c in keep]
    else:
        rows = [c * 16 + p for c in keep for p in range(16)]
    rows = sorted(rows)
    np.testing.assert_array_equal(input_value(r.model, y, 1), w[:, rows] if trans_b else w[rows])
    assert_ratio0_identical(m)


@pytest.mark.parametrize("nhwc", [False, True])
@pytest.mark.parametrize("target", ["explicit", "minus1"])
def test_reshape_then_matmul(nhwc, target):
    b = GraphBuilder(seed=30, opset=13)
    x = b.input("x", [1, 3, 4, 4])
    a = b.conv(x, 3, 6)
    h = b.op("Relu", [a])
    if nhwc:
        h = b.op("Transpose", [h], perm=[0, 2, 3, 1])
    shape = b.const(np.array([1, 96] if target == "explicit" else [1, -1]), "shape", dtype=np.int64)
    f = b.op("Reshape", [h, shape])
    y = b.matmul(f, 96, 5)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert input_shape(r.model, y, 1) == (48, 5)
    new_shape = input_value(r.model, f, 1).tolist()
    assert new_shape == ([1, 48] if target == "explicit" else [1, -1])
    assert op_counts(r.model) == op_counts(m)
    assert_ratio0_identical(m)


def test_reshape_to_rank3_then_matmul_keeps_channels_on_their_axis():
    """[1, C, H, W] -> [1, C, H*W] -> MatMul over H*W: channels stay on axis 1, target[1] shrinks."""
    b = GraphBuilder(seed=31, opset=13)
    x = b.input("x", [1, 3, 4, 4])
    a = b.conv(x, 3, 6)
    f = b.op("Reshape", [b.op("Relu", [a]), b.const(np.array([1, 6, 16]), "shape", dtype=np.int64)])
    mm = b.matmul(f, 16, 8)                                         # [1, 6, 8]
    back = b.op("Reshape", [mm, b.const(np.array([1, 6, 8, 1]), "shape", dtype=np.int64)])
    y = b.op("Conv", [back, b.const(b.weight(2, 6, 1, 1))], kernel_shape=[1, 1])
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert input_value(r.model, f, 1).tolist() == [1, 3, 16]
    assert input_value(r.model, back, 1).tolist() == [1, 3, 8, 1]
    assert input_shape(r.model, y, 1) == (2, 3, 1, 1)
    assert_ratio0_identical(m)
