"""The real openwakeword chain: melspectrogram.onnx (wrapped with its scaling) in front of
embedding_model.onnx, checked against openwakeword's own recipe computed by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from audio_fixtures import tone, write

from onnxprune.data import DataConfig, load_examples
from onnxprune.data.frontend import with_affine
from onnxprune.core.runtime import make_session

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_with_affine_scales_input_and_output(tmp_path):
    from audio_fixtures import framing_frontend

    base = framing_frontend()
    wrapped = with_affine(base, in_scale=3.0, out_scale=0.1, out_shift=2.0)
    onnx.checker.check_model(wrapped)
    x = np.random.default_rng(0).standard_normal((1, 4000)).astype(np.float32)
    want = 0.1 * make_session(base).run(None, {"audio": 3.0 * x})[0] + 2.0
    got = make_session(wrapped).run(None, {"audio": x})[0]
    assert np.allclose(got, want, atol=1e-5)


@pytest.mark.realmodel
def test_openwakeword_mel_to_embedding_matches_the_openwakeword_recipe(real_model, tmp_path):
    sys.path.insert(0, str(MODELS))
    from wrap_frontend import main as wrap

    mel_path, emb_path = real_model("melspectrogram"), real_model("embedding_model")
    wrapped = tmp_path / "mel_oww.onnx"
    wrap([str(mel_path), str(wrapped), "--in-scale", "32768", "--out-scale", "0.1", "--out-shift", "2"])
    rng = np.random.default_rng(1)
    clip = (tone(16000, 2.0, 500, amp=0.3) + 0.05 * rng.standard_normal(32000)).astype(np.float32)
    write(tmp_path / "d" / "hey" / "a.wav", clip, 16000, "PCM_16")

    exs = list(load_examples(str(emb_path), DataConfig(str(tmp_path / "d"), frontend=str(wrapped), hop=0.08)))

    # openwakeword: int16 samples as float32 -> melspectrogram -> x/10 + 2 -> windows of 76 frames, step 8
    pcm = np.round(np.clip(clip, -1, 1 - 1 / 32768) * 32768).astype(np.int16)    # what PCM_16 stored
    mel = make_session(onnx.load(str(mel_path))).run(None, {"input": pcm[None].astype(np.float32)})[0]
    spec = np.squeeze(mel) / 10 + 2
    starts = range(0, spec.shape[0] - 76 + 1, 8)
    assert len(exs) == len(starts) and all(e.label == "hey" for e in exs)
    emb = make_session(onnx.load(str(emb_path)))
    for e, s in zip(exs, starts):
        assert e.feeds["input_1"].shape == (1, 76, 32, 1)
        assert np.allclose(e.feeds["input_1"][0, :, :, 0], spec[s:s + 76], atol=1e-3)
        out = emb.run(None, e.feeds)[0]
        ref = emb.run(None, {"input_1": spec[s:s + 76][None, :, :, None].astype(np.float32)})[0]
        # x*0.1 vs x/10 differ in the last float bit; the embedding amplifies that to ~1e-4 relative
        assert out.shape == (1, 1, 1, 96) and np.abs(out - ref).max() < 1e-3 * np.abs(ref).max()
