"""Computed shapes: Reshape targets built at run time from Shape -> Gather -> Unsqueeze -> Concat
(dynamic-batch attention as TorchScript and dynamo export it). Heads prune when every entry on a
channel axis is -1, a constant the rewrite changes, or a channel count that shrinks with it."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from builders import GraphBuilder, assert_ratio0_identical
from onnxprune import analyze
from onnxprune.core.runtime import make_session
from prune_checks import prune_ok

S, E, HEADS, D = 5, 32, 4, 8
I64 = np.int64


def _dim(b, x, k):
    """Unsqueeze(Gather(Shape(x), k)): one entry read at run time."""
    g = b.op("Gather", [b.op("Shape", [x]), b.const(np.array(k), "i", dtype=I64)], axis=0)
    return b.op("Unsqueeze", [g, b.const(np.array([0]), "ax", dtype=I64)])


def attention(heads_entry="minus1", fold="none", scale_from_shape=False, seed=300):
    """x [B, S, 16] -> q/k/v -> heads split by a computed target -> softmax attention -> merge
    -> out projection. heads_entry: what the split target holds on the heads axis ('minus1' or
    the constant 'const'). fold='batch' folds heads into the batch axis for K as the dynamo
    exporter does ([B,H,S,D] -> [B*H,S,D] -> transpose -> back to [B,H,D,S] from Shape slices)."""
    b = GraphBuilder(seed=seed, opset=17)
    x = b.input("x", ["batch", S, 16])
    q, k, v = (b.matmul(x, 16, E) for _ in range(3))
    bsz, seq = _dim(b, x, 0), _dim(b, x, 1)
    heads = [-1] if heads_entry == "minus1" else [HEADS]
    rest = [D] if heads_entry == "minus1" else [-1]
    target = b.op("Concat", [bsz, seq, b.const(np.array(heads), "h", dtype=I64),
                             b.const(np.array(rest), "d", dtype=I64)], axis=0)
    q4, k4, v4 = (b.op("Transpose", [b.op("Reshape", [t, target])], perm=[0, 2, 1, 3]) for t in (q, k, v))
    if fold == "batch":
        shape = b.op("Shape", [k4])
        tail = b.op("Slice", [shape, b.const(np.array([2]), "s", dtype=I64), b.const(np.array([4]), "e", dtype=I64)])
        k3 = b.op("Reshape", [k4, b.op("Concat", [b.const(np.array([-1]), "m", dtype=I64), tail], axis=0)])
        k3t = b.op("Transpose", [k3], perm=[0, 2, 1])
        head = b.op("Slice", [shape, b.const(np.array([0]), "s", dtype=I64), b.const(np.array([2]), "e", dtype=I64)])
        d = b.op("Gather", [shape, b.const(np.array([3]), "i", dtype=I64)], axis=0)
        s = b.op("Gather", [shape, b.const(np.array([2]), "i", dtype=I64)], axis=0)
        kt = b.op("Reshape", [k3t, b.op("Concat", [head, d, s], axis=0)])
    else:
        kt = b.op("Transpose", [k4], perm=[0, 1, 3, 2])
    scores = b.op("MatMul", [q4, kt])
    if scale_from_shape:  # 1/sqrt(embed) computed from q's channel count: changes when q shrinks
        width = b.op("Cast", [b.op("Gather", [b.op("Shape", [q]), b.const(np.array(2), "i", dtype=I64)], axis=0)],
                     to=TensorProto.FLOAT)
        scores = b.op("Div", [scores, b.op("Sqrt", [width])])
    ctx = b.op("MatMul", [b.op("Softmax", [scores], axis=-1), v4])
    merged = b.op("Reshape", [b.op("Transpose", [ctx], perm=[0, 2, 1, 3]),
                              b.op("Concat", [bsz, seq, b.const(np.array([-1]), "m", dtype=I64)], axis=0)])
    y = b.matmul(merged, E, 8)
    return b.model([y])


SHAPES = {"x": [2, S, 16]}


@pytest.mark.parametrize("heads_entry", ["minus1", "const"])
@pytest.mark.parametrize("fold", ["none", "batch"])
def test_heads_prune_through_computed_targets(heads_entry, fold):
    m = attention(heads_entry, fold)
    r = prune_ok(m, ratio=0.5, shapes=SHAPES)
    heads = [g for g in r.analysis.groups if g.is_heads]
    assert len(heads) == 1 and heads[0].prunable and heads[0].size == HEADS, [g.blocked_by for g in r.analysis.groups]
    w = {t.name: t for t in r.model.graph.initializer}
    q_proj = r.model.graph.node[0]
    assert tuple(w[q_proj.input[1]].dims) == (16, E // 2)
    # the pruned model still takes any batch size
    out = make_session(r.model).run(None, {"x": np.ones((5, S, 16), np.float32)})[0]
    assert out.shape == (5, S, 8)
    assert_ratio0_identical(m, shapes=SHAPES)


def test_constant_head_count_is_changed_for_its_reshapes_only():
    """The split target is shared by Q, K and V: a constant head count is changed by an Add of a
    constant delta just before each Reshape, never in the shared Concat."""
    m = attention("const")
    r = prune_ok(m, ratio=0.5, shapes=SHAPES)
    adds = [n for n in r.model.graph.node if n.op_type == "Add" and n.name.endswith("_add")]
    assert len(adds) == 3
    deltas = {tuple(onnx.numpy_helper.to_array(t).tolist()) for t in r.model.graph.initializer
              if t.name in {n.input[1] for n in adds}}
    assert deltas == {(0, 0, -HEADS // 2, 0)}


def test_channel_count_read_into_arithmetic_blocks():
    """1/sqrt(width) computed from q's channel count would change: q's group stays blocked and
    the reason names the Shape and the op that computes with it."""
    a = analyze(attention(scale_from_shape=True), shapes=SHAPES)
    heads = next(g for g in a.groups if g.is_heads or g.size == E and "Shape" in " ".join(g.blocked_by))
    assert not heads.prunable
    assert any("reads the channel count of axis 2, and Cast" in r for r in heads.blocked_by), heads.blocked_by


@pytest.mark.parametrize("other", ["input", "other_group"])
def test_target_entry_read_from_a_fixed_width(other):
    """A target whose channel entry is the width of another tensor (nn.MultiheadAttention reads
    embed_dim from its input): that width must stay, so the tensor it is read from is blocked
    (the graph input's is fixed anyway), and the rewrite adds the difference to the entry."""
    b = GraphBuilder(seed=301, opset=17)
    x = b.input("x", ["batch", 4, E])
    h = b.op("Relu", [b.matmul(x, E, E)])
    o = b.input("y", ["batch", 4, E]) if other == "input" else b.op("Relu", [b.matmul(x, E, E)])
    target = b.op("Concat", [_dim(b, x, 0), _dim(b, x, 1), _dim(b, o, 2)], axis=0)
    r = b.op("Reshape", [h, target])
    outs = [b.matmul(r, E, 8)] + ([b.matmul(o, E, 8)] if other != "input" else [])
    m = b.model(outs)
    shapes = {"x": [2, 4, E], **({"y": [2, 4, E]} if other == "input" else {})}
    res = prune_ok(m, ratio=0.5, shapes=shapes)
    groups = [g for g in res.analysis.groups if g.size == E]
    assert sum(g.prunable for g in groups) == 1
    if other == "other_group":
        blocked = next(g for g in groups if not g.prunable)
        assert any("reads the channel count of axis 2, and Reshape" in r for r in blocked.blocked_by), blocked.blocked_by
    assert any(n.op_type == "Add" and n.name.endswith("_add") for n in res.model.graph.node)


def _group_norm(groups, c=16):
    """Conv -> GroupNorm as TorchScript decomposes it: Reshape(N, G, -1) -> InstanceNorm ->
    Reshape(Shape(x)) -> per-channel Mul/Add -> Relu -> Conv."""
    b = GraphBuilder(seed=302, opset=17)
    x = b.input("x", ["batch", 8, 6, 6])
    a = b.conv(x, 8, c)
    g = b.op("Reshape", [a, b.const(np.array([0, groups, -1]), "t", dtype=I64)])
    n = b.op("InstanceNormalization", [g, b.const(np.ones(groups), "one"), b.const(np.zeros(groups), "zero")])
    back = b.op("Reshape", [n, b.op("Shape", [a])])
    aff = b.op("Add", [b.op("Mul", [back, b.const(b.rng.uniform(0.5, 1.5, (c, 1, 1)), "g")]),
                       b.const(b.rng.normal(0, 0.1, (c, 1, 1)), "be")])
    return b.model([b.conv(b.op("Relu", [aff]), c, 4)])


@pytest.mark.parametrize("groups", [16, 4])
def test_decomposed_group_norm(groups):
    """G == C: per channel. G < C: whole groups go and the first Reshape's G shrinks."""
    m = _group_norm(groups)
    r = prune_ok(m, ratio=0.5, shapes={"x": [2, 8, 6, 6]})
    conv = next(n for n in r.model.graph.node if n.op_type == "Conv")
    w = {t.name: t for t in r.model.graph.initializer}
    assert tuple(w[conv.input[1]].dims)[0] == 8
    inorm = next(n for n in r.model.graph.node if n.op_type == "InstanceNormalization")
    assert tuple(w[inorm.input[1]].dims) == (groups // 2,)
    assert_ratio0_identical(m, shapes={"x": [2, 8, 6, 6]})


def test_group_norm_removes_whole_groups():
    a = analyze(_group_norm(4), shapes={"x": [1, 8, 6, 6]})
    g = next(g for g in a.groups if g.prunable)
    assert g.size == 4  # four groups of four channels: the unit is the group


def _conv1d(b, x, cin, cout, k=3):
    w = b.const(b.weight(cout, cin, k))
    return b.op("Conv", [x, w, b.const(b.rng.normal(0, 0.1, cout), "b")], kernel_shape=[k], pads=[k // 2, k // 2])


def test_time_slice_and_same_padding_computed_from_the_length():
    """Slice ends and Pad amounts computed from the time length leave the channel axis alone."""
    b = GraphBuilder(seed=303, opset=17)
    x = b.input("x", ["batch", 4, "time"])
    h = b.op("Relu", [_conv1d(b, x, 4, 8)])
    t = b.op("Gather", [b.op("Shape", [h]), b.const(np.array([2]), "i", dtype=I64)], axis=0)
    end = b.op("Sub", [t, b.const(np.array([1]), "one", dtype=I64)])
    sl = b.op("Slice", [h, b.const(np.array([0]), "s", dtype=I64), end, b.const(np.array([2]), "ax", dtype=I64)])
    pad_end = b.op("Mod", [t, b.const(np.array([2]), "two", dtype=I64)])
    pads = b.op("Concat", [b.const(np.array([0, 0, 1, 0, 0]), "p", dtype=I64), pad_end], axis=0)
    padded = b.op("Pad", [sl, pads])
    m = b.model([_conv1d(b, padded, 8, 2)])
    r = prune_ok(m, ratio=0.5, shapes={"x": [2, 4, 11]})
    g = next(g for g in r.analysis.groups if g.size == 8)
    assert g.prunable


def test_expand_as_couples_channels():
    """An SE-style gate expanded to Shape(x) (x.expand_as): the gate's and x's channels go together."""
    b = GraphBuilder(seed=304, opset=17)
    x = b.input("x", ["batch", 4, 6])
    h = b.op("Relu", [_conv1d(b, x, 4, 8)])
    gate = b.op("Sigmoid", [_conv1d(b, b.op("ReduceMean", [h], axes=[2], keepdims=1), 8, 8, k=1)])
    y = b.op("Mul", [h, b.op("Expand", [gate, b.op("Shape", [h])])])
    m = b.model([_conv1d(b, y, 8, 2)])
    r = prune_ok(m, ratio=0.5, shapes={"x": [2, 4, 6]})
    g = next(g for g in r.analysis.groups if g.size == 8 and len(g.sources) == 2)
    assert g.prunable


def _chunk_bounds(b, h, pieces):
    """torch.chunk(h, pieces, dim=1) as TorchScript exports it: each piece's start and end
    computed from Shape(h)[1] (`(C + n - 1) // n * i`)."""
    c = b.op("Gather", [b.op("Shape", [h]), b.const(np.array([1]), "i", dtype=I64)], axis=0)
    size = b.op("Div", [b.op("Add", [c, b.const(np.array([pieces - 1]), "a", dtype=I64)]),
                        b.const(np.array([pieces]), "n", dtype=I64)])
    return [b.op("Mul", [size, b.const(np.array([i]), "k", dtype=I64)]) for i in range(pieces + 1)]


def res2net(from_time=False):
    """conv 4->12, chunk into 3 pieces of 4: y0 = p0, y1 = conv(p1), y2 = conv(p2 + y1), concat,
    conv 12->2 (ECAPA's Res2Net block). from_time: the bounds read the time length instead."""
    b = GraphBuilder(seed=305, opset=17)
    x = b.input("x", ["batch", 4, "time"])
    h = b.op("Relu", [_conv1d(b, x, 4, 12)])
    bounds = _chunk_bounds(b, h if not from_time else b.op("Transpose", [h], perm=[0, 2, 1]), 3)
    axis = b.const(np.array([1]), "ax", dtype=I64)
    p = [b.op("Slice", [h, bounds[i], bounds[i + 1], axis]) for i in range(3)]
    y1 = b.op("Relu", [_conv1d(b, p[1], 4, 4)])
    y2 = b.op("Relu", [_conv1d(b, b.op("Add", [p[2], y1]), 4, 4)])
    return b.model([_conv1d(b, b.op("Concat", [p[0], y1, y2], axis=1), 12, 2)])


def test_chunk_pieces_added_to_conv_outputs_prune():
    """Slice bounds computed from a channel count (fixed whatever the input shapes) become the
    pruned constants; each piece keeps its own count and the piece added to a conv output goes
    with that conv's channels."""
    m = res2net()
    r = prune_ok(m, ratio=0.5, shapes={"x": [2, 4, 9]})
    assert all(g.prunable for g in r.analysis.groups if g.size > 2), [g.blocked_by for g in r.analysis.groups]
    slices = [n for n in r.model.graph.node if n.op_type == "Slice"]
    consts = {t.name for t in r.model.graph.initializer}
    assert all(n.input[1] in consts and n.input[2] in consts for n in slices)
    out = make_session(r.model).run(None, {"x": np.ones((3, 4, 13), np.float32)})[0]
    assert out.shape == (3, 2, 13)
    assert_ratio0_identical(m, shapes={"x": [2, 4, 9]})


def test_chunk_bounds_from_the_time_length_block():
    a = analyze(res2net(from_time=True), shapes={"x": [2, 4, 12]})
    g = next(g for g in a.groups if g.size == 12)
    assert not g.prunable and any("slice bounds on the channel axis" in r for r in g.blocked_by)


@pytest.mark.parametrize("axis_repeated", [2, 1])
def test_tile_repeats_time_not_channels(axis_repeated):
    """Statistics pooling's `mean.unsqueeze(2).repeat(1, 1, T)`: repeats computed from the time
    length pass channels through; repeating the channel axis blocks."""
    b = GraphBuilder(seed=306, opset=17)
    x = b.input("x", ["batch", 4, "time"])
    h = b.op("Relu", [_conv1d(b, x, 4, 8)])
    mean = b.op("ReduceMean", [h], axes=[2], keepdims=1)
    t = b.op("Gather", [b.op("Shape", [h]), b.const(np.array([2]), "i", dtype=I64)], axis=0)
    one = b.const(np.array([1]), "one", dtype=I64)
    reps = b.op("Concat", [one, one, t] if axis_repeated == 2 else [one, b.const(np.array([2]), "two", dtype=I64), t],
                axis=0)
    tiled = b.op("Tile", [mean, reps])
    if axis_repeated == 1:
        tiled = b.op("Slice", [tiled, b.const(np.array([0]), "s", dtype=I64), b.const(np.array([8]), "e", dtype=I64),
                               b.const(np.array([1]), "ax", dtype=I64)])
    m = b.model([_conv1d(b, b.op("Concat", [h, tiled], axis=1), 16, 2, k=1)])
    a = analyze(m, shapes={"x": [2, 4, 7]})
    g = next(g for g in a.groups if g.size == 8)
    if axis_repeated == 2:
        assert g.prunable
        prune_ok(m, ratio=0.5, shapes={"x": [2, 4, 7]})
    else:
        assert any("repeats the channel axis 1" in r for r in g.blocked_by)


def test_torch_pad_list_is_followed():
    """F.pad's pad list as TorchScript exports it: [l, r] + zeros, Reshape(-1, 2), reversed by
    a Slice of step -1, Transpose, flattened. The channel axis' entries come out constant 0."""
    b = GraphBuilder(seed=307, opset=17)
    x = b.input("x", ["batch", 4, "time"])
    h = b.op("Relu", [_conv1d(b, x, 4, 8)])
    t = b.op("Gather", [b.op("Shape", [h]), b.const(np.array([2]), "i", dtype=I64)], axis=0)
    lr = b.op("Concat", [b.op("Mod", [t, b.const(np.array([2]), "two", dtype=I64)]), b.const(np.array([1]), "o", dtype=I64)],
              axis=0)
    zeros = b.op("ConstantOfShape", [b.op("Sub", [b.const(np.array([6]), "six", dtype=I64), b.op("Shape", [lr])])],
                 value=helper.make_tensor("v", TensorProto.INT64, [1], [0]))
    pairs = b.op("Reshape", [b.op("Concat", [lr, zeros], axis=0), b.const(np.array([-1, 2]), "r", dtype=I64)])
    rev = b.op("Slice", [pairs, b.const(np.array([-1]), "s", dtype=I64), b.const(np.array([-(2**63) + 1]), "e", dtype=I64),
                         b.const(np.array([0]), "ax", dtype=I64), b.const(np.array([-1]), "st", dtype=I64)])
    pads = b.op("Reshape", [b.op("Transpose", [rev], perm=[1, 0]), b.const(np.array([-1]), "f", dtype=I64)])
    m = b.model([_conv1d(b, b.op("Pad", [h, pads], mode="reflect"), 8, 2)])
    a = analyze(m, shapes={"x": [2, 4, 9]})
    assert [str(e) for e in a.program.get(pads)][:2] == ["0", "0"]  # batch and channel: constant zeros
    assert next(g for g in a.groups if g.size == 8).prunable
    prune_ok(m, ratio=0.5, shapes={"x": [2, 4, 9]})


@pytest.mark.parametrize("layout", ["batch_major", "heads_major"])
def test_heads_folded_into_the_batch_axis(layout):
    """[B, S, H*D] -> [B*H, S, D] with the entry `dim(x, 0) * H` computed at run time. Batch-major
    (position b*H + h, nn.MultiheadAttention) prunes, the entry becoming `dim(x, 0) * H'`;
    heads-major (h*B + b) does not follow the entry and blocks."""
    b = GraphBuilder(seed=308, opset=17)
    x = b.input("x", ["batch", S, 16])
    q, k, v = (b.matmul(x, 16, E) for _ in range(3))
    bh = b.op("Mul", [_dim(b, x, 0), b.const(np.array([HEADS]), "h", dtype=I64)])
    target = b.op("Concat", [bh, _dim(b, x, 1), b.const(np.array([D]), "d", dtype=I64)], axis=0)

    def fold(t):
        t4 = b.op("Reshape", [t, b.op("Concat", [_dim(b, x, 0), _dim(b, x, 1), b.const(np.array([HEADS, D]), "hd", dtype=I64)],
                                      axis=0)])
        perm = [0, 2, 1, 3] if layout == "batch_major" else [2, 0, 1, 3]
        return b.op("Reshape", [b.op("Transpose", [t4], perm=perm), target])

    q3, k3, v3 = fold(q), fold(k), fold(v)
    ctx = b.op("MatMul", [b.op("Softmax", [b.op("MatMul", [q3, b.op("Transpose", [k3], perm=[0, 2, 1])])], axis=-1), v3])
    back = b.op("Reshape", [ctx, b.op("Concat", [_dim(b, x, 0), b.const(np.array([HEADS]), "h", dtype=I64), _dim(b, x, 1),
                                                  b.const(np.array([D]), "d", dtype=I64)], axis=0)])
    merged = b.op("Reshape", [b.op("Transpose", [back], perm=[0, 2, 1, 3]),
                              b.op("Concat", [_dim(b, x, 0), _dim(b, x, 1), b.const(np.array([-1]), "m", dtype=I64)], axis=0)])
    m = b.model([b.matmul(merged, E, 8)])
    if layout == "heads_major":
        a = analyze(m, shapes=SHAPES)
        assert not any(g.is_heads and g.prunable for g in a.groups)
        return
    r = prune_ok(m, ratio=0.5, shapes=SHAPES)
    assert any(g.is_heads and g.prunable for g in r.analysis.groups), [g.blocked_by for g in r.analysis.groups]
    out = make_session(r.model).run(None, {"x": np.ones((3, S, 16), np.float32)})[0]
    assert out.shape == (3, S, 8)
