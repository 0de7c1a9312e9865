"""`onnxprune batch`: inspect, prune, verify and benchmark every model of a folder or manifest.

Each model is one work item carrying its file's bytes, run by an executor (`core.executor`: here
one after another, or `distributed.RayExecutor` in parallel across a cluster). A model that cannot
be read or pruned is that model's row ("declined" with the reason, or "failed" with the error);
the others' results are kept. Latency is original vs pruned, interleaved in one process, so the
speedup is a paired figure even when other items run beside it on the same machine.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..analysis import analyze_model
from ..core.executor import LocalExecutor
from ..core.io import load_model, model_bytes
from ..core.shapes import parse_input_values, parse_shape_specs
from ..errors import OnnxpruneError, UsageError
from ..prune.pipeline import model_stats, prune
from .evaluate import BenchConfig, run_bench


@dataclass(frozen=True)
class BatchConfig:
    ratio: float = 0.5
    criterion: str = "l1"
    round_to: int = 4
    seed: int = 0
    verify: bool = True
    bench: bool = True
    runs: int = 50
    warmup: int = 5
    threads: int = 1
    keep: bool = False               # send the pruned model's bytes back (to write them on the host)


@dataclass(frozen=True)
class BatchItem:
    name: str
    path: str
    data: bytes
    shapes: dict | None = None
    inputs: dict | None = None


def read_items(source: str) -> list[BatchItem]:
    """A folder (every *.onnx, sorted) or a manifest (.json list or .jsonl of {"path", "shape",
    "input", "name"}; paths relative to the manifest)."""
    src = Path(source)
    if src.is_dir():
        entries = [{"path": str(p)} for p in sorted(src.glob("*.onnx"))]
        base = src
        if not entries:
            raise UsageError(f"{source}: no .onnx files in this folder")
    elif src.is_file():
        base = src.parent
        text = src.read_text()
        try:
            entries = json.loads(text) if text.lstrip().startswith("[") else \
                [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise UsageError(f"{source}: not a JSON/JSONL manifest ({exc.msg}, line {exc.lineno})") from None
        if not entries or not all(isinstance(e, dict) and "path" in e for e in entries):
            raise UsageError(f"{source}: every manifest entry needs a \"path\"")
    else:
        raise UsageError(f"{source}: no such folder or manifest")
    items, names = [], set()
    for e in entries:
        path = Path(e["path"]) if Path(e["path"]).is_absolute() else base / e["path"]
        name = e.get("name") or path.stem
        if name in names:
            raise UsageError(f"{source}: two models are named '{name}' (give one a \"name\")")
        names.add(name)
        shapes, inputs = e.get("shape"), e.get("input")
        shapes = parse_shape_specs(shapes) if isinstance(shapes, list) else shapes
        inputs = parse_input_values(inputs) if isinstance(inputs, list) else inputs
        data = path.read_bytes() if path.is_file() else b""  # a missing file is that item's error
        items.append(BatchItem(name, str(path), data, shapes, inputs))
    return items


def run_item(cfg: BatchConfig, item: BatchItem) -> dict:
    """One model's row. Runs wherever the executor puts it: the model comes as bytes."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="onnxprune-batch-") as tmp:
        path = Path(tmp) / f"{item.name}.onnx"
        if not item.data:
            return {"status": "declined", "reason": f"{item.path}: no such file or empty"}
        path.write_bytes(item.data)
        try:
            model = load_model(path)
            analysis = analyze_model(model, shapes=item.shapes or {}, values=item.inputs)
        except OnnxpruneError as exc:
            return {"status": "declined", "reason": str(exc).splitlines()[0].replace(str(path), item.path)}
        before = model_stats(model, analysis.shapes)
        row = {"nodes": len(model.graph.node), "groups": len(analysis.groups),
               "prunable": sum(g.prunable for g in analysis.groups), "params": before["params"], "macs": before["macs"]}
        try:
            result = prune(model, ratio=cfg.ratio, criterion=cfg.criterion, round_to=cfg.round_to, seed=cfg.seed,
                           shapes=item.shapes, inputs=item.inputs, verify=cfg.verify)
        except OnnxpruneError as exc:
            return {**row, "status": "declined", "reason": str(exc).splitlines()[0]}
        v = result.verify
        row.update(params_after=result.after["params"], macs_after=result.after["macs"],
                   verify=None if v is None else {"passed": v.passed, "max_abs_diff": v.max_abs_diff, "message": v.message})
        row["status"] = "verified" if v is not None and v.passed else ("unverified" if v is None else "verify FAILED")
        if cfg.bench and row["status"] != "verify FAILED":
            row["bench"] = _bench(cfg, item, path, result, Path(tmp))
        if cfg.keep and row["status"] != "verify FAILED":
            row["bytes"] = model_bytes(result.model)
    row["seconds"] = round(time.perf_counter() - start, 3)
    return row


def _bench(cfg: BatchConfig, item: BatchItem, original: Path, result, tmp: Path) -> dict:
    pruned = tmp / "pruned.onnx"
    result.save(pruned)
    try:
        b = run_bench([str(original), str(pruned)], BenchConfig(
            threads=cfg.threads, runs=cfg.runs, warmup=cfg.warmup, shapes=item.shapes or {}, seed=cfg.seed,
            memory=False, names=("original", "pruned")))
    except Exception as exc:  # e.g. an input that random values cannot drive (one row, not the batch)
        return {"error": str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}
    o, p = b["models"]
    return {"p50_ms": o["latency"]["p50_ms"], "p50_ms_pruned": p["latency"]["p50_ms"], "speedup": p["speedup"],
            "fidelity": p.get("fidelity"), "machine": {k: b["machine"][k] for k in ("cpu", "onnxruntime", "provider")}}


def run_batch(items: list[BatchItem], cfg: BatchConfig, *, executor=None, out_dir: str | None = None) -> dict:
    """Every item's row, in item order; failed items say why. Pruned models go to `out_dir`."""
    from ..core.io import save_model

    executor = executor or LocalExecutor()
    if out_dir:
        cfg = BatchConfig(**{**asdict(cfg), "keep": True})
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    rows: list[dict | None] = [None] * len(items)
    start = time.perf_counter()
    for out in executor.map(run_item, items, context=cfg, title="batch", label=lambda it: it.name):
        item = items[out.index]
        row = {"name": item.name, "path": item.path}
        row.update(out.value if out.ok else {"status": "failed", "reason": out.error})
        row["where"] = out.where
        data = row.pop("bytes", None)
        if out_dir and data:
            import onnx

            row["output"] = str(save_model(onnx.ModelProto.FromString(data), Path(out_dir) / f"{item.name}.onnx")[0])
        rows[out.index] = row
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return {"config": {k: v for k, v in asdict(cfg).items() if k != "keep"}, "models": rows, "counts": counts,
            "seconds": round(time.perf_counter() - start, 3)}
