"""Task metrics and label-free fidelity, as pure functions of arrays (so tests can check them
against hand-computed values).

Fidelity compares a model's outputs with a baseline's on the same inputs:
* top-1 agreement: the fraction of rows whose decision agrees (`decisions`: argmax over the last
  axis; a 1-wide output is thresholded at 0.5 if the baseline looks like a probability, else at 0);
* cosine similarity of each example's flattened output, averaged;
* SNR in dB: 10·log10(Σ baseline² / Σ (baseline − model)²) over everything (inf when identical);
* KL(baseline ‖ model) of the output distributions, averaged over rows. Rows that already are
  distributions (non-negative, summing to 1 within 1e-3) are used as they are; otherwise they are
  treated as logits and softmaxed. A 1-wide output is a Bernoulli probability p (sigmoid of it if
  outside [0, 1]), i.e. the distribution [p, 1 − p].
"""

from __future__ import annotations

import math

import numpy as np

EPS = 1e-12


def _rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(-1, x.shape[-1]) if x.ndim else x.reshape(1, 1)


def _looks_like_probs(rows: np.ndarray) -> bool:
    if rows.shape[-1] == 1:
        return bool(np.all((rows >= 0) & (rows <= 1)))
    return bool(np.all(rows >= -1e-6) and np.allclose(rows.sum(-1), 1.0, atol=1e-3))


def as_distribution(x: np.ndarray) -> np.ndarray:
    """Rows of `x` as probability distributions (see the module docstring for the rule)."""
    rows = _rows(x)
    if rows.shape[-1] == 1:
        p = rows if _looks_like_probs(rows) else 1.0 / (1.0 + np.exp(-rows))
        return np.concatenate([p, 1.0 - p], axis=-1)
    if _looks_like_probs(rows):
        return rows / rows.sum(-1, keepdims=True)
    z = rows - rows.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def decisions(y: np.ndarray, baseline: np.ndarray | None = None) -> np.ndarray:
    """The top-1 decision of every row of `y`: argmax over the last axis; a 1-wide output is cut at
    0.5 when the baseline's (else its own) values look like probabilities, otherwise at 0. Shared
    by bench's fidelity and auto's budget, so "top-1 agreement" means one thing."""
    rows = _rows(y)
    if rows.shape[-1] == 1:
        cut = 0.5 if _looks_like_probs(rows if baseline is None else _rows(baseline)) else 0.0
        return (rows[:, 0] >= cut).astype(np.int64)
    return rows.argmax(-1)


def fidelity(baseline: list[np.ndarray], model: list[np.ndarray]) -> dict:
    """Agreement of `model`'s outputs with `baseline`'s (one array per example, same shapes)."""
    if len(baseline) != len(model) or not baseline:
        raise ValueError("fidelity needs the same non-zero number of outputs from both models")
    agree = total = 0
    cosines, kls = [], []
    signal = noise = 0.0
    for a, b in zip(baseline, model):
        a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a64.shape != b64.shape:
            raise ValueError(f"output shapes differ: {a64.shape} vs {b64.shape}")
        ra, rb = _rows(a64), _rows(b64)
        agree += int((decisions(ra) == decisions(rb, ra)).sum())
        total += ra.shape[0]
        fa, fb = a64.ravel(), b64.ravel()
        na, nb = np.linalg.norm(fa), np.linalg.norm(fb)
        cosines.append(1.0 if na == nb == 0 else float(fa @ fb / max(na * nb, EPS)))
        signal += float(fa @ fa)
        noise += float((fa - fb) @ (fa - fb))
        p, q = as_distribution(a64), as_distribution(b64)
        kls.append(float(np.mean(np.sum(p * (np.log(np.maximum(p, EPS)) - np.log(np.maximum(q, EPS))), -1))))
    snr = math.inf if noise == 0 else (10 * math.log10(signal / noise) if signal > 0 else -math.inf)
    return {"top1_agreement": agree / total, "cosine": float(np.mean(cosines)), "snr_db": snr,
            "kl": float(np.mean(kls)), "examples": len(baseline)}


def classify(predicted: list[int], labels: list[int], class_names: list[str]) -> dict:
    """Accuracy and recall per class (classes with no examples get None)."""
    pred, true = np.asarray(predicted), np.asarray(labels)
    recall = {}
    for k, name in enumerate(class_names):
        mask = true == k
        recall[name] = float((pred[mask] == k).mean()) if mask.any() else None
    return {"accuracy": float((pred == true).mean()) if true.size else None, "recall": recall,
            "examples": int(true.size)}


def wakeword(scores: list[float], positive: list[bool], seconds: list[float], threshold: float) -> dict:
    """Detection rate on positive clips and false accepts per hour of negative audio (a negative
    clip whose score reaches the threshold is one false accept)."""
    s, pos = np.asarray(scores, np.float64), np.asarray(positive, bool)
    neg_hours = float(np.asarray(seconds, np.float64)[~pos].sum()) / 3600.0
    fa = int((s[~pos] >= threshold).sum())
    return {"detection_rate": float((s[pos] >= threshold).mean()) if pos.any() else None,
            "false_accepts": fa, "negative_hours": neg_hours,
            "false_accepts_per_hour": fa / neg_hours if neg_hours > 0 else None,
            "positives": int(pos.sum()), "negatives": int((~pos).sum()), "threshold": threshold}


def frame_f1(predicted: np.ndarray, reference: np.ndarray) -> dict:
    """Frame-level precision, recall and F1 of boolean speech masks."""
    p, r = np.asarray(predicted, bool), np.asarray(reference, bool)
    tp, fp, fn = int((p & r).sum()), int((p & ~r).sum()), int((~p & r).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return {"precision": precision, "recall": recall, "f1": f1, "frames": int(p.size)}


def segments_mask(segments: list[tuple[float, float]], times: np.ndarray) -> np.ndarray:
    """True where a time (a frame's centre, seconds) falls inside any [start, end) segment."""
    mask = np.zeros(len(times), bool)
    for start, end in segments:
        mask |= (times >= start) & (times < end)
    return mask


def ctc_greedy(logits: np.ndarray, vocab: list[str], blank: int = 0) -> str:
    """Argmax per frame, collapse repeats, drop blanks; `|` and `▁` become spaces (wav2vec2 and
    sentencepiece conventions), runs of spaces collapse. A word vocabulary (tokens of several
    letters, no `|`/`▁` marks) is joined with spaces."""
    rows = _rows(logits)
    ids = rows.argmax(-1)
    out, prev = [], None
    for i in ids.tolist():
        if i != prev and i != blank:
            out.append(vocab[i] if i < len(vocab) else "")
        prev = i
    words = not any(("|" in t or "▁" in t) for t in vocab) and \
        sum(len(t) > 1 for t in vocab) > len(vocab) // 2
    text = (" " if words else "").join(out).replace("|", " ").replace("▁", " ")
    return " ".join(text.split())


def wer_cer(references: list[str], hypotheses: list[str]) -> dict:
    """Corpus word and character error rates (jiwer: edits summed over all utterances)."""
    import jiwer

    refs = [r if r.strip() else "<empty>" for r in references]
    return {"wer": float(jiwer.wer(refs, hypotheses)), "cer": float(jiwer.cer(refs, hypotheses)),
            "utterances": len(refs)}

