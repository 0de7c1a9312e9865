"""openwakeword's real pipeline (melspectrogram -> embedding_model -> alexa head), with the
embedding model pruned: criterion x compensation x ratio, wake-word detection on held-out voices.

Audio is synthesized with flite and festival (models/synth_speech.py; espeak-ng's "alexa" does
not trigger the head at all): positives say "alexa", negatives say other phrases, each at several
speeds and pitches; calibration voices (flite kal16/awb/slt, festival kal) and evaluation voices
(flite rms, festival ked) are disjoint — the zoo's voice split.
Calibration feeds are the embedding model's 76-frame mel windows of calibration clips (openwakeword's
x/10 + 2 scaling, hop 8 frames). A clip's score is the head's maximum over its 16-embedding windows;
detection at 0.5.

--recover SECONDS adds, for every reconstruction + lstsq row, the same model after recovery
(distillation of the embedding from the original's, onnxprune.recover) on the calibration windows
plus, with --espeak N, the windows of N more unlabeled clips by espeak-ng training voices (the
zoo's split: never an evaluation voice), with its time and the process's peak memory.
--methods limits the criterion x compensation rows (e.g. reconstruction:lstsq).

Needs: the pretrained melspectrogram, embedding_model and alexa_v0.1 (models/fetch.py; PyPI access
once) and the flite and festival TTS engines (`apt-get install flite festival festvox-kallpc16k`).

    python benchmarks/oww_wakeword.py [--ratios 0.1,0.25] [--per-voice 8] [--methods reconstruction:lstsq,...]
                                      [--recover 240] [--espeak 400] [--recover-batch 32] [--out benchmarks/results/oww_wakeword.md]
"""

from __future__ import annotations

import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import need_models, parser, write
from synth_speech import synth_espeak, synth_festival, synth_flite, voices  # noqa: E402

from onnxprune.api import PruneConfig, check_verified, prune  # noqa: E402
from onnxprune.core.io import load_model, save_model  # noqa: E402
from onnxprune.core.runtime import make_session  # noqa: E402

NEGATIVES = ["hello there", "what time is it", "turn on the light", "alexander", "play some music", "a lexical test",
             "good morning", "stop the timer"]
METHODS = (("l1", "none"), ("activation", "none"), ("activation", "bias"), ("reconstruction", "bias"),
           ("reconstruction", "lstsq"))
RATE, PAD = 16000, 0.7
CALIB_VOICES = [("flite", "kal16"), ("flite", "awb"), ("flite", "slt"), ("festival", "kal_diphone")]
EVAL_VOICES = [("flite", "rms"), ("festival", "ked_diphone")]


def clips(voices, per_voice, rng):
    """(audio, is_positive): per voice and prosody, one "alexa" and two negative phrases, padded
    with silence and light noise."""
    out = []
    for engine, voice in voices:
        for _ in range(per_voice):
            speed, f0 = float(rng.uniform(0.85, 1.15)), float(rng.uniform(80, 140))
            texts = [("alexa", True)] + [(NEGATIVES[int(i)], False) for i in rng.choice(len(NEGATIVES), 2, replace=False)]
            for text, positive in texts:
                out.append((_padded(_say(engine, voice, text, speed, f0), rng), positive))
    return out


def espeak_clips(count, rng):
    """Unlabeled extra audio: espeak-ng training voices (never an evaluation voice) saying the same
    phrases, "alexa" included (recovery reads no labels)."""
    train = [v.name for v in voices() if v.is_espeak and not v.heldout]
    texts = ["alexa"] + NEGATIVES
    return [(_padded(synth_espeak(train[int(rng.integers(len(train)))], texts[int(rng.integers(len(texts)))],
                                  float(rng.uniform(0.85, 1.15)), int(rng.integers(25, 80))), rng), None)
            for _ in range(count)]


def _say(engine, voice, text, speed, f0):
    if engine == "flite":
        return synth_flite(voice, text, speed, f0)
    return synth_festival(voice, [(text, speed)])[0]


def _padded(speech, rng):
    pad = np.zeros(int(PAD * RATE), np.float32)
    audio = np.concatenate([pad, speech, pad])
    return audio + rng.normal(0, 0.003, audio.shape).astype(np.float32)


class Pipeline:
    def __init__(self, embedding_path):
        self.mel = make_session(str(need_models("melspectrogram")["melspectrogram"]))
        self.head = make_session(str(need_models("alexa_v0.1")["alexa_v0.1"]))
        self.emb = make_session(str(embedding_path))

    def windows(self, audio):
        mel = self.mel.run(None, {"input": (audio * 32767)[None, :].astype(np.float32)})[0]
        mel = mel[:, 0] / 10 + 2  # openwakeword's scaling
        frames = mel.reshape(-1, 32)
        return [frames[i:i + 76][None, :, :, None].astype(np.float32) for i in range(0, len(frames) - 75, 8)]

    def score(self, audio):
        emb = np.concatenate([self.emb.run(None, {"input_1": w})[0].reshape(1, 96) for w in self.windows(audio)])
        scores = [self.head.run(None, {"onnx::Flatten_0": emb[j:j + 16][None]})[0].item()
                  for j in range(0, len(emb) - 15)]
        return max(scores) if scores else 0.0


def main():
    ap = parser(__doc__, "oww_wakeword.md")
    ap.add_argument("--ratios", default="0.1,0.25")
    ap.add_argument("--per-voice", type=int, default=8, help="prosody variants per evaluation voice (half per "
                    "calibration voice)")
    ap.add_argument("--methods", default=",".join(f"{c}:{k}" for c, k in METHODS),
                    help="criterion:compensation rows (default: all five)")
    ap.add_argument("--recover", type=float, default=0.0, help="recovery time budget, seconds (0: no recovery rows)")
    ap.add_argument("--espeak", type=int, default=0, help="extra unlabeled espeak-ng clips for recovery")
    ap.add_argument("--recover-batch", type=int, default=32, help="recovery batch (smaller: more steps per second)")
    args = ap.parse_args()
    methods = [tuple(m.split(":")) for m in args.methods.split(",")]
    missing = [tool for tool in ("flite", "festival") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"error: this benchmark synthesizes speech with flite and festival; {', '.join(missing)} "
                         "not found (apt-get install flite festival festvox-kallpc16k)")
    rng = np.random.default_rng(0)
    calib_clips = clips(CALIB_VOICES, args.per_voice // 2, rng)
    eval_clips = clips(EVAL_VOICES, args.per_voice, rng)
    emb_path = need_models("embedding_model")["embedding_model"]
    base = Pipeline(emb_path)
    calibration = [{"input_1": w} for audio, _ in calib_clips for w in base.windows(audio)]
    ref = [base.score(a) for a, _ in eval_clips]
    extra = [{"input_1": w} for audio, _ in espeak_clips(args.espeak, rng) for w in base.windows(audio)]
    rows = [("original", "-", "-", {**evaluate(ref, ref, eval_clips), "macs_cut": 0.0})]
    model = load_model(emb_path)
    tmp = Path(tempfile.mkdtemp(prefix="oww-"))
    for ratio in [float(r) for r in args.ratios.split(",")]:
        for criterion, comp in methods:
            cfg = PruneConfig(ratio=ratio, criterion=criterion, compensate=comp, shapes={"input_1": [1, 76, 32, 1]},
                              calibration=None if criterion == "l1" and comp == "none" else calibration)
            result = prune(model, config=cfg)
            check_verified(result)
            cut = 1 - result.after["macs"] / result.before["macs"]
            path = tmp / f"{criterion}_{comp}_{ratio}.onnx"
            save_model(result.model, path)
            got = [Pipeline(path).score(a) for a, _ in eval_clips]
            rows.append((f"{ratio:g}", criterion, comp, {**evaluate(got, ref, eval_clips), "macs_cut": cut}))
            print(rows[-1], flush=True)
            if args.recover and (criterion, comp) == ("reconstruction", "lstsq"):
                from onnxprune.recover import RecoverConfig, recover_pruned

                start = time.perf_counter()
                rec = recover_pruned(model, result, calibration + extra, RecoverConfig(seconds=args.recover, seed=0,
                                                                                   batch=args.recover_batch))
                seconds = time.perf_counter() - start
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                save_model(rec.model, path)
                got = [Pipeline(path).score(a) for a, _ in eval_clips]
                rows.append((f"{ratio:g}", criterion, comp + " + recover",
                             {**evaluate(got, ref, eval_clips), "macs_cut": cut, "recover_seconds": round(seconds, 1),
                              "recover_steps": rec.steps, "recover_stop": rec.stop, "peak_rss_mb": round(peak)}))
                print(rows[-1], flush=True)
    n_pos = sum(p for _, p in eval_clips)
    recovery = (f" Recovery: {len(calibration) + len(extra)} unlabeled windows ({len(calibration)} calibration + "
                f"{len(extra)} from {args.espeak} espeak-ng clips of training voices), budget {args.recover:g} s, "
                f"batch {args.recover_batch}, 1 torch thread." if args.recover else "")
    lines = [f"embedding_model pruned, melspectrogram and the alexa head unchanged; calibration: "
             f"{len(calibration)} mel windows from {len(calib_clips)} clips of {len(CALIB_VOICES)} voices; "
             f"evaluation: {len(eval_clips)} clips ({n_pos} positives) of {len(EVAL_VOICES)} other voices; "
             f"detection at 0.5.{recovery}", "",
             "| ratio | MACs cut | criterion | compensation | detection rate | false accepts | mean abs score change "
             "| recovery s | peak RSS MB |",
             "|---|---:|---|---|---:|---:|---:|---:|---:|"]
    for ratio, criterion, comp, m in rows:
        lines.append(f"| {ratio} | {m['macs_cut']:.0%} | {criterion} | {comp} | {m['detect']:.0%} | {m['fa']} / {m['neg']} "
                     f"| {m['change']:.3f} | {m.get('recover_seconds', '')} | {m.get('peak_rss_mb', '')} |")
    write(args.out, "\n".join(lines), [{"ratio": r, "criterion": c, "compensate": k, **m} for r, c, k, m in rows])
    print("\n".join(lines))


def evaluate(scores, ref, eval_clips):
    pos = [s for s, (_, p) in zip(scores, eval_clips) if p]
    neg = [s for s, (_, p) in zip(scores, eval_clips) if not p]
    return {"detect": float(np.mean([s >= 0.5 for s in pos])), "fa": int(sum(s >= 0.5 for s in neg)), "neg": len(neg),
            "change": float(np.mean(np.abs(np.asarray(scores) - np.asarray(ref))))}


if __name__ == "__main__":
    main()
