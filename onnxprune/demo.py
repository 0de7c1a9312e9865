"""The end-to-end demo behind `onnxprune demo`: a trained keyword spotter, pruned at several
ratios with a data-aware criterion and least-squares compensation from a few calibration clips,
quantized to int8, and benchmarked against the original on held-out clips (voices never seen
in training): parameters, MACs, p50 latency, speedup, accuracy and fidelity, one table, one
plot. Everything it needs ships in `onnxprune/assets/kws/` (see models/README.md)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .prune.pipeline import PruneConfig, check_verified, prune
from .bench.evaluate import BenchConfig, run_bench
from .bench.tasks import TaskConfig
from .data import DataConfig, load_examples
from .core.io import load_model, save_model


def bundled(name: str) -> Path:
    return Path(str(resources.files("onnxprune") / "assets" / "kws" / name))


@dataclass(frozen=True)
class DemoConfig:
    model: str = ""
    frontend: str | None = None
    labels: str | None = None
    eval_data: str = ""
    calib_data: str = ""
    ratios: tuple[float, ...] = (0.25, 0.5)
    criterion: str = "reconstruction"
    compensate: str = "lstsq"
    baseline: bool = True       # also l1 without data at the largest ratio, to show what data buys
    quantize: bool = True       # static int8 (QDQ) of the original and of the most pruned model
    runs: int = 300
    threads: int = 1

    @classmethod
    def default(cls, **overrides) -> "DemoConfig":
        base = cls(model=str(bundled("kws.onnx")), frontend=str(bundled("logmel.onnx")),
                   labels=str(bundled("labels.json")), eval_data=str(bundled("eval/manifest.jsonl")),
                   calib_data=str(bundled("calib/manifest.jsonl")))
        return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})


def run_demo(cfg: DemoConfig, out: Path, echo=print) -> dict:
    """Write the variants to `out` and return the benchmark (as `bench --json` would)."""
    model = load_model(cfg.model)
    stem = Path(cfg.model).stem
    calib_cfg = DataConfig(cfg.calib_data, frontend=cfg.frontend)
    calibration = [ex.feeds for ex in load_examples(model, calib_cfg)]
    echo(f"calibration: {len(calibration)} clips from {cfg.calib_data}; evaluation: {cfg.eval_data}")
    variants = [("original", cfg.model, {"ratio": 0.0})]
    for ratio in cfg.ratios:
        runs = [(cfg.criterion, cfg.compensate)]
        if cfg.baseline and ratio == max(cfg.ratios):
            runs.append(("l1", "none"))
        for criterion, compensate in runs:
            result = prune(model, config=PruneConfig(ratio=ratio, criterion=criterion, compensate=compensate,
                                                     calibration=calibration if compensate != "none" or criterion != "l1" else None))
            check_verified(result)
            tag = f"r{round(ratio * 100):02d}" + ("" if (criterion, compensate) == runs[0] else f"_{criterion}")
            path = out / f"{stem}_{tag}.onnx"
            save_model(result.model, path)
            label = f"r={ratio:g} {criterion}" + (f"+{compensate}" if compensate != "none" else "")
            variants.append((label, str(path), {"ratio": ratio, "verified_max_diff": result.verify.max_abs_diff,
                                                "baseline": (criterion, compensate) != runs[0]}))
            echo(f"pruned {label}: verified (max |pruned - reference| {result.verify.max_abs_diff:.2g})")
    if cfg.quantize:
        variants += _quantized(cfg, out, stem, variants)
    bench_cfg = BenchConfig(threads=cfg.threads, runs=cfg.runs, warmup=20, memory=False,
                            data=DataConfig(cfg.eval_data, frontend=cfg.frontend),
                            task=TaskConfig("classify", labels_file=cfg.labels),
                            names=tuple(name for name, _, _ in variants))
    echo(f"benchmarking {len(variants)} models interleaved ({cfg.runs} runs each, {cfg.threads} thread) ...")
    bench = run_bench([path for _, path, _ in variants], bench_cfg)
    for m, (_, _, extra) in zip(bench["models"], variants):
        m.update(extra)
    return bench


def _quantized(cfg: DemoConfig, out: Path, stem: str, variants: list) -> list:
    from .quantize import QuantizeConfig, quantize

    qcfg = QuantizeConfig(mode="static", data=DataConfig(cfg.calib_data, frontend=cfg.frontend))
    main_runs = [v for v in variants if v[2]["ratio"] > 0 and not v[2].get("baseline")]
    most = max(main_runs, key=lambda v: v[2]["ratio"], default=None)
    picks = [("original", cfg.model, 0.0)] + ([(most[0], most[1], most[2]["ratio"])] if most else [])
    added = []
    for label, path, ratio in picks:
        target = out / (Path(path).stem + "_int8.onnx")
        quantize(path, target, qcfg)
        added.append((f"{label} int8" if label != "original" else "int8", str(target), {"ratio": ratio, "int8": True}))
    return added
