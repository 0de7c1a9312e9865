"""Without the recover extra, `--recover` is one line naming the install command, exit 2."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_missing_torch_is_one_line_naming_the_install(tmp_path):
    blocker = tmp_path / "sitecustomize.py"  # makes `import torch` fail as on a core install
    blocker.write_text(textwrap.dedent("""
        import sys
        sys.modules["torch"] = None
        sys.modules["onnx2torch"] = None
    """))
    zoo = ROOT / "models" / "zoo"
    out = tmp_path / "out.onnx"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "onnxprune", "prune", str(zoo / "kws_dscnn.onnx"), str(out),
                           "--ratio", "0.5", "--recover", "--data", str(zoo / "data" / "kws" / "calib" / "manifest.jsonl"),
                           "--frontend", str(zoo / "logmel_frontend.onnx"), "--limit", "8"],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and 'pip install "onnxprune[recover]"' in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()
