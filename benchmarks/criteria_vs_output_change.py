"""Do the forward-only criteria rank channels the way their measured effect does?

A first-order Taylor/Fisher criterion estimates how much the output changes when a channel is
removed; onnxprune has no gradients (no training framework), so instead this MEASURES that change:
for every channel of every prunable group, the model with just that channel removed (its reference
form: consumer slices zeroed) runs on held-out real audio, and the mean squared change of the output
(a classifier's logits) is the channel's true single-channel saliency. Each criterion's scores
(from the calibration clips) are compared with it per group: Spearman rank correlation, and how
many of the half the criterion would remove are in the measured least-important half.

Needs: the pretrained melspectrogram and embedding_model (models/fetch.py; PyPI access once).

    python benchmarks/criteria_vs_output_change.py [--clips models/zoo/data/kws] [--examples 48]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from _common import need_models, parser, write

import onnxprune  # noqa: E402
import speech_feeds  # noqa: E402
from criteria_table import before_softmax  # noqa: E402
from onnxprune.calibration.statistics import calibrate  # noqa: E402
BUNDLED = Path(__file__).resolve().parent.parent / "onnxprune" / "assets" / "kws_dscnn.onnx"  # the seeded, untrained DS-CNN fixture
from onnxprune.calibration.criteria import score_group_data  # noqa: E402
from onnxprune.prune.rewrite import apply_removal  # noqa: E402
from onnxprune.core.runtime import make_session  # noqa: E402
from onnxprune.prune.criteria import score_group  # noqa: E402

CRITERIA = ("l1", "l2", "activation", "reconstruction")


def run_all(model, feeds, batched: bool) -> np.ndarray:
    sess = make_session(before_softmax(model), threads=1)
    name = sess.get_inputs()[0].name
    if batched:
        return sess.run(None, {name: np.concatenate([f[name] for f in feeds])})[0].astype(np.float64)
    return np.concatenate([sess.run(None, f)[0] for f in feeds]).astype(np.float64)


def spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def half_overlap(score, truth) -> float:
    k = len(score) // 2
    return len(set(np.argsort(score)[:k]) & set(np.argsort(truth)[:k])) / k


def study(name, model, shapes, calib, held_out, batched):
    analysis = onnxprune.analyze(model, shapes=shapes)
    cal = calibrate(analysis, calib, moments=True)
    base = run_all(analysis.model, held_out, batched)
    rng = np.random.default_rng(0)
    per_group = []
    for g in analysis.groups:
        if not g.prunable:
            continue
        truth = np.array([np.mean((run_all(apply_removal(analysis, {c}, mode="reference"), held_out, batched) - base) ** 2)
                          for c in g.classes])
        scores = {c: score_group_data(analysis, g, c, cal) if c in ("activation", "reconstruction")
                  else score_group(analysis, g, c, rng) for c in CRITERIA}
        per_group.append({"group": g.name, "size": g.size,
                          "spearman": {c: spearman(s, truth) for c, s in scores.items()},
                          "half_overlap": {c: half_overlap(s, truth) for c, s in scores.items()}})
        print(name, per_group[-1], flush=True)
    return per_group


def main():
    ap = parser(__doc__, "criteria_vs_output_change.md")
    ap.add_argument("--clips", type=Path, default=speech_feeds.CLIPS)
    ap.add_argument("--examples", type=int, default=48)
    args = ap.parse_args()
    fetched = need_models("melspectrogram", "embedding_model")

    models = [("kws_dscnn (bundled, seeded)", BUNDLED, None, speech_feeds.kws_feeds, False)]
    mel, emb = fetched["melspectrogram"], fetched["embedding_model"]
    models.append(("openwakeword embedding_model", emb, {"input_1": [1, 76, 32, 1]},
                   lambda d: speech_feeds.embedding_feeds(d, mel), True))
    raw, lines = {}, []
    for name, path, shapes, make_feeds, batched in models:
        calib, held_out = make_feeds(args.clips / "calib"), make_feeds(args.clips / "eval")[:args.examples]
        groups = study(name, onnxprune.load_model(path), shapes, calib, held_out, batched)
        raw[name] = groups
        w = np.array([g["size"] for g in groups], dtype=float)
        for c in CRITERIA:
            rho = np.average([g["spearman"][c] for g in groups], weights=w)
            ov = np.average([g["half_overlap"][c] for g in groups], weights=w)
            lines.append(f"| {name} | {len(groups)} ({int(w.sum())} channels) | {c} | {rho:.3f} | {ov:.3f} |")
    write(args.out, "# Forward-only criteria against the measured per-channel output change\n\n"
                   "For every channel, the mean squared change of the output (logits for the classifier) when only that channel is "
                   f"removed, on {args.examples} held-out clips; criteria scored on the 204 calibration clips. "
                   "Means over groups weighted by group size. Half overlap: share of the half a criterion would "
                   "remove that is also in the measured least-important half (0.5 = chance).\n\n"
                   "| model | groups | criterion | Spearman rho | half overlap |\n|---|---|---|---|---|\n"
                   + "\n".join(lines), raw)


if __name__ == "__main__":
    main()
