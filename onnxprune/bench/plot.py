"""The sweep as one PNG: quality against measured p50 latency and against MACs, Pareto front
marked, with model, machine and EP in the title so the picture stands on its own.

Labels sit next to their points, placed so that no two overlap and no leader line crosses
another (`place_labels`); points at the same spot share one label. A collapsed model (quality
below `collapse_limit`) is drawn as a cross and never joins the front: being 1 µs faster
does not make a broken model a trade-off."""

from __future__ import annotations

import math

_DIRECTIONS = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, 1), (1, -1), (-1, -1)]
_RADII = (5, 12, 22, 34, 50, 70)  # points


def _finite(q):
    return q is not None and not (isinstance(q, float) and math.isinf(q))


def _pretty(metric: str) -> str:
    return (metric.replace("fidelity top1_agreement vs original", "top-1 agreement with the original")
            .replace("fidelity snr_db vs original", "SNR vs the original (dB)").replace("_", " "))


def _plottable(points: list[dict], limit: float | None = None) -> list[dict]:
    """Points with a finite quality; an infinite one (SNR of an identical model) is drawn just
    beyond the best finite value (and beyond the collapse limit) and labelled as such."""
    finite = [p["quality"] for p in points if _finite(p["quality"])]
    finite += [limit] if limit is not None and finite else []
    out = []
    for p in points:
        if _finite(p["quality"]):
            out.append(p)
        elif p["quality"] is not None and finite:
            span = (max(finite) - min(finite)) or 1.0
            edge = max(finite) + 0.15 * span if p["quality"] > 0 else min(finite) - 0.15 * span
            out.append({**p, "quality": edge, "note": "∞: identical"})
    return out


def _overlap(a, b, pad=2.0) -> bool:
    return a[0] < b[2] + pad and b[0] < a[2] + pad and a[1] < b[3] + pad and b[1] < a[3] + pad


def _cross(p1, p2, q1, q2) -> bool:
    def side(a, b, c):
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    return (side(p1, p2, q1) * side(p1, p2, q2) < 0) and (side(q1, q2, p1) * side(q1, q2, p2) < 0)


def _segment_hits_box(p, q, box) -> bool:
    x0, y0, x1, y1 = box
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    inside = lambda pt: x0 <= pt[0] <= x1 and y0 <= pt[1] <= y1  # noqa: E731
    return inside(p) or inside(q) or any(_cross(p, q, corners[i], corners[(i + 1) % 4]) for i in range(4))


def place_labels(ax, xs, ys, texts, *, lines=(), fontsize=8, marker_px=6.0) -> list:
    """Annotate point i with texts[i] where it overlaps no other label, point or line (`lines`:
    polylines in data coordinates) and its leader crosses no other leader or label; returns the
    annotations. Positions are tried nearest first."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    to_px = ax.transData.transform
    frame = ax.get_window_extent(renderer)
    pts = [tuple(to_px((x, y))) for x, y in zip(xs, ys)]
    scale = fig.dpi / 72.0
    boxes, leaders, placed = [], [], []
    segments = []
    for line in lines:
        line = [tuple(to_px(p)) for p in line]
        segments += list(zip(line, line[1:]))
    order = sorted(range(len(pts)), key=lambda i: (-pts[i][1], pts[i][0]))
    for i in order:
        probe = ax.text(0, 0, texts[i], fontsize=fontsize)
        ext = probe.get_window_extent(renderer)
        probe.remove()
        w, h = ext.width, ext.height
        best, best_cost = None, None
        for radius in _RADII:
            r = radius * scale
            for dx, dy in _DIRECTIONS:
                cx, cy = pts[i][0] + dx * (r + w / 2 * abs(dx)), pts[i][1] + dy * (r + h / 2 * abs(dy))
                box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
                anchor = (min(max(pts[i][0], box[0]), box[2]), min(max(pts[i][1], box[1]), box[3]))
                cost = 0
                if box[0] < frame.x0 or box[2] > frame.x1 or box[1] < frame.y0 or box[3] > frame.y1:
                    cost += 100
                cost += 10 * sum(_overlap(box, b) for b in boxes)
                cost += 10 * sum(_overlap(box, (px - marker_px, py - marker_px, px + marker_px, py + marker_px))
                                 for j, (px, py) in enumerate(pts) if j != i)
                if radius > _RADII[0]:
                    cost += 10 * sum(_cross(pts[i], anchor, a, b) for a, b in leaders)
                    cost += 10 * sum(_segment_hits_box(pts[i], anchor, b) for b in boxes)
                    cost += 10 * sum(_segment_hits_box(pts[i], anchor, (px - marker_px, py - marker_px,
                                                                        px + marker_px, py + marker_px))
                                     for j, (px, py) in enumerate(pts) if j != i)
                cost += 10 * sum(_segment_hits_box(a, b, box) for a, b in leaders)
                cost += 5 * sum(_segment_hits_box(a, b, box) for a, b in segments)
                if best_cost is None or cost < best_cost:
                    best, best_cost = (box, anchor, radius, (cx, cy)), cost
                if cost == 0:
                    break
            if best_cost == 0:
                break
        box, anchor, radius, (cx, cy) = best
        boxes.append(box)
        if radius > _RADII[0]:
            leaders.append((pts[i], anchor))
        offset = ((cx - pts[i][0]) / scale, (cy - pts[i][1]) / scale)
        placed.append(ax.annotate(texts[i], (xs[i], ys[i]), textcoords="offset points", xytext=offset,
                                  fontsize=fontsize, ha="center", va="center",
                                  arrowprops=({"arrowstyle": "-", "color": "0.5", "lw": 0.6, "shrinkA": 0,
                                               "shrinkB": 3} if radius > _RADII[0] else None)))
    return placed


def _grouped(xs, ys, texts):
    """Points at the same place (e.g. int8 and float at equal MACs and accuracy) share one label."""
    groups: dict = {}
    for x, y, t in zip(xs, ys, texts):
        groups.setdefault((round(x, 12), round(y, 9)), []).append(t)
    keys = list(groups)
    return [k[0] for k in keys], [k[1] for k in keys], ["\n".join(groups[k]) for k in keys]


def _pyplot():
    import matplotlib  # imported here: it costs a second at start-up of every command

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def sweep_figure(sweep: dict):
    """The figure plot_sweep saves (tests inspect it)."""
    plt = _pyplot()
    pts = _plottable(sweep["points"], (sweep.get("collapse") or {}).get("limit"))
    mc = sweep["bench"]["machine"]
    timing = sweep["bench"]["timing"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 6.0), constrained_layout=True)
    collapse = sweep.get("collapse")
    for ax, cost, label, scale in ((axes[0], "p50_ms", "measured p50 latency (ms)", 1.0),
                                   (axes[1], "macs", "MACs (millions)", 1e-6)):
        xs = [(p[cost] or 0) * scale for p in pts]
        ys = [p["quality"] for p in pts]
        front = sorted((i for i, p in enumerate(pts) if p.get(f"pareto_{cost}")), key=lambda i: xs[i])
        ax.plot([xs[i] for i in front], [ys[i] for i in front], "-", color="tab:orange", lw=2, zorder=1,
                drawstyle="steps-post" if sweep["higher_is_better"] else "steps-pre", label="Pareto front")
        bad = [i for i, p in enumerate(pts) if p.get("collapsed")]
        others = [i for i in range(len(pts)) if i not in front and i not in bad]
        ax.scatter([xs[i] for i in others], [ys[i] for i in others], s=30, color="tab:gray", edgecolor="white",
                   zorder=4, label="dominated")  # above the front's markers: a point at the same place stays visible
        ax.scatter([xs[i] for i in front], [ys[i] for i in front], s=70, color="tab:orange", edgecolor="black",
                   zorder=3, label="on the front")
        if bad:
            ax.scatter([xs[i] for i in bad], [ys[i] for i in bad], s=70, marker="X", color="tab:red", zorder=3,
                       label=f"collapsed ({collapse['rule']}): off the front" if collapse else "collapsed")
        if collapse and collapse.get("limit") is not None:
            ax.axhline(collapse["limit"], color="tab:red", lw=0.8, ls=":", zorder=0, label="collapse limit")
        texts = []
        for p in pts:
            text = p.get("label") or ("original" if p["ratio"] == 0 else f"r={p['ratio']:g}")
            if p.get("note"):
                text += f" ({p['note']})"
            if cost == "p50_ms" and p.get("label") != "original" and not (p["ratio"] == 0 and not p.get("label")):
                text += f" {p['speedup']:.2f}x"
            texts.append(text)
        ax.set_xlabel(label)
        ax.set_ylabel(_pretty(sweep["quality_metric"]) + (" (higher is better)" if sweep["higher_is_better"] else " (lower is better)"))
        ax.grid(alpha=0.3)
        ax.set_xlim(0, max(xs) * 1.3 if xs else 1)
        lo, hi = min(ys), max(ys)
        if collapse and collapse.get("limit") is not None:  # show the limit the crosses are judged by
            lo, hi = min(lo, collapse["limit"]), max(hi, collapse["limit"])
        pad = (hi - lo) * 0.15 or abs(hi) * 0.1 or 0.1
        ax.set_ylim(lo - pad, hi + 1.8 * pad)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=8, frameon=False)
        fig.canvas.draw()
        step = []
        for a, b in zip(front, front[1:]):  # the drawn steps: along x first when higher is better
            corner = (xs[b], ys[a]) if sweep["higher_is_better"] else (xs[a], ys[b])
            step += [(xs[a], ys[a]), corner]
        if front:
            step.append((xs[front[-1]], ys[front[-1]]))
        place_labels(ax, *_grouped(xs, ys, texts), lines=[step] if len(step) > 1 else [])
    axes[0].set_title("quality vs measured latency (labels: model, speedup)", fontsize=10)
    axes[1].set_title("quality vs compute (labels: model)", fontsize=10)
    model = sweep["model"].rsplit("/", 1)[-1]
    runs = f"{timing['runs']} interleaved runs" if timing["runs"] else f"{timing['duration_s']} s interleaved"
    isa = "/".join(mc.get("isa") or [])
    fig.suptitle(f"{model}: pruning sweep (criterion {sweep['prune'].get('criterion')}, round-to "
                 f"{sweep['prune'].get('round_to')})\n{mc['cpu']}, {mc['cores']} cores{' (' + isa + ')' if isa else ''} | "
                 f"{mc['provider']}, threads {mc['threads']} | onnxruntime {mc['onnxruntime']} | p50 of {runs}\n"
                 f"inputs: {timing['inputs']}", fontsize=10)
    return fig


def plot_sweep(sweep: dict, path: str) -> None:
    fig = sweep_figure(sweep)
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
