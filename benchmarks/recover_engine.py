"""Coverage and exactness of the gradient engine (onnx2torch + our converters): every zoo model,
the committed fixtures and the cached pretrained speech models, converted and compared with
onnxruntime on seeded inputs (max |torch - onnxruntime| relative to the output scale), with the
forward time of each (batch 1, 1 thread, median of 20).

Needs: the [recover] extra (`pip install -e ".[recover]"`: torch, onnx2torch) and the pretrained
silero_vad_v6, silero_vad, embedding_model, melspectrogram and alexa_v0.1 (models/fetch.py; PyPI access once).

    python benchmarks/recover_engine.py [--out benchmarks/results/recover_engine.md]
"""

from __future__ import annotations

import time

import numpy as np
import onnx

from _common import REPO as ROOT, need_models, parser, write

from onnxprune.core.runtime import make_session  # noqa: E402
from onnxprune.errors import OnnxpruneError  # noqa: E402
from onnxprune.recover import require  # noqa: E402
from onnxprune.recover.engine import TorchModel, check  # noqa: E402

PRETRAINED = ("silero_vad_v6", "silero_vad", "embedding_model", "melspectrogram", "alexa_v0.1")


def models() -> list:
    return sorted((ROOT / "models" / "zoo").glob("*.onnx")) + sorted((ROOT / "models" / "fixtures").glob("*.onnx")) + \
        list(need_models(*PRETRAINED).values())


def feeds(session, count=2, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        feed = {}
        for i in session.get_inputs():
            shape = [d if isinstance(d, int) else (1 if k == 0 else 20 if "int" in i.type else 1600 if len(i.shape) == 2
                                                   else 100) for k, d in enumerate(i.shape)]
            if i.name == "sr":
                feed[i.name] = np.array(16000, np.int64)
            elif "int" in i.type:
                feed[i.name] = rng.integers(0, 10, shape).astype(np.int64)
            else:
                feed[i.name] = rng.standard_normal(shape).astype(np.float32)
        out.append(feed)
    return out


def median_ms(fn, n=20) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def main() -> None:
    args = parser(__doc__, "recover_engine.md").parse_args()
    torch, o2t = require()
    torch.set_num_threads(1)
    rows, raw = [], {}
    for path in models():
        model = onnx.load(path)
        session = make_session(model, threads=1)
        fs = feeds(session)
        name = path.relative_to(ROOT) if ROOT in path.parents else f"cache/{path.name}"
        try:
            tm = TorchModel(model)
            diff = check(model, tm, fs, tol=1e-4)
        except OnnxpruneError as exc:
            rows.append(f"| {name} | no | {str(exc)[:110]} | | | |")
            raw[str(name)] = {"converts": False, "error": str(exc)}
            continue
        x = [torch.from_numpy(fs[0][n]) for n in tm.input_names]
        with torch.no_grad():
            t_ms = median_ms(lambda: tm(*x))
        o_ms = median_ms(lambda: session.run(None, fs[0]))
        rows.append(f"| {name} | yes | {diff:.1e} | {len(tm.params)} | {t_ms:.2f} | {o_ms:.2f} |")
        raw[str(name)] = {"converts": True, "max_rel_diff": diff, "trainable_initializers": len(tm.params),
                          "torch_ms": t_ms, "ort_ms": o_ms}
        print(rows[-1], flush=True)
    lines = [f"torch {torch.__version__}, onnx2torch "
             f"{getattr(o2t, '__version__', '1.5.15')}, 1 thread; seeded random inputs (2 per model).", "",
             "| model | converts | max rel diff vs onnxruntime | trainable initializers | torch fwd ms | ORT ms |",
             "|---|---|---:|---:|---:|---:|", *rows]
    write(args.out, "\n".join(lines), raw, threads=1)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
