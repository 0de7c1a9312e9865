"""Latency: interleaved timing and its summary statistics.

Models are timed round-robin, one run each per round, with the order rotated every round, so slow
drift of a shared machine (other jobs, thermal state) hits every model alike and the ratio between
them stays unbiased; the first model is not always the one that runs after a cold gap."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default, the same as Excel PERCENTILE.INC)."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def summarize(seconds: Sequence[float]) -> dict:
    """p50/p90/p99/mean/min in milliseconds and throughput in runs per second of one model."""
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    if ms.size == 0:
        return {"runs": 0}
    return {"runs": int(ms.size), "p50_ms": percentile(ms, 50), "p90_ms": percentile(ms, 90),
            "p99_ms": percentile(ms, 99), "mean_ms": float(ms.mean()), "min_ms": float(ms.min()),
            "throughput_per_s": float(1e3 / ms.mean())}


def round_order(n_models: int, round_index: int) -> list[int]:
    """Model order in a round: rotated by one each round (0,1,2 / 1,2,0 / 2,0,1 / ...)."""
    return [(round_index + i) % n_models for i in range(n_models)]


@dataclass(frozen=True)
class TimingPlan:
    warmup: int = 10
    runs: int | None = 100          # rounds after warmup, or None to run for `duration`
    duration: float | None = None   # seconds for all models together


def time_interleaved(run_fns: Sequence[Callable[[int], None]], plan: TimingPlan,
                     clock: Callable[[], float] = time.perf_counter) -> list[list[float]]:
    """Call each `run_fns[k](i)` (i: run index, for cycling through inputs) in rotated rounds and
    return each model's per-run seconds. Warmup rounds are interleaved too and not recorded."""
    n = len(run_fns)
    times: list[list[float]] = [[] for _ in range(n)]
    for r in range(plan.warmup):
        for k in round_order(n, r):
            run_fns[k](r)
    start = clock()
    r = 0
    while True:
        if plan.runs is not None and r >= plan.runs:
            break
        if plan.runs is None and r > 0 and clock() - start >= (plan.duration or 0.0):
            break
        for k in round_order(n, r):
            t0 = clock()
            run_fns[k](r)
            times[k].append(clock() - t0)
        r += 1
    return times
