"""Discovery and reading: folders, manifests, single files; labels, offsets, rates, channels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from audio_fixtures import save, tone, waveform_model, write

from onnxprune.data import DataConfig, DataError, load_examples
from onnxprune.data.audio import read_audio, to_dtype
from onnxprune.data.sources import discover


def test_folder_is_recursive_and_labels_come_from_class_folders(speech_commands):
    kind, items = discover(str(speech_commands))
    assert kind == "audio"
    got = {it.key: it.label for it in items}
    assert got == {"yes/a.wav": "yes", "yes/b.flac": "yes", "no/c.wav": "no", "no/deep/d.ogg": "no"}


@pytest.mark.parametrize("rate,channels,subtype", [(8000, 1, "PCM_16"), (16000, 1, "FLOAT"),
                                                   (44100, 2, "PCM_16"), (48000, 2, "FLOAT")])
def test_read_resamples_to_the_target_rate_and_mixes_to_mono(tmp_path, rate, channels, subtype):
    f = write(tmp_path / "x.wav", tone(rate, 0.5, 440, channels), rate, subtype)
    out = read_audio(f, 16000)
    assert out.dtype == np.float32 and out.ndim == 1
    assert abs(len(out) - 8000) <= 1
    # a 440 Hz tone stays a 440 Hz tone: the spectral peak is at 440 Hz (2 Hz bins)
    spectrum = np.abs(np.fft.rfft(out[:8000], n=8000))
    assert abs(np.argmax(spectrum) * 2 - 440) <= 2
    expected_amp = 0.5 * (np.mean([(k + 1) / channels for k in range(channels)]) if channels > 1 else 1)
    assert np.max(np.abs(out[2000:6000])) == pytest.approx(expected_amp, rel=0.02)


def test_offset_and_duration_read_a_segment(tmp_path):
    data = np.concatenate([np.zeros(16000), np.ones(16000) * 0.25]).astype(np.float32)
    f = write(tmp_path / "s.wav", data, 16000, "FLOAT")
    seg = read_audio(f, 16000, offset=1.0, duration=0.5)
    assert len(seg) == 8000 and np.allclose(seg, 0.25)


def test_int16_conversion_uses_the_int16_range():
    x = np.array([0.0, 0.5, -1.0, 1.0], np.float32)
    assert to_dtype(x, np.int16).tolist() == [0, 16384, -32768, 32767]


def test_manifest_labels_text_offsets_and_relative_paths(tmp_path):
    audio = write(tmp_path / "audio" / "long.wav", tone(16000, 2.0), 16000)
    lines = [{"audio_filepath": "audio/long.wav", "text": "hello world", "offset": 0.5, "duration": 1.0},
             {"audio_filepath": str(audio), "label": "yes"}]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    model = waveform_model([1, "T"])
    exs = list(load_examples(model, DataConfig(str(manifest))))
    assert [e.text for e in exs] == ["hello world", None]
    assert [e.label for e in exs] == [None, "yes"]
    assert exs[0].feeds["x"].shape == (1, 16000) and exs[1].feeds["x"].shape == (1, 32000)
    assert exs[0].seconds == pytest.approx(1.0) and exs[0].meta["start"] == pytest.approx(0.5)


def test_single_audio_file_and_limit(speech_commands, tmp_path):
    model = waveform_model([1, "T"])
    one = list(load_examples(model, DataConfig(str(speech_commands / "yes" / "a.wav"))))
    assert len(one) == 1 and one[0].feeds["x"].shape == (1, 16000)
    assert len(list(load_examples(model, DataConfig(str(speech_commands), limit=2)))) == 2


def test_load_examples_accepts_a_model_path(speech_commands, tmp_path):
    path = save(waveform_model([1, 16000]), tmp_path / "w.onnx")
    exs = list(load_examples(str(path), DataConfig(str(speech_commands))))
    assert len(exs) == 4


def test_examples_stream_lazily(speech_commands, tmp_path):
    """Reading stops at the first example: a corrupt file later in the folder is not touched."""
    (speech_commands / "zzz").mkdir()
    (speech_commands / "zzz" / "bad.wav").write_bytes(b"RIFF garbage")
    it = load_examples(waveform_model([1, 16000]), DataConfig(str(speech_commands)))
    assert next(it).feeds["x"].shape == (1, 16000)
    with pytest.raises(DataError, match="bad.wav"):
        list(it)


def test_dumps_folder_and_per_example_arrays(tmp_path):
    d = tmp_path / "dumps"
    d.mkdir()
    rng = np.random.default_rng(0)
    np.save(d / "a.npy", rng.standard_normal((3, 16000)).astype(np.float32))   # 3 rows
    np.save(d / "b.npy", rng.standard_normal(16000).astype(np.float32))        # one example
    exs = list(load_examples(waveform_model([1, 16000]), DataConfig(str(d))))
    assert len(exs) == 4 and all(e.feeds["x"].shape == (1, 16000) for e in exs)


def test_soundfile_reads_what_the_fixture_wrote(speech_commands):
    info = sf.info(str(speech_commands / "no" / "c.wav"))
    assert info.channels == 2 and info.samplerate == 8000


def test_progress_bar_only_on_a_terminal(speech_commands, monkeypatch):
    import io
    import sys

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    fake = Terminal()
    monkeypatch.setattr(sys, "stderr", fake)
    assert len(list(load_examples(waveform_model([1, 16000]), DataConfig(str(speech_commands))))) == 4
    assert "reading data" in fake.getvalue()
