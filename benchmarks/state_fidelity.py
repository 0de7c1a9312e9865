"""Fidelity of a state-resizing prune (silero-vad's op18 ifless export, `--allow-io-change`): one
call per chunk from a zero state vs. a stream that carries each model's own state, on speech.

The ifless cell's `state` [2, 1, 128] shrinks to its kept units, so the pruned model cannot be fed
the original's state: the original streams with its full state, the pruned model with its own
kept state, both from zero. Per 32 ms chunk it compares the speech probability: SNR (as `prune`
reports it, `cli/closeness.py`), agreement of the speech decision (p >= 0.5) and the largest
probability change; the same figures for independent calls from a zero state, the measure
without carrying, show what that misses. Audio: espeak-ng sentences separated by silence with
low noise, at 16 kHz, chunks of 512 samples after 64 samples of context (silero's own wrapper).
The data-aware row says which criterion each group actually used: the convolutions sit inside
the export's `If` on the sample rate, where calibration does not reach, so they fall back to l1.

Needs: `python models/fetch.py silero_vad_op18_ifless` once (PyPI access) and espeak-ng.

    python benchmarks/state_fidelity.py [--ratios 0.25 0.5] [--out benchmarks/results/state_fidelity.md]
"""

from __future__ import annotations

import numpy as np
from _common import need_models, parser, write

CHUNK, CONTEXT, RATE = 512, 64, 16000
METHODS = [("l1", "none"), ("reconstruction", "lstsq")]
SENTENCES = [("en-us+m3", "Turn the kitchen lights off and lock the front door."),
             ("en-gb-x-rp+f2", "The weather tomorrow will be cloudy with light rain in the evening."),
             ("en+klatt", "Please remind me to call the dentist at nine thirty."),
             ("en-gb-scotland+m1", "How far is it from the station to the old harbour?")]
CALIB = [("en-gb-x-gbclan+m5", "Set a timer for twenty minutes and play some quiet music."),
         ("en-us+f3", "What time does the last train leave for the city centre tonight?")]


def speech_chunks(sentences, seed: int = 0) -> list[dict]:
    from synth_speech import synth_espeak

    rng = np.random.default_rng(seed)
    parts = []
    for voice, text in sentences:
        parts += [np.zeros(int(0.8 * RATE), np.float32), 0.5 * synth_espeak(voice, text, 1.0, 50)]
    audio = np.concatenate(parts + [np.zeros(RATE, np.float32)])
    audio = (audio + 0.003 * rng.standard_normal(audio.size)).astype(np.float32)
    audio = np.pad(audio, (0, (-audio.size) % CHUNK))
    chunks, context = [], np.zeros(CONTEXT, np.float32)
    for start in range(0, audio.size, CHUNK):
        chunk = audio[start:start + CHUNK]
        chunks.append({"input": np.concatenate([context, chunk])[None], "state": np.zeros((2, 1, 128), np.float32),
                       "sr": np.array(RATE, np.int64)})
        context = chunk[-CONTEXT:]
    return chunks


def probabilities(model, feeds, kept=None, carry=True, states=None) -> np.ndarray:
    """Speech probability per chunk; `states` (a list) collects the state each call was fed."""
    from onnxprune.core.runtime import make_session

    sess = make_session(model)
    state, probs = None, []
    for feed in feeds:
        feed = dict(feed)
        if kept is not None:
            feed["state"] = feed["state"][..., kept]
        if carry and state is not None:
            feed["state"] = state
        if states is not None:
            states.append(dict(feed))
        prob, state = sess.run(["output", "stateN"], feed)
        probs.append(float(prob.ravel()[0]))
    return np.array(probs)


def figures(ref: np.ndarray, got: np.ndarray) -> dict:
    noise = float(np.sum((got - ref) ** 2))
    signal = float(np.sum((ref - ref.mean()) ** 2))
    return {"snr_db": float("inf") if noise == 0 else 10 * np.log10(signal / noise),
            "agreement": float(np.mean((got >= 0.5) == (ref >= 0.5)) * 100),
            "max_abs": float(np.max(np.abs(got - ref)))}


def main():
    ap = parser(__doc__, "state_fidelity.md")
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.25, 0.5])
    args = ap.parse_args()
    path = need_models("silero_vad_op18_ifless")["silero_vad_op18_ifless"]
    import onnx

    import onnxprune
    from onnxprune.api import PruneConfig
    from onnxprune.cli import closeness

    original = onnx.load(str(path))
    feeds = speech_chunks(SENTENCES)
    speech = probabilities(original, feeds)
    calibration = []  # other sentences and voices, each chunk with the state the original carried
    probabilities(original, speech_chunks(CALIB, seed=1), states=calibration)
    rows, data = [], []
    for (criterion, compensate), ratio in ((m, r) for m in METHODS for r in args.ratios):
        config = PruneConfig(ratio=ratio, allow_io_change=True, criterion=criterion, compensate=compensate,
                             calibration=calibration if criterion != "l1" else None,
                             shapes={"input": [1, CHUNK + CONTEXT], "state": [2, 1, 128]}, inputs={"sr": [RATE]})
        result = onnxprune.prune(original, config=config)
        kept = next(r["kept"] for r in result.resized_io if r["name"] == "state")
        streamed = figures(speech, probabilities(result.model, feeds, kept))
        fresh = figures(probabilities(original, feeds, carry=False), probabilities(result.model, feeds, kept, False))
        reported = closeness.compare(original, result.model, feeds, "speech", result.resized_io)
        out = next(o for o in reported["outputs"] if o["name"] == "output")
        assert abs(out["snr_db"] - streamed["snr_db"]) < 1e-6 * max(1.0, abs(streamed["snr_db"])), (out, streamed)
        used = ", ".join(sorted({g["criterion"] for g in result.groups if g["prunable"]}))
        refits = len(result.compensation)
        data.append({"criterion": criterion, "compensate": compensate, "used": used, "refits": refits, "ratio": ratio, "params": [result.before["params"], result.after["params"]],
                     "verified": result.verify.passed, "state_units": len(kept), "streamed": streamed,
                     "independent_calls": fresh})
        rows.append(f"| {criterion}, {compensate} | {used}, {refits} refits | {ratio:g} | {result.before['params']:,} -> {result.after['params']:,} | {len(kept)} of 128 | "
                    f"{streamed['snr_db']:.1f} dB, {streamed['agreement']:.1f} %, {streamed['max_abs']:.2f} | "
                    f"{fresh['snr_db']:.1f} dB, {fresh['agreement']:.1f} %, {fresh['max_abs']:.2f} |")
    table = (f"silero_vad_op18_ifless, `--allow-io-change`, {len(feeds)} chunks of speech "
             f"({100 * np.mean(speech >= 0.5):.0f} % of them speech for the original); per chunk: SNR of the "
             f"speech probability, speech-decision agreement, max |delta p|; calibration: {len(calibration)} chunks "
             f"of other voices and sentences\n\n"
             "| asked | used (per group), compensation | ratio | parameters | state kept | streamed, state carried | "
             "independent calls from zero state |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows))
    print(table)
    write(args.out, table, data)


if __name__ == "__main__":
    main()
