"""`prune --slim` / `--optimize-for cpu` from the command line: applied when checked, refused with a
one-line warning (the pruned model written) when a simplifier breaks the interface, and a missing
OnnxSlim is a one-line error naming the install command that writes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import onnx
import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "models" / "fixtures"
MODEL = FIXTURES / "transformer_dynamo.onnx"


def run_with(prelude: str, *args):
    """The CLI in a fresh interpreter, after `prelude` (used to hide or break onnxslim)."""
    code = f"{prelude}\nimport sys\nfrom onnxprune.cli import main\nsys.argv = ['onnxprune'] + {[str(a) for a in args]!r}\nmain()"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_slim_and_optimize_for_cpu_are_applied_and_reported(tmp_path):
    pytest.importorskip("onnxslim")
    out, plain, report, plan = tmp_path / "a.onnx", tmp_path / "b.onnx", tmp_path / "r.json", tmp_path / "p.json"
    r = run_with("", "prune", MODEL, out, "--slim", "--optimize-for", "cpu", "--report", report, "--save-plan", plan)
    assert r.returncode == 0, r.stderr
    again = tmp_path / "again.onnx"  # a plan replayed with the same post-passes gives the same bytes
    assert run_with("", "prune", MODEL, again, "--plan", plan, "--slim", "--optimize-for", "cpu").returncode == 0
    assert again.read_bytes() == out.read_bytes()
    assert "slim (OnnxSlim):" in r.stdout and "optimize-for cpu (onnxruntime offline, BASIC):" in r.stdout
    steps = json.loads(report.read_text())["finish"]
    assert [s["kind"] for s in steps] == ["slim", "ort-cpu"] and all(s["kept"] for s in steps)
    assert run_with("", "prune", MODEL, plain).returncode == 0
    written, unslimmed = onnx.load(out), onnx.load(plain)
    assert Counter(n.op_type for n in written.graph.node)["Gemm"] > Counter(n.op_type for n in unslimmed.graph.node)["Gemm"]
    assert written.ir_version == unslimmed.ir_version


def test_a_simplifier_that_renames_an_output_is_refused(tmp_path):
    pytest.importorskip("onnxslim")
    out, plain = tmp_path / "a.onnx", tmp_path / "b.onnx"
    breaking = ("import onnxslim\n"
                "def bad(m, **k):\n"
                "    m.graph.output[0].name = 'renamed'\n"
                "    [n.output.__setitem__(i, 'renamed') for n in m.graph.node for i, o in enumerate(n.output) if o == 'y']\n"
                "    return m\n"
                "onnxslim.slim = bad")
    r = run_with(breaking, "prune", MODEL, out, "--slim")
    assert r.returncode == 0, r.stderr
    assert "warning: slim (OnnxSlim) not applied, writing the model without it: interface changed" in r.stderr
    assert run_with("", "prune", MODEL, plain).returncode == 0
    assert out.read_bytes() == plain.read_bytes()


def test_missing_onnxslim_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "a.onnx"
    r = run_with("import sys; sys.modules['onnxslim'] = None", "prune", MODEL, out, "--slim")
    assert r.returncode != 0 and not out.exists()
    assert "pip install 'onnxprune[slim]'" in r.stderr and "Traceback" not in r.stderr
    assert [line for line in r.stderr.splitlines() if line.startswith("error:")] == \
        ["error: --slim needs OnnxSlim, which is not installed: pip install 'onnxprune[slim]'"]
