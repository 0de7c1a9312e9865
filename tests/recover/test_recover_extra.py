"""Without the recover extra, `--recover` (prune, auto, sweep) and `--criterion taylor|fisher` are
one line naming the install command, exit 2, nothing written."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ZOO = ROOT / "models" / "zoo"
DATA = ["--data", str(ZOO / "data" / "kws" / "calib" / "manifest.jsonl"), "--frontend",
        str(ZOO / "logmel_frontend.onnx"), "--limit", "8"]


def without_torch(tmp_path, *args):
    blocker = tmp_path / "sitecustomize.py"  # makes `import torch` fail as on a core install
    blocker.write_text(textwrap.dedent("""
        import sys
        sys.modules["torch"] = None
        sys.modules["onnx2torch"] = None
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "onnxprune", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=ROOT)


def assert_one_line_naming_the_install(proc):
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and 'pip install "onnxprune[recover]"' in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_torch_is_one_line_naming_the_install(tmp_path):
    out = tmp_path / "out.onnx"
    proc = without_torch(tmp_path, "prune", ZOO / "kws_dscnn.onnx", out, "--ratio", "0.5", "--recover", *DATA)
    assert_one_line_naming_the_install(proc)
    assert not out.exists()


@pytest.mark.parametrize("command", [
    ["prune", "{out}", "--criterion", "taylor"],
    ["prune", "{out}", "--criterion", "fisher", "--recover"],
    ["auto", "{out}", "--target-macs", "0.5", "--latency-model", "macs", "--recover"],
    ["auto", "{out}", "--target-macs", "0.5", "--latency-model", "macs", "--criterion", "fisher"],
    ["sweep", "--ratios", "0,0.5", "--out", "{out}", "--recover"],
    ["sweep", "--ratios", "0,0.5", "--out", "{out}", "--criterion", "taylor"],
], ids=lambda c: " ".join(a for a in c if a.startswith("--") or a.isalpha()))
def test_every_command_that_needs_the_extra_says_what_to_install(tmp_path, command):
    out = tmp_path / "out"
    args = [command[0], ZOO / "kws_dscnn.onnx", *[str(out) if a == "{out}" else a for a in command[1:]], *DATA]
    proc = without_torch(tmp_path, *args)
    assert_one_line_naming_the_install(proc)
    assert not out.exists()
