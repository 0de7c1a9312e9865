"""The sweep and demo plots read correctly at a glance: each label sits by its own point, no two
labels overlap and no leader line crosses another, and a collapsed model is marked and kept off
the Pareto front (being faster does not make a broken model a trade-off)."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from onnxprune.bench.plot import sweep_figure  # noqa: E402
from onnxprune.bench.sweep import mark_front  # noqa: E402

# the demo's six models as measured on one machine: two pairs share a place on the MACs axis
DEMO = [("original", 0.0, 0.0353, 2.32e6, 95.0), ("0.25 rec+lsq", 0.25, 0.0281, 1.46e6, 93.3),
        ("0.5 rec+lsq", 0.5, 0.0204, 0.79e6, 82.5), ("0.5 l1", 0.5, 0.0201, 0.79e6, 16.7),
        ("int8", 0.0, 0.0433, 2.32e6, 95.0), ("0.5 rec+lsq int8", 0.5, 0.0357, 0.79e6, 82.5)]
MACHINE = {"cpu": "test CPU", "cores": 2, "isa": ["avx2"], "provider": "CPUExecutionProvider", "threads": 1,
           "onnxruntime": "1.32.0"}


def _demo_sweep():
    points = [{"label": n, "ratio": r, "p50_ms": t, "macs": m, "quality": q, "speedup": 0.0353 / t}
              for n, r, t, m, q in DEMO]
    rule = mark_front(points, "held-out accuracy", True, 95.0)
    return {"model": "kws.onnx", "quality_metric": "held-out accuracy (%)", "higher_is_better": True,
            "points": points, "collapse": rule, "prune": {"criterion": "reconstruction+lstsq", "round_to": 4},
            "bench": {"machine": MACHINE, "timing": {"runs": 300, "inputs": "--data eval/"}}}


def _boxes_and_leaders(ax, renderer):
    out = []
    for ann in ax.texts:
        box = ann.get_window_extent(renderer)
        px, py = ax.transData.transform(ann.xy)
        anchor = (min(max(px, box.x0), box.x1), min(max(py, box.y0), box.y1))
        out.append((ann, (box.x0, box.y0, box.x1, box.y1), ((px, py), anchor)))
    return out


def _cross(p1, p2, q1, q2):
    def side(a, b, c):
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    return side(p1, p2, q1) * side(p1, p2, q2) < 0 and side(q1, q2, p1) * side(q1, q2, p2) < 0


def test_collapsed_model_is_marked_and_off_the_front():
    sweep = _demo_sweep()
    by = {p["label"]: p for p in sweep["points"]}
    assert by["0.5 l1"]["collapsed"] and not by["0.5 l1"]["pareto_p50_ms"] and not by["0.5 l1"]["pareto_macs"]
    assert by["0.5 rec+lsq"]["pareto_p50_ms"] and not by["0.5 rec+lsq"]["collapsed"]


def test_sweep_labels_sit_by_their_points_without_overlap_or_crossing():
    fig = sweep_figure(_demo_sweep())
    renderer = fig.canvas.get_renderer()
    try:
        for ax in fig.axes[:2]:
            items = _boxes_and_leaders(ax, renderer)
            labels = "\n".join(a.get_text() for a, _, _ in items)
            for name, *_ in DEMO:
                assert name in labels
            for (a, box_a, lead_a), (b, box_b, lead_b) in itertools.combinations(items, 2):
                overlap = box_a[0] < box_b[2] and box_b[0] < box_a[2] and box_a[1] < box_b[3] and box_b[1] < box_a[3]
                assert not overlap, (a.get_text(), b.get_text())
                assert not _cross(*lead_a, *lead_b), (a.get_text(), b.get_text())
            for ann, box, ((px, py), anchor) in items:  # attached: the label is near its own point
                assert abs(anchor[0] - px) + abs(anchor[1] - py) < 90, ann.get_text()
    finally:
        plt.close(fig)
