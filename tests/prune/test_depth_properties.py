"""Hypothesis: random residual chains (basic, BatchNorm-ended, scaled, dead and projection-shortcut
blocks) — every removable block, alone and all together, equals its zeroed-projection reference,
dead blocks leave the outputs unchanged, and projection shortcuts are never candidates."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builders import GraphBuilder, run
from onnxprune.core.runtime import make_session, random_feeds
from onnxprune.prune.depth import drop_blocks, model_blocks
from onnxprune.prune.verify import verify

KINDS = ["basic", "bn", "scaled", "dead", "proj"]


@st.composite
def residual_chain(draw):
    b = GraphBuilder(seed=draw(st.integers(0, 2**16)), opset=draw(st.sampled_from([13, 17])))
    c = draw(st.sampled_from([4, 6, 8]))
    x = b.input("x", [1, 3, 6, 6])
    h = b.op("Relu", [b.conv(x, 3, c)])
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=5))
    for kind in kinds:
        inner = b.op("Relu", [b.conv(h, c, c, k=draw(st.sampled_from([1, 3])))])
        if kind == "proj":
            skip, branch = b.conv(h, c, c, k=1), b.conv(inner, c, c)
        elif kind == "dead":
            zero_w, zero_b = b.const(np.zeros((c, c, 3, 3))), b.const(np.zeros(c))
            skip, branch = h, b.op("Conv", [inner, zero_w, zero_b], kernel_shape=[3, 3], pads=[1] * 4)
        elif kind == "bn":
            skip, branch = h, b.op("Relu", [b.bn(b.conv(inner, c, c, bias=False), c)])
        elif kind == "scaled":
            skip, branch = h, b.op("Mul", [b.conv(inner, c, c), b.const(np.array(0.5))])
        else:
            skip, branch = h, b.conv(inner, c, c, bias=draw(st.booleans()))
        order = [skip, branch] if draw(st.booleans()) else [branch, skip]
        h = b.op("Add", order)
        if draw(st.booleans()):
            h = b.op("Relu", [h])
    y = b.gemm(b.op("Flatten", [b.op("GlobalAveragePool", [h])]), c, 3)
    return b.model([y]), kinds


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=residual_chain())
def test_residual_chains_drop_verifiably(case):
    model, kinds = case
    blocks = model_blocks(model)
    assert len(blocks) == len(kinds)
    for block, kind in zip(blocks, kinds):
        assert block.removable == (kind != "proj"), (kind, block.reason)
    removable = [bl for bl in blocks if bl.removable]
    for chosen in [[bl] for bl in removable] + ([removable] if len(removable) > 1 else []):
        pruned = drop_blocks(model, chosen)
        result = verify(pruned, drop_blocks(model, chosen, mode="reference"), {})
        assert result.passed, result.message
        assert len(pruned.graph.node) < len(model.graph.node)
    dead = [bl for bl, kind in zip(blocks, kinds) if kind == "dead"]
    if dead:
        pruned = drop_blocks(model, dead)
        feeds = random_feeds(make_session(model), {}, 1)
        for a, b in zip(run(model, feeds), run(pruned, feeds)):
            np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=residual_chain())
def test_repaired_drops_equal_their_reference(case):
    """With the mean repair: every removable block, alone and all together, equals the zeroed
    reference plus its constant; a dead block's constant is zero, so its outputs stay unchanged."""
    from onnxprune.prune.depth import branch_means, seeded_feeds

    model, kinds = case
    removable = [bl for bl in model_blocks(model) if bl.removable]
    if not removable:
        return
    means = branch_means(model, removable, seeded_feeds(model, {}, None, 0, count=4))
    for chosen in [[bl] for bl in removable] + ([removable] if len(removable) > 1 else []):
        m = {bl.name: means[bl.name] for bl in chosen}
        pruned = drop_blocks(model, chosen, means=m)
        result = verify(pruned, drop_blocks(model, chosen, mode="reference", means=m), {})
        assert result.passed, result.message
    for bl, kind in zip(model_blocks(model), kinds):
        if kind == "dead":
            assert not np.any(means[bl.name])
