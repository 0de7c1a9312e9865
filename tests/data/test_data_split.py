"""The held-out split: disjoint, complete, deterministic, by source file, with reportable counts."""

from __future__ import annotations

import numpy as np
import pytest
from audio_fixtures import tone, waveform_model, write

from onnxprune.data import DataConfig, DataError, load_examples, split_counts, split_examples
from onnxprune.data.split import eval_keys


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "d"
    for i in range(40):
        write(root / ("yes" if i % 2 else "no") / f"clip{i:02d}.wav", tone(8000, 0.25, 200 + 10 * i), 8000)
    return root


def _sources(model, cfg):
    return [e.meta["key"] for e in load_examples(model, cfg)]


def test_split_is_disjoint_complete_and_matches_counts(folder):
    model = waveform_model([1, 4000])
    cfg = DataConfig(str(folder), holdout=0.25)
    calib, evaluation = split_examples(cfg)
    c, e = _sources(model, calib), _sources(model, evaluation)
    assert not set(c) & set(e)
    assert sorted(c + e) == sorted(_sources(model, cfg))
    assert split_counts(cfg) == {"calib": len(c), "eval": len(e)}
    assert len(e) == 10                                          # exactly 25 % of 40


def test_split_is_deterministic_and_independent_of_location_and_limit(folder, tmp_path):
    model = waveform_model([1, 4000])
    _, ev = split_examples(DataConfig(str(folder)))
    first = _sources(model, ev)
    moved = tmp_path / "elsewhere"
    folder.rename(moved)
    _, ev2 = split_examples(DataConfig(str(moved)))
    assert _sources(model, ev2) == first
    _, limited = split_examples(DataConfig(str(moved), limit=2))
    assert _sources(model, limited) == first[:2]


def test_windows_of_one_clip_stay_on_one_side(tmp_path):
    for i in range(10):
        write(tmp_path / "d" / f"long{i}.wav", tone(8000, 1.0), 8000)
    model = waveform_model([1, 2000])
    calib, evaluation = split_examples(DataConfig(str(tmp_path / "d"), hop=0.25, holdout=0.5))
    c = {e.source for e in load_examples(model, calib)}
    e = {e.source for e in load_examples(model, evaluation)}
    assert not c & e and len(c) + len(e) == 10


def test_dump_rows_are_split_too(tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((50, 4000)).astype(np.float32))
    model = waveform_model([1, 4000])
    cfg = DataConfig(str(tmp_path / "x.npy"), holdout=0.3)
    calib, evaluation = split_examples(cfg)
    c, e = _sources(model, calib), _sources(model, evaluation)
    assert len(c) + len(e) == 50 and not set(c) & set(e)
    assert split_counts(cfg) == {"calib": len(c), "eval": len(e)}


def test_holdout_zero_keeps_everything_for_calibration(folder):
    assert split_counts(DataConfig(str(folder), holdout=0.0)) == {"calib": 40, "eval": 0}
    assert eval_keys(["a", "b", "c"], 0.0) == set() and len(eval_keys(["a", "b", "c"], 0.9)) == 2
    assert len(eval_keys(["a", "b"], 0.01)) == 1 and eval_keys(["a"], 0.5) == set()


@pytest.mark.parametrize("kw", [{"holdout": 1.0}, {"holdout": -0.1}, {"subset": "train"}])
def test_bad_split_settings(folder, kw):
    with pytest.raises(DataError):
        list(load_examples(waveform_model([1, 4000]), DataConfig(str(folder), **kw)))


def test_holdout_sides_of_calibrating_and_evaluating_commands_are_disjoint(tmp_path):
    """prune/quantize --holdout F calibrate on one side, bench --holdout F evaluates on the other;
    without --holdout both read everything."""
    import click
    from click.testing import CliRunner

    from onnxprune.cli.data_options import data_options
    from onnxprune.data import load_examples
    from builders import bundled_model

    x = np.random.default_rng(0).standard_normal((10, 1, 49, 40)).astype(np.float32)
    x[:, 0, 0, 0] = np.arange(10)  # each row says which it is
    np.savez(tmp_path / "d.npz", logmel=x)
    seen = {}

    def command(side):
        @click.command()
        @data_options(side)
        def cmd(data):
            seen[side] = {int(ex.feeds["logmel"][0, 0, 0, 0]) for ex in load_examples(str(bundled_model()), data)}
        return cmd

    for holdout in (["--holdout", "0.3"], []):
        for side in ("calib", "eval"):
            res = CliRunner().invoke(command(side), ["--data", str(tmp_path / "d.npz"), *holdout])
            assert res.exit_code == 0, res.output
        if holdout:
            assert len(seen["eval"]) == 3 and seen["calib"] | seen["eval"] == set(range(10))
            assert not seen["calib"] & seen["eval"]
        else:
            assert seen["calib"] == seen["eval"] == set(range(10))
