"""auto budgets what matters: the default follows the output kind (printed), --head scores the
model through its downstream model (openwakeword's embedding model through a wake-word head,
--task wakeword: detection and false accepts before and after), and a no-op says why."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from test_main import run

import onnxprune

ASSETS = Path(onnxprune.__file__).parent / "assets" / "kws"
MODELS = Path(__file__).resolve().parents[2] / "models"


def test_default_budget_for_a_classifier_is_top1(tmp_path):
    r = run("auto", ASSETS / "kws.onnx", tmp_path / "a.onnx", "--target-macs", "0.9", "--latency-model", "macs")
    assert r.returncode == 0, r.stderr
    assert "budget: default for classifier output 'probs': top-1 agreement drop <= 1 point" in r.stdout


@pytest.mark.realmodel
def test_default_budget_for_an_embedding_is_snr(tmp_path, real_model):
    report = tmp_path / "a.json"
    r = run("auto", real_model("embedding_model"), tmp_path / "a.onnx", "--target-macs", "0.95", "--latency-model",
            "macs", "--shape", "input_1:1,76,32,1", "--calib", "4", "--eval", "4", "--report", report)
    assert r.returncode == 0, r.stderr
    assert "budget: default for non-classifier output 'conv2d_19'" in r.stdout and "SNR >= 20 dB" in r.stdout
    data = json.loads(report.read_text())
    assert data["min_snr"] == 20.0 and data["max_drop"] is None


def test_no_op_says_why_and_what_to_try(tmp_path):
    r = run("auto", ASSETS / "kws.onnx", tmp_path / "a.onnx", "--target-macs", "0.5", "--latency-model", "macs",
            "--min-snr", "300", "--max-evals", "6")
    assert r.returncode == 0, r.stderr
    assert "nothing pruned: all" in r.stdout and "steps went over the budget" in r.stdout
    assert "--compensate lstsq" in r.stdout
    assert r.stderr.strip().splitlines()[-1].startswith("UNCHANGED")


def _clips(folder: Path, rng) -> Path:
    """2.2 s clips (a KWS word in 0.6 s of light noise each side), labelled by folder: 'yes' or 'other'."""
    src = sorted((ASSETS / "eval").glob("*.flac"))
    picked = [f for f in src if f.name.startswith("yes")][:8] + [f for f in src if not f.name.startswith("yes")][::12][:8]
    for f in picked:
        audio, rate = sf.read(f, dtype="float32")
        pad = np.zeros(int(0.6 * rate), np.float32)
        clip = np.concatenate([pad, audio, pad])
        clip = clip + rng.normal(0, 0.003, clip.shape).astype(np.float32)
        out = folder / ("yes" if f.name.startswith("yes") else "other") / f"{f.stem}.wav"
        out.parent.mkdir(parents=True, exist_ok=True)
        sf.write(out, clip, rate, "PCM_16")
    return folder


@pytest.mark.realmodel
def test_auto_through_a_wakeword_head(tmp_path, real_model):
    sys.path.insert(0, str(MODELS))
    from wrap_frontend import main as wrap

    mel = tmp_path / "mel_oww.onnx"
    wrap([str(real_model("melspectrogram")), str(mel), "--in-scale", "32768", "--out-scale", "0.1", "--out-shift", "2"])
    data = _clips(tmp_path / "clips", np.random.default_rng(0))
    report = tmp_path / "a.json"
    r = run("auto", real_model("embedding_model"), tmp_path / "e.onnx", "--target-macs", "0.95",
            "--latency-model", "macs", "--data", data, "--frontend", mel, "--hop", "0.08", "--holdout", "0.5",
            "--head", real_model("hey_jarvis_v0.1"), "--task", "wakeword", "--positive", "yes", "--criterion", "l1",
            "--calib", "4", "--eval", "16", "--report", report)
    assert r.returncode == 0, r.stderr
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("pipeline through hey_jarvis_v0.1.onnx")]
    assert line and "detection" in line[0] and "false accepts" in line[0] and "->" in line[0]
    assert "budget: default for wakeword detection_rate through hey_jarvis_v0.1.onnx" in r.stdout
    final = json.loads(report.read_text())["final_metrics"]
    assert {"task_detection_rate", "top1_agreement", "snr_db"} <= final.keys()
