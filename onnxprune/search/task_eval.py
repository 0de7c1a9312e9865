"""A task-metric evaluator for `auto` (and anything taking `evaluate(model) -> dict`): the
bench task metrics (accuracy, detection rate, F1, WER) on held-out labelled examples, as points
where higher is better, beside the label-free fidelity figures the search also reports."""

from __future__ import annotations

import onnx

from ..bench import tasks
from ..bench.tasks import TASK_QUALITY
from .fidelity import Fidelity


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
        metrics, outputs = self.fidelity.measure(model)  # one run: fidelity and the task's first output
        key, higher = TASK_QUALITY[self.cfg.task]
        sign = 1 if higher else -1
        value = tasks.evaluate(self.cfg, self.examples, outputs)[key]
        if value is None:  # e.g. no positive clip on the held-out side for a detection rate
            from ..data import DataError

            raise DataError(f"--task {self.cfg.task}: the held-out examples give no {key} (check their labels)")
        self.passes = self.fidelity.passes
        return metrics | {"task": sign * 100.0 * float(value), f"task_{key}": float(value)}
