"""`auto --plot`: the search trajectory, metric against cost, one point per step."""

from __future__ import annotations


def plot_trajectory(report: dict, path: str, *, title: str = "") -> None:
    try:
        import matplotlib
    except ImportError:
        from ..errors import UsageError

        raise UsageError("--plot needs matplotlib (pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = report["trajectory"]
    metric = report.get("metric", "top1_agreement")
    ok = [s for s in steps if s["accepted"]]
    bad = [s for s in steps if not s["accepted"]]
    has_metric = any("metrics" in s for s in steps)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = [("macs", "MACs kept (% of original)", lambda s: 100 * s["macs"]),
              ("speedup", "speedup (predicted; ○ measured)" if any("predicted_speedup" in s for s in steps)
               else "MACs reduction (original / current MACs)", lambda s: s.get("predicted_speedup", 1 / s["macs"]))]
    for ax, (key, label, x) in zip(axes, panels):
        y = (lambda s: s["metrics"][metric]) if has_metric else (lambda s: s["step"])
        ax.plot([x(s) for s in ok], [y(s) for s in ok], "-o", ms=3, color="tab:blue", label="accepted step")
        if bad:
            ax.plot([x(s) for s in bad], [y(s) for s in bad], "x", ms=8, color="tab:red", label="over budget: stepped back")
        measured = [s for s in ok if "measured_speedup" in s]
        if key == "speedup" and measured:
            ax.plot([s["measured_speedup"] for s in measured], [y(s) for s in measured], "o", ms=9,
                    mfc="none", color="tab:green", label="measured on the EP")
        if has_metric and report.get("max_drop") is not None:
            ax.axhline(report["baseline"] - report["max_drop"], ls="--", color="gray", lw=1, label="budget")
        goal, target = report["goal"], report["target"]
        if key == "macs" and goal == "macs":
            ax.axvline(100 * target, ls=":", color="black", lw=1, label="target")
        if key == "speedup" and goal == "speedup":
            ax.axvline(target, ls=":", color="black", lw=1, label="target")
        if has_metric and ok:
            snr = ax.twinx()
            snr.plot([x(s) for s in ok], [min(s["metrics"]["snr_db"], 99) for s in ok], ":", color="tab:orange")
            snr.set_ylabel("output SNR vs original (dB, dotted)", color="tab:orange")
            snr.tick_params(axis="y", colors="tab:orange")
            if report.get("min_snr") is not None:
                snr.axhline(report["min_snr"], ls="--", color="tab:orange", lw=1)
        if key == "macs":
            ax.invert_xaxis()
        ax.set_xlabel(label)
        ax.set_ylabel(f"{metric} (%)" if has_metric else "step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(title or f"onnxprune auto: goal {report['goal']} {report['target']:g}, {report['stop_reason']}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
