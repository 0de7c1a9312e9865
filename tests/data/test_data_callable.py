"""--feeds callables: plain functions, generators, file paths and modules, stateful streaming
with `run` (the real silero_vad_v6 example in models/), and their errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from audio_fixtures import tone, waveform_model, write

from onnxprune.data import DataConfig, DataError, load_examples
from onnxprune.core.runtime import make_session

FEEDS = '''
import numpy as np

def whole(audio, sample_rate, model_inputs):
    return {model_inputs[0].name: audio[None, :sample_rate // 2]}

def halves(audio, sample_rate, model_inputs):
    n = len(audio) // 2
    yield {"x": audio[None, :n]}
    yield {"x": audio[None, n:2 * n]}

def wrong_name(audio, sample_rate, model_inputs):
    return {"nope": audio[None]}

def not_a_dict(audio, sample_rate, model_inputs):
    return [audio]

def boom(audio, sample_rate, model_inputs):
    raise RuntimeError("feature extractor exploded")
'''


@pytest.fixture
def feeds_file(tmp_path):
    f = tmp_path / "myfeeds.py"
    f.write_text(FEEDS)
    write(tmp_path / "d" / "yes" / "a.wav", tone(16000, 1.0), 16000)
    return f


def test_dict_and_generator_callables(feeds_file, tmp_path):
    model = waveform_model([1, "T"])
    data = str(tmp_path / "d")
    one = list(load_examples(model, DataConfig(data, feeds=f"{feeds_file}:whole")))
    assert len(one) == 1 and one[0].feeds["x"].shape == (1, 8000) and one[0].label == "yes"
    two = list(load_examples(model, DataConfig(data, feeds=f"{feeds_file}:halves")))
    assert [e.meta["index"] for e in two] == [0, 1] and two[1].feeds["x"].shape == (1, 8000)


def test_importable_module_path(feeds_file, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    exs = list(load_examples(waveform_model([1, "T"]), DataConfig(str(tmp_path / "d"), feeds="myfeeds:whole")))
    assert len(exs) == 1


@pytest.mark.parametrize("spec,match", [
    ("{f}:wrong_name", r"feeds \['nope'\] do not match model inputs \['x'\]"),
    ("{f}:not_a_dict", r"returned ndarray, expected a dict"),
    ("{f}:boom", r"failed on .*a.wav \(RuntimeError: feature extractor exploded\)"),
    ("{f}:missing", r"has no function missing"),
    ("{d}/nofile.py:fn", r"no such file"),
    ("no_such_module_xyz:fn", r"cannot import no_such_module_xyz"),
    ("justaname", r"expected MODULE:FUNCTION"),
])
def test_callable_errors_are_one_line(feeds_file, tmp_path, spec, match):
    spec = spec.format(f=feeds_file, d=tmp_path)
    with pytest.raises(DataError, match=match) as err:
        list(load_examples(waveform_model([1, "T"]), DataConfig(str(tmp_path / "d"), feeds=spec)))
    assert "\n" not in str(err.value)


@pytest.mark.realmodel
def test_silero_v6_streaming_callable_carries_state(real_model, tmp_path):
    """Chunk-by-chunk examples with the state the model produced must give the same speech
    probabilities as one call on all chunks (the LSTM runs along the chunk axis)."""
    import onnx

    path = real_model("silero_vad_v6")
    rng = np.random.default_rng(0)
    audio = np.concatenate([0.01 * rng.standard_normal(8000), tone(16000, 1.0, 220, amp=0.6)]).astype(np.float32)
    write(tmp_path / "clips" / "speechish.wav", audio, 16000, "FLOAT")
    example = Path(__file__).resolve().parents[2] / "models" / "silero_vad_feeds.py"
    model = onnx.load(str(path))
    exs = list(load_examples(model, DataConfig(str(tmp_path / "clips"), feeds=f"{example}:feeds")))
    n = -(-len(audio) // 512)
    assert len(exs) == n and all(e.feeds["input"].shape == (1, 576) for e in exs)
    assert np.all(exs[0].feeds["h"] == 0) and np.any(exs[5].feeds["h"] != 0)

    sess = make_session(model)
    streamed = np.array([sess.run(None, e.feeds)[0][0] for e in exs])
    padded = np.pad(audio, (0, n * 512 - len(audio))).reshape(n, 512)
    context = np.zeros((n, 64), np.float32)
    context[1:] = padded[:-1, -64:]
    zero = np.zeros((1, 1, 128), np.float32)
    batch = sess.run(None, {"input": np.concatenate([context, padded], 1), "h": zero, "c": zero})[0]
    assert np.allclose(streamed, batch, atol=1e-5)


@pytest.mark.realmodel
def test_silero_v6_without_feeds_names_its_inputs(real_model, tmp_path):
    write(tmp_path / "a.wav", tone(16000, 1.0), 16000)
    with pytest.raises(DataError, match=r"model has inputs input \[\?,576\], h \[1,1,128\], c \[1,1,128\]"):
        list(load_examples(str(real_model("silero_vad_v6")), DataConfig(str(tmp_path / "a.wav"))))
