"""Task evaluation over Examples: label mapping, segment files, VAD timing, CTC decoding."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.bench.sweep import pareto_front, parse_ratios
from onnxprune.bench.tasks import TaskConfig, evaluate, read_segments
from onnxprune.data import DataError, Example
from onnxprune.errors import UsageError


def ex(label=None, seconds=None, text=None, source="clip.wav", **meta):
    return Example({}, label=label, text=text, seconds=seconds, source=source, meta=meta)


def test_classify_with_label_names(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("yes\nno\nup\n")
    outs = [np.array([[0.1, 0.8, 0.1]]), np.array([[2.0, 0.0, 1.0]]), np.array([[0.0, 0.0, 3.0]])]
    r = evaluate(TaskConfig("classify", labels_file=str(labels)), [ex("no"), ex("up"), ex("2")], outs)
    assert r["accuracy"] == pytest.approx(2 / 3)
    assert r["recall"] == {"yes": None, "no": 1.0, "up": 0.5}


def test_classify_unknown_label_names_the_example():
    with pytest.raises(DataError, match="label 'maybe'"):
        evaluate(TaskConfig("classify"), [ex("maybe", source="a.npz[3]")], [np.zeros((1, 2))])


def test_wakeword_uses_max_score_and_clip_seconds():
    outs = [np.array([[0.1], [0.7]]), np.array([[0.2]]), np.array([[0.9]])]
    cfg = TaskConfig("wakeword", positive="hey", threshold=0.5, clip_seconds=1800)
    r = evaluate(cfg, [ex("hey"), ex("hey"), ex("noise")], outs)
    assert r["detection_rate"] == 0.5 and r["false_accepts_per_hour"] == pytest.approx(2.0)


def test_wakeword_without_durations_is_a_data_error():
    with pytest.raises(DataError, match="--clip-seconds"):
        evaluate(TaskConfig("wakeword", positive="1"), [ex("1")], [np.array([[0.9]])])


def test_read_segments_rttm_and_jsonl(tmp_path):
    rttm = tmp_path / "ref.rttm"
    rttm.write_text("SPEAKER meeting1 1 0.50 1.00 <NA> <NA> spk1 <NA> <NA>\nSPEAKER meeting1 1 3.0 0.5 <NA> <NA> spk2 <NA> <NA>\n")
    assert read_segments(str(rttm)) == {"meeting1": [(0.5, 1.5), (3.0, 3.5)]}
    jsonl = tmp_path / "ref.jsonl"
    jsonl.write_text('{"file": "audio/a.wav", "start": 1, "end": 2}\n{"file": "a.wav", "start": 4, "duration": 0.5}\n')
    assert read_segments(str(jsonl)) == {"a": [(1.0, 2.0), (4.0, 4.5)]}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"file": "a.wav"}\n')
    with pytest.raises(DataError, match="bad.jsonl:1"):
        read_segments(str(bad))


def test_vad_frames_on_the_hop_grid(tmp_path):
    seg = tmp_path / "ref.jsonl"
    seg.write_text('{"file": "a.wav", "start": 1.0, "end": 1.5}\n')
    # two windows of a.wav, 1 s each, 4 output frames of 0.25 s; the hop grid samples every 0.25 s
    examples = [ex(seconds=1.0, source="a.wav[0]", file="a.wav", start=0.0),
                ex(seconds=1.0, source="a.wav[1]", file="a.wav", start=1.0)]
    outs = [np.array([0.1, 0.1, 0.9, 0.1]), np.array([0.9, 0.9, 0.1, 0.1])]
    r = evaluate(TaskConfig("vad", segments=str(seg), frame_hop=0.25), examples, outs)
    # reference: frames of window 2 at 1.125 and 1.375; prediction adds a false frame at 0.625
    assert (r["precision"], r["recall"]) == (pytest.approx(2 / 3), 1.0)
    assert r["f1"] == pytest.approx(0.8) and r["frames"] == 8


def test_vad_with_no_matching_file_is_an_error(tmp_path):
    seg = tmp_path / "ref.rttm"
    seg.write_text("SPEAKER other 1 0 1 <NA> <NA> s <NA> <NA>\n")
    with pytest.raises(DataError, match="no example's file"):
        evaluate(TaskConfig("vad", segments=str(seg)), [ex(seconds=1.0)], [np.array([0.9])])


def test_ctc_task_wer_cer(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("_\n|\na\nb\n")
    ids = [2, 0, 2, 1, 3]  # "aa b"
    logits = np.eye(4)[ids][None]
    r = evaluate(TaskConfig("ctc", vocab=str(vocab)), [ex(text="aa b")], [logits])
    assert r["wer"] == 0.0 and r["cer"] == 0.0
    r = evaluate(TaskConfig("ctc", vocab=str(vocab)), [ex(text="aa bb")], [logits])
    assert r["wer"] == pytest.approx(0.5) and r["cer"] == pytest.approx(1 / 5)


def test_task_needs_its_files():
    with pytest.raises(UsageError, match="--vocab"):
        TaskConfig("ctc").check()
    with pytest.raises(UsageError, match="--positive"):
        TaskConfig("wakeword").check()


def test_pareto_front():
    costs, quality = [1.0, 2.0, 3.0, 2.5, 1.0], [0.5, 0.9, 0.95, 0.8, 0.4]
    assert pareto_front(costs, quality) == [0, 1, 2]
    # lower-is-better (WER): cheaper and lower error dominates
    assert pareto_front([1.0, 2.0, 3.0], [0.3, 0.2, 0.25], higher_better=False) == [0, 1]


def test_parse_ratios():
    assert parse_ratios("0.5, 0,0.25,0.5") == [0.0, 0.25, 0.5]
    with pytest.raises(UsageError):
        parse_ratios("0.5,1.0")
    with pytest.raises(UsageError):
        parse_ratios("a")
