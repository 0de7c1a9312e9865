"""prune / quantize / auto say how close the result is to the ORIGINAL model (not only that the
rewrite is exact), warn with the fix when it is far, refuse it under --min-snr / --max-drop, and
never call an unchanged copy PASSED."""

from __future__ import annotations

import json
import math

import pytest

from test_main import run


from cli_assets import DATA  # noqa: E402  (the bundled KWS and its data)



def _fidelity_line(stdout: str) -> str:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("fidelity: vs original on ")]
    assert len(lines) == 1, stdout
    return lines[0]


def test_prune_says_how_close_to_the_original_on_seeded_inputs(kws, tmp_path):
    out, report = tmp_path / "p.onnx", tmp_path / "r.json"
    r = run("prune", kws, out, "--ratio", "0.5", "--report", report)
    assert r.returncode == 0, r.stderr
    line = _fidelity_line(r.stdout)
    assert "16 seeded random inputs" in line and "top-1" in line and "SNR" in line and "cosine" in line
    assert r.stdout.rstrip().splitlines()[-1] == line  # the line right before the status line
    fid = json.loads(report.read_text())["fidelity"]
    assert fid["examples"] == 16 and "seeded random inputs" in fid["on"]
    probs = fid["outputs"][0]
    assert probs["name"] == "probs" and probs["kind"] == "classifier"
    assert 0 <= probs["top1_agreement"] <= 100 and -1 <= probs["cosine"] <= 1 and math.isfinite(probs["snr_db"])


def test_prune_with_data_measures_on_held_out_files(kws, tmp_path):
    report = tmp_path / "r.json"
    r = run("prune", kws, tmp_path / "p.onnx", "--ratio", "0.25", "--compensate", "lstsq", "--holdout", "0.3",
            "--report", report, *DATA)
    assert r.returncode == 0, r.stderr
    assert "held-out examples of --data" in _fidelity_line(r.stdout)
    fid = json.loads(report.read_text())["fidelity"]
    assert "held-out" in fid["on"] and fid["examples"] > 0


def test_far_result_warns_with_the_fix(kws, tmp_path):
    r = run("prune", kws, tmp_path / "p.onnx", "--ratio", "0.9", "--round-to", "1", *DATA)
    assert r.returncode == 0, r.stderr
    warn = [ln for ln in r.stdout.splitlines() if ln.startswith("warning: the result is far from the original")]
    assert warn and "--compensate lstsq" in warn[0]
    assert "FAR from the original" in _fidelity_line(r.stdout)


@pytest.mark.parametrize("gate", [["--min-snr", "60"], ["--max-drop", "0.5"]])
def test_prune_gates_refuse_and_write_nothing(kws, tmp_path, gate):
    out, report, plan = tmp_path / "p.onnx", tmp_path / "r.json", tmp_path / "plan.json"
    r = run("prune", kws, out, "--ratio", "0.9", "--round-to", "1", "--report", report, "--save-plan", plan,
            *DATA, *gate)
    assert r.returncode == 1, r.stderr
    assert gate[0] in r.stderr and "nothing written" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists() and not report.exists() and not plan.exists()


def test_prune_gate_met_writes(kws, tmp_path):
    r = run("prune", kws, tmp_path / "p.onnx", "--ratio", "0.25", "--min-snr", "-100", "--max-drop", "100")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p.onnx").exists()


def test_quantize_reports_fidelity_and_gates(kws, tmp_path):
    out, q = tmp_path / "q.onnx", tmp_path / "q2.onnx"
    r = run("quantize", kws, out, "--mode", "static", *DATA)
    assert r.returncode == 0, r.stderr
    line = _fidelity_line(r.stdout)
    assert "examples of --data" in line and "SNR" in line and "top-1" in line
    r = run("quantize", kws, q, "--min-snr", "80")
    assert r.returncode == 1 and "--min-snr 80" in r.stderr and not q.exists()


def test_nothing_pruned_is_not_passed(kws, tmp_path):
    r = run("prune", kws, tmp_path / "p.onnx", "--ratio", "0")
    assert r.returncode == 0, r.stderr
    assert "nothing pruned: --ratio 0" in r.stdout
    assert r.stderr.strip().splitlines()[-1].startswith("UNCHANGED")
    assert "identical to the original" in _fidelity_line(r.stdout)


def test_auto_reports_fidelity(kws, tmp_path):
    report = tmp_path / "a.json"
    r = run("auto", kws, tmp_path / "a.onnx", "--target-macs", "0.8", "--latency-model", "macs", "--report", report,
            *DATA)
    assert r.returncode == 0, r.stderr
    assert "held-out examples of --data" in _fidelity_line(r.stdout)
    assert "top1_agreement" in json.loads(report.read_text())["fidelity"]
