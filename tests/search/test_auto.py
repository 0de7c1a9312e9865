"""Automatic budgeted pruning: targets met, budget respected, caps, replayable plans."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from builders import GraphBuilder
from onnxprune.search.auto import finish, search
from builders import bundled_model
from onnxprune.errors import UsageError
from onnxprune.search.fidelity import Fidelity, make_feeds
from onnxprune.core.io import load_model
from onnxprune.search.latency_model import LatencyModel, MacsLatency
from onnxprune.search.sensitivity import measure_sensitivity
from onnxprune.search.widths import WidthSpace

CLI = [sys.executable, "-m", "onnxprune"]


def run(*args):
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=300)


def mlp() -> onnx.ModelProto:
    """A classifier whose argmax varies with the input, so pruning moves top-1 decisions; in each
    hidden layer a third of the neurons are weak (weights x0.02): cheap to remove, the rest not."""
    b = GraphBuilder(seed=11)
    rng = np.random.default_rng(5)
    x = b.input("x", [1, 16])
    h = x
    for k in (16, 48):
        w = rng.standard_normal((k, 48)) / np.sqrt(k)
        w[:, ::3] *= 0.02
        h = b.op("Relu", [b.op("Gemm", [h, b.const(w), b.const(rng.standard_normal(48) * 0.1)])])
    return b.model([b.gemm(h, 48, 10)])


def setup(model, *, calib=8, held=48, **space_opts):
    space = WidthSpace(model, **space_opts)
    ins = space.analysis.input_shapes
    sens = measure_sensitivity(space, Fidelity(model, make_feeds(model, ins, count=calib, seed=0, part=0)))
    evaluate = Fidelity(model, make_feeds(model, ins, count=held, seed=0, part=1))
    return space, sens, evaluate


@pytest.fixture(scope="module")
def kws():
    model = load_model(bundled_model())
    return (model,) + setup(model)


@pytest.mark.parametrize("goal,target", [("macs", 0.5), ("params", 0.6), ("macs", 0.3)])
def test_mac_and_param_targets_are_met_exactly_and_deterministically(kws, goal, target):
    model, space, sens, evaluate = kws
    found = search(space, goal, target, sensitivity=sens)
    assert found.reached and found.stop_reason == "target reached"
    done = finish(model, space, found, goal=goal, target=target, sensitivity=sens)
    assert done.result.verify.passed
    assert done.result.after[goal] <= target * done.result.before[goal]
    assert found.achieved == pytest.approx(done.result.after[goal] / done.result.before[goal])
    again = search(space, goal, target, sensitivity=sens)
    assert again.keep == found.keep and again.trajectory == found.trajectory


def test_budget_is_respected_on_the_held_out_feeds():
    model = mlp()
    space, sens, evaluate = setup(model, round_to=4)
    found = search(space, "macs", 0.2, sensitivity=sens, evaluate=evaluate, max_drop=4.0)
    rejected = [e for e in found.trajectory if not e["accepted"]]
    assert rejected, "the budget never bound: the test would not catch a violation"
    assert all(e["drop"] > 4.0 for e in rejected)
    done = finish(model, space, found, goal="macs", target=0.2, sensitivity=sens, evaluate=evaluate)
    assert 100.0 - done.metrics["top1_agreement"] <= 4.0
    assert done.result.after["macs"] < done.result.before["macs"]
    # every group that was stepped back stays at its last accepted width
    for e in rejected:
        assert found.keep[e["group"]] > e["kept"]


def test_snr_budget():
    model = mlp()
    space, sens, evaluate = setup(model)
    found = search(space, "macs", 0.2, sensitivity=sens, evaluate=evaluate, min_snr=15.0)
    assert all(e["metrics"]["snr_db"] >= 15.0 for e in found.trajectory if e["accepted"])
    assert evaluate(space.build(found.keep))["snr_db"] >= 15.0


def test_max_evals_stops_with_the_best_so_far():
    model = mlp()
    space, sens, evaluate = setup(model)
    full = search(space, "macs", 0.2, sensitivity=sens, evaluate=evaluate, max_drop=100.0)
    capped = search(space, "macs", 0.2, sensitivity=sens, evaluate=evaluate, max_drop=100.0, max_evals=4)
    assert not capped.reached and "--max-evals 4" in capped.stop_reason
    assert capped.evals == 4 and len(capped.trajectory) == 3   # the original's evaluation counts too
    assert capped.keep == {**space.full, **{e["group"]: e["kept"] for e in capped.trajectory}}
    assert capped.trajectory == full.trajectory[:3]
    assert capped.achieved > full.achieved   # stopped short of the goal, and says how far it got


def test_time_limit_stops_immediately_with_the_original():
    model = mlp()
    space, sens, evaluate = setup(model)
    found = search(space, "macs", 0.5, sensitivity=sens, evaluate=evaluate, max_drop=1.0, time_limit=1e-9)
    assert not found.reached and "--time-limit" in found.stop_reason
    assert found.keep == space.full and found.achieved == 1.0


def test_speedup_goal_with_a_deterministic_latency_model(kws):
    model, space, sens, evaluate = kws
    latency = MacsLatency(space, overhead=0.1)
    found = search(space, "speedup", 1.6, sensitivity=sens, evaluate=evaluate, latency=latency, max_drop=1.0)
    assert found.reached
    assert found.achieved >= 1.6
    assert found.trajectory[-1]["measured_speedup"] >= 1.6
    # a measured hit is confirmed by a second measurement
    measured = [e for e in found.trajectory if "measured_speedup" in e]
    assert found.measurements == len(measured) + 1
    unreachable = search(space, "speedup", 50.0, sensitivity=sens, evaluate=evaluate, latency=latency, max_drop=1.0)
    assert not unreachable.reached and unreachable.achieved < 50.0


def test_latency_model_measures_each_group_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("ONNXPRUNE_CACHE", str(tmp_path))
    model = mlp()
    space = WidthSpace(model)
    lat = LatencyModel(space, runs=3, warmup=1).build()
    assert set(lat.table) == set(space.groups) and lat.base_ms > 0 and not lat.cached
    assert lat.passes == sum((len(rows) + 1) * 4 for rows in lat.table.values())
    assert all(r["kept"] % 4 == 0 for rows in lat.table.values() for r in rows)   # aligned widths
    again = LatencyModel(space, runs=3, warmup=1).build()
    assert again.cached and again.table == lat.table and again.passes == 0
    assert lat.predict(space.full) == pytest.approx(lat.base_ms)


def test_goal_validation():
    space = WidthSpace(mlp())
    for goal, target in [("macs", 1.5), ("params", 0.0), ("speedup", 0.9), ("latency", 2.0)]:
        with pytest.raises(UsageError):
            search(space, goal, target, sensitivity=None)
    with pytest.raises(UsageError, match="latency model"):
        search(space, "speedup", 2.0, sensitivity=None)


# The command line ----------------------------------------------------------------------------


@pytest.fixture
def kws_file(tmp_path):
    dst = tmp_path / "kws.onnx"
    dst.write_bytes(bundled_model().read_bytes())
    return dst


def test_cli_auto_writes_verified_model_plan_report_plot_and_replays_to_same_bytes(kws_file, tmp_path):
    out, plan, report, plot = (tmp_path / n for n in ("a.onnx", "plan.json", "r.json", "p.png"))
    r = run("auto", kws_file, out, "--target-speedup", "1.5", "--latency-model", "macs", "--max-drop", "1",
            "--save-plan", plan, "--report", report, "--plot", plot, "--calib", 8, "--eval", 16)
    assert r.returncode == 0, r.stderr
    assert "step   1:" in r.stdout and "goal speedup 1.5: reached" in r.stdout
    assert r.stderr.strip().splitlines()[-1].startswith("PASSED")
    data = json.loads(report.read_text())
    assert data["reached"] and data["prune"]["verify"]["passed"] and data["trajectory"]
    assert data["prune"]["macs_after"] < data["prune"]["macs_before"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    replay = tmp_path / "replay.onnx"
    r2 = run("prune", kws_file, replay, "--plan", plan)
    assert r2.returncode == 0, r2.stderr
    assert replay.read_bytes() == out.read_bytes()


def test_cli_plan_for_another_model_fails_clearly(kws_file, tmp_path):
    plan = tmp_path / "plan.json"
    r = run("auto", kws_file, tmp_path / "a.onnx", "--target-macs", "0.6", "--save-plan", plan, "--calib", 4, "--eval", 4)
    assert r.returncode == 0, r.stderr
    other = tmp_path / "mlp.onnx"
    onnx.save(mlp(), other)
    r = run("prune", other, tmp_path / "b.onnx", "--plan", plan)
    assert r.returncode == 2 and "plan was made for another model" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 2 and not (tmp_path / "b.onnx").exists()


@pytest.mark.parametrize("args,message", [
    (["--target-macs", "0.5", "--target-params", "0.5"], "exactly one goal"),
    ([], "exactly one goal"),
    (["--target-macs", "2"], "0 < F < 1"),
    (["--target-speedup", "0.5"], "greater than 1"),
    (["--target-macs", "0.5", "--max-drop", "-1"], "--max-drop"),
    (["--target-macs", "0.5", "--provider", "NoSuchExecutionProvider"], "not available"),
    (["--target-macs", "0.5", "--max-evals", "0"], "--max-evals"),
])
def test_cli_bad_usage_is_one_line_exit_2_and_writes_nothing(kws_file, tmp_path, args, message):
    out = tmp_path / "a.onnx"
    before = kws_file.read_bytes()
    r = run("auto", kws_file, out, *args)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not out.exists() and kws_file.read_bytes() == before


def test_cli_caps_report_partial_and_keep_best_so_far(kws_file, tmp_path):
    out, report = tmp_path / "a.onnx", tmp_path / "r.json"
    r = run("auto", kws_file, out, "--target-macs", "0.3", "--max-evals", "3", "--report", report, "--calib", 4, "--eval", 4)
    assert r.returncode == 0, r.stderr
    assert "NOT reached (--max-evals 3 reached)" in r.stdout
    assert r.stderr.strip().splitlines()[-1].startswith("PARTIAL")
    data = json.loads(report.read_text())
    assert not data["reached"] and len(data["trajectory"]) == 2
    assert data["prune"]["macs_after"] / data["prune"]["macs_before"] == pytest.approx(data["achieved"])


def test_cli_prune_allocate_sensitivity(kws_file, tmp_path):
    rep_u, rep_s = tmp_path / "u.json", tmp_path / "s.json"
    assert run("prune", kws_file, tmp_path / "u.onnx", "--ratio", "0.5", "--report", rep_u).returncode == 0
    r = run("prune", kws_file, tmp_path / "s.onnx", "--ratio", "0.5", "--allocate", "sensitivity", "--report", rep_s)
    assert r.returncode == 0, r.stderr
    u, s = json.loads(rep_u.read_text()), json.loads(rep_s.read_text())
    assert s["verify"]["passed"] and s["macs_after"] <= u["macs_after"]
    assert [g["kept"] for g in s["groups"]] != [g["kept"] for g in u["groups"]]


def test_cli_allocate_conflicts_with_global(kws_file, tmp_path):
    r = run("prune", kws_file, tmp_path / "s.onnx", "--allocate", "sensitivity", "--global")
    assert r.returncode == 2 and "--allocate sensitivity" in r.stderr and not (tmp_path / "s.onnx").exists()


def test_top1_agreement_counts_rows_like_bench():
    """auto's budget metric and bench's fidelity agree on what top-1 agreement is: the share of
    rows (a recognizer's frames) whose decision is the original's."""
    from onnxprune.bench.metrics import fidelity
    from onnxprune.search.fidelity import _agreeing

    ref = np.array([[[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]])  # 4 frames of one example
    got = np.array([[[0.2, 0.8], [0.1, 0.9], [0.3, 0.7], [0.6, 0.4]]])  # one frame flips
    same = _agreeing(got, ref)
    assert same.tolist() == [True, False, True, True]
    assert fidelity([ref], [got])["top1_agreement"] == pytest.approx(same.mean()) == 0.75
    probs = np.array([[0.2], [0.7]])
    assert _agreeing(np.array([[1.3], [0.7]]), probs).tolist() == [False, True]  # cut at 0.5: the original's range


def test_auto_warns_when_the_budget_split_is_too_small_to_judge_it(tmp_path):
    """19 held-out clips: accuracy's standard error (~7 points) dwarfs a 1-point budget — say so."""
    from click.testing import CliRunner

    import onnxprune
    from onnxprune.search.auto import budget_noise
    from onnxprune.cli.main import main

    assets = Path(onnxprune.__file__).parent / "assets" / "kws"
    res = CliRunner().invoke(main, ["auto", str(assets / "kws.onnx"), str(tmp_path / "a.onnx"), "--target-macs", "0.8",
                                    "--task", "classify", "--labels", str(assets / "labels.json"),
                                    "--data", str(assets / "calib" / "manifest.jsonl"),
                                    "--frontend", str(assets / "logmel.onnx"), "--latency-model", "macs",
                                    "--eval", "20", "--calib", "8"])
    assert res.exit_code == 0, res.output
    assert "on 19 held-out feeds" in res.output
    assert "note: the budget was judged on 19 held-out examples" in res.output and "larger --holdout" in res.output
    assert budget_noise(93.67, 41) == pytest.approx(3.80, abs=0.01)
    assert budget_noise(100.0, 2000) < 0.25 < 1.0  # plenty of examples: no note
