"""`onnxprune demo`: the first-minute experience on the bundled, trained keyword spotter."""

from __future__ import annotations

from pathlib import Path

import click

from ..bench.plot import plot_sweep
from ..bench.report import jsonable, markdown
from ..bench.sweep import mark_front, parse_ratios
from ..demo import DemoConfig, run_demo
from .common import human, run_command, table, verbose_option, write_json


@click.command()
@click.option("--model", type=click.Path(exists=True, dir_okay=False), help="Classifier to use instead of the bundled one.")
@click.option("--frontend", type=click.Path(exists=True, dir_okay=False), help="Front-end ONNX model (audio -> model input).")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False), help="Class names (JSON list or one per line).")
@click.option("--data", "eval_data", type=click.Path(exists=True), help="Held-out labelled audio (folder or manifest).")
@click.option("--calib-data", type=click.Path(exists=True), help="Calibration audio (distinct from --data).")
@click.option("--ratios", default="0.25,0.5", show_default=True, help="Comma-separated pruning ratios.")
@click.option("--criterion", default="reconstruction", show_default=True)
@click.option("--compensate", default="lstsq", show_default=True)
@click.option("--no-quantize", is_flag=True, help="Skip the int8 variants.")
@click.option("--runs", type=int, default=300, show_default=True, help="Timed runs per model (interleaved).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="onnxprune-demo", show_default=True)
@verbose_option
@run_command("demo")
def demo(model, frontend, labels, eval_data, calib_data, ratios, criterion, compensate, no_quantize, runs, out_dir, verbose):
    """Prune, quantize and benchmark the bundled keyword spotter on held-out clips."""
    cfg = DemoConfig.default(model=model, frontend=frontend, labels=labels, eval_data=eval_data, calib_data=calib_data,
                             ratios=tuple(r for r in parse_ratios(ratios) if r > 0), criterion=criterion,
                             compensate=compensate, quantize=not no_quantize, runs=runs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    click.echo(f"model: {Path(cfg.model).name} (front-end {Path(cfg.frontend).name if cfg.frontend else 'none'})")
    bench = run_demo(cfg, out, echo=click.echo)
    rows = []
    for m in bench["models"]:
        acc = m["task"]["accuracy"]
        fid = m["fidelity"].get("top1_agreement") if "fidelity" in m else 1.0
        rows.append([m["name"], human(m["params"]), human(m["macs"]), human(m["size_bytes"]) + "B",
                     f"{m['latency']['p50_ms']:.3f}", f"{m['speedup']:.2f}x", f"{100 * acc:.1f}%", "-" if fid is None else f"{100 * fid:.1f}%"])
    click.echo(table(rows, ["model", "params", "MACs", "size", "p50 ms", "speedup", "accuracy", "agrees w/ orig"]))
    click.echo(f"accuracy on {bench['timing']['inputs']}; p50 on {bench['machine']['provider']}, "
               f"{bench['machine']['threads']} thread; every pruned model verified against its reference")
    write_json(str(out / "report.json"), jsonable(bench))
    (out / "report.md").write_text(markdown(bench, "onnxprune demo"))
    plot_sweep(_as_sweep(bench, cfg), str(out / "demo.png"))
    click.echo(f"files, report.json, report.md and demo.png in {out}/")


def _as_sweep(bench: dict, cfg: DemoConfig) -> dict:
    """The benchmark in the shape the sweep plot draws (accuracy vs latency and MACs)."""
    short = {"reconstruction": "rec", "activation": "act", "+lstsq": "+lsq", "r=": ""}
    points = [{"ratio": m["ratio"], "label": _shorten(m["name"], short), "p50_ms": m["latency"]["p50_ms"], "macs": m["macs"],
               "speedup": m["speedup"], "quality": 100 * m["task"]["accuracy"]} for m in bench["models"]]
    collapse = mark_front(points, "held-out accuracy", True, points[0]["quality"])
    return {"model": cfg.model, "quality_metric": "held-out accuracy (%)", "higher_is_better": True, "points": points,
            "collapse": collapse,
            "prune": {"criterion": f"{cfg.criterion}+{cfg.compensate}", "round_to": 4}, "bench": bench}


def _shorten(name: str, table: dict) -> str:
    for long, short in table.items():
        name = name.replace(long, short)
    return name
