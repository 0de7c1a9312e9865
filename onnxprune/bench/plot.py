"""The sweep as one PNG: quality against measured p50 latency and against MACs, Pareto front
marked, with model, machine and EP in the title so the picture stands on its own."""

from __future__ import annotations

import math

# label offsets (points) cycled over the points in x order, so neighbours do not overprint
_OFFSETS = [(0, 18), (0, -20), (22, 30), (22, -32), (-22, 30), (-22, -32)]


def _finite(q):
    return q is not None and not (isinstance(q, float) and math.isinf(q))


def _pretty(metric: str) -> str:
    return (metric.replace("fidelity top1_agreement vs original", "top-1 agreement with the original")
            .replace("fidelity snr_db vs original", "SNR vs the original (dB)").replace("_", " "))


def _plottable(points: list[dict]) -> list[dict]:
    """Points with a finite quality; an infinite one (SNR of an identical model) is drawn just
    beyond the best finite value and labelled as such."""
    finite = [p["quality"] for p in points if _finite(p["quality"])]
    out = []
    for p in points:
        if _finite(p["quality"]):
            out.append(p)
        elif p["quality"] is not None and finite:
            span = (max(finite) - min(finite)) or 1.0
            edge = max(finite) + 0.15 * span if p["quality"] > 0 else min(finite) - 0.15 * span
            out.append({**p, "quality": edge, "note": "∞: identical"})
    return out


def plot_sweep(sweep: dict, path: str) -> None:
    pts = _plottable(sweep["points"])
    mc = sweep["bench"]["machine"]
    timing = sweep["bench"]["timing"]
    import matplotlib  # imported here: it costs a second at start-up of every command

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), constrained_layout=True)
    for ax, cost, label, scale in ((axes[0], "p50_ms", "measured p50 latency (ms)", 1.0),
                                   (axes[1], "macs", "MACs (millions)", 1e-6)):
        xs = [(p[cost] or 0) * scale for p in pts]
        ys = [p["quality"] for p in pts]
        front = sorted((i for i, p in enumerate(pts) if p.get(f"pareto_{cost}")), key=lambda i: xs[i])
        ax.plot([xs[i] for i in front], [ys[i] for i in front], "-", color="tab:orange", lw=2, zorder=1,
                drawstyle="steps-post" if sweep["higher_is_better"] else "steps-pre", label="Pareto front")
        others = [i for i in range(len(pts)) if i not in front]
        ax.scatter([xs[i] for i in others], [ys[i] for i in others], s=45, color="tab:gray", zorder=2,
                   label="dominated")
        ax.scatter([xs[i] for i in front], [ys[i] for i in front], s=70, color="tab:orange", edgecolor="black",
                   zorder=3, label="on the front")
        for rank, i in enumerate(sorted(range(len(pts)), key=lambda i: (xs[i], ys[i]))):
            p = pts[i]
            text = p.get("label") or ("original" if p["ratio"] == 0 else f"r={p['ratio']:g}")
            if p.get("note"):
                text += f" ({p['note']})"
            if cost == "p50_ms" and p["speedup"] != 1.0 and p.get("label") != "original":
                text += f"\n{p['speedup']:.2f}x"
            ax.annotate(text, (xs[i], ys[i]), textcoords="offset points", xytext=_OFFSETS[rank % len(_OFFSETS)],
                        fontsize=8, ha="center", va="center",
                        arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.6})
        ax.set_xlabel(label)
        ax.set_ylabel(_pretty(sweep["quality_metric"]) + (" (higher is better)" if sweep["higher_is_better"] else " (lower is better)"))
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=9, framealpha=0.8)
        ax.set_xlim(0, max(xs) * 1.25 if xs else 1)
        lo, hi = min(ys), max(ys)
        pad = (hi - lo) * 0.15 or abs(hi) * 0.1 or 0.1
        ax.set_ylim(lo - pad, hi + 1.8 * pad)
    axes[0].set_title("quality vs measured latency (labels: pruning ratio, speedup)", fontsize=10)
    axes[1].set_title("quality vs compute (labels: pruning ratio)", fontsize=10)
    model = sweep["model"].rsplit("/", 1)[-1]
    runs = f"{timing['runs']} interleaved runs" if timing["runs"] else f"{timing['duration_s']} s interleaved"
    fig.suptitle(f"{model}: pruning sweep (criterion {sweep['prune'].get('criterion')}, round-to "
                 f"{sweep['prune'].get('round_to')})\n{mc['cpu']}, {mc['cores']} cores | {mc['provider']}, threads "
                 f"{mc['threads']} | onnxruntime {mc['onnxruntime']} | p50 of {runs}\ninputs: {timing['inputs']}",
                 fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
