"""Depth and low-rank from the command line: inspect lists blocks with reasons, prune applies them,
bad names are one-line errors that write nothing, a saved plan replays to the same bytes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx

from depth_builders import resnet

CLI = [sys.executable, "-m", "onnxprune"]
FIXTURES = Path(__file__).resolve().parents[2] / "models" / "fixtures"


def run(*args):
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=300)


def test_inspect_lists_blocks_and_why_not(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models"))
    from build_resnet_kws import build

    path = tmp_path / "resnet.onnx"
    onnx.save(build(), path)
    out = tmp_path / "a.json"
    r = run("inspect", path, "--json", out)
    assert r.returncode == 0, r.stderr
    assert "s0b0.add" in r.stdout and "5 of 6 residual Adds removable" in r.stdout
    blocks = {b["name"]: b for b in json.loads(out.read_text())["blocks"]}
    assert not blocks["s1b0.add"]["removable"] and blocks["s1b0.add"]["reason"].startswith("not residual")
    assert blocks["s0b0.add"]["removable"] and blocks["s0b0.add"]["kind"] == "conv"


def test_prune_drop_blocks_and_low_rank_replay_from_plan(tmp_path):
    model = FIXTURES / "transformer_dynamo.onnx"
    a, b, plan = tmp_path / "a.onnx", tmp_path / "b.onnx", tmp_path / "plan.json"
    r = run("prune", model, a, "--ratio", "0", "--drop-blocks", "node_add_1", "--low-rank", "0.5", "--save-plan", plan)
    assert r.returncode == 0, r.stderr
    assert "depth: dropped node_add_1 (ffn)" in r.stdout and "low-rank (svd)" in r.stdout
    assert "fidelity vs original" in r.stdout
    saved = json.loads(plan.read_text())
    assert saved["blocks"] == ["node_add_1"] and saved["lowrank"]
    r = run("prune", model, b, "--plan", plan)
    assert r.returncode == 0, r.stderr
    assert a.read_bytes() == b.read_bytes()


def test_bad_block_or_rank_is_one_line_and_writes_nothing(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(resnet(dead=False), path)
    out = tmp_path / "out.onnx"
    for args, expected in ((["--drop-blocks", "nope"], "not a residual Add"),
                           (["--rank", "bogus"], "use LAYER=RANK"),
                           (["--rank", "nope=3"], "not a factorizable layer"),
                           (["--low-rank", "1.5"], "out of range")):
        r = run("prune", path, out, *args)
        assert r.returncode == 2, (args, r.stdout)  # usage error
        assert expected in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) <= 2
        assert not out.exists()


def test_auto_joint_with_repair_writes_a_plan_that_replays(tmp_path):
    path, a, b, plan = tmp_path / "m.onnx", tmp_path / "a.onnx", tmp_path / "b.onnx", tmp_path / "plan.json"
    onnx.save(resnet(dead=False, constant=True), path)
    r = run("auto", path, a, "--target-macs", "0.6", "--min-snr", "10", "--latency-model", "macs", "--depth",
            "--low-rank", "--block-repair", "mean", "--calib", "4", "--eval", "4", "--max-evals", "20",
            "--save-plan", plan)
    assert r.returncode == 0, r.stderr
    assert "step   1: block " in r.stdout and "mean repair" in r.stdout
    saved = json.loads(plan.read_text())
    assert saved["blocks"] and saved["meta"]["block_repair"] == "mean"
    r = run("prune", path, b, "--plan", plan)
    assert r.returncode == 0, r.stderr
    assert a.read_bytes() == b.read_bytes()
