"""Per-group sensitivity: constructed models where we know which group matters more."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from builders import GraphBuilder
from onnxprune.search.fidelity import Fidelity, logit_taps, make_feeds
from onnxprune.search.sensitivity import RATIOS, measure_sensitivity
from onnxprune.search.widths import WidthSpace


def two_branches(weak: float = 0.05) -> onnx.ModelProto:
    """x -> convA(16) -> Relu -> convA2 ; x -> convB(16) -> Relu -> convB2 * weak ; Add.
    Branch B's channels reach the output scaled by `weak`, so removing them matters less."""
    b = GraphBuilder(seed=3)
    x = b.input("x", [1, 4, 8, 8])
    a = b.op("Relu", [b.conv(x, 4, 16)])
    a = b.conv(a, 16, 4)
    h = b.op("Relu", [b.conv(x, 4, 16)])
    w = b.weight(4, 16, 3, 3) * weak
    h = b.op("Conv", [h, b.const(w)], kernel_shape=[3, 3], pads=[1] * 4)
    return b.model([b.op("Add", [a, h])])


def sens_of(model, count=8):
    space = WidthSpace(model, round_to=1)
    fid = Fidelity(model, make_feeds(model, space.analysis.input_shapes, count=count, seed=0))
    return space, measure_sensitivity(space, fid)


def test_group_whose_channels_matter_more_ranks_first():
    space, sens = sens_of(two_branches())
    strong, weak = list(space.groups)[:2]   # convA's group comes first in graph order
    assert sens.ranking()[0][0] == strong
    assert sens.at(strong, 8) > 20 * sens.at(weak, 8)
    assert sens.at(weak, 8) > 0


def test_equal_branches_are_comparable():
    space, sens = sens_of(two_branches(weak=1.0))
    a, b = list(space.groups)[:2]
    assert 0.2 < sens.at(a, 8) / sens.at(b, 8) < 5


def test_cost_is_counted_in_forward_passes_and_table_is_monotone_in_interpolation():
    space, sens = sens_of(two_branches(), count=8)
    measured = sum(len(rows) for rows in sens.table.values())
    assert measured == len(space.groups) * len(RATIOS)
    assert sens.passes == measured * 8
    for name, size in space.sizes.items():
        assert sens.at(name, size) == 0.0
        assert sens.at(name, 1) >= sens.at(name, space.width_at(name, 0.75)) - 1e-12
        rows = sens.table[name]
        mid = (rows[0]["kept"] + rows[1]["kept"]) / 2
        lo, hi = sorted([rows[0]["nmse"], rows[1]["nmse"]])
        assert lo - 1e-12 <= sens.at(name, mid) <= hi + 1e-12


def test_fidelity_of_the_original_is_perfect_and_softmax_is_compared_on_logits():
    from builders import bundled_model
    from onnxprune.core.io import load_model

    model = load_model(bundled_model())
    assert logit_taps(model) == {"probs": "logits"}
    space = WidthSpace(model)
    fid = Fidelity(model, make_feeds(model, space.analysis.input_shapes, count=4, seed=0))
    m = fid(model)
    assert m["top1_agreement"] == 100.0 and m["snr_db"] == float("inf") and m["nmse"] == 0.0
    pruned = fid(space.build({n: space.width_at(n, 0.5) for n in space.groups}))
    assert pruned["nmse"] > 0  # the softmax output saturates; the logits do not


def test_calibration_and_evaluation_feeds_differ():
    model = two_branches()
    shapes = {"x": [1, 4, 8, 8]}
    calib = make_feeds(model, shapes, count=3, seed=0, part=0)
    held = make_feeds(model, shapes, count=3, seed=0, part=1)
    assert not any(np.array_equal(c["x"], h["x"]) for c in calib for h in held)


def test_data_feeds_come_from_disjoint_splits(tmp_path):
    """Calibration and held-out feeds are the data module's two splits: disjoint, together all."""
    from onnxprune.data import DataConfig

    model = two_branches()
    x = np.random.default_rng(0).standard_normal((10, 1, 4, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x[:, 0])
    data = DataConfig(str(tmp_path / "d.npz"), holdout=0.3)
    calib = make_feeds(model, {}, count=20, seed=0, data=data, part=0)
    held = make_feeds(model, {}, count=20, seed=0, data=data, part=1)
    assert (len(calib), len(held)) == (7, 3)
    rows = {x[i, 0].tobytes(): i for i in range(10)}
    picked = [rows[f["x"][0].tobytes()] for f in calib + held]
    assert sorted(picked) == list(range(10))


@pytest.mark.parametrize("ratio", [0.5, 0.25])
def test_allocate_matches_uniform_macs_and_spares_the_sensitive_group(ratio):
    from onnxprune.api import prune
    from onnxprune.search.auto import allocate_plan

    model = two_branches()
    from onnxprune.api import PruneConfig

    plan = allocate_plan(model, PruneConfig(ratio=ratio, round_to=1))
    alloc = prune(model, plan=plan, round_to=1)
    uniform = prune(model, ratio=ratio, round_to=1)
    assert alloc.verify.passed
    assert alloc.after["macs"] <= uniform.after["macs"]
    kept = {g["name"]: g["kept"] for g in alloc.groups if g["prunable"]}
    strong, weak = list(kept)[:2]
    assert kept[strong] > kept[weak]
