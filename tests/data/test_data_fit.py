"""Audio to model inputs: raw-waveform models ([B,T], [B,1,T], fixed or symbolic T, float or
int16) and front-end models whose output is squeezed, expanded and windowed to the input."""

from __future__ import annotations

import numpy as np
import pytest
from audio_fixtures import feature_model, framing_frontend, save, tone, waveform_model, write
from onnx import TensorProto

from onnxprune.data import DataConfig, DataError, load_examples
from onnxprune.core.runtime import make_session


def _run_all(model, config):
    sess = make_session(model)
    exs = list(load_examples(model, config))
    for e in exs:
        sess.run(None, e.feeds)          # every example is a valid feed for the real session
    return exs


@pytest.mark.parametrize("dims", [[1, 16000], [1, 1, 16000], ["B", 16000], ["B", 1, 16000]])
def test_fixed_length_clips_are_centred_cropped_or_padded(tmp_path, dims):
    clip = np.linspace(-0.5, 0.5, 24000, dtype=np.float32)            # 1.5 s: cropped, centred
    write(tmp_path / "d" / "long.wav", clip, 16000, "FLOAT")
    write(tmp_path / "d" / "short.wav", np.full(8000, 0.25, np.float32), 16000, "FLOAT")  # padded
    exs = _run_all(waveform_model(dims), DataConfig(str(tmp_path / "d")))
    long, short = exs
    want = (1,) * (len(dims) - 1) + (16000,)
    assert long.feeds["x"].shape == want and short.feeds["x"].shape == want
    assert np.allclose(long.feeds["x"].ravel(), clip[4000:20000], atol=1e-6)
    s = short.feeds["x"].ravel()
    assert np.all(s[:4000] == 0) and np.allclose(s[4000:12000], 0.25) and np.all(s[12000:] == 0)


def test_fixed_length_with_hop_cuts_windows(tmp_path):
    write(tmp_path / "a.wav", tone(16000, 2.0), 16000, "FLOAT")
    exs = _run_all(waveform_model([1, 8000]), DataConfig(str(tmp_path / "a.wav"), hop=0.25))
    # 32000 samples, windows of 8000 every 4000 -> starts 0, 4000, ..., 24000
    assert len(exs) == 7 and [e.meta["start"] for e in exs] == pytest.approx([0.25 * k for k in range(7)])


def test_window_that_disagrees_with_a_fixed_length_is_an_error(tmp_path):
    write(tmp_path / "a.wav", tone(16000, 1.0), 16000)
    with pytest.raises(DataError, match=r"--window 0.3s is 4800 samples .* takes 8000"):
        list(load_examples(waveform_model([1, 8000]), DataConfig(str(tmp_path / "a.wav"), window=0.3)))


def test_symbolic_length_takes_the_whole_clip_or_windows(tmp_path):
    write(tmp_path / "a.wav", tone(16000, 1.5), 16000)
    model = waveform_model([1, "T"])
    whole = _run_all(model, DataConfig(str(tmp_path / "a.wav")))
    assert len(whole) == 1 and whole[0].feeds["x"].shape == (1, 24000)
    wins = _run_all(model, DataConfig(str(tmp_path / "a.wav"), window=0.5, hop=0.5))
    assert [e.feeds["x"].shape for e in wins] == [(1, 8000)] * 3
    fixed = _run_all(model, DataConfig(str(tmp_path / "a.wav"), shapes={"x": [1, 4000]}))
    assert fixed[0].feeds["x"].shape == (1, 4000)


def test_sample_rate_option_resamples(tmp_path):
    write(tmp_path / "a.wav", tone(44100, 1.0), 44100)
    exs = _run_all(waveform_model([1, "T"]), DataConfig(str(tmp_path / "a.wav"), sample_rate=8000))
    assert exs[0].feeds["x"].shape == (1, 8000)


def test_int16_models_get_int16_samples(tmp_path):
    write(tmp_path / "a.wav", tone(16000, 1.0, amp=0.5), 16000, "PCM_16")
    exs = _run_all(waveform_model([1, 16000], TensorProto.INT16), DataConfig(str(tmp_path / "a.wav")))
    x = exs[0].feeds["x"]
    assert x.dtype == np.int16 and 16000 <= x.max() <= 16384


def test_non_waveform_input_without_frontend_is_an_error(tmp_path):
    write(tmp_path / "a.wav", tone(16000, 1.0), 16000)
    with pytest.raises(DataError, match=r"x \[\?,10,8,1\] is not a waveform"):
        list(load_examples(feature_model(["B", 10, 8, 1]), DataConfig(str(tmp_path / "a.wav"))))


def test_frontend_output_is_squeezed_expanded_and_windowed(tmp_path):
    front = save(framing_frontend(feats=8), tmp_path / "front.onnx")
    write(tmp_path / "a.wav", tone(16000, 0.5), 16000)                # 8000 samples -> 48 frames
    model = feature_model(["B", 10, 8, 1])
    exs = _run_all(model, DataConfig(str(tmp_path / "a.wav"), frontend=str(front)))
    assert len(exs) == 4 and all(e.feeds["x"].shape == (1, 10, 8, 1) for e in exs)
    # the windows are the front-end's frames 0-9, 10-19, ...: compare with running it by hand
    audio = exs[0].feeds["x"]
    frames = make_session(framing_frontend(feats=8)).run(None, {"audio": _read(tmp_path / "a.wav")})[0][0, 0]
    assert frames.shape == (48, 8)
    assert np.allclose(audio[0, :, :, 0], frames[:10], atol=1e-6)
    assert np.allclose(exs[3].feeds["x"][0, :, :, 0], frames[30:40], atol=1e-6)
    hopped = list(load_examples(model, DataConfig(str(tmp_path / "a.wav"), frontend=str(front), hop=0.05)))
    assert len(hopped) == 8                                            # hop of 5 frames: starts 0..35


def test_frontend_symbolic_time_takes_all_frames(tmp_path):
    front = save(framing_frontend(feats=8), tmp_path / "front.onnx")
    write(tmp_path / "a.wav", tone(16000, 0.5), 16000)
    exs = _run_all(feature_model([1, "T", 8]), DataConfig(str(tmp_path / "a.wav"), frontend=str(front)))
    assert [e.feeds["x"].shape for e in exs] == [(1, 48, 8)]


@pytest.mark.parametrize("dims,why", [(["B", 10, 6], r"\[1,1,48,8\] does not fit input 'x' \[\?,10,6\]"),
                                      (["B", 80, 8], r"48 frames, the model takes 80"),
                                      (["B", 10, 8, 3], r"does not fit input 'x' \[\?,10,8,3\]")])
def test_frontend_output_that_cannot_fit_names_both_shapes(tmp_path, dims, why):
    front = save(framing_frontend(feats=8), tmp_path / "front.onnx")
    write(tmp_path / "a.wav", tone(16000, 0.5), 16000)
    with pytest.raises(DataError, match=why) as err:
        list(load_examples(feature_model(dims), DataConfig(str(tmp_path / "a.wav"), frontend=str(front))))
    assert "a.wav" in str(err.value) and "\n" not in str(err.value)


def _read(path):
    from onnxprune.data.audio import read_audio

    return read_audio(path, 16000)[None]


def test_window_with_a_frontend_is_an_error_not_ignored(tmp_path):
    write(tmp_path / "a.wav", tone(16000, 1.0), 16000, "FLOAT")
    front = save(framing_frontend(feats=8), tmp_path / "front.onnx")
    with pytest.raises(DataError, match="--window applies to raw-waveform models"):
        list(load_examples(feature_model(["B", 10, 8]), DataConfig(str(tmp_path / "a.wav"), frontend=str(front), window=0.5)))


def test_window_examples_cover_the_window_not_the_clip(tmp_path):
    write(tmp_path / "a.wav", tone(16000, 3.0), 16000, "FLOAT")
    exs = _run_all(waveform_model([1, 16000]), DataConfig(str(tmp_path / "a.wav"), window=1.0, hop=0.5))
    assert len(exs) == 5 and all(e.seconds == 1.0 for e in exs)
    assert exs[0].meta["clip_seconds"] == 3.0 and exs[0].meta["file"].endswith("a.wav")
