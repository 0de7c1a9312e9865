"""Speech encoders as people ship them (models/export_speech_fixtures.py: transformers' Whisper
encoder, wav2vec2, HuBERT at tiny configs with seeded random weights; TorchScript and dynamo
exports with dynamic batch; onnxruntime's transformer optimizer). At ratio 0.5 attention heads
prune in every export, the result verifies, and every group left blocked says why with an op
that really mixes channels (or the interface)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import onnxprune
from builders import assert_pruned_ok
from onnxprune.core.runtime import make_session

FIXTURES = Path(__file__).resolve().parents[1] / "models" / "fixtures" / "speech"
WHISPER = {"input_features": [2, 40, 100]}
W2V = {"input_values": [2, 1600]}

# name -> (shapes, least fraction of parameters removed at ratio 0.5). The residual stream (64 wide)
# feeds LayerNorms and cannot shrink; the rest is heads, FFN and conv channels.
CASES = {
    "speech_whisper_ts": (WHISPER, 0.45),
    "speech_whisper_dynamo": (WHISPER, 0.45),
    "speech_whisper_ts_ortopt": (WHISPER, 0.45),
    "speech_wav2vec2_ts": (W2V, 0.38),
    "speech_wav2vec2_dynamo": (W2V, 0.38),
    "speech_hubert_ts": (W2V, 0.38),
    "speech_wav2vec2_optimum": (W2V, 0.38),  # optimum-onnx's export of the same model
}
MIXING = ("normalises over the channel axis", "reaches graph output", "the model's interface", "grouped Conv",
          "Softmax over the channel axis",
          "LayerNormalization_output", "layer_norm", "cannot shrink along the channel axis")


@pytest.mark.parametrize("name", sorted(CASES))
def test_heads_and_channels_prune_in_shipped_exports(name):
    shapes, least = CASES[name]
    model = onnx.load(str(FIXTURES / f"{name}.onnx"))
    r = assert_pruned_ok(model, ratio=0.5, shapes=shapes)
    heads = [g for g in r.analysis.groups if g.is_heads]
    assert sum(g.prunable for g in heads) == 2, [g.blocked_by for g in heads]
    # wav2vec2's grouped positional conv makes its 4 groups of the residual stream units too;
    # the stream is LayerNorm'd, so that one stays blocked, and says so
    assert all("normalises over the channel axis" in g.blocked_by[0] for g in heads if not g.prunable)
    removed = 1 - r.after["params"] / r.before["params"]
    assert removed >= least, f"{removed:.1%}"
    # dynamic batch survives: the pruned model runs on another batch size
    feeds = {k: np.random.default_rng(0).standard_normal([5] + v[1:]).astype(np.float32) for k, v in shapes.items()}
    assert make_session(r.model).run(None, feeds)[0].shape[0] == 5


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_block_names_a_mixing_op_or_the_interface(name):
    shapes, _ = CASES[name]
    a = onnxprune.analyze(onnx.load(str(FIXTURES / f"{name}.onnx")), shapes=shapes)
    for g in a.groups:
        if g.blocked_by:
            assert any(word in reason for reason in g.blocked_by for word in MIXING), (g.name, g.blocked_by)


def test_group_norm_in_a_dynamo_export_prunes_whole_groups():
    model = onnx.load(str(FIXTURES / "speech_groupnorm4_dynamo.onnx"))
    r = assert_pruned_ok(model, ratio=0.5, shapes={"x": [2, 8, 20]})
    norm = next(n for n in r.model.graph.node if n.op_type == "InstanceNormalization")
    scale = next(t for t in r.model.graph.initializer if t.name == norm.input[1])
    assert tuple(scale.dims) == (2,)  # 4 groups of 4 channels -> 2 groups
    assert [g.size for g in r.analysis.groups if g.prunable] == [4]  # the unit is the group of 4 channels


@pytest.mark.parametrize("name", ["speech_ecapa_ts", "speech_ecapa_dynamo"])
def test_ecapa_res2net_se_and_attentive_pooling_prune(name):
    """speechbrain's ECAPA-TDNN (Res2Net chunks added to conv outputs, SE gates, attentive
    statistics pooling, "same" reflect padding computed from the time length): every group but
    the embedding (the interface) prunes, exactly, and the result takes any batch and length."""
    model = onnx.load(str(FIXTURES / f"{name}.onnx"))
    r = assert_pruned_ok(model, ratio=0.5, shapes={"feats": [2, 50, 24]})
    blocked = [g for g in r.analysis.groups if g.blocked_by]
    assert len(blocked) == 1 and "reaches graph output" in blocked[0].blocked_by[0], [g.blocked_by for g in blocked]
    assert 1 - r.after["params"] / r.before["params"] >= 0.40
    x = np.random.default_rng(1).standard_normal((3, 73, 24)).astype(np.float32)
    assert make_session(r.model).run(None, {"feats": x})[0].shape == (3, 1, 24)


# nn.MultiheadAttention (batch first) and torchaudio Emformer's attention layout (time first,
# `view(-1, B * num_heads, head_dim)`): heads folded into the batch axis as `bsz * num_heads`.
FOLDED = {"speech_mha_ts": ([2, 12, 24], 0), "speech_mha_dynamo": ([2, 12, 24], 0),
          "speech_emformer_attn_ts": ([12, 2, 24], 1), "speech_emformer_attn_dynamo": ([12, 2, 24], 1),
          "speech_emformer_ts": ([2, 9, 32], 0)}  # torchaudio's Emformer itself: 2 layers


@pytest.mark.parametrize("name", sorted(FOLDED))
def test_heads_folded_into_the_batch_axis_prune(name):
    """`B * 4` becomes `B * 2` (Mul/Div before the Reshape), so the pruned model is exact at the
    probe batch (verified) and stays batch-independent at any other batch size."""
    shape, batch_axis = FOLDED[name]
    r = assert_pruned_ok(onnx.load(str(FIXTURES / f"{name}.onnx")), ratio=0.5, shapes={"x": shape})
    heads = [g for g in r.groups if g["unit"] == "heads"]
    layers = 2 if name == "speech_emformer_ts" else 1
    assert [(g["size"], g["kept"], g["blocked_by"]) for g in heads] == [(4, 2, None)] * layers
    shape = list(shape)
    shape[batch_axis] = 5
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    sess = make_session(r.model)
    together = sess.run(None, {"x": x})[0]
    alone = np.concatenate([sess.run(None, {"x": np.take(x, [i], axis=batch_axis)})[0] for i in range(5)], axis=batch_axis)
    np.testing.assert_array_equal(together, alone)


@pytest.mark.parametrize("name", sorted(FOLDED) + ["speech_ecapa_ts", "speech_ecapa_dynamo"])
def test_new_fixtures_block_only_for_mixing_ops_or_the_interface(name):
    shapes = {"x": FOLDED[name][0]} if name in FOLDED else {"feats": [2, 50, 24]}
    a = onnxprune.analyze(onnx.load(str(FIXTURES / f"{name}.onnx")), shapes=shapes)
    for g in a.groups:
        if g.blocked_by:
            assert any(word in reason for reason in g.blocked_by for word in MIXING), (g.name, g.blocked_by)


@pytest.mark.parametrize("batch", [1, 3])
def test_emformer_heads_read_back_as_the_batch(batch):
    """Emformer reads the batch back from the folded axis (`B = size(0) // num_heads`, then
    `view(B * num_heads, T, -1)`): those entries are recomputed from the pruned axis, so a model
    pruned on any probe batch is exact there (verified) and batch-independent."""
    r = assert_pruned_ok(onnx.load(str(FIXTURES / "speech_emformer_ts.onnx")), ratio=0.5, shapes={"x": [batch, 9, 32]})
    x = np.random.default_rng(3).standard_normal((4, 9, 32)).astype(np.float32)
    sess = make_session(r.model)
    together = sess.run(None, {"x": x})[0]
    np.testing.assert_array_equal(together, np.concatenate([sess.run(None, {"x": x[i:i + 1]})[0] for i in range(4)]))


ALL_SHAPES = {**{k: v[0] for k, v in CASES.items()}, **{k: {"x": v[0]} for k, v in FOLDED.items()},
              "speech_ecapa_ts": {"feats": [2, 50, 24]}, "speech_ecapa_dynamo": {"feats": [2, 50, 24]}}


@pytest.mark.parametrize("name", sorted(ALL_SHAPES))
def test_pruned_at_probe_batch_1_is_batch_independent(name):
    """Heads folded into the batch are only visible as such at a batch above 1; pruned at batch 1
    the computed shapes must still hold at any batch: a batch-3 run equals three batch-1 runs."""
    axis = FOLDED[name][1] if name in FOLDED else 0
    shapes = {k: [1 if i == axis else d for i, d in enumerate(v)] for k, v in ALL_SHAPES[name].items()}
    r = assert_pruned_ok(onnx.load(str(FIXTURES / f"{name}.onnx")), ratio=0.5, shapes=shapes)
    rng = np.random.default_rng(4)
    feeds = {k: rng.standard_normal([3 if i == axis else d for i, d in enumerate(v)]).astype(np.float32)
             for k, v in ALL_SHAPES[name].items()}
    sess = make_session(r.model)
    together = sess.run(None, feeds)[0]
    alone = [sess.run(None, {k: np.take(v, [i], axis=axis) for k, v in feeds.items()})[0] for i in range(3)]
    np.testing.assert_allclose(together, np.concatenate(alone, axis=axis), rtol=0, atol=1e-5)
