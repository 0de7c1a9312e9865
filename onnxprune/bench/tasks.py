"""Task metrics over evaluation examples: turn each example's model output and its label (or
transcript, or reference speech segments) into the arrays `metrics` scores.

Conventions (documented in the README):
* classify: the output is logits or probabilities [1, C] (more rows, e.g. [1, T, C], are averaged);
  labels are class names from `--labels` (one per line, index order) or integer indices.
* wakeword: a clip's score is the maximum of the output; positive clips have label == `--positive`;
  clip length comes from Example.seconds (or `--clip-seconds`).
* vad: the output's T values are speech probabilities spread evenly over the example's span
  (Example.meta["start"], default 0, and Example.seconds); they are sampled on a `--frame-hop` grid
  and compared with reference segments of the example's file (Example.meta["file"], else its
  source) from an RTTM or JSONL file, matched by file stem.
* ctc: the output is [1, T, V] (or [T, 1, V]) logits; greedy decoding with `--vocab`, against
  Example.text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import DataError
from ..errors import UsageError
from . import metrics

TASKS = ("classify", "wakeword", "vad", "ctc")


# task -> (its headline metric in evaluate()'s result, higher is better)
TASK_QUALITY = {"classify": ("accuracy", True), "wakeword": ("detection_rate", True), "vad": ("f1", True),
                "ctc": ("wer", False)}


@dataclass(frozen=True)
class TaskConfig:
    task: str
    labels_file: str | None = None
    positive: str | None = None
    threshold: float = 0.5
    segments: str | None = None
    frame_hop: float = 0.01
    vocab: str | None = None
    blank: int = 0
    clip_seconds: float | None = None

    def check(self) -> None:
        """Fail before any model runs if the task's own inputs are missing."""
        need = {"wakeword": ("positive", "--positive NAME (the label of positive clips)"),
                "vad": ("segments", "--segments FILE (RTTM or JSONL reference speech segments)"),
                "ctc": ("vocab", "--vocab FILE (one token per line, in output index order)")}
        if self.task in need and getattr(self, need[self.task][0]) is None:
            raise UsageError(f"--task {self.task} needs {need[self.task][1]}")
        if self.frame_hop <= 0:
            raise UsageError(f"--frame-hop {self.frame_hop} must be positive")
        for opt, path in (("--labels", self.labels_file), ("--segments", self.segments), ("--vocab", self.vocab)):
            if path is not None and not Path(path).is_file():
                raise UsageError(f"{opt} {path}: no such file")


def read_lines(path: str) -> list[str]:
    """One name per line, or a JSON list of names (as models/zoo/kws_labels.json)."""
    text = Path(path).read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            return [str(x) for x in json.loads(text)]
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}: not a JSON list of names ({exc.msg})") from None
    return text.rstrip("\n").split("\n")


def _file_key(ex) -> str:
    name = ex.meta.get("file") or ex.source.split("[")[0].split("#")[0]
    return Path(str(name)).stem


def read_segments(path: str) -> dict[str, list[tuple[float, float]]]:
    """Speech segments per file stem from RTTM (`SPEAKER file chan start dur ...`) or JSONL
    (`{"file": ..., "start": s, "end": e}` or with `"duration"`)."""
    segs: dict[str, list[tuple[float, float]]] = {}
    for n, line in enumerate(read_lines(path), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            if line.startswith("{"):
                rec = json.loads(line)
                name = rec.get("file") or rec.get("audio") or rec.get("source")
                start = float(rec["start"])
                end = float(rec["end"]) if "end" in rec else start + float(rec["duration"])
            else:
                fields = line.split()
                if fields[0] != "SPEAKER":
                    continue
                name, start = fields[1], float(fields[3])
                end = start + float(fields[4])
            if not name:
                raise KeyError("file")
        except (KeyError, ValueError, IndexError, json.JSONDecodeError) as exc:
            raise DataError(f"--segments {path}:{n}: cannot read a segment ({type(exc).__name__}: {exc})") from None
        segs.setdefault(Path(str(name)).stem, []).append((start, end))
    if not segs:
        raise DataError(f"--segments {path}: no segments found (expected RTTM SPEAKER lines or JSONL records)")
    return segs


def _seconds(ex, cfg: TaskConfig) -> float:
    s = ex.seconds if ex.seconds is not None else cfg.clip_seconds
    if s is None:
        raise DataError(f"{ex.source}: the example has no duration; give --clip-seconds")
    return float(s)


def evaluate(cfg: TaskConfig, examples: list, outputs: list[np.ndarray]) -> dict:
    """The task's metrics for one model (`outputs[i]` is its output on `examples[i]`)."""
    return {"classify": _classify, "wakeword": _wakeword, "vad": _vad, "ctc": _ctc}[cfg.task](cfg, examples, outputs)


def _class_index(label, names: list[str] | None, source: str) -> int:
    if label is None:
        raise DataError(f"{source}: --task classify needs a label for every example")
    if names is not None and label in names:
        return names.index(label)
    try:
        return int(float(label))
    except ValueError:
        known = f" (classes: {', '.join(names[:10])}{', ...' if len(names) > 10 else ''})" if names else " (give --labels FILE)"
        raise DataError(f"{source}: label '{label}' is not a class name or index{known}") from None


def _classify(cfg, examples, outputs):
    names = read_lines(cfg.labels_file) if cfg.labels_file else None
    rows = [np.asarray(o, np.float64).reshape(-1, np.shape(o)[-1]).mean(0) for o in outputs]
    n_classes = len(rows[0])
    if names is None:
        names = [str(k) for k in range(n_classes)]
    elif len(names) != n_classes:
        raise UsageError(f"--labels {cfg.labels_file}: {len(names)} names but the model outputs {n_classes} classes")
    labels = [_class_index(ex.label, names, ex.source) for ex in examples]
    return metrics.classify([int(r.argmax()) for r in rows], labels, names)


def _wakeword(cfg, examples, outputs):
    scores = [float(np.max(o)) for o in outputs]
    positive = [ex.label == cfg.positive for ex in examples]
    return metrics.wakeword(scores, positive, [_seconds(ex, cfg) for ex in examples], cfg.threshold)


def _vad(cfg, examples, outputs):
    segs = read_segments(cfg.segments)
    preds, refs, unmatched = [], [], 0
    for ex, out in zip(examples, outputs):
        probs = np.asarray(out, np.float64).ravel()
        start, dur = float(ex.meta.get("start") or 0.0), _seconds(ex, cfg)
        times = start + (np.arange(max(1, int(dur / cfg.frame_hop))) + 0.5) * cfg.frame_hop
        idx = np.minimum(((times - start) / dur * len(probs)).astype(int), len(probs) - 1)
        preds.append(probs[idx] >= cfg.threshold)
        key = _file_key(ex)
        unmatched += key not in segs
        refs.append(metrics.segments_mask(segs.get(key, []), times))
    if unmatched == len(examples):
        raise DataError(f"--segments {cfg.segments}: no example's file ({_file_key(examples[0])}, ...) has segments; "
                        f"files there: {', '.join(sorted(segs)[:5])}")
    result = metrics.frame_f1(np.concatenate(preds), np.concatenate(refs))
    result.update(frame_hop=cfg.frame_hop, threshold=cfg.threshold, examples_without_segments=unmatched)
    return result


def _ctc(cfg, examples, outputs):
    vocab = read_lines(cfg.vocab)
    refs, hyps = [], []
    for ex, out in zip(examples, outputs):
        if ex.text is None:
            raise DataError(f"{ex.source}: --task ctc needs a transcript (Example.text) for every example")
        if np.shape(out)[-1] != len(vocab):
            raise UsageError(f"--vocab {cfg.vocab}: {len(vocab)} tokens but the model outputs {np.shape(out)[-1]}")
        refs.append(ex.text)
        hyps.append(metrics.ctc_greedy(out, vocab, cfg.blank))
    result = metrics.wer_cer(refs, hyps)
    result["examples_decoded"] = [{"ref": r, "hyp": h} for r, h in list(zip(refs, hyps))[:3]]
    return result
