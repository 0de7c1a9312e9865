"""The sweep plot copes with what quality values can be: infinite SNR (identical model) and None."""

from __future__ import annotations

import math

from onnxprune.bench.plot import _plottable, plot_sweep


def sweep(qualities):
    points = [{"ratio": r, "quality": q, "p50_ms": 1.0 - r / 2, "macs": int(1e6 * (1 - r)), "speedup": 1 / (1 - r / 2),
               "pareto_p50_ms": True, "pareto_macs": True} for r, q in qualities]
    machine = {"cpu": "cpu", "cores": 2, "provider": "CPUExecutionProvider", "threads": 1, "onnxruntime": "x"}
    return {"model": "m.onnx", "quality_metric": "fidelity snr_db vs original", "higher_is_better": True,
            "points": points, "prune": {"criterion": "l1", "round_to": 4},
            "bench": {"machine": machine, "timing": {"runs": 10, "duration_s": None, "inputs": "seeded"}}}


def test_infinite_quality_is_drawn_beyond_the_best_and_none_is_left_out():
    pts = _plottable(sweep([(0.0, math.inf), (0.25, 10.0), (0.5, 0.0), (0.75, None)])["points"])
    assert [p["ratio"] for p in pts] == [0.0, 0.25, 0.5]
    assert pts[0]["quality"] == 11.5 and "identical" in pts[0]["note"]


def test_plot_writes_a_png(tmp_path):
    out = tmp_path / "s.png"
    plot_sweep(sweep([(0.0, math.inf), (0.5, 3.0), (0.75, -2.0)]), str(out))
    assert out.read_bytes()[:4] == b"\x89PNG"
