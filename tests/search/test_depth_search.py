"""Depth candidates scored by measured sensitivity, and `auto --depth` (blocks, then widths)."""

from depth_builders import resnet

import onnxprune
from onnxprune.prune.plan import Plan
from onnxprune.search.auto import AutoConfig, auto_prune
from onnxprune.search.depth import block_sensitivity, least_sensitive


def test_dead_block_measures_zero_and_ranks_first():
    model = resnet(dead=True)
    rows = block_sensitivity(model, count=4)
    removable = [r for r in rows if r["removable"]]
    assert len(removable) == 3
    dead = removable[1]
    assert dead["nmse"] == 0.0 and dead["snr_db"] == float("inf") and dead["macs_saved"] > 0
    assert all(r["nmse"] > 0 for r in removable if r is not dead)
    assert least_sensitive(rows, 1) == [dead["name"]]


def test_auto_depth_drops_the_free_block_then_widths_and_replays():
    model = resnet(dead=True)
    dead = least_sensitive(block_sensitivity(model, count=4), 1)[0]
    done = auto_prune(model, AutoConfig(goal="macs", target=0.7, max_drop=None, min_snr=20.0, latency="macs",
                                        depth=True, calib=4, n_eval=4))
    assert done.search.trajectory[0]["group"] == f"block {dead}" and done.depth["blocks"][0] == dead  # tried first
    assert done.plan.blocks == done.depth["blocks"]
    assert all(s["verify"]["passed"] for s in done.result.steps) and done.result.verify.passed
    assert done.search.achieved <= 0.7 + 1e-9 and done.search.reached
    again = onnxprune.prune(model, plan=Plan.from_json(done.plan.to_json()))
    assert again.model.SerializeToString() == done.result.model.SerializeToString()
