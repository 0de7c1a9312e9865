"""How fast `load_examples` turns audio into feeds, and that it streams (memory bounded by one clip).

Writes a synthetic Speech-Commands-style folder (1 s clips at 8/16/44.1 kHz, mono and stereo,
PCM_16) and a folder of long clips, then times three real paths, interleaved, median of --repeats:
a raw-waveform model (16 kHz [1,16000], with resampling), openwakeword's melspectrogram (wrapped
with models/wrap_frontend.py) -> embedding_model windows, and silero_vad_v6 streamed by
models/silero_vad_feeds.py (one model run per 32 ms chunk to carry the state). The peak traced
allocation while reading long clips is compared with the size of all their decoded samples.

Needs: the pretrained melspectrogram, embedding_model and silero_vad_v6 (models/fetch.py; PyPI
access once).

    python benchmarks/data_throughput.py [--out benchmarks/results/data_throughput.md]
"""
from __future__ import annotations

import shutil, statistics, tempfile, time, tracemalloc
from pathlib import Path

import numpy as np
import onnx
import soundfile as sf
from onnx import TensorProto, helper

from _common import REPO, need_models, parser, write
from onnxprune.data import DataConfig, load_examples  # noqa: E402
from onnxprune.data.frontend import with_affine  # noqa: E402


def write_clips(root: Path, n: int, seconds: float, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    total = 0.0
    for i in range(n):
        rate, channels = [(8000, 1), (16000, 1), (44100, 2), (16000, 2)][i % 4]
        t = np.arange(int(rate * seconds)) / rate
        x = 0.3 * np.sin(2 * np.pi * (200 + 7 * i) * t) + 0.02 * rng.standard_normal(t.size)
        if channels == 2:
            x = np.stack([x, 0.5 * x], 1)
        folder = root / ("yes" if i % 2 else "no")
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(str(folder / f"c{i:04d}.wav"), x.astype(np.float32), rate, subtype="PCM_16")
        total += seconds
    return total


def waveform_model() -> onnx.ModelProto:
    vi = helper.make_tensor_value_info
    g = helper.make_graph([helper.make_node("ReduceMean", ["x"], ["y"], keepdims=1)], "w",
                          [vi("x", TensorProto.FLOAT, [1, 16000])], [vi("y", TensorProto.FLOAT, [1, 1])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 10
    return m


def consume(model, cfg) -> tuple[float, int]:
    start = time.perf_counter()
    n = sum(1 for _ in load_examples(model, cfg))
    return time.perf_counter() - start, n


def main(argv=None):
    ap = parser(__doc__, "data_throughput.md")
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--long-clips", type=int, default=40)
    ap.add_argument("--long-seconds", type=float, default=30.0)
    args = ap.parse_args(argv)
    fetched = need_models("melspectrogram", "embedding_model", "silero_vad_v6")
    tmp = Path(tempfile.mkdtemp(prefix="onnxprune-data-bench-"))
    audio_s = write_clips(tmp / "sc", args.clips, 1.0)
    mel = tmp / "mel_oww.onnx"
    onnx.save(with_affine(onnx.load(str(fetched["melspectrogram"])), 32768.0, 0.1, 2.0), str(mel))
    paths = {
        "raw waveform [1,16000]": (waveform_model(), DataConfig(str(tmp / "sc"))),
        "mel -> embedding_model (hop 80 ms)": (str(fetched["embedding_model"]),
                                               DataConfig(str(tmp / "sc"), frontend=str(mel), hop=0.08)),
        "silero_vad_v6 --feeds (state carried)": (str(fetched["silero_vad_v6"]),
                                                  DataConfig(str(tmp / "sc"), feeds=f"{REPO}/models/silero_vad_feeds.py:feeds")),
    }
    times = {k: [] for k in paths}
    counts = {}
    for _ in range(args.repeats):                      # interleaved A/B/C, medians
        for name, (model, cfg) in paths.items():
            dt, counts[name] = consume(model, cfg)
            times[name].append(dt)
    rows = []
    for name in paths:
        med = statistics.median(times[name])
        rows.append({"path": name, "clips": args.clips, "examples": counts[name], "median_s": round(med, 3),
                     "clips_per_s": round(args.clips / med, 1), "audio_x_realtime": round(audio_s / med, 1)})

    long_s = write_clips(tmp / "long", args.long_clips, args.long_seconds, seed=1)
    decoded_mb = long_s * 16000 * 4 / 2**20
    tracemalloc.start()                                # numpy buffers are traced too
    dt, n = consume(waveform_model(), DataConfig(str(tmp / "long"), window=1.0))
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    memory = {"long_clips": args.long_clips, "seconds_each": args.long_seconds, "examples": n,
              "decoded_all_mb": round(decoded_mb, 1), "peak_traced_mb": round(peak, 1),
              "seconds": round(dt, 2)}
    result = {"rows": rows, "memory": memory, "repeats": args.repeats}
    lines = ["| path | clips | examples | median s | clips/s | × real time |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['path']} | {r['clips']} | {r['examples']} | {r['median_s']} | {r['clips_per_s']} | "
              f"{r['audio_x_realtime']} |" for r in rows]
    lines += ["", f"Streaming: {args.long_clips} clips × {args.long_seconds:g} s ({n} one-second examples): all "
              f"decoded samples would take {memory['decoded_all_mb']} MB at 16 kHz; peak traced allocation "
              f"(tracemalloc, numpy included) while reading them: {memory['peak_traced_mb']} MB (one 30 s "
              f"44.1 kHz stereo clip read as float32 is {args.long_seconds * 44100 * 2 * 4 / 2**20:.1f} MB)."]
    write(args.out, "\n".join(lines), result)
    shutil.rmtree(tmp)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
