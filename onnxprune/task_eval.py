"""A task-metric evaluator for `auto` (and anything taking `evaluate(model) -> dict`): the
bench task metrics (accuracy, detection rate, F1, WER) on held-out labelled examples, as points
where higher is better, beside the label-free fidelity figures the search also reports."""

from __future__ import annotations

import onnx

from .bench import tasks
from .fidelity import Fidelity
from .runtime import make_session

# task -> (metric key in bench.tasks' result, sign: +1 higher is better, -1 lower is better)
TASK_POINTS = {"classify": ("accuracy", 1), "wakeword": ("detection_rate", 1), "vad": ("f1", 1), "ctc": ("wer", -1)}


class TaskEvaluator:
    """`task` in the result is the task metric in points (×100), negated where lower is better
    (WER), so a drop of D means D points worse either way."""

    def __init__(self, original: onnx.ModelProto, examples: list, cfg: tasks.TaskConfig, *, threads: int = 1):
        if not examples:
            raise ValueError("no evaluation examples")
        cfg.check()
        self.examples, self.cfg, self.threads = examples, cfg, threads
        self.fidelity = Fidelity(original, [ex.feeds for ex in examples], threads=threads)
        self.passes = self.fidelity.passes

    def __call__(self, model: onnx.ModelProto) -> dict:
        metrics = self.fidelity(model)
        session = make_session(model, threads=self.threads)
        first = session.get_outputs()[0].name
        outputs = [session.run([first], ex.feeds)[0] for ex in self.examples]
        key, sign = TASK_POINTS[self.cfg.task]
        value = tasks.evaluate(self.cfg, self.examples, outputs)[key]
        if value is None:  # e.g. no positive clip on the held-out side for a detection rate
            from .data import DataError

            raise DataError(f"--task {self.cfg.task}: the held-out examples give no {key} (check their labels)")
        self.passes = self.fidelity.passes + len(self.examples)
        return metrics | {"task": sign * 100.0 * float(value), f"task_{key}": float(value)}
