"""The README is the user guide CI follows: its install and test commands are exactly what
`.ci/run` runs, it stays short, every file it links exists, and it reads as documentation
(no commit hashes or notes about how it was made)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CI = (ROOT / ".ci" / "run").read_text()


def _commands(text: str) -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    return [line.strip() for b in blocks for line in b.splitlines() if line.strip()]


def test_install_and_test_commands_are_what_ci_runs():
    cmds = _commands(README)
    install = next(c for c in cmds if "pip install" in c and "constraints.txt" in c)
    pip = install.split("&&")[0].strip()
    assert pip.replace("pip install", "pip install --quiet") in CI or pip in CI
    assert "onnxprune demo" in install and "onnxprune demo" in CI
    assert "python -m pytest -q" in cmds and re.search(r"(?m)^python -m pytest -q$", CI)
    assert "python3 -m venv .venv" in README and "python3 -m venv .venv" in CI


def test_readme_is_short_and_its_links_exist():
    assert len(README.splitlines()) <= 300
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


def test_readme_reads_as_documentation():
    for pattern in (r"\bcommit [0-9a-f]{7,40}\b", r"\b[0-9a-f]{40}\b", r"the issue", r"this session", r"\bTODO\b"):
        assert not re.search(pattern, README, re.I), pattern
    for section in ("## Set up", "## A recipe", "## Reading the output", "## Python API", "## Limitations",
                    "## GPU", "## Troubleshooting", "## Recovery", "## Depth and low-rank", "## Ray"):
        assert section in README, section


def test_constraints_pin_what_the_suite_is_validated_on():
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    for name in ("onnx", "onnxruntime", "numpy"):
        assert name in pins, name
