"""Recovery in the loop, on the command line (zoo keyword spotter, step caps for reproducibility):
`auto --recover` and `sweep --recover` write models whose graph, interface and shapes equal the
unrecovered ones (everything but initializer values) and that are closer to the original on
held-out voices; `prune --recover --recover-rounds K` verifies every round; `--criterion
taylor|fisher` ranks by the recover extra's gradient scores."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from onnxprune.recover import available

if not available():
    pytest.skip("needs the recover extra (torch, onnx2torch)", allow_module_level=True)

from test_main import run  # noqa: E402

from onnxprune.prune.plan import Plan  # noqa: E402
from onnxprune.recover.check import skeleton  # noqa: E402
from onnxprune.recover.criteria import gradient_plan  # noqa: E402
from zoo_kws import FRONT, MODEL, ZOO, kl_to_original, kws_feeds  # noqa: E402

CALIB = ["--data", ZOO / "data/kws/calib/manifest.jsonl", "--frontend", FRONT]


@pytest.fixture(scope="module")
def held_out():
    return kws_feeds(onnx.load(MODEL), "eval", 60)


def kl_from_original(model_path, feeds) -> float:
    return kl_to_original(onnx.load(MODEL), onnx.load(model_path), feeds)


def same_but_initializer_values(a, b) -> bool:
    return skeleton(onnx.load(a)) == skeleton(onnx.load(b))


def test_auto_recover(tmp_path, held_out):
    common = [MODEL, "--target-macs", "0.5", "--latency-model", "macs", *CALIB, "--limit", "100",
              "--compensate", "lstsq", "--max-drop", "5"]
    plain, recovered, report = tmp_path / "plain.onnx", tmp_path / "rec.onnx", tmp_path / "r.json"
    r = run("auto", common[0], plain, *common[1:])
    assert r.returncode == 0, r.stderr
    r = run("auto", common[0], recovered, *common[1:], "--recover", "--recover-time", "60",
            "--recover-max-steps", "200", "--report", report)
    assert r.returncode == 0, r.stderr
    assert "before recovery: vs original" in r.stdout and "recover: top-1 agreement" in r.stdout
    assert "verify: passed" in r.stdout and r.stdout.rstrip().splitlines()[-1].startswith("fidelity: ")
    data = json.loads(report.read_text())
    assert data["recover"]["kept"] and data["recover"]["steps"] == 200
    assert data["fidelity"]["snr_db"] > data["fidelity_before_recover"]["snr_db"]
    assert same_but_initializer_values(plain, recovered)
    assert plain.read_bytes() != recovered.read_bytes()
    assert kl_from_original(recovered, held_out) < kl_from_original(plain, held_out)


def test_sweep_recover_with_a_gradient_criterion(tmp_path, held_out):
    out = tmp_path / "sw"
    r = run("sweep", MODEL, "--ratios", "0,0.5", "--criterion", "taylor", "--compensate", "lstsq", *CALIB,
            "--limit", "80", "--holdout", "0.25", "--recover", "--recover-time", "60", "--recover-max-steps", "150",
            "--runs", "5", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "criterion: taylor" in r.stdout and "recover r=0.5:" in r.stdout
    assert "recovered" in r.stdout.splitlines()[[i for i, line in enumerate(r.stdout.splitlines())
                                                 if line.startswith("ratio")][0]]
    sweep = json.loads((out / "sweep.json").read_text())
    point = next(p for p in sweep["points"] if p["ratio"] == 0.5)
    assert point["quality_recovered"] is not None and point["recovered"]["report"]["steps"] > 0
    assert sweep["prune"]["criterion"] == "taylor"
    plain, twin = out / "kws_dscnn_r0p5.onnx", Path(point["recovered"]["path"])
    assert same_but_initializer_values(plain, twin)
    assert kl_from_original(twin, held_out) < kl_from_original(plain, held_out)
    assert "recovered" in (out / "sweep.md").read_text()


def test_prune_in_rounds(tmp_path):
    out, report = tmp_path / "it.onnx", tmp_path / "r.json"
    once = tmp_path / "once.onnx"
    args = [MODEL, "--ratio", "0.5", "--criterion", "reconstruction", "--compensate", "lstsq", *CALIB, "--limit", "32"]
    r = run("prune", args[0], out, *args[1:], "--recover", "--recover-rounds", "2", "--recover-max-steps", "40",
            "--report", report)
    assert r.returncode == 0, r.stderr
    assert "round 1/2: ratio 0.25, rewrite verified" in r.stdout and "round 2/2: ratio 0.5" in r.stdout
    rounds = json.loads(report.read_text())["recover"]["rounds"]
    assert len(rounds) == 2 and all(x["verify_max_abs_diff"] < 1e-5 for x in rounds)
    assert all(x["recover"]["steps"] <= 20 for x in rounds)
    r = run("prune", args[0], once, *args[1:])
    assert r.returncode == 0, r.stderr
    assert same_but_initializer_values(once, out)  # the same widths as one-shot pruning


def test_rounds_need_recover(tmp_path):
    r = run("prune", MODEL, tmp_path / "o.onnx", *CALIB, "--recover-rounds", "3")
    assert r.returncode == 2 and "--recover-rounds needs --recover" in r.stderr


@pytest.mark.parametrize("kind", ["taylor", "fisher"])
def test_gradient_criteria_on_prune(tmp_path, kind):
    out, plan_path, report = tmp_path / "g.onnx", tmp_path / "plan.json", tmp_path / "r.json"
    r = run("prune", MODEL, out, "--ratio", "0.5", "--criterion", kind, *CALIB, "--limit", "8",
            "--save-plan", plan_path, "--report", report)
    assert r.returncode == 0, r.stderr
    assert f"criterion: {kind} (label-free gradient" in r.stdout and "verify: passed" in r.stdout
    data = json.loads(report.read_text())
    assert data["config"]["criterion"] == kind
    assert {g["criterion"] for g in data["groups"] if g["prunable"]} == {kind}
    plan = Plan.from_json(plan_path.read_text())
    assert plan.meta["criterion"] == kind
    model = onnx.load(MODEL)
    feeds = kws_feeds(model, "calib", 8)
    assert plan.groups == gradient_plan(model, feeds, ratio=0.5, kind=kind).groups  # the same ranking as the API
