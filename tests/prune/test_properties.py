"""Property tests over random small CNNs, and a 'dead units' oracle whose answer is known
independently of the analysis.

Random graphs: Conv (group 1 or depthwise), BatchNormalization, Relu, residual Add, Concat of two
branches, MaxPool, then a head (GlobalAveragePool+Flatten->Gemm, Flatten->Gemm, or an NHWC
Transpose + Reshape->MatMul). Whatever the graph and ratio, pruning must verify against its
reference, pass the full checker and keep the model's interface and output shapes.
"""

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import numpy_helper

import onnxprune
from builders import GraphBuilder
from onnxprune.core.graph import GraphIndex
from onnxprune.prune.plan import group_names, kept_count
from onnxprune.core.runtime import make_session, random_feeds
from prune_checks import producer

channels = st.integers(2, 12)


BASIC = ("conv", "dw", "bn", "relu", "residual", "concat")


def basic_block(b, draw, kind: str, h: str, c: int) -> tuple[str, int]:
    """One block both graph strategies draw from: (output, its channels)."""
    if kind == "conv":
        cout = draw(channels)
        return b.conv(h, c, cout, k=draw(st.sampled_from([1, 3])), bias=draw(st.booleans())), cout
    if kind == "dw":
        mult = draw(st.sampled_from([1, 2])) if c <= 12 else 1
        return b.conv(h, c, c * mult, group=c, bias=draw(st.booleans())), c * mult
    if kind == "bn":
        return b.bn(h, c), c
    if kind == "relu":
        return b.op("Relu", [h]), c
    if kind == "residual":
        return b.op("Add", [h, b.conv(b.op("Relu", [h]), c, c, bias=draw(st.booleans()))]), c
    c1, c2 = draw(channels), draw(channels)  # concat of a 1x1 and a 3x3 branch along channels
    left = b.conv(h, c, c1, k=1)
    right = b.op("Relu", [b.conv(h, c, c2)])
    return b.op("Concat", [left, right], axis=1), c1 + c2


@st.composite
def random_cnn(draw):
    opset = draw(st.sampled_from([11, 13, 17]))
    b = GraphBuilder(seed=draw(st.integers(0, 2**16)), opset=opset)
    cin = draw(st.integers(1, 4))
    size = draw(st.sampled_from([4, 6, 8]))
    x = b.input("x", [1, cin, size, size])
    c = draw(channels)
    h = b.conv(x, cin, c, k=draw(st.sampled_from([1, 3])), bias=draw(st.booleans()))
    blocks = draw(st.lists(st.sampled_from(["conv", "dw", "bn", "relu", "residual", "concat", "maxpool"]),
                           min_size=0, max_size=5))
    for kind in blocks:
        if kind in BASIC:
            h, c = basic_block(b, draw, kind, h, c)
        elif kind == "maxpool" and size >= 2:
            h, size = b.op("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2]), size // 2
    head = draw(st.sampled_from(["gap_gemm", "flatten_gemm", "nhwc_matmul"]))
    n_out = draw(st.integers(2, 5))
    if head == "gap_gemm":
        f, k = b.op("Flatten", [b.op("GlobalAveragePool", [h])]), c
    elif head == "flatten_gemm":
        f, k = b.op("Flatten", [h]), c * size * size
    else:
        t = b.op("Transpose", [h], perm=[0, 2, 3, 1])
        target = [1, -1] if draw(st.booleans()) else [1, size * size * c]
        f, k = b.op("Reshape", [t, b.const(np.array(target), "shape", dtype=np.int64)]), c * size * size
    if draw(st.booleans()):  # a hidden fully connected layer, itself a prunable group
        hidden = draw(channels)
        f = b.op("Relu", [b.gemm(f, k, hidden, trans_b=draw(st.booleans()))]) if head != "nhwc_matmul" else \
            b.op("Relu", [b.matmul(f, k, hidden)])
        k = hidden
    y = b.gemm(f, k, n_out, trans_b=draw(st.booleans())) if head != "nhwc_matmul" else b.matmul(f, k, n_out)
    return b.model([y])


def _outputs(model, shapes, seed=11):
    sess = make_session(model)
    return sess.run(None, random_feeds(sess, shapes, seed))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=random_cnn(), ratio=st.floats(0.0, 0.9, exclude_max=True),
       criterion=st.sampled_from(["l1", "l2", "bn", "random"]), round_to=st.sampled_from([1, 1, 2, 4]))
def test_random_cnn_prunes_verifiably(model, ratio, criterion, round_to):
    onnx.checker.check_model(model, full_check=True)
    result = onnxprune.prune(model, ratio=ratio, criterion=criterion, round_to=round_to)
    assert result.verify.passed, result.verify.message
    onnx.checker.check_model(result.model, full_check=True)
    shapes = result.analysis.input_shapes
    before, after = _outputs(model, shapes), _outputs(result.model, shapes)
    assert [o.shape for o in after] == [o.shape for o in before]
    assert [(i.name, i.shape) for i in make_session(result.model).get_inputs()] == \
           [(i.name, i.shape) for i in make_session(model).get_inputs()]
    assert [o.name for o in result.model.graph.output] == [o.name for o in model.graph.output]
    assert result.after["params"] <= result.before["params"]

    # every prunable group keeps what the ratio asks, or more where a Concat member would
    # otherwise lose every channel (a residual over a Concat couples both branches in one group)
    names = group_names(result.analysis)
    for g in result.analysis.groups:
        keep = result.plan.groups[names[g.id]]
        assert keep == sorted(set(keep))
        if g.prunable:
            assert len(keep) >= kept_count(g.size, ratio, round_to)
        else:
            assert keep == list(range(g.size))
    assert all(lay["channels_after"] >= 1 for lay in result.layers)
    # every source's weight has as many output channels as the report says
    index = GraphIndex.build(result.model)
    for lay in result.layers:
        node = next(n for n in result.model.graph.node if n.name == lay["node"])
        w = index.const(node.input[1] if node.op_type != "MatMul" or index.const(node.input[1]) is not None
                        else node.input[0])
        if node.op_type == "Conv":
            assert w.shape[0] == lay["channels_after"]
        elif node.op_type == "Gemm":
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            assert w.shape[0 if trans_b else 1] == lay["channels_after"]
        elif node.op_type == "MatMul":
            assert w.shape[-1] == lay["channels_after"]
    if not any(len(result.plan.groups[names[g.id]]) < g.size for g in result.analysis.groups):
        assert result.model.graph == model.graph
        for o, p in zip(before, after):
            assert np.array_equal(o, p)


WIDE = ["conv", "dw", "bn", "relu", "residual", "concat", "concat_other_axis", "slice", "split", "unsqueeze_squeeze",
        "mul_const", "add_const", "sub_const_first", "prelu", "clip", "softmax", "pad", "reduce", "maxpool",
        "instance_norm", "nhwc_scale", "gather", "conv_transpose"]


@st.composite
def wider_cnn(draw):
    """More of the handlers, at every opset form: Slice/Split (attribute, input, num_outputs),
    Squeeze/Unsqueeze, per-channel and scalar constants, Softmax on any axis, Pad, Reduce,
    InstanceNorm, NHWC scaling, Gather, ConvTranspose."""
    opset = draw(st.sampled_from([9, 11, 13, 17, 18, 21]))
    b = GraphBuilder(seed=draw(st.integers(0, 2**16)), opset=opset)
    cin, size = draw(st.integers(1, 4)), draw(st.sampled_from([4, 6]))
    x = b.input("x", [1, cin, size, size])
    c = draw(channels)
    h = b.conv(x, cin, c, k=draw(st.sampled_from([1, 3])), bias=draw(st.booleans()))

    def ints(v):
        return b.const(np.array(v), "i", dtype=np.int64)

    for kind in draw(st.lists(st.sampled_from(WIDE), max_size=6)):
        if kind in BASIC:
            h, c = basic_block(b, draw, kind, h, c)
        elif kind == "concat_other_axis":
            axis = draw(st.sampled_from([2, 3]))
            h = b.op("Concat", [b.conv(h, c, c, k=1), b.op("Relu", [b.conv(h, c, c)])], axis=axis)
            h, size = b.op("GlobalAveragePool", [h]), 1
        elif kind == "slice":
            start, end = draw(st.integers(-c, c - 1)), draw(st.integers(-c, c))
            lo, hi, _ = slice(start, end).indices(c)
            if hi > lo:
                if opset < 10:
                    h = b.op("Slice", [h], starts=[start], ends=[end], axes=[1])
                else:
                    h = b.op("Slice", [h, ints([start]), ints([end]), ints([1])])
                c = hi - lo
        elif kind == "split" and c >= 2:
            k = draw(st.integers(1, c - 1))
            sizes = [k, c - k]
            if opset < 13:
                parts = b.op("Split", [h], n_out=2, axis=1, split=sizes)
            elif opset >= 18 and draw(st.booleans()):
                sizes = [-(-c // 2), c // 2]
                parts = b.op("Split", [h], n_out=2, axis=1, num_outputs=2)
            else:
                parts = b.op("Split", [h, ints(sizes)], n_out=2, axis=1)
            h = b.op("Add", [b.conv(parts[0], sizes[0], c, k=1), b.conv(parts[1], sizes[1], c, k=1)])
        elif kind == "unsqueeze_squeeze":
            if opset >= 13:
                h = b.op("Squeeze", [b.op("Unsqueeze", [h, ints([2])]), ints([2])])
            else:
                h = b.op("Squeeze", [b.op("Unsqueeze", [h], axes=[2])], axes=[2])
        elif kind == "mul_const":
            h = b.op("Mul", [h, b.const(b.rng.uniform(0.5, 1.5, (c, 1, 1)), "c")])
        elif kind == "add_const":
            shape = draw(st.sampled_from([(1, c, 1, 1), (1,), ()]))
            h = b.op("Add", [b.const(b.rng.standard_normal(shape), "c"), h])
        elif kind == "sub_const_first":
            h = b.op("Sub", [b.const(b.rng.standard_normal((c, 1, 1)), "c"), h])
        elif kind == "prelu":
            h = b.op("PRelu", [h, b.const(b.rng.uniform(0.05, 0.3, (c, 1, 1)), "slope")])
        elif kind == "clip":
            h = b.op("Clip", [h], min=-1.0, max=1.0) if opset < 11 else \
                b.op("Clip", [h, b.const(np.float32(-1), "lo"), b.const(np.float32(1), "hi")])
        elif kind == "softmax":
            h = b.op("Softmax", [h], axis=draw(st.sampled_from([1, 2, 3, -1])))
        elif kind == "pad":
            pads = [0, 0, 1, 1, 0, 0, 1, 1]
            h, size = (b.op("Pad", [h], pads=pads) if opset < 11 else b.op("Pad", [h, ints(pads)])), size + 2
        elif kind == "reduce":
            h = b.op("ReduceMean", [h, ints([2])], keepdims=1) if opset >= 18 else \
                b.op("ReduceMean", [h], axes=[2], keepdims=1)
            h = b.op("Add", [h, b.const(np.zeros((1, 1, size, size)), "z")])   # broadcast back over H
        elif kind == "maxpool" and size >= 2:
            h, size = b.op("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2]), size // 2
        elif kind == "instance_norm":
            h = b.op("InstanceNormalization", [h, b.const(b.rng.uniform(0.5, 1.5, c), "s"),
                                               b.const(b.rng.standard_normal(c), "b")])
        elif kind == "nhwc_scale":
            t = b.op("Mul", [b.op("Transpose", [h], perm=[0, 2, 3, 1]), b.const(b.rng.uniform(0.5, 1.5, c), "c")])
            h = b.op("Transpose", [t], perm=[0, 3, 1, 2])
        elif kind == "gather" and size >= 2:
            h = b.op("Gather", [b.op("Gather", [h, ints([0, size - 1])], axis=2), ints([0, size - 1])], axis=3)
            size = 2
        elif kind == "conv_transpose":
            cout = draw(channels)
            h = b.op("ConvTranspose", [h, b.const(b.weight(c, cout, 2, 2))], kernel_shape=[2, 2], strides=[2, 2])
            h, c = b.op("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2]), cout
    head = draw(st.sampled_from(["gap_gemm", "flatten_gemm", "nhwc_matmul", "conv"]))
    n_out = draw(st.integers(2, 5))
    if head == "conv":
        y = b.conv(h, c, n_out, k=1)
    else:
        if head == "gap_gemm":
            f, k = b.op("Flatten", [b.op("GlobalAveragePool", [h])]), c
        elif head == "flatten_gemm":
            f, k = b.op("Flatten", [h]), c * size * size
        else:
            t = b.op("Transpose", [h], perm=[0, 2, 3, 1])
            f, k = b.op("Reshape", [t, b.const(np.array([1, -1]), "shape", dtype=np.int64)]), c * size * size
        y = b.gemm(f, k, n_out, trans_b=draw(st.booleans()))
    return b.model([y], ir_version=10 if opset >= 21 else 8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=wider_cnn(), ratio=st.floats(0.0, 0.9, exclude_max=True), round_to=st.sampled_from([1, 2, 4]),
       criterion=st.sampled_from(["l1", "l2", "bn", "random"]), global_ranking=st.booleans())
def test_wider_vocabulary_prunes_verifiably(model, ratio, round_to, criterion, global_ranking):
    onnx.checker.check_model(model, full_check=True)
    result = onnxprune.prune(model, ratio=ratio, round_to=round_to, criterion=criterion,
                             global_ranking=global_ranking)
    assert result.verify.passed, result.verify.message
    onnx.checker.check_model(result.model, full_check=True)
    shapes = result.analysis.input_shapes
    assert [o.shape for o in _outputs(result.model, shapes)] == [o.shape for o in _outputs(model, shapes)]
    assert all(lay["channels_after"] >= 1 for lay in result.layers)


# ---- the dead-units oracle ----------------------------------------------------------------------

def _kill(model: onnx.ModelProto, producers, consumers, dead):
    """Zero producer rows (+ bias) and consumer columns of the `dead` channels, in place.

    producers: [node output], consumers: [(node output, input index, axis,
    positions-per-channel function)]."""
    inits = {t.name: t for t in model.graph.initializer}

    def edit(name, fn):
        arr = numpy_helper.to_array(inits[name]).copy()
        fn(arr)
        inits[name].CopyFrom(numpy_helper.from_array(arr, name))

    for out in producers:
        node = producer(model, out)
        if node.op_type == "Conv":
            edit(node.input[1], lambda a: a.__setitem__(list(dead[out]), 0))
            if len(node.input) > 2:
                edit(node.input[2], lambda a: a.__setitem__(list(dead[out]), 0))
        elif node.op_type == "Gemm":
            trans_b = next((at.i for at in node.attribute if at.name == "transB"), 0)

            def cols(a, out=out, trans_b=trans_b):
                if trans_b:
                    a[list(dead[out])] = 0
                else:
                    a[:, list(dead[out])] = 0
            edit(node.input[1], cols)
            if len(node.input) > 2:
                edit(node.input[2], lambda a: a.__setitem__(list(dead[out]), 0))
    for out, idx, axis, positions in consumers:
        node = producer(model, out)

        def zero(a, axis=axis, positions=positions):
            sl = [slice(None)] * a.ndim
            sl[axis] = positions
            a[tuple(sl)] = 0
        edit(node.input[idx], zero)


def _dead_model(arch, seed):
    """A small model whose dead channels are known: a random half of every prunable group."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder(seed=seed, opset=13)
    x = b.input("x", [1, 3, 6, 6])
    dead, consumers, producers = {}, [], []

    def pick(n):
        return sorted(rng.choice(n, n // 2, replace=False).tolist())

    if arch == "chain":
        a = b.conv(x, 3, 8)
        h = b.conv(b.op("Relu", [b.bn(a, 8)]), 8, 6)
        f = b.op("Flatten", [b.op("GlobalAveragePool", [b.op("Relu", [h])])])
        g = b.gemm(f, 6, 10, trans_b=True)
        y = b.gemm(b.op("Relu", [g]), 10, 3)
        dead = {a: pick(8), h: pick(6), g: pick(10)}
        producers = [a, h, g]
        consumers = [(h, 1, 1, dead[a]), (g, 1, 1, dead[h]), (y, 1, 0, dead[g])]
    elif arch == "residual":
        a1 = b.conv(x, 3, 8)
        a2 = b.conv(b.op("Relu", [a1]), 8, 8)
        s = b.op("Add", [a1, a2])
        y = b.conv(b.op("Relu", [s]), 8, 4)
        d = pick(8)
        dead = {a1: d, a2: d}
        producers = [a1, a2]
        consumers = [(a2, 1, 1, d), (y, 1, 1, d)]
    elif arch == "depthwise":
        a = b.conv(x, 3, 8)
        dw = b.conv(b.op("Relu", [a]), 8, 16, group=8)     # multiplier 2
        y = b.conv(b.op("Relu", [dw]), 16, 4, k=1)
        d = pick(8)
        dead = {a: d}
        producers = [a]
        consumers = [(y, 1, 1, [2 * c + j for c in d for j in (0, 1)])]
    elif arch == "concat_nhwc":
        a1 = b.conv(x, 3, 6)
        a2 = b.conv(x, 3, 4)
        cat = b.op("Concat", [b.op("Relu", [a1]), b.op("Relu", [a2])], axis=1)     # 10 channels
        t = b.op("Transpose", [b.op("MaxPool", [cat], kernel_shape=[2, 2], strides=[2, 2])], perm=[0, 2, 3, 1])
        f = b.op("Reshape", [t, b.const(np.array([1, 90]), "shape", dtype=np.int64)])   # 3*3*10
        y = b.matmul(f, 90, 3)
        dead = {a1: pick(6), a2: pick(4)}
        producers = [a1, a2]
        dead_cat = dead[a1] + [6 + c for c in dead[a2]]
        consumers = [(y, 1, 0, [p * 10 + c for p in range(9) for c in dead_cat])]
    m = b.model([y])
    _kill(m, producers, consumers, dead)
    return m, dead


@pytest.mark.parametrize("arch", ["chain", "residual", "depthwise", "concat_nhwc"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dead_units_are_exactly_what_l1_removes(arch, seed):
    m, dead = _dead_model(arch, seed)
    r = onnxprune.prune(m, ratio=0.5, criterion="l1", round_to=1)
    assert r.verify.passed, r.verify.message
    for out, d in dead.items():
        node = producer(m, out)
        g = next(g for g in r.analysis.groups if node.name in g.members())
        assert g.prunable
        size = g.size
        assert r.plan.groups[next(n for gid, n in group_names(r.analysis).items() if gid == g.id)] == \
            [c for c in range(size) if c not in d]
        lay = next(lay for lay in r.layers if lay["node"] == node.name)
        assert lay["channels_after"] == size - len(d)
    # the pruned model computes what the ORIGINAL computes (not only what the reference does)
    shapes = r.analysis.input_shapes
    for seed_in in (0, 1):
        for o, p in zip(_outputs(m, shapes, seed_in), _outputs(r.model, shapes, seed_in)):
            np.testing.assert_allclose(p, o, rtol=1e-5, atol=1e-6)
    assert r.after["params"] < r.before["params"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dead_producers_alone_are_found_by_l1(seed):
    """Only the producer rows (+ bias) of half the channels are zero; their consumer columns are
    ordinary. Those channels output Relu(0) = 0, so removing them leaves the ORIGINAL function
    unchanged, and the group L1 score (producer + consumer slices) must rank them last."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder(seed=seed, opset=13)
    x = b.input("x", [1, 3, 6, 6])
    a = b.conv(x, 3, 10)
    h = b.conv(b.op("Relu", [a]), 10, 4)
    m = b.model([b.op("Relu", [h])])
    d = sorted(rng.choice(10, 5, replace=False).tolist())
    _kill(m, [a], [], {a: d})
    r = onnxprune.prune(m, ratio=0.5, criterion="l1", round_to=1)
    assert r.verify.passed, r.verify.message
    g = next(g for g in r.analysis.groups if producer(m, a).name in g.members())
    assert r.plan.groups[group_names(r.analysis)[g.id]] == [c for c in range(10) if c not in d]
    for o, p in zip(_outputs(m, r.analysis.input_shapes), _outputs(r.model, r.analysis.input_shapes)):
        np.testing.assert_allclose(p, o, rtol=1e-5, atol=1e-6)
