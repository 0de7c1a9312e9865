"""Every benchmark script states and checks its prerequisites the same way (benchmarks/_common.py):
a "Needs:" line in its docstring, models through need_models (never skipped silently), and an
--out that defaults outside the committed results; published tables name the machine."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if p.name != "_common.py"
                 and "__main__" in p.read_text())  # helpers such as speech_feeds.py are not scripts
sys.path.insert(0, str(BENCH))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_uses_the_shared_helper_and_states_its_needs(script):
    source = script.read_text()
    tree = ast.parse(source)
    assert "Needs:" in (ast.get_docstring(tree) or ""), "say what the script needs before it runs"
    assert any(isinstance(n, ast.ImportFrom) and n.module == "_common" for n in tree.body), "import from _common"
    for node in ast.walk(tree):  # no default output under the committed results, no private cache lookups
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node is not tree.body[0].value:
            assert "benchmarks/results" not in node.value, node.value
            assert ".cache" not in node.value, node.value
    assert "from fetch import" not in source and "cache_dir()" not in source


def test_help_runs_without_prerequisites():
    out = subprocess.run([sys.executable, str(BENCH / "fixtures_speed.py"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--out" in out.stdout and "benchmarks/out/fixtures_speed.md" in out.stdout


def test_results_name_the_machine_and_spread(tmp_path):
    import _common

    _common.write(tmp_path / "r.md", "| a |\n|---|", {"x": 1}, threads=1)
    text = (tmp_path / "r.md").read_text()
    raw = json.loads((tmp_path / "r.json").read_text())
    assert "onnxruntime" in text and "threads 1" in text and raw["machine"]["cpu"] in text
    assert isinstance(raw["machine"]["isa"], list) and raw["results"] == {"x": 1}
    assert _common.spread([1.37, 1.49, 1.45], "{:.2f}", "x") == "1.45x (1.37–1.49, 3 runs)"


def test_missing_model_is_one_line_naming_fetch(monkeypatch):
    import _common
    import fetch

    def offline(name):
        raise RuntimeError("pip download failed: no network")

    monkeypatch.setattr(fetch, "fetch", offline)
    with pytest.raises(SystemExit, match=r"python models/fetch.py silero_vad_v6"):
        _common.need_models("silero_vad_v6")
