"""Mean repair of dropped blocks: y = x + E[f(x)] per channel, exact where f is constant, folded
into the next linear bias where possible, verified against the zeroed-projection reference plus
the constant, recorded in plans and replayed to the same bytes."""

import numpy as np
import pytest
from builders import run
from depth_builders import mlp_chain, resnet

import onnxprune
from onnxprune.core.runtime import make_session, random_feeds
from onnxprune.errors import UsageError
from onnxprune.prune.depth import branch_means, drop_blocks, model_blocks, seeded_feeds
from onnxprune.prune.plan import Plan
from onnxprune.prune.verify import verify
from onnxprune.search.fidelity import Fidelity, make_feeds


def _middle(model):
    return [b for b in model_blocks(model) if b.removable][1]


def test_constant_branch_is_repaired_exactly():
    model = resnet(dead=False, constant=True)  # middle block: f(x) = its last conv's bias
    name = _middle(model).name
    plain = onnxprune.prune(model, ratio=0.0, drop_blocks=(name,))
    fixed = onnxprune.prune(model, ratio=0.0, drop_blocks=(name,), block_repair="mean")
    assert fixed.steps[0]["verify"]["passed"] and fixed.steps[0]["repair"] == "mean"
    sess = make_session(model)
    for seed in range(3):
        feeds = random_feeds(sess, {}, seed + 10)
        (want,), (got,), (bad,) = run(model, feeds), run(fixed.model, feeds), run(plain.model, feeds)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
        assert np.max(np.abs(bad - want)) > 1e-2  # without the repair the block's constant is lost
    assert fixed.after["ops"]["Conv"] == plain.after["ops"]["Conv"]  # the block's convs are gone either way


def test_repair_beats_plain_drop_on_held_out_inputs():
    model = resnet(dead=False, constant=True)
    name = _middle(model).name
    fid = Fidelity(model, make_feeds(model, {}, count=8, seed=3, part=1))
    plain = onnxprune.prune(model, ratio=0.0, drop_blocks=(name,))
    fixed = onnxprune.prune(model, ratio=0.0, drop_blocks=(name,), block_repair="mean")
    assert fid(fixed.model)["nmse"] < fid(plain.model)["nmse"]


def test_mean_folds_into_the_next_matmul_bias():
    model = mlp_chain()
    (block,) = [b for b in model_blocks(model) if b.removable]
    result = onnxprune.prune(model, ratio=0.0, drop_blocks=(block.name,), block_repair="mean")
    step = result.steps[0]
    assert step["verify"]["passed"] and step["repair_folded"] == [block.name]
    assert not any(n.name.endswith("_mean_repair") for n in result.model.graph.node)
    means = branch_means(model, [block], seeded_feeds(model, {}, None, 0))
    explicit = drop_blocks(model, [block], mode="reference", means=means)  # block zeroed, then an explicit + c
    assert any(n.name.endswith("_mean_repair") for n in explicit.graph.node)
    feeds = random_feeds(make_session(model), {}, 5)
    np.testing.assert_allclose(run(result.model, feeds)[0], run(explicit, feeds)[0], rtol=1e-4, atol=1e-4)
    plain = onnxprune.prune(model, ratio=0.0, drop_blocks=(block.name,))
    assert np.max(np.abs(run(plain.model, feeds)[0] - run(result.model, feeds)[0])) > 1e-2  # the fold changed the bias


def test_wrong_constant_fails_verification():
    """Mutation: a reference whose repair constant differs from the pruned model's must not pass."""
    model = resnet(dead=False, constant=True)
    block = _middle(model)
    means = branch_means(model, [block], seeded_feeds(model, {}, None, 0))
    pruned = drop_blocks(model, [block], means=means)
    wrong = drop_blocks(model, [block], mode="reference", means={block.name: means[block.name] + 0.5})
    assert not verify(pruned, wrong, {}).passed
    assert verify(pruned, drop_blocks(model, [block], mode="reference", means=means), {}).passed


def test_plan_records_repair_and_replays_byte_identical():
    model = resnet(dead=False, constant=True)
    name = _middle(model).name
    first = onnxprune.prune(model, ratio=0.25, drop_blocks=(name,), block_repair="mean")
    plan = Plan.from_json(first.plan.to_json())
    assert plan.meta["block_repair"] == "mean" and plan.blocks == [name]
    again = onnxprune.prune(model, plan=plan)
    assert again.model.SerializeToString() == first.model.SerializeToString()
    width_only = onnxprune.prune(model, ratio=0.25)
    assert "block_repair" not in width_only.plan.to_json()


def test_unknown_repair_is_a_usage_error():
    with pytest.raises(UsageError, match="block repair"):
        onnxprune.prune(resnet(dead=False), ratio=0.0, drop_blocks=("x",), block_repair="median")
