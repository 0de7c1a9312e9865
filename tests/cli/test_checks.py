"""No silent no-ops: an option that would change nothing is an error (exit 2) or a printed note;
and --data, when given, is used: dims from its examples, the data-aware default criterion."""

from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import TensorProto, helper

from builders import GraphBuilder
from test_main import run

from onnxprune.core.io import save_model

from cli_assets import DATA  # noqa: E402  (the bundled KWS and its data)



def _mlp(tmp_path, batch="N", second_input=False):
    """x [batch, 16] -> Gemm 32 -> Relu -> Gemm 8 (a plain regression output, no BatchNormalization)."""
    b = GraphBuilder(seed=1)
    x = b.input("x", [batch, 16])
    h = b.op("Relu", [b.gemm(x, 16, 32)])
    y = b.gemm(h, 32, 8)
    if second_input:
        y = b.op("Add", [y, b.input("bias_in", [1, 8])])
    path = tmp_path / "mlp.onnx"
    save_model(b.model([y]), path)
    return path


def _dumps(tmp_path, n=24, extra=None):
    rng = np.random.default_rng(0)
    arrays = {"x": rng.standard_normal((n, 16)).astype(np.float32)}
    arrays.update(extra or {})
    path = tmp_path / "feeds.npz"
    np.savez(path, **arrays)
    return path


# --- finding 3: options that did nothing -----------------------------------------------------------
def test_misspelt_exclude_is_an_error(kws, tmp_path):
    out = tmp_path / "p.onnx"
    r = run("prune", kws, out, "--exclude", "/net/stem/stem.0/Convv")
    assert r.returncode == 2 and "--exclude /net/stem/stem.0/Convv" in r.stderr
    assert "did you mean /net/stem/stem.0/Conv" in r.stderr and not out.exists()
    assert run("inspect", kws, "--exclude", "nope").returncode == 2
    r = run("quantize", kws, tmp_path / "q.onnx", "--exclude", "/net/fc/Gemmm")
    assert r.returncode == 2 and "did you mean /net/fc/Gemm" in r.stderr and not (tmp_path / "q.onnx").exists()
    assert run("prune", kws, out, "--exclude", "/net/stem/stem.0/Conv").returncode == 0


def test_round_to_larger_than_every_group_is_an_error(kws, tmp_path):
    out = tmp_path / "p.onnx"
    r = run("prune", kws, out, "--round-to", "1000")
    assert r.returncode == 2 and "--round-to 1000 keeps every prunable group whole" in r.stderr
    assert not out.exists()


def test_round_to_that_spares_some_groups_is_a_note(kws, tmp_path):
    r = run("prune", kws, tmp_path / "p.onnx", "--round-to", "96")
    assert r.returncode == 0, r.stderr
    assert "note: --round-to 96 keeps" in r.stdout and "/net/stem/stem.0/Conv (64)" in r.stdout


@pytest.mark.parametrize("extra", [["--ratio", "0.25"], ["--criterion", "l2"], ["--round-to", "8"], ["--global"]])
def test_plan_with_options_it_ignores_is_an_error(kws, tmp_path, extra):
    plan = tmp_path / "plan.json"
    assert run("prune", kws, tmp_path / "a.onnx", "--save-plan", plan).returncode == 0
    r = run("prune", kws, tmp_path / "b.onnx", "--plan", plan, *extra)
    assert r.returncode == 2 and extra[0] in r.stderr and "would be ignored" in r.stderr
    assert not (tmp_path / "b.onnx").exists()


def test_plan_recorded_with_compensation_is_not_replayed_without_it(kws, tmp_path):
    plan = tmp_path / "plan.json"
    r = run("prune", kws, tmp_path / "a.onnx", "--compensate", "lstsq", "--save-plan", plan, *DATA)
    assert r.returncode == 0, r.stderr
    assert json.loads(plan.read_text())["meta"]["compensate"] == "lstsq"
    r = run("prune", kws, tmp_path / "b.onnx", "--plan", plan)
    assert r.returncode == 2 and "--compensate lstsq" in r.stderr and not (tmp_path / "b.onnx").exists()
    r = run("prune", kws, tmp_path / "c.onnx", "--plan", plan, "--compensate", "lstsq", *DATA)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "c.onnx").read_bytes()
    assert run("prune", kws, tmp_path / "d.onnx", "--plan", plan, "--compensate", "none").returncode == 0


def test_bn_criterion_without_batchnorm_is_an_error(tmp_path):
    model = _mlp(tmp_path, batch=1)
    r = run("prune", model, tmp_path / "p.onnx", "--criterion", "bn", "--allow-io-change")
    assert r.returncode == 2 and "--criterion bn" in r.stderr and "no BatchNormalization" in r.stderr
    assert not (tmp_path / "p.onnx").exists()


def test_bn_criterion_partly_used_is_a_note(tmp_path):
    b = GraphBuilder(seed=2)
    x = b.input("x", [1, 3, 8, 8])
    h = b.op("Relu", [b.bn(b.conv(x, 3, 8), 8)])      # ranked by its BatchNormalization scale
    h = b.op("Relu", [b.conv(h, 8, 8)])               # no BatchNormalization: l1
    model, report = tmp_path / "cnn.onnx", tmp_path / "r.json"
    save_model(b.model([b.conv(h, 8, 4)]), model)
    r = run("prune", model, tmp_path / "p.onnx", "--criterion", "bn", "--round-to", "1", "--report", report)
    assert r.returncode == 0, r.stderr
    used = sorted(g["criterion"] for g in json.loads(report.read_text())["groups"] if g["prunable"])
    assert used == ["bn", "l1"] and "note: --criterion bn ranked 1 of 2 groups by l1" in r.stdout


def test_allow_io_change_is_suggested_only_where_it_helps(tmp_path, real_model):
    r = run("inspect", _mlp(tmp_path, batch=1), "-v")
    assert r.returncode == 0 and "reaches graph output" in r.stdout
    assert "--allow-io-change" not in r.stdout  # a plain output is never resized
    r = run("inspect", real_model("silero_vad_v6"), "--shape", "input:1,576", "-v")
    assert "reaches graph output 'hn' (the model's interface must not change) [--allow-io-change" in r.stdout


# --- finding 5: --data means use it ------------------------------------------------------------------
def test_data_gives_symbolic_dims_and_the_data_aware_criterion(tmp_path):
    model, report = _mlp(tmp_path), tmp_path / "r.json"
    r = run("prune", model, tmp_path / "p.onnx", "--data", _dumps(tmp_path), "--report", report)
    assert r.returncode == 0, r.stderr
    assert "shapes: x:1,16 (symbolic dims from the first --data example" in r.stdout
    assert "criterion: reconstruction (the default with --data" in r.stdout
    assert json.loads(report.read_text())["config"]["criterion"] == "reconstruction"


def test_explicit_criterion_with_data_is_kept(tmp_path):
    model, report = _mlp(tmp_path), tmp_path / "r.json"
    r = run("prune", model, tmp_path / "p.onnx", "--data", _dumps(tmp_path), "--criterion", "activation",
            "--report", report)
    assert r.returncode == 0, r.stderr
    assert "criterion: reconstruction" not in r.stdout
    assert json.loads(report.read_text())["config"]["criterion"] == "activation"


def test_dim_error_lists_every_input(tmp_path):
    b = GraphBuilder(seed=1)
    a, c = b.input("a", ["T", 4]), b.input("c", [2, 4])
    b.nodes.append(helper.make_node("Add", [a, "w"], ["y0"]))
    b.inits.append(helper.make_tensor("w", TensorProto.FLOAT, [4], [0.0] * 4))
    y = b.gemm("y0", 4, 8)
    path = tmp_path / "two.onnx"
    save_model(b.model([y, c]), path)
    r = run("inspect", path)
    assert r.returncode == 2
    assert "a [T?, 4]" in r.stderr and "c [2, 4]" in r.stderr and "--shape a:1,4" in r.stderr
