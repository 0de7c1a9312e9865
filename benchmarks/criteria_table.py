"""Criterion x compensation x ratio: how close does the pruned model stay to the ORIGINAL (not to
its reference) on held-out real audio? Calibration: the zoo's calib clips; evaluation: its eval
clips (different utterances). Fidelity = top-1 agreement with the original (classifiers) and the
SNR of the outputs (a classifier's logits, before its Softmax), 10 log10(sum y^2 / sum (y - y_pruned)^2).

Needs: the pretrained melspectrogram and embedding_model (models/fetch.py; PyPI access once).

    python benchmarks/criteria_table.py [--clips models/zoo/data/kws] [--out benchmarks/results/criteria.md]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from _common import REPO, need_models, parser, write

import onnxprune  # noqa: E402
import speech_feeds  # noqa: E402
BUNDLED = REPO / "onnxprune" / "assets" / "kws_dscnn.onnx"  # the seeded, untrained DS-CNN fixture
from onnxprune.core.runtime import make_session  # noqa: E402

RUNS = [("l1", "none"), ("random", "none"), ("l1", "bias"), ("l1", "lstsq"), ("activation", "none"),
        ("activation", "bias"), ("activation", "lstsq"), ("reconstruction", "none"), ("reconstruction", "bias"),
        ("reconstruction", "lstsq")]


def before_softmax(model):
    """A classifier ending in Softmax is compared on its logits: its probabilities saturate to
    one-hot on these clips, which would hide every difference."""
    last = model.graph.node[-1]
    if last.op_type != "Softmax" or last.output[0] != model.graph.output[0].name:
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.output[:]
    out.graph.output.append(onnx.helper.make_tensor_value_info(last.input[0], onnx.TensorProto.FLOAT, None))
    return out


def outputs(model, feeds) -> np.ndarray:
    sess = make_session(before_softmax(model))
    return np.concatenate([sess.run(None, f)[0].reshape(1, -1) for f in feeds]).astype(np.float64)


def fidelity(ref: np.ndarray, got: np.ndarray, classifier: bool) -> dict:
    snr = 10 * np.log10(np.sum(ref ** 2) / max(np.sum((ref - got) ** 2), 1e-30))
    out = {"snr_db": round(float(snr), 2)}
    if classifier:
        out["top1_agreement"] = round(float(np.mean(ref.argmax(1) == got.argmax(1))), 4)
    return out


def cases(clips: Path):
    yield "kws_dscnn (bundled, seeded)", BUNDLED, None, True, \
        speech_feeds.kws_feeds(clips / "calib"), speech_feeds.kws_feeds(clips / "eval")
    models = need_models("melspectrogram", "embedding_model")
    mel, emb = models["melspectrogram"], models["embedding_model"]
    yield "openwakeword embedding_model", emb, {"input_1": [1, 76, 32, 1]}, False, \
        speech_feeds.embedding_feeds(clips / "calib", mel), speech_feeds.embedding_feeds(clips / "eval", mel)


def main():
    ap = parser(__doc__, "criteria.md")
    ap.add_argument("--clips", type=Path, default=speech_feeds.CLIPS)
    ap.add_argument("--ratios", default="0.25,0.5")
    args = ap.parse_args()
    ratios = [float(r) for r in args.ratios.split(",")]
    raw, sections = {}, []
    for name, path, shapes, classifier, calib, held_out in cases(args.clips):
        model = onnxprune.load_model(path)
        ref = outputs(model, held_out)
        rows = []
        for criterion, comp in RUNS:
            cells = []
            for ratio in ratios:
                needs = criterion in ("activation", "reconstruction") or comp != "none"
                r = onnxprune.prune(model, ratio=ratio, criterion=criterion, compensate=comp, shapes=shapes,
                                    calibration=calib if needs else None)
                fid = fidelity(ref, outputs(r.model, held_out), classifier)
                fid.update(verified=bool(r.verify.passed), params=r.after["params"],
                           methods=sorted({row["method"] for row in r.compensation}))
                raw.setdefault(name, {})[f"{criterion}/{comp}/{ratio}"] = fid
                cells.append((f"{fid['top1_agreement']:.3f} / " if classifier else "") + f"{fid['snr_db']:.1f}")
                print(name, criterion, comp, ratio, fid, flush=True)
            rows.append(f"| {criterion} | {comp} | " + " | ".join(cells) + " |")
        metric = "top-1 agreement / SNR dB" if classifier else "SNR dB"
        sections.append(f"## {name}\n\ncalibration {len(calib)} clips, held-out {len(held_out)} clips; cells: {metric}\n\n"
                        "| criterion | compensation | " + " | ".join(f"ratio {r}" for r in ratios) + " |\n"
                        "|---|---|" + "---|" * len(ratios) + "\n" + "\n".join(rows) + "\n")
    write(args.out, "# Criteria and compensation: fidelity to the original on held-out real audio\n\n"
                   f"Clips: {args.clips.name} calib/eval sets of the zoo's synthesized keyword speech; default --round-to 4; every result verified "
                   "against its reference). The bundled KWS model is seeded, not trained: it predicts the same "
                   "class for all 300 held-out clips, so its top-1 agreement says little; its logits SNR is the "
                   "measure.\n\n" + "\n".join(sections), raw)


if __name__ == "__main__":
    main()
