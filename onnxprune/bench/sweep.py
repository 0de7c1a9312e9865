"""Prune one model at several ratios (each verified), benchmark every result against the original
in one interleaved run, and rank them by quality against cost.

Quality is the task metric when labelled data is given (accuracy, detection rate, F1, WER) and
otherwise fidelity to the original on the same inputs (top-1 agreement by default)."""

from __future__ import annotations

import math

import dataclasses
import shutil
from pathlib import Path

import onnx

from ..core import external
from ..core.io import load_model, model_bytes, save_model
from ..errors import UsageError
from ..prune.pipeline import PruneConfig, prune
from .evaluate import BenchConfig, run_bench
from .tasks import TASK_QUALITY

FIDELITY_QUALITY = {"top1": ("top1_agreement", True), "cosine": ("cosine", True), "snr": ("snr_db", True),
                    "kl": ("kl", False)}


def parse_ratios(text: str) -> list[float]:
    try:
        ratios = [float(r) for r in text.split(",") if r.strip()]
    except ValueError:
        raise UsageError(f"--ratios '{text}': expected numbers like 0,0.25,0.5") from None
    bad = [r for r in ratios if not 0.0 <= r < 1.0]
    if not ratios or bad:
        raise UsageError(f"--ratios '{text}': every ratio must satisfy 0 <= ratio < 1")
    return sorted(set(ratios))


def pareto_front(costs: list[float], qualities: list[float], higher_better: bool = True) -> list[int]:
    """Indices of points no other point beats: cost <= and quality at least as good, one strictly."""
    sign = 1 if higher_better else -1
    front = []
    for i, (c, q) in enumerate(zip(costs, qualities)):
        dominated = any(c2 <= c and sign * q2 >= sign * q and (c2 < c or sign * q2 > sign * q)
                        for j, (c2, q2) in enumerate(zip(costs, qualities)) if j != i)
        if not dominated:
            front.append(i)
    return front


_BOUNDED = ("accuracy", "top1_agreement", "recall", "precision", "f1", "detection_rate", "cosine")
_ERRORS = ("wer", "cer")


def collapse_limit(metric: str, original: float | None, higher: bool) -> dict | None:
    """The quality below which a model counts as collapsed, or None where no rule applies.
    Bounded scores: under half the original's; error rates: past halfway from the original to
    100 % error; SNR: under 10 dB (the fidelity warning's threshold)."""
    key = metric.split()[-1] if " vs " not in metric else metric.split()[1]
    if original is None or (isinstance(original, float) and math.isinf(original) and "snr" not in key):
        return None
    if "snr" in key:
        return {"limit": 10.0, "rule": "SNR < 10 dB"}
    full = 100.0 if original > 1.0 else 1.0
    if higher and any(k in key for k in _BOUNDED):
        return {"limit": 0.5 * original, "rule": f"< half the original's {key.replace('_', ' ')}"}
    if not higher and any(k in key for k in _ERRORS):
        return {"limit": original + 0.5 * (full - original), "rule": f"{key.upper()} past halfway to {full:g}"}
    return None


def mark_front(points: list[dict], metric: str, higher: bool, original: float | None) -> dict | None:
    """Sets `collapsed` and `pareto_<cost>` on each point; collapsed points never join the front."""
    rule = collapse_limit(metric, original, higher)
    for p in points:
        q = p.get("quality")
        p["collapsed"] = bool(rule and q is not None and (q < rule["limit"] if higher else q > rule["limit"]))
    usable = [p for p in points if p.get("quality") is not None and not p["collapsed"]]
    for cost in ("p50_ms", "macs"):
        front = pareto_front([p[cost] or 0 for p in usable], [p["quality"] for p in usable], higher)
        for p in points:
            p[f"pareto_{cost}"] = False
        for i in front:
            usable[i][f"pareto_{cost}"] = True
    return rule


def quality_of(entry: dict, task: str | None, fidelity_key: str) -> tuple[str, float | None, bool]:
    """(metric name, value, higher is better) of one bench entry; the original has perfect fidelity."""
    if task:
        key, higher = TASK_QUALITY[task]
        return f"{task} {key}", entry["task"].get(key), higher
    key, higher = FIDELITY_QUALITY[fidelity_key]
    if "fidelity" not in entry:  # the original itself
        perfect = {"top1_agreement": 1.0, "cosine": 1.0, "snr_db": float("inf"), "kl": 0.0}
        return f"fidelity {key} vs original", perfect[key], higher
    return f"fidelity {key} vs original", entry["fidelity"].get(key), higher


def run_sweep(model_path: str, ratios: list[float], prune_cfg: PruneConfig, bench_cfg: BenchConfig,
              out_dir: str, fidelity_key: str = "top1", executor=None, timer=None, recover=None) -> dict:
    """Sweep results as a JSON-able dict. On any error the files it wrote (and `out_dir`, if it
    created it) are removed, so a failed sweep leaves no partial output. `executor`
    (core.executor) prunes the ratios in parallel, each from the model's bytes, to the same files;
    `timer` is run_bench's timing hook (e.g. on a target device). `recover(result) -> (model,
    report)` (sweep --recover; local only) gives each verified ratio a recovered twin, benchmarked
    beside it: same graph, new initializer values."""
    out = Path(out_dir)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        return _sweep(model_path, ratios, prune_cfg, bench_cfg, out, fidelity_key, written, executor, timer, recover)
    except BaseException:
        for f in written:
            f.unlink(missing_ok=True)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise


def prune_at(context, ratio: float) -> dict:
    """One sweep point: (verify summary, the pruned model's bytes when verified or unverified)."""
    model, cfg = context
    with external.scratch():  # only the bytes are used afterwards
        result = prune(model, config=dataclasses.replace(cfg, ratio=ratio))
        v = result.verify
        keep = v is None or v.passed
        return {"bytes": model_bytes(result.model) if keep else None, "resized_io": result.resized_io,
                "verify": None if v is None else {"passed": v.passed, "message": v.message,
                                                   "max_abs_diff": v.max_abs_diff}}


class PruneWork:
    """The model's bytes and the prune options: what a worker needs for any ratio."""

    def __init__(self, model: onnx.ModelProto, cfg: PruneConfig):
        import uuid

        self.model, self.cfg, self.key = model_bytes(model), cfg, uuid.uuid4().hex

    def materialize(self):
        return onnx.ModelProto.FromString(self.model), self.cfg


def _remote(model, ratios: list[float], cfg: PruneConfig, executor) -> dict:
    """ratio -> prune_at's result, or {"error": line} for a ratio whose task failed."""
    done = {}
    for out in executor.map(prune_at, [r for r in ratios if r != 0], context=PruneWork(model, cfg), title="sweep",
                            label=lambda r: f"ratio {r:g}"):
        done[out.item] = out.value if out.ok else {"error": out.error}
    return done


def _sweep(model_path, ratios, prune_cfg, bench_cfg, out: Path, fidelity_key: str, written: list, executor=None,
           timer=None, recover=None) -> dict:
    model = load_model(model_path)
    stem = Path(model_path).stem
    paths, names, points, failed = [str(model_path)], ["original"], [], []
    resized = [None]  # per benchmarked model: its prune's resized_io, so fidelity feeds it the kept state
    remote = _remote(model, ratios, prune_cfg, executor) if executor is not None else {}
    for ratio in ratios:
        if ratio == 0:
            points.append({"ratio": 0.0, "model": "original", "path": str(model_path)})
            continue
        target = out / f"{stem}_r{ratio:g}.onnx".replace("0.", "0p")
        twin = None
        if executor is None:
            with external.scratch():  # only the saved file is used afterwards
                result = prune(model, config=dataclasses.replace(prune_cfg, ratio=ratio))
                v, resized_io = result.verify, result.resized_io
                if v is None or v.passed:
                    written.extend(save_model(result.model, target))
                    if recover is not None:
                        recovered, report = recover(result)
                        twin = {"name": f"r={ratio:g} recovered", "report": report,
                                "path": str(target.with_name(target.stem + "_recovered.onnx"))}
                        written.extend(save_model(recovered, twin["path"]))
                del result
            v = None if v is None else {"passed": v.passed, "message": v.message, "max_abs_diff": v.max_abs_diff}
        else:
            got = remote[ratio]
            if "error" in got:
                failed.append({"ratio": ratio, "message": got["error"]})
                continue
            v, resized_io = got["verify"], got["resized_io"]
            if v is None or v["passed"]:
                written.extend(save_model(onnx.ModelProto.FromString(got["bytes"]), target))
        if v is not None and not v["passed"]:
            failed.append({"ratio": ratio, "message": v["message"]})
            continue
        name = f"r={ratio:g}"
        paths.append(str(target))
        names.append(name)
        resized.append(resized_io or None)
        points.append({"ratio": ratio, "model": name, "path": str(target),
                       "max_abs_diff_vs_reference": v["max_abs_diff"] if v else None,
                       "resized_io": resized_io, **({"recovered": twin} if twin else {})})
        if twin:
            paths.append(twin["path"])
            names.append(twin["name"])
            resized.append(resized_io or None)
    if 0.0 not in ratios:
        points.insert(0, {"ratio": 0.0, "model": "original", "path": str(model_path)})
    bench = run_bench(paths, dataclasses.replace(bench_cfg, names=tuple(names), resized=tuple(resized)), timer=timer)
    by_name = {m["name"]: m for m in bench["models"]}
    for p in points:
        m = by_name[p["model"]]
        metric, value, higher = quality_of(m, bench["task"], fidelity_key)
        p.update(p50_ms=m["latency"]["p50_ms"], speedup=m["speedup"], macs=m["macs"], params=m["params"],
                 size_bytes=m["size_bytes"], quality=value)
        if "recovered" in p:  # the twin: same graph (latency), new weights (quality, fidelity)
            twin = by_name[p["recovered"]["name"]]
            p["quality_recovered"] = quality_of(twin, bench["task"], fidelity_key)[1]
            p["recovered"]["fidelity"] = twin.get("fidelity")
    metric, original, higher = quality_of(by_name["original"], bench["task"], fidelity_key)
    collapse = mark_front(points, metric, higher, original)
    return {"model": str(model_path), "quality_metric": metric, "higher_is_better": higher, "points": points,
            "collapse": collapse,
            "failed": failed, "prune": {k: v for k, v in dataclasses.asdict(prune_cfg).items() if k not in ("plan", "ratio")},
            "bench": bench}
