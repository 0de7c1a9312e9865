"""Every metric against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from onnxprune.bench import metrics


def test_fidelity_snr_cosine_top1_by_hand():
    base = [np.array([[3.0, 4.0]]), np.array([[1.0, 0.0]])]
    model = [np.array([[3.0, 3.0]]), np.array([[0.0, 1.0]])]
    f = metrics.fidelity(base, model)
    # signal = 9+16+1 = 26; noise = 1 + (1+1) = 3
    assert f["snr_db"] == pytest.approx(10 * math.log10(26 / 3))
    # cosines: (9+12)/(5*sqrt(18)) and 0
    assert f["cosine"] == pytest.approx((21 / (5 * math.sqrt(18)) + 0.0) / 2)
    # argmax: [1] vs [0] disagree... first: 4>3 -> 1, model 3=3 -> 0; second: 0 vs 1
    assert f["top1_agreement"] == 0.0


def test_fidelity_identical_is_perfect():
    x = [np.array([[0.2, 0.8]]), np.array([[0.6, 0.4]])]
    f = metrics.fidelity(x, [a.copy() for a in x])
    assert f["snr_db"] == math.inf and f["cosine"] == pytest.approx(1.0)
    assert f["kl"] == pytest.approx(0.0) and f["top1_agreement"] == 1.0


def test_kl_of_probabilities_and_of_logits():
    p, q = np.array([[0.5, 0.5]]), np.array([[0.25, 0.75]])
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert metrics.fidelity([p], [q])["kl"] == pytest.approx(expected)
    # logits are softmaxed: log([1, 3]) softmaxes to [0.25, 0.75]
    logits_p, logits_q = np.log(np.array([[1.0, 1.0]])) + 2.0, np.log(np.array([[1.0, 3.0]])) - 7.0
    assert metrics.fidelity([logits_p], [logits_q])["kl"] == pytest.approx(expected)


def test_one_wide_output_is_a_bernoulli_probability():
    d = metrics.as_distribution(np.array([[0.9]]))
    assert d[0].tolist() == pytest.approx([0.9, 0.1])
    # outside [0, 1] it is a logit: sigmoid(0) = 0.5
    assert metrics.as_distribution(np.array([[0.0], [-3.0]]))[0].tolist() == pytest.approx([0.5, 0.5])
    f = metrics.fidelity([np.array([[0.9]])], [np.array([[0.3]])])
    assert f["top1_agreement"] == 0.0  # 0.9 >= 0.5 but 0.3 < 0.5
    assert f["kl"] == pytest.approx(0.9 * math.log(0.9 / 0.3) + 0.1 * math.log(0.1 / 0.7))


def test_fidelity_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.fidelity([np.zeros((1, 2))], [np.zeros((1, 3))])


def test_classify_accuracy_and_recall():
    r = metrics.classify([0, 1, 1, 2, 0], [0, 1, 2, 2, 1], ["a", "b", "c", "d"])
    assert r["accuracy"] == pytest.approx(3 / 5)
    assert r["recall"] == {"a": 1.0, "b": 0.5, "c": 0.5, "d": None}


def test_wakeword_detection_rate_and_false_accepts_per_hour():
    scores = [0.9, 0.4, 0.7, 0.6, 0.1, 0.5]
    positive = [True, True, True, False, False, False]
    seconds = [2, 2, 2, 900, 900, 1800]  # 3600 s = 1 h of negatives
    r = metrics.wakeword(scores, positive, seconds, threshold=0.5)
    assert r["detection_rate"] == pytest.approx(2 / 3)
    assert r["false_accepts"] == 2          # 0.6 and 0.5 reach the threshold
    assert r["negative_hours"] == pytest.approx(1.0)
    assert r["false_accepts_per_hour"] == pytest.approx(2.0)


def test_vad_frame_precision_recall_f1():
    times = np.array([0.05, 0.15, 0.25, 0.35, 0.45, 0.55])
    ref = metrics.segments_mask([(0.1, 0.3), (0.5, 0.6)], times)
    assert ref.tolist() == [False, True, True, False, False, True]
    pred = np.array([False, True, False, True, False, True])
    r = metrics.frame_f1(pred, ref)
    # tp 2, fp 1, fn 1
    assert r["precision"] == pytest.approx(2 / 3) and r["recall"] == pytest.approx(2 / 3)
    assert r["f1"] == pytest.approx(2 / 3)


def test_ctc_greedy_collapses_repeats_and_drops_blanks():
    vocab = ["<b>", "a", "b", "|"]
    ids = [1, 1, 0, 1, 2, 2, 3, 0, 2, 0]
    logits = np.eye(4)[ids][None]  # [1, T, V]
    assert metrics.ctc_greedy(logits, vocab, blank=0) == "aab b"


def test_wer_and_cer_small_examples():
    r = metrics.wer_cer(["the cat sat", "hello"], ["the bat sat", "hello world"])
    # word edits: 1 substitution + 1 insertion over 4 reference words
    assert r["wer"] == pytest.approx(2 / 4)
    # char edits: c->b (1) + " world" (6) over 11 + 5 reference chars
    assert r["cer"] == pytest.approx(7 / 16)


def test_ctc_greedy_joins_a_word_vocabulary_with_spaces():
    import numpy as np

    from onnxprune.bench.metrics import ctc_greedy

    vocab = ["<blank>", "turn", "on", "the", "light"]
    ids = [1, 1, 0, 2, 0, 3, 3, 4]
    logits = np.eye(len(vocab))[ids]
    assert ctc_greedy(logits, vocab) == "turn on the light"
