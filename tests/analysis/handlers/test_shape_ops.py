"""Data-movement handlers: Transpose, Squeeze/Unsqueeze, Reshape/Flatten, Concat, Slice, Split,
Pad, Gather, Shape. Attribute-vs-input forms are checked at the opsets where they change."""

import numpy as np
import pytest

import onnxprune
from onnx import TensorProto, helper
from builders import GraphBuilder, assert_ratio0_identical
from prune_checks import attr_of, group_for, input_shape, input_value, producer, prune_ok

C = 8
OPSETS = (9, 11, 13, 17, 21)


def ir_for(opset):
    return 10 if opset >= 21 else 8


def _start(seed, opset=13, shape=(1, 3, 6, 6)):
    b = GraphBuilder(seed=seed, opset=opset)
    return b, b.input("x", list(shape))


# ---- Transpose ---------------------------------------------------------------------------------

def test_transpose_round_trip_nhwc():
    b, x = _start(100)
    a = b.conv(x, 3, C)
    t = b.op("Transpose", [a], perm=[0, 2, 3, 1])
    s = b.op("Mul", [t, b.const(b.rng.uniform(0.5, 1.5, C), "scale")])   # per-channel in NHWC
    back = b.op("Transpose", [s], perm=[0, 3, 1, 2])
    y = b.conv(back, C, 4)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert input_shape(r.model, s, 1) == (4,)
    assert input_shape(r.model, y, 1) == (4, 4, 3, 3)
    assert_ratio0_identical(m)


# ---- Squeeze / Unsqueeze -------------------------------------------------------------------------

@pytest.mark.parametrize("opset", OPSETS)
def test_squeeze_then_gemm_and_unsqueeze_back(opset):
    """GAP -> Squeeze [2, 3] -> Gemm -> Unsqueeze [2, 3] -> 1x1 Conv: axes as attribute before
    opset 13, as an input from 13."""
    b, x = _start(101, opset)
    a = b.conv(x, 3, C)
    gap = b.op("GlobalAveragePool", [b.op("Relu", [a])])
    if opset >= 13:
        sq = b.op("Squeeze", [gap, b.const(np.array([2, 3]), "axes", dtype=np.int64)])
    else:
        sq = b.op("Squeeze", [gap], axes=[2, 3])
    h = b.gemm(sq, C, 6, trans_b=True)
    if opset >= 13:
        un = b.op("Unsqueeze", [b.op("Relu", [h]), b.const(np.array([-1, 2]), "axes", dtype=np.int64)])
    else:
        un = b.op("Unsqueeze", [b.op("Relu", [h])], axes=[2, 3])
    y = b.conv(un, 6, 2, k=1)
    m = b.model([y], ir_version=ir_for(opset))
    r = prune_ok(m, ratio=0.5)
    assert group_for(r, m, a).prunable and group_for(r, m, h).prunable
    assert input_shape(r.model, h, 1) == (3, 4)
    assert input_shape(r.model, y, 1) == (2, 3, 1, 1)
    assert_ratio0_identical(m)


def test_squeeze_without_axes_squeezes_all_unit_dims():
    b, x = _start(102, 11)
    a = b.conv(x, 3, C)
    sq = b.op("Squeeze", [b.op("GlobalMaxPool", [a])])            # [1, C, 1, 1] -> [C]
    un = b.op("Unsqueeze", [sq], axes=[0])                        # [1, C]
    y = b.gemm(un, C, 3)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert input_shape(r.model, y, 1) == (4, 3)
    assert_ratio0_identical(m)


# ---- Reshape / Flatten ---------------------------------------------------------------------------

@pytest.mark.parametrize("axis", [1, 2, -1])
def test_flatten_axis(axis):
    """Flatten at axis 1 gives [1, C*H*W] (channel blocks of 16 columns); at 2 gives [C, H*W]
    (one row per channel); at -1 gives [C*H, W] (blocks of 4 rows), read by a left MatMul."""
    b, x = _start(103, 13, (1, 3, 4, 4))
    a = b.conv(x, 3, C)
    f = b.op("Flatten", [b.op("Relu", [a])], axis=axis)
    if axis == 1:
        y = b.gemm(f, C * 16, 3)
    else:
        rows = C if axis == 2 else C * 4
        y = b.op("MatMul", [b.const(b.weight(3, rows)), f])
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    keep = r.plan.groups[group_for(r, m, a).name]
    w = input_value(m, y, 1 if axis == 1 else 0)
    if axis == 1:
        np.testing.assert_array_equal(input_value(r.model, y, 1), w[[c * 16 + p for c in keep for p in range(16)]])
    elif axis == 2:
        np.testing.assert_array_equal(input_value(r.model, y, 0), w[:, keep])
    else:
        np.testing.assert_array_equal(input_value(r.model, y, 0), w[:, [c * 4 + h for c in keep for h in range(4)]])
    assert_ratio0_identical(m)


def test_reshape_splitting_the_channel_axis_prunes_whole_rows():
    """[1,8,4,4] -> [1,2,4,16] splits the 8 channels into 2 rows of 4 (as heads x head_dim):
    only whole rows may go, or the tensor would not stay rectangular."""
    b, x = _start(104, 13, (1, 3, 4, 4))
    a = b.conv(x, 3, C)
    rs = b.op("Reshape", [a, b.const(np.array([1, 2, 4, 16]), "shape", dtype=np.int64)])
    back = b.op("Reshape", [b.op("Relu", [rs]), b.const(np.array([1, C, 4, 4]), "shape", dtype=np.int64)])
    m = b.model([b.conv(back, C, 3)])
    group = group_for(onnxprune.analyze(m), m, a)
    assert group.size == 2 and group.unit == "heads" and group.prunable
    r = prune_ok(m, ratio=0.5, round_to=1)
    assert input_value(r.model, a, 1).shape[0] == C // 2
    assert list(input_value(r.model, rs, 1)) == [1, 1, 4, 16]


def test_reshape_with_zero_copies_the_channel_dim():
    """target [0, 0, -1]: 0 copies the input's channel dim, so nothing needs rewriting."""
    b, x = _start(105, 13, (1, 3, 4, 4))
    a = b.conv(x, 3, C)
    rs = b.op("Reshape", [b.op("Relu", [a]), b.const(np.array([0, 0, -1]), "shape", dtype=np.int64)])
    y = b.op("Conv", [rs, b.const(b.weight(2, C, 1))], kernel_shape=[1])
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert input_value(r.model, rs, 1).tolist() == [0, 0, -1]
    assert input_shape(r.model, y, 1) == (2, 4, 1)
    assert_ratio0_identical(m)


def test_reshape_shape_constant_shared_by_two_reshapes_of_different_groups():
    b, x = _start(106, 13, (1, 3, 4, 4))
    shape = b.const(np.array([1, C, 16]), "shape", dtype=np.int64)
    a1 = b.conv(x, 3, C)
    a2 = b.conv(x, 3, C)
    r1 = b.op("Reshape", [a1, shape])
    r2 = b.op("Reshape", [a2, shape])
    y1 = b.op("Conv", [r1, b.const(b.weight(2, C, 1))], kernel_shape=[1])
    y2 = b.op("Conv", [r2, b.const(b.weight(2, C, 1))], kernel_shape=[1])
    m = b.model([y1, y2])
    r = prune_ok(m, ratio=0.5)
    assert input_value(r.model, r1, 1).tolist() == [1, 4, 16]
    assert input_value(r.model, r2, 1).tolist() == [1, 4, 16]
    assert_ratio0_identical(m)


# ---- Concat -------------------------------------------------------------------------------------

@pytest.mark.parametrize("opset", [9, 13])
def test_concat_along_channels_offsets(opset):
    """Two branches of 6 and 10 channels concatenated: the consumer's columns are removed at
    each branch's own offsets."""
    b, x = _start(107, opset)
    a1 = b.conv(x, 3, 6)
    a2 = b.conv(x, 3, 10)
    cat = b.op("Concat", [b.op("Relu", [a1]), b.op("Relu", [a2])], axis=1)
    y = b.conv(cat, 16, 4)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    g1, g2 = group_for(r, m, a1), group_for(r, m, a2)
    assert g1 is not g2 and g1.prunable and g2.prunable
    k1, k2 = r.plan.groups[g1.name], r.plan.groups[g2.name]
    assert (len(k1), len(k2)) == (3, 5)
    cols = k1 + [6 + k for k in k2]
    np.testing.assert_array_equal(input_value(r.model, y, 1), input_value(m, y, 1)[:, cols])
    assert_ratio0_identical(m)


def test_concat_with_a_graph_input_keeps_its_channels():
    b, x = _start(108)
    a = b.conv(x, 3, C)
    cat = b.op("Concat", [x, a], axis=1)                          # 3 fixed + 8 prunable
    y = b.conv(cat, 3 + C, 4)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    keep = r.plan.groups[group_for(r, m, a).name]
    cols = [0, 1, 2] + [3 + k for k in keep]
    np.testing.assert_array_equal(input_value(r.model, y, 1), input_value(m, y, 1)[:, cols])
    assert_ratio0_identical(m)


@pytest.mark.parametrize("axis", [2, 3, -1])
def test_concat_along_another_axis_couples_channels(axis):
    b, x = _start(109)
    a1 = b.conv(x, 3, C)
    a2 = b.conv(x, 3, C)
    cat = b.op("Concat", [a1, a2], axis=axis)
    y = b.conv(b.op("Relu", [cat]), C, 4)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    g = group_for(r, m, a1)
    assert g is group_for(r, m, a2) and g.prunable and len(g.sources) == 2
    keep = r.plan.groups[g.name]
    np.testing.assert_array_equal(input_value(r.model, a1, 1), input_value(m, a1, 1)[keep])
    np.testing.assert_array_equal(input_value(r.model, a2, 1), input_value(m, a2, 1)[keep])
    assert_ratio0_identical(m)


def test_concat_along_time_with_constant_and_runtime_operands():
    b, x = _start(110)
    a = b.conv(x, 3, C)
    pad = b.const(b.rng.standard_normal((1, C, 2, 6)), "pad")
    cat = b.op("Concat", [a, pad], axis=2)                        # constant sliced with channels
    y = b.conv(cat, C, 4)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert input_shape(r.model, cat, 1) == (1, 4, 2, 6)
    assert_ratio0_identical(m)

    b, x = _start(111)
    a = b.conv(x, 3, C)
    z = b.input("z", [1, C, 2, 6])
    cat = b.op("Concat", [a, z], axis=2)                          # graph input cannot shrink
    m = b.model([b.conv(cat, C, 4)])
    an = onnxprune.analyze(m)
    assert any("cannot shrink" in why and producer(m, cat).name in why for why in group_for(an, m, a).blocked_by)
    prune_ok(m, ratio=0.5, expect_removed=False)


# ---- Slice --------------------------------------------------------------------------------------

def _slice(b, x, opset, starts, ends, axes, steps=None):
    if opset < 10:
        return b.op("Slice", [x], starts=starts, ends=ends, axes=axes)
    ins = [x, b.const(np.array(starts), "st", dtype=np.int64), b.const(np.array(ends), "en", dtype=np.int64),
           b.const(np.array(axes), "ax", dtype=np.int64)]
    if steps is not None:
        ins.append(b.const(np.array(steps), "sp", dtype=np.int64))
    return b.op("Slice", ins)


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("bounds", [(2, 7), (-6, 2**62), (0, -1)])
def test_slice_channels(opset, bounds):
    b, x = _start(112, opset)
    a = b.conv(x, 3, C)
    s = _slice(b, b.op("Relu", [a]), opset, [bounds[0]], [bounds[1]], [1])
    y = b.conv(s, len(range(C)[slice(*bounds)]), 4)
    m = b.model([y], ir_version=ir_for(opset))
    r = prune_ok(m, ratio=0.5)
    keep = r.plan.groups[group_for(r, m, a).name]
    lo, hi, _ = slice(*bounds).indices(C)
    cols = [k - lo for k in keep if lo <= k < hi]
    assert cols, "the slice must keep at least one channel"
    np.testing.assert_array_equal(input_value(r.model, y, 1), input_value(m, y, 1)[:, cols])
    assert_ratio0_identical(m)


def test_slice_spatial_axis_passes_channels_and_keeps_bounds():
    b, x = _start(113, 13)
    a = b.conv(x, 3, C)
    s = _slice(b, a, 13, [1], [5], [2])
    y = b.conv(s, C, 4)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert input_value(r.model, s, 1).tolist() == [1]
    assert input_value(r.model, s, 2).tolist() == [5]
    assert input_shape(r.model, y, 1) == (4, 4, 3, 3)
    assert_ratio0_identical(m)


def test_strided_slice_of_channels_blocks():
    b, x = _start(114, 13)
    a = b.conv(x, 3, C)
    s = _slice(b, a, 13, [0], [C], [1], steps=[2])
    m = b.model([b.conv(s, C // 2, 4)])
    an = onnxprune.analyze(m)
    assert any("strided slice" in why and producer(m, s).name in why for why in group_for(an, m, a).blocked_by)
    prune_ok(m, ratio=0.5, expect_removed=False)


def test_two_slices_of_one_tensor_share_bounds_constants():
    """Both Slices read the same axes constant; their starts/ends are rewritten separately."""
    b, x = _start(115, 13)
    a = b.conv(x, 3, C)
    axes = b.const(np.array([1]), "ax", dtype=np.int64)
    mid = b.const(np.array([4]), "mid", dtype=np.int64)
    s1 = b.op("Slice", [a, b.const(np.array([0]), "st", dtype=np.int64), mid, axes])
    s2 = b.op("Slice", [a, mid, b.const(np.array([C]), "en", dtype=np.int64), axes])
    y = b.op("Add", [b.conv(s1, 4, 2), b.conv(s2, 4, 2)])
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    keep = r.plan.groups[group_for(r, m, a).name]
    lo = sum(1 for k in keep if k < 4)
    assert input_value(r.model, s1, 2).tolist() == [lo]
    assert input_value(r.model, s2, 1).tolist() == [lo]
    assert_ratio0_identical(m)


# ---- Split --------------------------------------------------------------------------------------

@pytest.mark.parametrize("opset,form", [(11, "attr"), (11, "equal"), (13, "input"), (13, "equal"),
                                        (18, "num_outputs"), (18, "input"), (21, "num_outputs")])
def test_split_channels(opset, form):
    b, x = _start(116, opset)
    a = b.conv(x, 3, C)
    sizes = [3, 5] if form in ("attr", "input") else [4, 4]
    h = b.op("Relu", [a])
    if form == "attr":
        parts = b.op("Split", [h], n_out=2, axis=1, split=sizes)
    elif form == "input":
        parts = b.op("Split", [h, b.const(np.array(sizes), "split", dtype=np.int64)], n_out=2, axis=1)
    elif form == "num_outputs":
        parts = b.op("Split", [h], n_out=2, axis=1, num_outputs=2)
    else:
        parts = b.op("Split", [h], n_out=2, axis=1)
    y1 = b.conv(parts[0], sizes[0], 2)
    y2 = b.conv(parts[1], sizes[1], 2)
    m = b.model([b.op("Add", [y1, y2])], ir_version=ir_for(opset))
    r = prune_ok(m, ratio=0.5)
    keep = r.plan.groups[group_for(r, m, a).name]
    new_sizes = [sum(1 for k in keep if k < sizes[0]), sum(1 for k in keep if k >= sizes[0])]
    assert min(new_sizes) >= 1
    assert input_shape(r.model, y1, 1)[1] == new_sizes[0]
    assert input_shape(r.model, y2, 1)[1] == new_sizes[1]
    split_node = producer(r.model, parts[0])
    if opset < 13:
        assert attr_of(r.model, parts[0], "split") == new_sizes
    else:
        assert input_value(r.model, parts[0], 1).tolist() == new_sizes
        assert attr_of(r.model, parts[0], "num_outputs") is None
    assert split_node.op_type == "Split"
    assert_ratio0_identical(m)


@pytest.mark.parametrize("op", ["Split", "Slice"])
def test_a_part_never_loses_every_channel(op):
    """The two weakest channels go to their own part; at ratio 0.75 the plan would keep only
    strong channels, so it must add back the best channel of the weak part."""
    b, x = _start(125, 13)
    w = b.weight(C, 3, 3, 3)
    w[:2] *= 1e-3
    a = b.op("Conv", [x, b.const(w)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    if op == "Split":
        weak, strong = b.op("Split", [a, b.const(np.array([2, 6]), "split", dtype=np.int64)], n_out=2, axis=1)
        m = b.model([b.op("Add", [b.conv(weak, 2, 2), b.conv(strong, 6, 2)])])
    else:
        weak = _slice(b, a, 13, [0], [2], [1])
        m = b.model([b.op("Add", [b.conv(weak, 2, 2), b.conv(a, C, 2)])])
    r = prune_ok(m, ratio=0.75)
    keep = r.plan.groups[group_for(r, m, a).name]
    assert len(keep) == 3 and sum(1 for k in keep if k < 2) == 1
    assert input_shape(r.model, a, 1) == (3, 3, 3, 3)
    if op == "Split":
        assert input_value(r.model, weak, 1).tolist() == [1, 2]
    else:
        assert input_value(r.model, weak, 1).tolist() == [0] and input_value(r.model, weak, 2).tolist() == [1]


def test_split_along_time_passes_channels_to_every_part():
    b, x = _start(117, 13)
    a = b.conv(x, 3, C)
    p1, p2 = b.op("Split", [a, b.const(np.array([2, 4]), "split", dtype=np.int64)], n_out=2, axis=2)
    y = b.op("Concat", [b.conv(p1, C, 3), b.conv(p2, C, 3)], axis=2)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert input_value(r.model, p1, 1).tolist() == [2, 4]
    assert_ratio0_identical(m)


# ---- Pad ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("opset", [9, 11, 13, 18, 21])
def test_pad_spatial_passes_channels(opset):
    b, x = _start(118, opset)
    a = b.conv(x, 3, C)
    pads = [0, 0, 1, 2, 0, 0, 2, 1]
    if opset < 11:
        p = b.op("Pad", [a], pads=pads)
    else:
        p = b.op("Pad", [a, b.const(np.array(pads), "pads", dtype=np.int64)])
    y = b.conv(p, C, 4)
    m = b.model([y], ir_version=ir_for(opset))
    r = prune_ok(m, ratio=0.5)
    assert input_shape(r.model, y, 1) == (4, 4, 3, 3)
    assert_ratio0_identical(m)


def test_pad_with_axes_input_opset18():
    b, x = _start(119, 18)
    a = b.conv(x, 3, C)
    p = b.op("Pad", [a, b.const(np.array([1, 1, 2, 2]), "pads", dtype=np.int64), "",
                     b.const(np.array([2, -1]), "axes", dtype=np.int64)])
    y = b.conv(p, C, 4)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert input_shape(r.model, y, 1) == (4, 4, 3, 3)
    assert_ratio0_identical(m)


@pytest.mark.parametrize("opset", [9, 11, 18])
def test_pad_on_the_channel_axis_blocks(opset):
    b, x = _start(120, opset)
    a = b.conv(x, 3, C)
    pads = [0, 1, 0, 0, 0, 0, 0, 0]
    if opset < 11:
        p = b.op("Pad", [a], pads=pads)
    else:
        p = b.op("Pad", [a, b.const(np.array(pads), "pads", dtype=np.int64)])
    y = b.conv(p, C + 1, 4)
    m = b.model([y])
    an = onnxprune.analyze(m)
    assert any("pads the channel axis 1" in why and producer(m, p).name in why
               for why in group_for(an, m, a).blocked_by)
    prune_ok(m, ratio=0.5, expect_removed=False)


# ---- Gather / Shape -----------------------------------------------------------------------------

@pytest.mark.parametrize("axis,blocked", [(1, True), (2, False)])
def test_gather(axis, blocked):
    b, x = _start(121, 13)
    a = b.conv(x, 3, C)
    g = b.op("Gather", [a, b.const(np.array([0, 2, 3]), "idx", dtype=np.int64)], axis=axis)
    y = b.conv(g, 3 if blocked else C, 4)
    m = b.model([y])
    r = prune_ok(m, ratio=0.5, expect_removed=not blocked)
    grp = group_for(r, m, a)
    assert grp.prunable is (not blocked)
    if blocked:
        assert any(producer(m, g).name in why for why in grp.blocked_by)
    else:
        assert input_shape(r.model, y, 1) == (4, 4, 3, 3)
        assert_ratio0_identical(m)


def test_gather_with_scalar_index_drops_an_axis():
    b, x = _start(122, 13)
    a = b.conv(x, 3, C)
    g = b.op("Gather", [a, b.const(np.array(1), "idx", dtype=np.int64)], axis=2)   # [1, C, 6]
    y = b.op("Conv", [g, b.const(b.weight(2, C, 1))], kernel_shape=[1])
    m = b.model([y])
    r = prune_ok(m, ratio=0.5)
    assert input_shape(r.model, y, 1) == (2, 4, 1)


def test_shape_of_a_tracked_tensor_read_whole_blocks():
    """Shape(a) used as the target of a Reshape reads a's channel count: a cannot shrink."""
    b, x = _start(123, 13)
    a = b.conv(x, 3, C)
    other = b.conv(x, 3, C)
    sh = b.op("Shape", [a])
    rs = b.op("Reshape", [b.op("Relu", [other]), sh])
    y = b.conv(rs, C, 2)
    m = b.model([y])
    m.graph.output[0].CopyFrom(helper.make_tensor_value_info(y, TensorProto.FLOAT, [1, 2, 6, 6]))
    an = onnxprune.analyze(m)
    assert any(producer(m, sh).name in why for why in group_for(an, m, a).blocked_by)
    r = prune_ok(m, ratio=0.5, expect_removed=False)
    assert input_shape(r.model, a, 1) == (C, 3, 3, 3)


def test_shape_of_a_tracked_tensor_as_graph_output_blocks():
    b, x = _start(124, 13)
    a = b.conv(x, 3, C)
    sh = b.op("Shape", [a])
    y = b.conv(b.op("Relu", [a]), C, 2)
    m = b.model([y, sh])
    an = onnxprune.analyze(m)
    assert any(producer(m, sh).name in why for why in group_for(an, m, a).blocked_by)
    prune_ok(m, ratio=0.5, expect_removed=False)


def test_shape_entries_followed_through_gather_permutation_and_slice():
    """tf2onnx reads the batch size as Shape -> Gather([1, 0, 2]) -> Slice(0:1): the channel
    entry is moved but never computed with, so the channels stay prunable. Slicing out the
    channel entry instead must block."""
    import numpy as np
    from onnxprune import analyze
    from builders import GraphBuilder

    for start, prunable in ((1, True), (0, False)):  # position 1 holds entry 0 (batch), 0 holds 1 (channels)
        b = GraphBuilder(seed=150, opset=17)
        x = b.input("x", [1, 3, 8, 8])
        a = b.conv(x, 3, 8)
        perm = b.op("Gather", [b.op("Shape", [a]), b.const(np.array([1, 0, 2, 3]), "perm", np.int64)], axis=0)
        part = b.op("Slice", [perm, b.const(np.array([start]), "s", np.int64), b.const(np.array([start + 1]), "e", np.int64)])
        shape = b.op("Concat", [part, b.const(np.array([8, 8, 8]), "rest", np.int64)], axis=0)
        y = b.op("Add", [b.conv(a, 8, 8, k=1), b.op("ConstantOfShape", [shape])])
        m = b.model([y])
        groups = analyze(m).groups
        first = next(g for g in groups if a in [s.output for s in g.sources])
        assert first.prunable is prunable, first.blocked_by
