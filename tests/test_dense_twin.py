"""The zoo recipes built at a pruned model's widths (benchmarks/dense_twin.py) are that model's dense
twin: same op types except what pruning removed, same MACs. The timing is the benchmark's job."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

import onnxprune

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "models" / "zoo"


@pytest.fixture(scope="module")
def dense_twin():
    pytest.importorskip("torch")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import dense_twin

    return dense_twin


@pytest.mark.parametrize("name", ["kws", "ctc"])
def test_twin_has_the_pruned_widths_and_macs(dense_twin, tmp_path, name):
    import onnx

    path, shapes, build = {"kws": (ZOO / "kws_dscnn.onnx", None, dense_twin.kws_twin),
                           "ctc": (ZOO / "crnn_ctc_ts.onnx", {"logmel": [1, 1, 100, 40]}, dense_twin.ctc_twin)}[name]
    result = onnxprune.prune(path, ratio=0.5, shapes=shapes)
    assert result.verify.passed
    build(result.model, tmp_path / "twin.onnx")
    twin = onnx.load(tmp_path / "twin.onnx")
    assert onnxprune.prune(twin, ratio=0.0, shapes=shapes).before["macs"] == result.after["macs"] < result.before["macs"]
    ops_p, ops_t = Counter(n.op_type for n in result.model.graph.node), Counter(n.op_type for n in twin.graph.node)
    assert not ops_p - ops_t  # pruning left nothing the dense export lacks
    weights = sorted(tuple(t.dims) for t in twin.graph.initializer if len(t.dims) > 1)
    assert weights == sorted(tuple(t.dims) for t in result.model.graph.initializer if len(t.dims) > 1)
