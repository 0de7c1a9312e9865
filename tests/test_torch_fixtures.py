"""Models exported from torch with both exporters (models/export_fixtures.py, committed):
stacked LSTMs, CNN + bidirectional GRU CTC, a transformer encoder layer, a conformer block.
At ratio 0.5 every recurrent, attention-head and FFN group must be halved and verified."""

from __future__ import annotations

from pathlib import Path

import pytest

import onnxprune
from builders import assert_pruned_ok, assert_ratio0_identical

FIXTURES = Path(__file__).resolve().parent.parent / "models" / "fixtures"

# fixture -> {unit: (size, kept)} expected at ratio 0.5 (round_to 4 leaves these widths alone)
EXPECTED = {
    "lstm2_ts": {"hidden units": [(64, 32), (64, 32)]},
    "lstm2_dynamo": {"hidden units": [(64, 32), (64, 32)]},
    "cnn_bigru_ctc_ts": {"hidden units": [(48, 24)], "channels": [(32, 16), (32, 16)]},
    "cnn_bigru_ctc_dynamo": {"hidden units": [(48, 24)], "channels": [(32, 16), (32, 16)]},
    "transformer_dynamo": {"heads": [(4, 2)], "neurons": [(128, 64)]},
    "conformer_dynamo": {"heads": [(4, 2)], "neurons": [(128, 64), (128, 64)], "channels": [(64, 32)]},
}


def test_every_fixture_has_expectations():
    assert sorted(p.stem for p in FIXTURES.glob("*.onnx")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_halved_and_verified(name):
    model = onnxprune.load_model(FIXTURES / f"{name}.onnx")
    assert_ratio0_identical(model)
    result = assert_pruned_ok(model, ratio=0.5)
    got: dict[str, list] = {}
    for g in result.groups:
        if not g["blocked_by"]:
            got.setdefault(g["unit"], []).append((g["size"], g["kept"]))
    assert {k: sorted(v) for k, v in got.items()} == {k: sorted(v) for k, v in EXPECTED[name].items()}
    assert result.after["params"] < 0.75 * result.before["params"]


def test_transformer_residual_stream_is_blocked_with_reason():
    """LayerNorm over the residual stream: pruning the stream is not exact, so it is declined."""
    result = onnxprune.prune(FIXTURES / "transformer_dynamo.onnx", ratio=0.5)
    reasons = [r for g in result.groups for r in (g["blocked_by"] or [])]
    assert any("LayerNormalization" in r and "channel axis" in r for r in reasons)


def test_head_reshape_constants_updated():
    result = onnxprune.prune(FIXTURES / "transformer_dynamo.onnx", ratio=0.5)
    shapes = [list(onnxprune.core.graph.GraphIndex.build(result.model).const(n.input[1]))
              for n in result.model.graph.node if n.op_type == "Reshape"]
    assert [50, 2, 16] in shapes and [1, 2, 50, 16] in shapes and [50, 1, 3, 32] in shapes
