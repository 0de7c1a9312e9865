"""Slow reliability tests (the light model zoo, the OCR models, the >2 GB model) run only when asked:
ONNXPRUNE_SLOW=1, or `-m slow`. The default suite stays within a CI minute budget."""

import os

import pytest


def pytest_collection_modifyitems(config, items):
    if os.environ.get("ONNXPRUNE_SLOW") or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: set ONNXPRUNE_SLOW=1 or run with -m slow")
    for item in items:
        if "slow" in item.keywords and "reliability" in str(item.fspath):
            item.add_marker(skip)
