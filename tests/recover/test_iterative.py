"""The iterative schedule (prune a little, recover, repeat) on the zoo keyword spotter: every round's
rewrite is verified, the final model has exactly the one-shot model's structure (same widths,
same graph: only initializer values differ) and is closer to the original on held-out voices than
the unrecovered one-shot model; the kept-channel maps compose over the rounds."""


import numpy as np
import onnx
import pytest

from onnxprune.recover import available

if not available():
    pytest.skip("needs the recover extra (torch, onnx2torch)", allow_module_level=True)

from onnxprune.api import PruneConfig, prune  # noqa: E402
from onnxprune.errors import UsageError  # noqa: E402
from onnxprune.recover import RecoverConfig  # noqa: E402
from onnxprune.recover.check import skeleton  # noqa: E402
from onnxprune.recover.iterative import compose, iterative_prune, round_ratios  # noqa: E402
from zoo_kws import ZOO, kl_to_original, kws_feeds  # noqa: E402


@pytest.fixture(scope="module")
def case():
    model = onnx.load(ZOO / "kws_dscnn.onnx")
    calib, held_out = kws_feeds(model, "calib", 64), kws_feeds(model, "eval", 60)
    config = PruneConfig(ratio=0.5, criterion="reconstruction", compensate="lstsq")
    rounds = []
    done = iterative_prune(model, config, calib, 3, RecoverConfig(steps=90, seconds=120, eval_every=10, seed=1),
                           progress=rounds.append)
    one = prune(model, config=PruneConfig(ratio=0.5, criterion="reconstruction", compensate="lstsq",
                                          calibration=calib))
    return model, done, one, rounds, held_out


def test_every_round_is_verified_and_prunes_a_share(case):
    model, done, one, rounds, _ = case
    assert [r["round"] for r in rounds] == [1, 2, 3] and done.rounds == rounds
    assert [r["ratio"] for r in rounds] == pytest.approx(round_ratios(0.5, 3), abs=1e-6)
    assert all(r["verify_max_abs_diff"] < 1e-5 for r in rounds)
    macs = [r["macs"] for r in rounds]
    assert macs[0] > macs[1] > macs[2] == one.after["macs"]
    assert all(r["recover"]["steps"] <= 30 for r in rounds)  # the step cap is split over the rounds
    assert done.result.before == one.before  # figures against the original, not the last round's input


def test_final_model_has_the_one_shot_structure(case):
    _, done, one, *_ = case
    assert skeleton(done.model) == skeleton(one.model)  # only initializer values differ
    assert [(layer["node"], layer["channels_before"], layer["channels_after"]) for layer in done.result.layers] == \
        [(layer["node"], layer["channels_before"], layer["channels_after"]) for layer in one.layers]
    onnx.checker.check_model(done.model, full_check=True)


def test_closer_to_the_original_on_held_out_voices(case):
    model, done, one, _, held_out = case
    assert kl_to_original(model, done.model, held_out) < 0.8 * kl_to_original(model, one.model, held_out)


def test_compose_maps_kept_channels_to_the_original():
    first = compose({}, {"a": (1, np.array([0, 2, 3, 5, 7]))})
    second = compose(first, {"a": (1, np.array([1, 4])), "b": (1, np.array([0]))})
    assert second["a"][1].tolist() == [2, 7] and second["b"][1].tolist() == [0]


def test_plans_and_global_ranking_are_refused(case):
    model, *_ = case
    with pytest.raises(UsageError, match="--recover-rounds"):
        iterative_prune(model, PruneConfig(ratio=0.5, global_ranking=True), [], 2)
