"""`auto --depth --low-rank`: one greedy over width steps, block removals and ranks; plans record
blocks, ranks and the repair and replay to the same bytes; low rank only where it measured faster."""

import pytest
from builders import GraphBuilder
from depth_builders import resnet

import onnxprune
from onnxprune.prune.pipeline import PruneConfig
from onnxprune.prune.plan import Plan
from onnxprune.search.auto import AutoConfig, auto_prune
from onnxprune.search.fidelity import Fidelity, make_feeds
from onnxprune.search.joint import JointSearch, JointSpace
from onnxprune.search.sensitivity import measure_sensitivity


def low_rank_mlp(seed: int = 0):
    """x -> MatMul (64x64 weight of rank 4, exactly) + bias -> Relu -> Gemm head: factorizing the big
    layer at rank >= 4 changes nothing, so a MACs goal is reached by ranks at no distortion."""
    b = GraphBuilder(seed)
    x = b.input("x", [4, 64])
    w = b.rng.standard_normal((64, 4)) @ b.rng.standard_normal((4, 64)) * 0.2
    h = b.op("Relu", [b.op("Add", [b.op("MatMul", [x, b.const(w)]), b.const(b.rng.standard_normal(64) * 0.1)])])
    return b.model([b.gemm(h, 64, 10)])


def test_auto_low_rank_takes_the_free_rank_and_replays():
    model = low_rank_mlp()
    done = auto_prune(model, AutoConfig(goal="macs", target=0.6, max_drop=None, min_snr=40.0, latency="macs",
                                        low_rank=True, calib=4, n_eval=4))
    assert done.search.reached and done.search.achieved <= 0.6
    assert done.plan.ranks and done.depth["ranks"] == done.plan.ranks
    assert any(e["kind"] == "rank" and e["accepted"] for e in done.search.trajectory)
    assert done.metrics["snr_db"] >= 40.0  # the rank-4 weight is represented exactly
    steps = {s["step"]: s for s in done.result.steps}
    assert steps["lowrank"]["verify"]["passed"] and done.result.verify.passed
    again = onnxprune.prune(model, plan=Plan.from_json(done.plan.to_json()))
    assert again.model.SerializeToString() == done.result.model.SerializeToString()


def test_widths_only_cannot_match_it_within_the_same_budget():
    """The same goal and budget without low rank: width steps distort, so the search stops short
    (or needs more distortion) where the joint search reached the goal losslessly."""
    model = low_rank_mlp()
    cfg = {"goal": "macs", "target": 0.6, "max_drop": None, "min_snr": 40.0, "latency": "macs", "calib": 4, "n_eval": 4}
    widths = auto_prune(model, AutoConfig(**cfg))
    joint = auto_prune(model, AutoConfig(**cfg, low_rank=True))
    assert joint.search.achieved < widths.search.achieved or not widths.search.reached


def test_blocks_widths_and_ranks_in_one_trajectory_with_repair():
    model = resnet(dead=False, constant=True)
    done = auto_prune(model, AutoConfig(goal="macs", target=0.5, max_drop=None, min_snr=10.0, latency="macs",
                                        depth=True, low_rank=True, block_repair="mean", calib=4, n_eval=4,
                                        max_evals=30))
    kinds = {e["kind"] for e in done.search.trajectory if e["accepted"]}
    assert "block" in kinds  # the constant block costs nothing once repaired
    assert done.plan.blocks and done.plan.meta.get("block_repair") == "mean"
    assert all(s["verify"]["passed"] for s in done.result.steps) and done.result.verify.passed
    again = onnxprune.prune(model, plan=Plan.from_json(done.plan.to_json()))
    assert again.model.SerializeToString() == done.result.model.SerializeToString()


def test_low_rank_moves_only_where_factorizing_measured_faster():
    """The rule, with a clock whose factorized models are slower (no real timing in unit tests)."""
    model = low_rank_mlp()
    config = PruneConfig(ratio=0.0)
    js = JointSpace(model, config)
    feeds = make_feeds(model, {}, count=4, seed=0)
    sens = measure_sensitivity(js.space(()), Fidelity(model, feeds))

    def clock(slower):
        def time(models):
            return {k: [1.0] * 5 if k == "original" else [1.0 + slower] * 5 for k in models}
        return {"time": time}

    kw = {"goal": "macs", "target": 0.5, "sens": sens, "calib_eval": Fidelity(model, feeds), "evaluate": Fidelity(model, feeds),
              "metric": "top1_agreement", "min_snr": 20.0, "use_blocks": False}
    slow = JointSearch(js, timing=clock(0.5), **kw)
    assert slow.all_ranks and not slow.rank_table  # measured, none faster: no rank move
    assert not [m for m in slow.moves((), js.space(()).full, {}, set()) if m[1] == "rank"]
    fast = JointSearch(js, timing=clock(-0.5), **kw)
    assert [m for m in fast.moves((), js.space(()).full, {}, set()) if m[1] == "rank"]


def test_unknown_block_repair_is_rejected():
    from onnxprune.errors import UsageError

    with pytest.raises(UsageError, match="block repair"):
        AutoConfig(goal="macs", target=0.5, block_repair="median")
