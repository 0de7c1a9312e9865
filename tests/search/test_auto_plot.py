"""auto's plot reads correctly at a glance: every metric has its own axis, a budget line sits on
the axis it limits, the original is drawn, and measured speedups are marked apart from predicted."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from onnxprune.search.plot import trajectory_figure  # noqa: E402


def _auto_report():
    steps = []
    for i, (macs, speed, top1, snr, ok) in enumerate([(0.9, 1.1, 100.0, 30.0, True), (0.7, 1.3, 98.0, 18.0, True),
                                                     (0.5, 1.6, 90.0, 8.0, False), (0.6, 1.45, 97.0, 14.0, True)]):
        steps.append({"step": i + 1, "macs": macs, "predicted_speedup": speed, "accepted": ok,
                      "metrics": {"top1_agreement": top1, "snr_db": snr}})
    steps[1]["measured_speedup"] = 1.21
    return {"trajectory": steps, "metric": "top1_agreement", "baseline": 100.0, "max_drop": None, "min_snr": 12.0,
            "goal": "speedup", "target": 1.5, "stop_reason": "budget", "measured_speedup": 1.38,
            "final_metrics": {"top1_agreement": 97.0, "snr_db": 14.0}}


def test_auto_plot_has_one_axis_per_metric_and_budget_lines_on_their_own_axis():
    fig = trajectory_figure(_auto_report())
    try:
        axes = {ax.get_ylabel(): ax for ax in fig.axes if ax.get_ylabel()}
        snr = [ax for label, ax in axes.items() if "SNR" in label]
        top1 = [ax for label, ax in axes.items() if "top-1" in label]
        assert snr and top1
        labels = lambda ax: [ln.get_label() for ln in ax.get_lines()]  # noqa: E731
        assert all(any(l.startswith("budget") for l in labels(ax)) for ax in snr)
        assert not any(l.startswith("budget") for ax in top1 for l in labels(ax))
        assert all(any(l.startswith("original") for l in labels(ax)) for ax in fig.axes)
        speed = fig.axes[1::2]  # the right column: speedup
        measured = [ln for ax in speed for ln in ax.get_lines() if ln.get_label().startswith("measured")]
        predicted = [ln for ax in speed for ln in ax.get_lines() if "predicted" in ln.get_label()]
        assert measured and predicted and measured[0].get_marker() != predicted[0].get_marker()
    finally:
        plt.close(fig)
