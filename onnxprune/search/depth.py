"""Depth in the search: candidates scored by measured sensitivity (each removable block dropped
alone, the outputs compared with the original's by search/fidelity: nmse, SNR, top-1 agreement),
the latency model's per-block entry (each block alone, timed interleaved with the original), and
`auto --depth`'s first stage: blocks by measured gain per unit of sensitivity, within the budget."""

from __future__ import annotations

import onnx

from ..core.cost import count_macs, count_params
from ..core.graph import GraphIndex
from ..core.runtime import make_session, random_feeds
from ..core.shapes import infer_value_shapes, input_shapes
from ..prune.depth import drop_blocks, model_blocks
from .fidelity import Fidelity, make_feeds
from .latency_model import paired_speedup, time_rounds


def block_sensitivity(model: onnx.ModelProto, *, shapes: dict | None = None, values: dict | None = None,
                      feeds: list[dict] | None = None, count: int = 16, seed: int = 0, data=None) -> list[dict]:
    """One row per candidate Add (Block.to_dict), with for removable ones the MACs its removal
    saves and the fidelity metrics of the model without it (one forward pass per feed each)."""
    fed = input_shapes(GraphIndex.build(model), shapes or {})
    blocks = model_blocks(model, shapes, values)
    rows = [b.to_dict() for b in blocks]
    if not any(b.removable for b in blocks):
        return rows
    if feeds is None:
        feeds = make_feeds(model, fed, count=count, seed=seed, data=data, part=0)
    evaluate = Fidelity(model, feeds)
    base = _macs(model, fed, values)
    for block, row in zip(blocks, rows):
        if block.removable:
            dropped = drop_blocks(model, [block])
            row.update(macs_saved=base - _macs(dropped, fed, values), **evaluate(dropped))
    return rows


def least_sensitive(rows: list[dict], n: int) -> list[str]:
    """Names of the `n` removable blocks with the lowest measured nmse."""
    ok = sorted((r for r in rows if r["removable"]), key=lambda r: (r["nmse"], r["name"]))
    return [r["name"] for r in ok[:n]]


def _macs(model, fed, values) -> int:
    try:
        return count_macs(model, infer_value_shapes(model, fed, values))
    except Exception:
        return 0


def block_latency(model: onnx.ModelProto, names: list[str], *, shapes: dict | None = None, provider: str =
                  "CPUExecutionProvider", threads: int = 1, runs: int = 100, seed: int = 0) -> dict[str, float]:
    """The latency model's per-block entry: paired speedup of the model without each block alone,
    timed interleaved with the original on the target EP."""
    blocks = {b.name: b for b in model_blocks(model, shapes)}
    fed = input_shapes(GraphIndex.build(model), shapes or {})
    feeds = random_feeds(make_session(model), fed, seed)
    models = {"original": model} | {n: drop_blocks(model, [blocks[n]]) for n in names}
    rounds = time_rounds(models, feeds, provider=provider, threads=threads, runs=runs)
    return {n: paired_speedup(rounds["original"], rounds[n]) for n in names}


def depth_stage(model: onnx.ModelProto, *, goal: str, target: float, evaluate, metric: str, max_drop=None,
                min_snr=None, sens_feeds=None, shapes=None, latency: str = "measured", provider: str =
                "CPUExecutionProvider", threads: int = 1, runs: int = 100, seed: int = 0, progress=None) -> dict:
    """`auto --depth`, before widths: blocks in order of measured gain per unit of measured
    sensitivity (each alone), each kept only if the model without it and every block taken so far
    stays within the budget; stops once the goal is met. Returns the blocks, the model without them
    and the trajectory (gain: speedup from the per-block latency entry, or MACs with the macs goal
    or latency model)."""
    rows = block_sensitivity(model, shapes=shapes, feeds=sens_feeds, seed=seed)
    ok = [r for r in rows if r["removable"]]
    out = {"blocks": [], "model": model, "rows": rows, "trajectory": [], "speedup": 1.0, "macs_fraction": 1.0,
           "params_fraction": 1.0}
    if not ok:
        return out
    fed = input_shapes(GraphIndex.build(model), shapes or {})
    base_macs = max(1, _macs(model, fed, None))
    if goal == "speedup" and latency == "measured":
        speed = block_latency(model, [r["name"] for r in ok], shapes=shapes, provider=provider, threads=threads,
                              runs=runs, seed=seed)
        gain = {n: 1 - 1 / s for n, s in speed.items()}
    else:
        gain = {r["name"]: r["macs_saved"] / base_macs for r in ok}
    for r in ok:
        r["latency_gain"] = round(gain[r["name"]], 5)
    order = sorted((r for r in ok if gain[r["name"]] > 0), key=lambda r: -gain[r["name"]] / max(r["nmse"], 1e-12))
    blocks = {b.name: b for b in model_blocks(model, shapes)}
    base = evaluate(model)[metric]
    chosen: list[str] = []
    for r in order:
        trial = chosen + [r["name"]]
        candidate = drop_blocks(model, [blocks[n] for n in trial])
        m = evaluate(candidate)
        drop = base - m[metric]
        accepted = (max_drop is None or drop <= max_drop + 1e-9) and (min_snr is None or m["snr_db"] >= min_snr)
        entry = {"block": r["name"], "kind": r["kind"], "nmse_alone": r["nmse"], "gain_alone": r["latency_gain"],
                 "metrics": {k: round(v, 4) for k, v in m.items()}, "drop": round(drop, 4), "accepted": accepted}
        if accepted:
            chosen, out["model"] = trial, candidate
            out["macs_fraction"] = _macs(candidate, fed, None) / base_macs
            out["params_fraction"] = count_params(candidate) / max(1, count_params(model))
            entry["macs"] = round(out["macs_fraction"], 5)
        out["trajectory"].append(entry)
        if progress:
            progress(entry)
        if accepted and _met(goal, target, out, model, candidate, latency, provider, threads, runs, seed, fed):
            break
    out["blocks"] = chosen
    return out


def _met(goal, target, out, model, candidate, latency, provider, threads, runs, seed, fed) -> bool:
    if goal == "macs":
        return out["macs_fraction"] <= target
    if goal == "params":
        return out["params_fraction"] <= target
    if latency == "measured":
        feeds = random_feeds(make_session(model), fed, seed)
        rounds = time_rounds({"original": model, "candidate": candidate}, feeds, provider=provider, threads=threads,
                             runs=runs)
        out["speedup"] = paired_speedup(rounds["original"], rounds["candidate"])
    else:
        out["speedup"] = 1.0 / max(out["macs_fraction"], 1e-9)
    return out["speedup"] >= target


def overall_speedup(original: onnx.ModelProto, final: onnx.ModelProto, *, shapes=None, provider: str =
                    "CPUExecutionProvider", threads: int = 1, runs: int = 100, seed: int = 0) -> float:
    """Paired speedup of `final` over `original`, timed interleaved now."""
    feeds = random_feeds(make_session(original), input_shapes(GraphIndex.build(original), shapes or {}), seed)
    rounds = time_rounds({"original": original, "final": final}, feeds, provider=provider, threads=threads, runs=runs)
    return paired_speedup(rounds["original"], rounds["final"])
