"""Percentiles and interleaving order, checked against hand-computed values (no wall clock)."""

from __future__ import annotations

import pytest

from onnxprune.bench.latency import TimingPlan, percentile, round_order, summarize, time_interleaved


def test_percentiles_linear_interpolation_by_hand():
    values = [1.0, 2.0, 3.0, 4.0, 10.0]
    assert percentile(values, 50) == 3.0
    # p90: rank 0.9 * 4 = 3.6 -> 4 + 0.6 * (10 - 4) = 7.6
    assert percentile(values, 90) == pytest.approx(7.6)
    # p99: rank 3.96 -> 4 + 0.96 * 6 = 9.76
    assert percentile(values, 99) == pytest.approx(9.76)
    assert percentile([5.0, 1.0], 50) == 3.0


def test_summarize_in_milliseconds():
    s = summarize([0.001, 0.002, 0.003, 0.004])  # seconds
    assert s["runs"] == 4
    assert s["p50_ms"] == pytest.approx(2.5)
    assert s["mean_ms"] == pytest.approx(2.5)
    assert s["min_ms"] == pytest.approx(1.0)
    assert s["throughput_per_s"] == pytest.approx(400.0)


def test_round_order_rotates():
    assert [round_order(3, r) for r in range(4)] == [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 1, 2]]


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_interleaved_one_run_each_per_round_rotated_and_warmup_unrecorded():
    calls = []
    clock = FakeClock()
    cost = {0: 0.001, 1: 0.003}

    def make(k):
        def run(i):
            calls.append((k, i))
            clock.t += cost[k]
        return run

    times = time_interleaved([make(0), make(1)], TimingPlan(warmup=2, runs=3), clock=clock)
    assert calls == [(0, 0), (1, 0), (1, 1), (0, 1),            # warmup, rotated too
                     (0, 0), (1, 0), (1, 1), (0, 1), (0, 2), (1, 2)]
    assert times[0] == pytest.approx([0.001] * 3)
    assert times[1] == pytest.approx([0.003] * 3)


def test_duration_mode_stops_after_the_duration():
    clock = FakeClock()

    def run(i):
        clock.t += 0.25

    times = time_interleaved([run, run], TimingPlan(warmup=0, runs=None, duration=1.0), clock=clock)
    # each round costs 0.5 s: after 2 rounds 1.0 s has passed
    assert len(times[0]) == len(times[1]) == 2
