"""A `--feeds` callable for faster-whisper's silero_vad_v6.onnx, streamed as in real time.

The model takes `input` [chunks, 576] (512 new samples at 16 kHz after 64 samples of context from
the previous chunk) and an LSTM state `h`, `c` [1, 1, 128] that the caller carries. Streaming one
chunk per call, each example holds the state the model itself produced on the chunks before it,
which is exactly what the pruned model will see in deployment. Usage:

    onnxprune prune silero_vad_v6.onnx out.onnx --data clips/ --feeds models/silero_vad_feeds.py:feeds
"""

import numpy as np

CHUNK, CONTEXT = 512, 64


def feeds(audio, sample_rate, model_inputs, *, run):
    if sample_rate != 16000:
        raise ValueError(f"silero_vad_v6 runs at 16000 Hz, got {sample_rate} (use --sample-rate 16000)")
    names = {i.name for i in model_inputs}
    if names != {"input", "h", "c"}:
        raise ValueError(f"expected inputs input/h/c, model has {sorted(names)}")
    pad = (-len(audio)) % CHUNK
    audio = np.pad(audio.astype(np.float32), (0, pad))
    context = np.zeros(CONTEXT, np.float32)
    h = np.zeros((1, 1, 128), np.float32)
    c = np.zeros((1, 1, 128), np.float32)
    for start in range(0, len(audio), CHUNK):
        chunk = audio[start:start + CHUNK]
        example = {"input": np.concatenate([context, chunk])[None], "h": h, "c": c}
        yield example
        outputs = run(example)
        h, c = outputs["hn"], outputs["cn"]
        context = chunk[-CONTEXT:]
