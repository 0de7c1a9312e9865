"""Evaluate the zoo models with onnxruntime only (front-end ONNX -> model ONNX), on the committed
evaluation sets or on the full held-out-voice sets regenerated from the synthesis cache.

    python models/eval_zoo.py kws                 # committed models/zoo/data/kws/eval (FLAC)
    python models/eval_zoo.py kws --heldout       # every held-out-voice utterance (needs kws_data cache)
    python models/eval_zoo.py ctc [--heldout]     # WER/CER of greedy CTC decoding (both exports)
    python models/eval_zoo.py intent              # LSTM intent accuracy on held-out phrasings
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort
import soundfile as sf

ZOO = Path(__file__).resolve().parent / "zoo"


def session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def read_manifest(folder: Path) -> list[dict]:
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines() if line.strip()]
    for r in rows:
        r["audio"] = sf.read(folder / r["audio_filepath"], dtype="float32")[0]
    return rows


def kws_predict(waves, model: Path = ZOO / "kws_dscnn.onnx", frontend: Path = ZOO / "logmel_frontend.onnx"):
    """Class indices for 1 s waveforms, via the two ONNX models."""
    fe, net = session(frontend), session(model)
    out = []
    for w in waves:
        feats = fe.run(None, {"waveform": np.asarray(w, np.float32)[None, :16000]})[0]
        out.append(int(net.run(None, {"logmel": feats})[0].argmax()))
    return np.array(out)


def kws_report(labels: list[str], preds: np.ndarray, classes: list[str]) -> dict:
    truth = np.array([classes.index(lab) for lab in labels])
    recall = {c: float((preds[truth == i] == i).mean()) for i, c in enumerate(classes) if (truth == i).any()}
    return {"clips": len(labels), "accuracy": float((preds == truth).mean()), "recall": recall}


def ctc_transcribe(waves, model: Path = ZOO / "crnn_ctc_ts.onnx", frontend: Path = ZOO / "logmel_frontend_dyn.onnx"):
    """Greedy CTC transcripts (collapse repeats, drop blanks) of waveforms of any length."""
    vocab = (ZOO / "ctc_vocab.txt").read_text().split("\n")[:-1]
    fe, net = session(frontend), session(model)
    frames = net.get_inputs()[0].shape[2]  # an int for an export with a fixed window (zero-padded to it)
    out = []
    for w in waves:
        w = np.asarray(w, np.float32)
        if isinstance(frames, int):
            n = (frames - 1) * 320 + 400
            w = np.pad(w[:n], (0, max(0, n - len(w))))
        logp = net.run(None, {"logmel": fe.run(None, {"waveform": w[None]})[0]})[0][0]
        ids, words, prev = logp.argmax(-1), [], 0
        for i in ids:
            if i != prev and i != 0:
                words.append(vocab[i])
            prev = i
        out.append(" ".join(words))
    return out


def error_rates(refs: list[str], hyps: list[str]) -> tuple[float, float]:
    """(WER, CER) over the whole set, by jiwer."""
    import jiwer

    return float(jiwer.wer(refs, hyps)), float(jiwer.cer(refs, hyps))


def intent_predict(texts: list[str], model: Path = ZOO / "intent_lstm.onnx") -> list[str]:
    vocab = (ZOO / "intent_vocab.txt").read_text().split("\n")[:-1]
    labels = json.loads((ZOO / "intent_labels.json").read_text())
    index = {w: i for i, w in enumerate(vocab)}
    net = session(model)
    return [labels[int(net.run(None, {"tokens": np.array([[index.get(w, 1) for w in t.split()][:16]], np.int64)})[0].argmax())]
            for t in texts]


def main(argv: list[str]) -> None:
    task = argv[0] if argv else "kws"
    if task == "ctc":
        return main_ctc("--heldout" in argv)
    if task == "intent":
        rows = [json.loads(line) for line in (ZOO / "data" / "intent" / "eval.jsonl").read_text().splitlines()]
        preds = intent_predict([r["text"] for r in rows])
        print(f"intent_lstm: {len(rows)} held-out sentences, accuracy "
              f"{np.mean([p == r['label'] for p, r in zip(preds, rows)]):.4f}")
        return None
    if task != "kws":
        sys.exit(f"unknown task {task!r} (kws, ctc or intent)")
    classes = json.loads((ZOO / "kws_labels.json").read_text())
    if "--heldout" in argv:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import kws_data

        waves, labels = kws_data.clips(kws_data.build_base(), "eval", 1, seed=11, silence=60)
        labels = list(labels)
    else:
        rows = read_manifest(ZOO / "data" / "kws" / "eval")
        waves, labels = [r["audio"] for r in rows], [r["label"] for r in rows]
    rep = kws_report(labels, kws_predict(waves), classes)
    print(f"kws_dscnn: {rep['clips']} clips, accuracy {rep['accuracy']:.4f}")
    print("recall: " + ", ".join(f"{c} {r:.2f}" for c, r in rep["recall"].items()))
    counts = Counter(labels)
    print("clips per class: " + ", ".join(f"{c} {counts[c]}" for c in classes))


def main_ctc(heldout: bool) -> None:
    if heldout:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import ctc_data

        items = ctc_data.utterances(ctc_data.build_base(), "eval", 1, seed=21)
        waves, refs = [w for w, _ in items], [t for _, t in items]
    else:
        rows = read_manifest(ZOO / "data" / "ctc" / "eval")
        waves, refs = [r["audio"] for r in rows], [r["text"] for r in rows]
    for name in ("crnn_ctc_ts", "crnn_ctc_dynamo"):
        if (ZOO / f"{name}.onnx").exists():
            w, c = error_rates(refs, ctc_transcribe(waves, ZOO / f"{name}.onnx"))
            print(f"{name}: {len(refs)} utterances, WER {w:.4f}, CER {c:.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
