"""A bench result as a terminal table, markdown or JSON (infinities written as the string "inf"
so the JSON stays standard)."""

from __future__ import annotations

import math



def _f(x, fmt="{:.3f}", none="-"):
    if x is None:
        return none
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return fmt.format(x)


def _mem(m):
    mem = m.get("memory")
    if not mem:
        return "-"
    if "error" in mem:
        return "error"
    return f"{mem['session_mb']:.1f}/{mem['peak_rss_mb']:.0f}"


def rows(result: dict) -> tuple[list[list[str]], list[str]]:
    headers = ["model", "p50 ms", "p90 ms", "p99 ms", "mean ms", "min ms", "runs/s", "speedup", "session ms",
               "mem MB (session/peak)", "size", "params", "MACs"]
    out = []
    for m in result["models"]:
        lat = m["latency"]
        out.append([m["name"], _f(lat["p50_ms"]), _f(lat["p90_ms"]), _f(lat["p99_ms"]), _f(lat["mean_ms"]),
                    _f(lat["min_ms"]), _f(lat["throughput_per_s"], "{:.0f}"), _f(m["speedup"], "{:.2f}x"),
                    _f(m["session_ms"], "{:.1f}"), _mem(m), human(m["size_bytes"]) + "B", human(m["params"]),
                    human(m["macs"]) if m["macs"] is not None else "-"])
    return out, headers


def fidelity_rows(result: dict):
    out = []
    for m in result["models"][1:]:
        f = m.get("fidelity") or {}
        if "error" in f:
            out.append([m["name"], "error: " + f["error"], "", "", ""])
        elif f:
            out.append([m["name"], _f(f["top1_agreement"], "{:.4f}"), _f(f["cosine"], "{:.6f}"), _f(f["snr_db"], "{:.1f}"),
                        _f(f["kl"], "{:.3g}")])
    return out, [f"vs {result['models'][0]['name']}", "top-1 agree", "cosine", "SNR dB", "KL"]


def state_line(result: dict) -> str | None:
    """How fidelity fed state a prune resized (--allow-io-change), under the fidelity table."""
    state = result.get("state")
    if not state:
        return None
    how = (f"run as one stream of {state['steps']} calls carrying state ("
           + ", ".join(f"{i} -> {o}" for i, o in state["carried"]) + "; each model its own)" if state["carried"]
           else "one call each")
    return (f"state: {', '.join(state['zero_initial'])} fed zeros (the original its full state, each pruned model "
            f"its kept units), {how}; a resized output is compared on its kept units")


def task_rows(result: dict):
    task = result.get("task")
    if not task:
        return [], []
    keys = {"classify": ["accuracy"], "wakeword": ["detection_rate", "false_accepts_per_hour"],
            "vad": ["precision", "recall", "f1"], "ctc": ["wer", "cer"]}[task]
    out = []
    for m in result["models"]:
        t = m["task"]
        row = [m["name"]] + [_f(t.get(k), "{:.4f}") for k in keys]
        if task == "classify":
            row.append(" ".join(f"{k}:{_f(v, '{:.2f}')}" for k, v in t["recall"].items()))
        out.append(row)
    return out, ["model"] + keys + (["recall per class"] if task == "classify" else [])


def header_line(result: dict) -> str:
    mc = result["machine"]
    isa = "; " + "/".join(mc["isa"]) if mc.get("isa") else ""  # the flags that select int8/float kernels
    return (f"{mc['provider']} | {mc['cpu']} ({mc['cores']} cores{isa}) | onnxruntime {mc['onnxruntime']} | "
            f"threads {mc['threads']}{'' if mc.get('spinning', True) else ' (no spin)'} | opt {mc['opt_level']} | {result['timing']['inputs']}")


def terminal(result: dict) -> str:
    parts = [header_line(result), table(*rows(result))]
    for fn in (fidelity_rows, task_rows):
        r, h = fn(result)
        if r:
            parts.append(table(r, h))
            if fn is fidelity_rows and state_line(result):
                parts.append(state_line(result))
    return "\n".join(parts)


def _md_table(r, h) -> list[str]:
    lines = ["| " + " | ".join(h) + " |", "|" + "|".join("---" for _ in h) + "|"]
    return lines + ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in r]


def markdown(result: dict, command: str | None = None) -> str:
    lines = [f"Machine: {header_line(result)}", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    t = result["timing"]
    lines += [f"Timing: warmup {t['warmup']}, " + (f"{t['runs']} runs" if t["runs"] else f"{t['duration_s']} s")
              + f" per model, {t['interleaved']}. Speedup = p50 of the first model / p50 of this one.", ""]
    lines += _md_table(*rows(result))
    for fn in (fidelity_rows, task_rows):
        r, h = fn(result)
        if r:
            lines += [""] + _md_table(r, h)
            if fn is fidelity_rows and state_line(result):
                lines += ["", state_line(result)]
    return "\n".join(lines) + "\n"


def jsonable(x):
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    return x


def sweep_rows(sweep: dict):
    headers = ["ratio", "params", "MACs", "p50 ms", "speedup", sweep["quality_metric"], "Pareto (latency)", "Pareto (MACs)", "file"]
    recovered = any("recovered" in p for p in sweep["points"])  # sweep --recover: the twins' quality beside
    if recovered:
        headers.insert(6, f"{sweep['quality_metric']}, recovered")
    out = []
    for p in sweep["points"]:
        row = [f"{p['ratio']:g}", human(p["params"]), human(p["macs"]) if p["macs"] is not None else "-",
               _f(p["p50_ms"]), _f(p["speedup"], "{:.2f}x"), _f(p["quality"], "{:.4f}"),
               "yes" if p.get("pareto_p50_ms") else "", "yes" if p.get("pareto_macs") else "",
               p["path"].rsplit("/", 1)[-1]]
        if recovered:
            row.insert(6, _f(p.get("quality_recovered"), "{:.4f}") if "recovered" in p else "-")
        out.append(row)
    return out, headers


def sweep_markdown(sweep: dict, command: str | None = None) -> str:
    lines = [f"Machine: {header_line(sweep['bench'])}", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += _md_table(*sweep_rows(sweep))
    for f in sweep["failed"]:
        lines.append(f"\nratio {f['ratio']:g}: verification FAILED, not benchmarked ({f['message']})")
    lines += ["", "Benchmark detail:", ""] + markdown(sweep["bench"]).splitlines()[2:]
    return "\n".join(lines) + "\n"


def human(n: float) -> str:
    for unit in ("", "K", "M", "G", "T"):
        if abs(n) < 1000:
            return f"{n:.0f}{unit}" if unit == "" else f"{n:.2f}{unit}"
        n /= 1000
    return f"{n:.2f}P"


def table(rows: list[list], headers: list[str]) -> str:
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    for r in cells:
        out.append("  ".join(c.rjust(w) if c[:1].isdigit() or c[:1] in "-+" else c.ljust(w) for c, w in zip(r, widths)))
    return "\n".join(out)
