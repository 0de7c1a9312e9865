"""The package's layers (pyproject's [tool.importlinter] contracts): no import cycle inside
onnxprune/, no stage importing a stage above it, no library module importing click."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    lint = pytest.importorskip("importlinter.cli")
    assert lint.lint_imports(config_filenames=(str(ROOT / "pyproject.toml"),), no_cache=True) == 0


def test_top_level_stays_small():
    top = sorted(p.name for p in (ROOT / "onnxprune").glob("*.py"))
    assert len(top) <= 8, top
