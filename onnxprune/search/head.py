"""Score a model through the model that consumes it downstream (`auto --head HEAD.onnx`), so a
budget is spent on what the pipeline decides, not on the raw embedding.

openwakeword is the case in point: embedding_model.onnx maps each 76-frame mel window to a 96-d
embedding, and a wake-word head reads 16 consecutive embeddings ([1, 16, 96]). The head's input
says how: its last axis takes one row of the model's output, an axis before it (if > 1) is a
window of that many consecutive rows, slid one row at a time over each clip's examples (the data
module yields a clip's windows in order, `meta["file"]` naming the clip). A clip's head output is
the stack of its windows' outputs; with `--task` the task is scored per clip on that stack
(wakeword: its maximum), else the head's outputs are compared with the original pipeline's
(`bench.metrics.fidelity`: top-1 agreement, SNR, cosine).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx

from ..data import DataError
from .fidelity import Fidelity, spread
from ..core.runtime import make_session


@dataclass
class Clip:
    """The clip-level example a task is scored on (label, duration) and its windows' examples."""
    label: str | None
    seconds: float | None
    source: str
    examples: list = field(default_factory=list)
    text: str | None = None
    meta: dict = field(default_factory=dict)


def clips_of(examples: list, count: int | None = None) -> list[Clip]:
    """Examples grouped into clips by file, in order; `count` clips spread over them."""
    clips: dict[str, Clip] = {}
    for ex in examples:
        key = str(ex.meta.get("file") or ex.source.split("[")[0])
        clip = clips.get(key)
        if clip is None:
            clip = clips[key] = Clip(ex.label, ex.meta.get("clip_seconds", ex.seconds), key, meta={"file": key})
        clip.examples.append(ex)
    found = list(clips.values())
    return spread(found, count) if count else found


class Head:
    """A downstream ONNX model fed rows of the upstream model's first output."""

    def __init__(self, path: str):
        from ..core.io import load_model

        self.path = str(path)
        model = load_model(path)
        self.session = make_session(model)
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise DataError(f"--head {path}: expected one input, has {', '.join(i.name for i in inputs)}")
        self.name = inputs[0].name
        dims = [d if isinstance(d, int) and d > 0 else 1 for d in inputs[0].shape]
        if not dims:
            raise DataError(f"--head {path}: input '{self.name}' is a scalar; expected [..., features]")
        self.width, self.shape = dims[-1], dims
        self.window = dims[-2] if len(dims) >= 2 else 1
        self.original = model

    def run(self, outputs: list[np.ndarray], clip: Clip) -> np.ndarray:
        """The head's first output on every window of the clip's rows, stacked."""
        rows = np.concatenate([np.asarray(o, np.float32).reshape(-1, self.width) if np.size(o) % self.width == 0
                               else self._bad(o) for o in outputs])
        if len(rows) < self.window:
            raise DataError(f"{clip.source}: gives {len(rows)} rows of {self.width}, the head {self.path} reads "
                            f"{self.window} at a time: use longer clips")
        got = []
        for start in range(0, len(rows) - self.window + 1):
            x = rows[start:start + self.window].reshape(self.shape)
            got.append(np.asarray(self.session.run(None, {self.name: x})[0]))
        return np.stack(got)

    def _bad(self, o):
        raise DataError(f"--head {self.path}: the model's output {np.shape(o)} does not split into rows of "
                        f"{self.width} (the head's last input axis)")


class HeadEvaluator:
    """`evaluate(model) -> metrics` through the head: `top1_agreement`, `snr_db`, `cosine` of the
    pipeline's outputs against the original pipeline's, and with a task config `task` (points,
    as TaskEvaluator) plus `task_<metric>` and the task's own figures under `details`."""

    def __init__(self, original: onnx.ModelProto, clips: list[Clip], head: Head, cfg=None, *, threads: int = 1):
        if not clips:
            raise DataError("--head: no held-out clips to evaluate on")
        if cfg is not None:
            cfg.check()
        self.clips, self.head, self.cfg = clips, head, cfg
        self.examples = [ex for c in clips for ex in c.examples]
        self.fidelity = Fidelity(original, [ex.feeds for ex in self.examples], threads=threads)
        self.reference = self._pipeline([r[0] for r in self.fidelity.reference])
        self.passes = self.fidelity.passes

    def _pipeline(self, firsts: list) -> list[np.ndarray]:
        out, i = [], 0
        for clip in self.clips:
            n = len(clip.examples)
            out.append(self.head.run(firsts[i:i + n], clip))
            i += n
        return out

    def details(self, model: onnx.ModelProto) -> dict:
        from ..bench import metrics as m

        _, firsts = self.fidelity.measure(model)
        self.passes = self.fidelity.passes
        got = self._pipeline(firsts)
        fid = m.fidelity(self.reference, got)
        result = {"top1_agreement": 100.0 * fid["top1_agreement"], "snr_db": fid["snr_db"], "cosine": fid["cosine"]}
        if self.cfg is not None:
            from ..bench import tasks
            from ..bench.tasks import TASK_QUALITY

            figures = tasks.evaluate(self.cfg, self.clips, got)
            key, higher = TASK_QUALITY[self.cfg.task]
            if figures[key] is None:
                raise DataError(f"--task {self.cfg.task}: the held-out clips give no {key} (check their labels)")
            result |= {"task": (1 if higher else -1) * 100.0 * float(figures[key]), f"task_{key}": float(figures[key]),
                       "details": figures}
        return result

    def __call__(self, model: onnx.ModelProto) -> dict:
        return {k: v for k, v in self.details(model).items() if k != "details"}
