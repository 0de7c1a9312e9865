"""Slow reliability tests (the onnx wheel's `light` models) run only when asked: ONNXPRUNE_SLOW=1,
or `-m slow`. The default suite stays within a CI minute budget. The corpora's outcome counts are
printed at the end of the run."""

import os

import pytest

import tally


def pytest_collection_modifyitems(config, items):
    if os.environ.get("ONNXPRUNE_SLOW") or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: set ONNXPRUNE_SLOW=1 or run with -m slow")
    for item in items:
        if "slow" in item.keywords and "reliability" in str(item.fspath):
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if tally.COUNTS:
        terminalreporter.section("reliability corpora")
        for line in tally.lines():
            terminalreporter.write_line(line)
