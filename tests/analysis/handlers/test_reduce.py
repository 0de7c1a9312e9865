"""Reduce handler: channels pass when not reduced (renumbered with keepdims=0); reducing the
channel axis blocks. Axes come from an attribute before opset 18 (ReduceSum: 13) and an input after."""

import numpy as np
import pytest
from onnx import TensorProto

import onnxprune
from builders import GraphBuilder, assert_ratio0_identical
from prune_checks import group_for, input_shape, producer, prune_ok

C = 8


def _axes_node(b, op, x, axes, keepdims, opset, **extra):
    as_input = opset >= 18 or (op == "ReduceSum" and opset >= 13)
    if axes is None:
        return b.op(op, [x], keepdims=keepdims, **extra)
    if as_input:
        return b.op(op, [x, b.const(np.array(axes), "axes", dtype=np.int64)], keepdims=keepdims, **extra)
    return b.op(op, [x], axes=list(axes), keepdims=keepdims, **extra)


@pytest.mark.parametrize("opset", [9, 11, 13, 17, 18, 21])
@pytest.mark.parametrize("op", ["ReduceMean", "ReduceSum", "ReduceMax"])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_spatial_passes_channels(opset, op, keepdims):
    b = GraphBuilder(seed=90, opset=opset)
    x = b.input("x", [1, 3, 6, 6])
    a = b.conv(x, 3, C)
    red = _axes_node(b, op, b.op("Relu", [a]), [2, -1], keepdims, opset)
    if keepdims:
        y = b.conv(red, C, 4, k=1)
    else:
        y = b.gemm(red, C, 4, trans_b=True)          # [1, C] features
    m = b.model([y], ir_version=10 if opset >= 21 else 8)
    r = prune_ok(m, ratio=0.5)
    assert group_for(r, m, a).prunable
    assert input_shape(r.model, y, 1) == ((4, 4, 1, 1) if keepdims else (4, 4))
    assert_ratio0_identical(m)


@pytest.mark.parametrize("opset", [11, 13, 18])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_over_channels_blocks(opset, keepdims):
    b = GraphBuilder(seed=91, opset=opset)
    x = b.input("x", [1, 3, 6, 6])
    a = b.conv(x, 3, C)
    red = _axes_node(b, "ReduceMean", a, [1], keepdims, opset)
    m = b.model([b.op("Relu", [red])])
    an = onnxprune.analyze(m)
    assert any("reduces over the channel axis 1" in why and producer(m, red).name in why
               for why in group_for(an, m, a).blocked_by)
    prune_ok(m, ratio=0.5, expect_removed=False)


@pytest.mark.parametrize("opset", [13, 18])
def test_reduce_without_axes_reduces_everything(opset):
    b = GraphBuilder(seed=92, opset=opset)
    x = b.input("x", [1, 3, 6, 6])
    a = b.conv(x, 3, C)
    red = b.op("ReduceMean", [a], keepdims=1)
    m = b.model([b.op("Add", [red, b.conv(x, 3, 1)])])
    an = onnxprune.analyze(m)
    assert any("reduces over the channel axis" in why for why in group_for(an, m, a).blocked_by)
    prune_ok(m, ratio=0.5, expect_removed=False)


def test_reduce_noop_with_empty_axes_passes_everything():
    b = GraphBuilder(seed=93, opset=18)
    x = b.input("x", [1, 3, 6, 6])
    a = b.conv(x, 3, C)
    red = b.op("ReduceSum", [a, b.const(np.array([], dtype=np.int64), "axes", dtype=np.int64)],
               keepdims=1, noop_with_empty_axes=1)
    y = b.conv(red, C, 4)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert input_shape(r.model, y, 1) == (4, 4, 3, 3)
    assert_ratio0_identical(m)


def test_reduce_channels_last_over_time_renumbers_axes():
    """[1, T, C] MatMul features, mean over T with keepdims=0 -> [1, C] -> Gemm."""
    b = GraphBuilder(seed=94, opset=13)
    x = b.input("x", [1, 5, 6])
    h = b.matmul(x, 6, C)
    red = b.op("ReduceMean", [b.op("Relu", [h])], axes=[1], keepdims=0)
    y = b.gemm(red, C, 3)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert input_shape(r.model, h, 1) == (6, 4)
    assert input_shape(r.model, y, 1) == (4, 3)
    assert_ratio0_identical(m)


@pytest.mark.parametrize("axis,blocked", [(1, True), (2, False)])
def test_argmax(axis, blocked):
    b = GraphBuilder(seed=95, opset=13)
    x = b.input("x", [1, 3, 6, 6])
    a = b.conv(x, 3, C)
    am = b.op("ArgMax", [a], axis=axis, keepdims=1)
    fam = b.op("Cast", [am], to=TensorProto.FLOAT)
    y = b.conv(fam, 1 if blocked else C, 2)
    m = b.model([y])
    an = onnxprune.analyze(m)
    g = group_for(an, m, a)
    assert g.prunable is (not blocked)
    prune_ok(m, ratio=0.5, expect_removed=not blocked)

