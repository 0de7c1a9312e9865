"""The bundled keyword spotter, copied per test: the CLI tests prune and quantize it."""

import pytest

from cli_assets import ASSETS


@pytest.fixture
def kws(tmp_path):
    dst = tmp_path / "kws.onnx"
    dst.write_bytes((ASSETS / "kws.onnx").read_bytes())
    return dst
