"""Depth pruning: removal equals the zeroed-projection reference; dead blocks change nothing; plans replay."""

from pathlib import Path

import numpy as np
import onnx
import pytest

import onnxprune
from builders import GraphBuilder, run
from depth_builders import resnet
from onnxprune.errors import UsageError
from onnxprune.prune.depth import drop_blocks, model_blocks, select
from onnxprune.prune.plan import Plan
from onnxprune.core.runtime import make_session, random_feeds

FIXTURES = Path(__file__).resolve().parents[2] / "models" / "fixtures"


def test_dead_block_oracle_outputs_unchanged():
    model = resnet(dead=True)
    blocks = [b for b in model_blocks(model) if b.removable]
    assert len(blocks) == 3
    dead = blocks[1]
    result = onnxprune.prune(model, ratio=0.0, drop_blocks=(dead.name,))
    assert all(s["verify"]["passed"] for s in result.steps)
    sess = make_session(model)
    for seed in range(3):
        feeds = random_feeds(sess, {}, seed)
        for a, b in zip(run(model, feeds), run(result.model, feeds)):
            np.testing.assert_array_equal(a, b)
    assert result.after["params"] == result.before["params"] - 8 * 8 * 9 * 2 - 16
    assert result.after["ops"]["Conv"] == result.before["ops"]["Conv"] - 2


def test_live_block_differs_from_original_but_equals_reference():
    model = resnet(dead=False)
    name = next(b.name for b in model_blocks(model) if b.removable)
    result = onnxprune.prune(model, ratio=0.0, drop_blocks=(name,))
    step = result.steps[0]
    assert step["step"] == "depth" and step["verify"]["passed"]
    feeds = random_feeds(make_session(model), {}, 0)
    assert not np.allclose(run(model, feeds)[0], run(result.model, feeds)[0])


@pytest.mark.parametrize("fixture", ["transformer_dynamo", "conformer_dynamo"])
def test_every_block_and_all_together_verify(fixture):
    model = onnx.load(FIXTURES / f"{fixture}.onnx")
    names = [b.name for b in model_blocks(model) if b.removable]
    for drop in [[n] for n in names] + [names]:
        result = onnxprune.prune(model, ratio=0.0, drop_blocks=tuple(drop))
        assert result.steps[0]["verify"]["passed"], result.steps[0]["verify"]["message"]
        assert result.after["macs"] < result.before["macs"]
        assert [o.name for o in result.model.graph.output] == [o.name for o in model.graph.output]


def test_unknown_and_refused_names_are_one_line_errors():
    model = resnet(dead=False)
    blocks = model_blocks(model)
    with pytest.raises(UsageError, match="not a residual Add"):
        select(blocks, ["nope"])
    b = GraphBuilder(seed=2)
    x = b.input("x", [1, 4, 6, 6])
    h = b.conv(x, 4, 8)
    y = b.op("Add", [b.conv(h, 8, 8, k=1), b.conv(h, 8, 8)])
    m = b.model([y])
    with pytest.raises(UsageError, match="not residual"):
        select(model_blocks(m), [m.graph.node[-1].name])


def test_depth_then_width_plan_replays_byte_identically():
    model = onnx.load(FIXTURES / "conformer_dynamo.onnx")
    names = tuple(b.name for b in model_blocks(model) if b.removable)[:2]
    first = onnxprune.prune(model, ratio=0.5, drop_blocks=names)
    assert first.verify.passed and all(s["verify"]["passed"] for s in first.steps)
    text = first.plan.to_json()
    plan = Plan.from_json(text)
    assert plan.blocks == list(names)
    again = onnxprune.prune(model, ratio=0.5, plan=plan)
    assert again.model.SerializeToString() == first.model.SerializeToString()
    assert again.plan.to_json() == text


def test_reference_zeroes_only_the_projection():
    model = resnet(dead=False)
    block = next(b for b in model_blocks(model) if b.removable)
    ref = drop_blocks(model, [block], mode="reference")
    assert len(ref.graph.node) == len(model.graph.node)
    changed = [t.name for t, u in zip(ref.graph.initializer, model.graph.initializer) if t != u]
    assert sorted(changed) == sorted(n.input[k] for n, k in block.zero)


def test_plan_with_other_blocks_or_ranks_is_refused():
    model = resnet(dead=False)
    names = [b.name for b in model_blocks(model) if b.removable]
    plan = onnxprune.prune(model, ratio=0.0, drop_blocks=(names[0],)).plan
    with pytest.raises(UsageError, match="replays its own blocks"):
        onnxprune.prune(model, plan=plan, drop_blocks=(names[1],))
    with pytest.raises(UsageError, match="replays its own blocks"):
        onnxprune.prune(model, plan=plan, low_rank=0.5)
