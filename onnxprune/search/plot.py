"""`auto --plot`: the search trajectory, one row per metric (the budgeted one and the output SNR)
and one column per cost (MACs kept, speedup), so every point sits on the axis of its own metric
and every budget line on the axis it limits. The original is drawn; predicted and measured
speedups have different markers, joined per step."""

from __future__ import annotations

import math


def _metric_label(metric: str, steps: list[dict]) -> str:
    if metric == "task":
        names = sorted({k[5:] for s in steps for k in s.get("metrics", {}) if k.startswith("task_")})
        return f"task: {', '.join(names) or 'metric'} (points; negated if lower is better)"
    return {"top1_agreement": "top-1 agreement with the original (%)"}.get(metric, metric)


def plot_trajectory(report: dict, path: str, *, title: str = "") -> None:
    fig = trajectory_figure(report, title=title)
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)


def trajectory_figure(report: dict, *, title: str = ""):
    """The figure plot_trajectory saves (tests inspect it)."""
    try:
        import matplotlib
    except ImportError:
        from ..errors import UsageError

        raise UsageError("--plot needs matplotlib (pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = report["trajectory"]
    metric = report.get("metric", "top1_agreement")
    has_metric = any("metrics" in s for s in steps)
    rows = [metric] + (["snr_db"] if has_metric and metric != "snr_db" else []) if has_metric else ["step"]
    timed = any("predicted_speedup" in s for s in steps)
    cols = [("macs", "MACs kept (% of the original)"),
            ("speedup", "speedup over the original" if timed else "MACs reduction (original / current)")]
    fig, axes = plt.subplots(len(rows), 2, figsize=(11, 3.6 * len(rows) + 0.6), squeeze=False, sharex="col")
    ok = [s for s in steps if s["accepted"]]
    bad = [s for s in steps if not s["accepted"]]
    for r, row in enumerate(rows):
        finite = [s["metrics"][row] for s in steps if has_metric and math.isfinite(s["metrics"].get(row, math.nan))]
        if row == "step":
            y, base = (lambda s: s["step"]), 0
        else:
            cap = (max(finite) + 5) if finite else 100

            def y(s, row=row, cap=cap):
                return min(s["metrics"][row], cap)
            base = report.get("baseline") if row == metric else cap  # an identical model: SNR infinite
        for c, (key, xlabel) in enumerate(cols):
            ax = axes[r][c]
            if key == "macs":
                x = (lambda s: 100 * s["macs"])
                x0 = 100.0
            else:
                x = (lambda s: s.get("predicted_speedup", 1 / s["macs"]))
                x0 = 1.0
            ax.plot([x0] + [x(s) for s in ok], [base] + [y(s) for s in ok], "-", color="tab:blue", lw=1, zorder=1)
            ax.plot([x(s) for s in ok], [y(s) for s in ok], "o", ms=4, color="tab:blue",
                    label="accepted step" + (" (predicted speedup)" if key == "speedup" and timed else ""))
            ax.plot([x0], [base], "*", ms=14, color="black", zorder=4,
                    label="original" + (" (SNR ∞, drawn at the top)" if row == "snr_db" else ""))
            if bad:
                ax.plot([x(s) for s in bad], [y(s) for s in bad], "x", ms=8, mew=2, color="tab:red",
                        label="over budget: stepped back")
            measured = [s for s in steps if "measured_speedup" in s]
            if key == "speedup" and measured:
                for s in measured:
                    ax.plot([x(s), s["measured_speedup"]], [y(s), y(s)], ":", color="tab:green", lw=1)
                ax.plot([s["measured_speedup"] for s in measured], [y(s) for s in measured], "D", ms=7,
                        color="tab:green", mec="black", zorder=3, label="measured on the EP (same step)")
            final = report.get("final_metrics") or {}
            if key == "speedup" and report.get("measured_speedup") and (row in final):
                fy = min(final[row], cap) if row != "step" else 0
                ax.plot([report["measured_speedup"]], [fy], "P", ms=12, color="tab:green", mec="black", zorder=5,
                        label=f"written model, measured ({report['measured_speedup']:.2f}x)")
            if row == metric and report.get("max_drop") is not None and report.get("baseline") is not None:
                ax.axhline(report["baseline"] - report["max_drop"], ls="--", color="tab:red", lw=1,
                           label=f"budget: drop <= {report['max_drop']:g}")
            if row == "snr_db" and report.get("min_snr") is not None:
                ax.axhline(report["min_snr"], ls="--", color="tab:red", lw=1, label=f"budget: SNR >= {report['min_snr']:g} dB")
            goal, target = report["goal"], report["target"]
            if key == "macs" and goal == "macs":
                ax.axvline(100 * target, ls=":", color="black", lw=1, label="target")
            if key == "speedup" and goal == "speedup":
                ax.axvline(target, ls=":", color="black", lw=1, label="target")
            if key == "macs" and r == 0:
                ax.invert_xaxis()
            if r == len(rows) - 1:
                ax.set_xlabel(xlabel)
            ax.set_ylabel("output SNR vs the original (dB)" if row == "snr_db" else
                          "step" if row == "step" else _metric_label(row, steps), fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="best")
    fig.suptitle(title or f"onnxprune auto: goal {report['goal']} {report['target']:g}, {report['stop_reason']}", fontsize=11)
    fig.tight_layout()
    return fig
