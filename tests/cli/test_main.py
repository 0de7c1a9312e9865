"""The CLI as a user meets it: exit codes, one-line errors, no partial output, input untouched."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from builders import bundled_model

CLI = [sys.executable, "-m", "onnxprune"]


def run(*args, cwd=None):
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=120)


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def kws(tmp_path):
    dst = tmp_path / "kws.onnx"
    dst.write_bytes(bundled_model().read_bytes())
    return dst


def test_inspect_lists_groups_and_reasons(kws, tmp_path):
    out = tmp_path / "a.json"
    r = run("inspect", kws, "--json", out)
    assert r.returncode == 0, r.stderr
    assert "prunable" in r.stdout and "Softmax over the channel axis" in r.stdout
    data = json.loads(out.read_text())
    assert data["params"] > 0 and data["macs"] > 0
    assert any(g["blocked_by"] for g in data["groups"]) and any(g["prunable"] for g in data["groups"])
    assert r.stderr.strip().splitlines()[-1].startswith("PASSED")
    records = [b for g in data["groups"] for b in g["blocked"] or []]
    assert {"node", "code", "message", "hint"} <= set(records[0])
    assert any(b["code"] == "mixes-channels" and "Softmax" in b["message"] and b["node"] for b in records), records


def test_prune_writes_verified_model_and_report(kws, tmp_path):
    out, report = tmp_path / "p.onnx", tmp_path / "r.json"
    before = digest(kws)
    r = run("prune", kws, out, "--ratio", "0.5", "--report", report)
    assert r.returncode == 0, r.stderr
    assert digest(kws) == before
    data = json.loads(report.read_text())
    for key in ("params_before", "params_after", "macs_before", "macs_after", "verify", "groups"):
        assert key in data
    assert data["verify"]["passed"] and data["params_after"] < data["params_before"]
    assert {"passed", "max_abs_diff", "tolerance"} <= data["verify"].keys()
    assert {"name", "size", "kept", "blocked_by"} <= data["groups"][0].keys()
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    assert "verify: passed" in r.stdout


def test_plan_replay_gives_same_bytes(kws, tmp_path):
    a, b, plan = tmp_path / "a.onnx", tmp_path / "b.onnx", tmp_path / "plan.json"
    assert run("prune", kws, a, "--ratio", "0.4", "--criterion", "l2", "--save-plan", plan).returncode == 0
    assert run("prune", kws, b, "--plan", plan).returncode == 0
    assert a.read_bytes() == b.read_bytes()


def test_plan_for_another_model_fails_clearly(kws, tmp_path, real_model):
    plan = tmp_path / "plan.json"
    assert run("prune", kws, tmp_path / "a.onnx", "--save-plan", plan).returncode == 0
    r = run("prune", real_model("alexa_v0.1"), tmp_path / "b.onnx", "--plan", plan)
    assert r.returncode == 2 and "another model" in r.stderr
    assert not (tmp_path / "b.onnx").exists()


@pytest.mark.parametrize("args, code, words", [
    (["--ratio", "1.5"], 2, "out of range"),
    (["--ratio", "-0.1"], 2, "out of range"),
    (["--round-to", "0"], 2, "at least 1"),
    (["--shape", "nope:1,2"], 2, "not a model input"),
    (["--shape", "logmel:1,1,x"], 2, "integers"),
])
def test_bad_usage(kws, tmp_path, args, code, words):
    out = tmp_path / "o.onnx"
    before = digest(kws)
    r = run("prune", kws, out, *args)
    assert r.returncode == code
    assert words in r.stderr and "Traceback" not in r.stderr
    assert not out.exists() and digest(kws) == before


@pytest.mark.parametrize("content, words", [
    (b"", "empty"),
    (b"\x00\x01garbage\xff" * 50, "not a valid ONNX"),
])
def test_bad_model_files(tmp_path, content, words):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    r = run("prune", bad, tmp_path / "o.onnx")
    assert r.returncode == 1 and words in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o.onnx").exists()


def test_truncated_model(kws, tmp_path):
    bad = tmp_path / "trunc.onnx"
    bad.write_bytes(kws.read_bytes()[:5000])
    r = run("inspect", bad)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "error:" in r.stderr


def test_output_equal_to_input_is_refused(kws):
    before = digest(kws)
    r = run("prune", kws, kws)
    assert r.returncode == 2 and "is the input" in r.stderr
    assert digest(kws) == before


def test_output_dir_missing(kws, tmp_path):
    r = run("prune", kws, tmp_path / "missing" / "o.onnx")
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_symbolic_dims_need_shape(real_model, tmp_path):
    r = run("inspect", real_model("embedding_model"))
    assert r.returncode == 2 and "--shape" in r.stderr and "input_1" in r.stderr
    r = run("inspect", real_model("embedding_model"), "--shape", "input_1:1,76,32,1")
    assert r.returncode == 0


def test_verbose_shows_traceback_on_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"")
    r = run("inspect", bad, "-v")
    assert r.returncode == 1 and "Traceback" in r.stderr


def test_demo_runs(tmp_path):
    r = run("demo", "--out", tmp_path / "demo", "--ratios", "0.5", "--runs", "20")
    assert r.returncode == 0, r.stderr
    for name in ("report.json", "report.md", "demo.png", "kws_r50.onnx", "kws_int8.onnx"):
        assert (tmp_path / "demo" / name).exists(), name
    assert "verified" in r.stdout and "accuracy" in r.stdout
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    names = [m["name"] for m in report["models"]]
    assert names[0] == "original" and "int8" in names and len(names) == 5
    original = report["models"][0]["task"]["accuracy"]
    assert original > 0.9  # the trained keyword spotter on its held-out clips (models/README.md)


def test_summary_counts_single_channel_groups_apart(real_model, tmp_path):
    """silero v6's decoder conv has one output channel: neither prunable nor blocked."""
    r = run("prune", real_model("silero_vad_v6"), tmp_path / "o.onnx", "--shape", "input:1,576")
    assert r.returncode == 0, r.stderr
    assert "groups: 5 prunable, 1 blocked, 1 single-channel" in r.stdout
