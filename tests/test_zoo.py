"""The committed zoo models (models/zoo/): they load, run on the committed evaluation clips through
the committed ONNX front-end, reach the accuracy stated in models/README.md, and have prunable
groups. Deterministic: the clips, the models and onnxruntime's CPU kernels are fixed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import onnxprune
from eval_zoo import ZOO, kws_predict, kws_report, read_manifest

# Stated in models/README.md (python models/eval_zoo.py kws); the margin only absorbs float noise.
KWS_EVAL_ACCURACY = 0.9367
CTC_EVAL_WER = {"crnn_ctc_ts": 0.0872, "crnn_ctc_dynamo": 0.1259}
INTENT_EVAL_ACCURACY = 0.5833
MARGIN = 0.01


@pytest.fixture(scope="module")
def kws_eval():
    rows = read_manifest(ZOO / "data" / "kws" / "eval")
    return [r["audio"] for r in rows], [r["label"] for r in rows]


def test_kws_eval_set_is_balanced_and_one_second(kws_eval):
    waves, labels = kws_eval
    classes = json.loads((ZOO / "kws_labels.json").read_text())
    assert len(classes) == 12 and set(labels) == set(classes)
    assert len(set(labels.count(c) for c in classes)) == 1
    assert all(w.shape == (16000,) for w in waves)


def test_logmel_frontend_matches_numpy_stft(kws_eval):
    """The ONNX front-end is the documented log-mel: Hann window 400, hop 320, 512-point DFT, 40 HTK mels."""
    from logmel import mel_matrix
    from eval_zoo import session

    wave = kws_eval[0][0]
    got = session(ZOO / "logmel_frontend.onnx").run(None, {"waveform": wave[None]})[0]
    frames = np.stack([wave[i * 320:i * 320 + 400] for i in range(49)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    power = np.abs(np.fft.rfft(frames * window, n=512)) ** 2
    want = np.log(power @ mel_matrix().T.astype(np.float64) + 1e-6)
    assert got.shape == (1, 1, 49, 40)
    np.testing.assert_allclose(got[0, 0], want, atol=2e-3)


def test_kws_reaches_stated_accuracy(kws_eval):
    waves, labels = kws_eval
    classes = json.loads((ZOO / "kws_labels.json").read_text())
    report = kws_report(labels, kws_predict(waves), classes)
    assert report["accuracy"] >= KWS_EVAL_ACCURACY - MARGIN
    # Chance is 1/12: every class must be recognised well above it.
    assert min(report["recall"].values()) >= 0.5


def test_kws_has_prunable_groups():
    analysis = onnxprune.analyze(ZOO / "kws_dscnn.onnx")
    prunable = [g for g in analysis.groups if g.prunable]
    assert len(prunable) >= 4


@pytest.mark.skipif(not (ZOO / "crnn_ctc_ts.onnx").exists(), reason="CTC recognizer not committed")
def test_ctc_reaches_stated_wer():
    from eval_zoo import ctc_transcribe, error_rates

    rows = read_manifest(ZOO / "data" / "ctc" / "eval")
    refs = [r["text"] for r in rows]
    for name, stated in CTC_EVAL_WER.items():
        wer, cer = error_rates(refs, ctc_transcribe([r["audio"] for r in rows], ZOO / f"{name}.onnx"))
        assert wer <= stated + MARGIN, name


@pytest.mark.skipif(not (ZOO / "crnn_ctc_ts.onnx").exists(), reason="CTC recognizer not committed")
def test_ctc_has_prunable_groups():
    analysis = onnxprune.analyze(ZOO / "crnn_ctc_ts.onnx", shapes={"logmel": [1, 1, 101, 40]})
    assert sum(g.prunable for g in analysis.groups) >= 2


@pytest.mark.skipif(not (ZOO / "intent_lstm.onnx").exists(), reason="intent classifier not committed")
def test_intent_reaches_stated_accuracy_and_prunes():
    from eval_zoo import intent_predict

    rows = [json.loads(line) for line in (ZOO / "data" / "intent" / "eval.jsonl").read_text().splitlines()]
    preds = intent_predict([r["text"] for r in rows])
    assert np.mean([p == r["label"] for p, r in zip(preds, rows)]) >= INTENT_EVAL_ACCURACY - MARGIN
    analysis = onnxprune.analyze(ZOO / "intent_lstm.onnx", shapes={"tokens": [1, 7]})
    assert sum(g.prunable for g in analysis.groups) >= 1
