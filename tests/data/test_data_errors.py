"""Bad data through a command built like the real ones (`data_options` + `run_command`): one
`error:` line naming the file, exit code 2, no traceback, nothing on stdout."""

from __future__ import annotations

import json

import click
import numpy as np
import pytest
from click.testing import CliRunner
from audio_fixtures import feature_model, framing_frontend, save, tone, waveform_model, write

from onnxprune.cli.common import run_command, verbose_option
from onnxprune.cli.data_options import data_options
from onnxprune.data import load_examples


@click.command()
@click.argument("model")
@data_options("calib")
@verbose_option
@run_command("datacheck")
def datacheck(model, data, verbose):
    count = sum(1 for _ in load_examples(model, data))
    click.echo(f"{count} examples")


def invoke(*args):
    return CliRunner().invoke(datacheck, [str(a) for a in args])


@pytest.fixture
def wave(tmp_path):
    return save(waveform_model([1, 16000]), tmp_path / "wave.onnx")


def _one_error_line(result, *needles):
    assert result.exit_code == 2, (result.exit_code, result.output, result.stderr)
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr and result.stdout == ""
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def test_good_data_runs_quietly(wave, speech_commands):
    r = invoke(wave, "--data", speech_commands)
    assert r.exit_code == 0 and r.stdout.strip() == "4 examples"
    assert "reading data" not in r.stderr                 # no progress bar when stderr is not a TTY


def test_missing_path(wave, tmp_path):
    _one_error_line(invoke(wave, "--data", tmp_path / "nope"), "nope", "no such file or directory")


def test_empty_folder_and_folder_without_audio(wave, tmp_path):
    (tmp_path / "empty").mkdir()
    _one_error_line(invoke(wave, "--data", tmp_path / "empty"), "empty", "no audio")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "README.txt").write_text("hi")
    _one_error_line(invoke(wave, "--data", tmp_path / "docs"), "docs", "no audio")


def test_corrupt_audio_file(wave, tmp_path):
    write(tmp_path / "d" / "yes" / "good.wav", tone(16000, 1.0), 16000)
    (tmp_path / "d" / "yes" / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    _one_error_line(invoke(wave, "--data", tmp_path / "d"), "bad.wav", "cannot read audio")


def test_zero_length_audio(wave, tmp_path):
    write(tmp_path / "d" / "empty.wav", np.zeros(0, np.float32), 16000)
    _one_error_line(invoke(wave, "--data", tmp_path / "d"), "empty.wav", "no audio samples")


def test_rate_that_leaves_no_samples(wave, tmp_path):
    write(tmp_path / "d" / "tiny.wav", np.zeros(4, np.float32), 16000)
    _one_error_line(invoke(wave, "--data", tmp_path / "d", "--sample-rate", 8), "tiny.wav", "no samples at 8 Hz")
    _one_error_line(invoke(wave, "--data", tmp_path / "d", "--sample-rate", 0), "--sample-rate 0")


def test_manifest_line_not_json(wave, tmp_path):
    write(tmp_path / "a.wav", tone(16000, 1.0), 16000)
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"audio_filepath": "a.wav", "label": "x"}) + "\n{not json\n")
    _one_error_line(invoke(wave, "--data", m), "m.jsonl line 2", "not JSON")


@pytest.mark.parametrize("entry,needle", [
    ({"audio_filepath": "missing.wav"}, "missing.wav does not exist"),
    ({"path": "a.wav"}, "string \"audio_filepath\""),
    ({"audio_filepath": "a.wav", "offset": "soon"}, "must be numbers"),
    ({"audio_filepath": "a.wav", "offset": 5.0}, "no audio samples at offset 5"),
])
def test_manifest_bad_entries(wave, tmp_path, entry, needle):
    write(tmp_path / "a.wav", tone(16000, 1.0), 16000)
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps(entry) + "\n")
    _one_error_line(invoke(wave, "--data", m), needle)


def test_empty_manifest(wave, tmp_path):
    (tmp_path / "m.jsonl").write_text("\n")
    _one_error_line(invoke(wave, "--data", tmp_path / "m.jsonl"), "m.jsonl", "no entries")


def test_unfit_shapes(tmp_path):
    write(tmp_path / "a.wav", tone(16000, 0.5), 16000)
    front = save(framing_frontend(feats=8), tmp_path / "front.onnx")
    model = save(feature_model(["B", 10, 6]), tmp_path / "feat.onnx")
    _one_error_line(invoke(model, "--data", tmp_path / "a.wav", "--frontend", front),
                    "a.wav", "[1,1,48,8] does not fit input 'x' [?,10,6]")
    _one_error_line(invoke(model, "--data", tmp_path / "a.wav"), "not a waveform")


def test_bad_frontend_files(wave, tmp_path):
    write(tmp_path / "a.wav", tone(16000, 0.5), 16000)
    (tmp_path / "junk.onnx").write_bytes(b"\x00garbage")
    _one_error_line(invoke(wave, "--data", tmp_path / "a.wav", "--frontend", tmp_path / "junk.onnx"),
                    "--frontend", "junk.onnx")
    _one_error_line(invoke(wave, "--data", tmp_path / "a.wav", "--frontend", tmp_path / "none.onnx"),
                    "none.onnx", "no such file")


def test_frontend_and_feeds_together(wave, tmp_path):
    write(tmp_path / "a.wav", tone(16000, 0.5), 16000)
    _one_error_line(invoke(wave, "--data", tmp_path / "a.wav", "--frontend", "f.onnx", "--feeds", "m:f"),
                    "--frontend and --feeds")


def test_corrupt_dump(wave, tmp_path):
    (tmp_path / "x.npy").write_bytes(b"not numpy")
    _one_error_line(invoke(wave, "--data", tmp_path / "x.npy"), "x.npy", "cannot read")


def test_verbose_shows_the_traceback(wave, tmp_path):
    r = invoke(wave, "--data", tmp_path / "nope", "-v")
    assert r.exit_code == 2 and "Traceback" in r.stderr
