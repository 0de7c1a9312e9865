"""`onnxprune demo`: the first-minute experience on the bundled keyword-spotting model."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import click

from ..api import PruneConfig, analyze, check_verified, prune
from ..errors import UsageError
from ..io import load_model, save_model
from ..plan import group_names
from .common import human, run_command, shape_option, table, verbose_option, write_json


def bundled_model() -> Path:
    return Path(str(resources.files("onnxprune") / "assets" / "kws_dscnn.onnx"))


@click.command()
@click.option("--model", type=click.Path(exists=True, dir_okay=False), help="Model to use instead of the bundled one.")
@shape_option
@click.option("--ratios", default="0.25,0.5,0.75", show_default=True, help="Comma-separated pruning ratios.")
@click.option("--criterion", default="l1", show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="onnxprune-demo", show_default=True)
@verbose_option
@run_command("demo")
def demo(model, shapes, ratios, criterion, out_dir, verbose):
    """Analyse, prune at several ratios and verify every result (bundled DS-CNN keyword model)."""
    path = Path(model) if model else bundled_model()
    try:
        ratio_list = [float(r) for r in ratios.split(",") if r.strip()]
    except ValueError:
        raise UsageError(f"--ratios '{ratios}': expected numbers like 0.25,0.5") from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    onnx_model = load_model(path)
    analysis = analyze(onnx_model, shapes=shapes)
    names = group_names(analysis)
    click.echo(f"model: {path.name}  ({len(onnx_model.graph.node)} nodes)")
    click.echo(table([[names[g.id], g.size, "prunable" if g.prunable else "blocked: " + g.blocked_by[0]]
                      for g in analysis.groups], ["group", "channels", "status"]))
    rows, report = [], []
    for ratio in ratio_list:
        result = prune(onnx_model, config=PruneConfig(ratio=ratio, criterion=criterion, shapes=shapes))
        check_verified(result)
        target = out / f"{path.stem}_r{int(round(ratio * 100)):02d}.onnx"
        save_model(result.model, target)
        b, a = result.before, result.after
        rows.append([f"{ratio:.2f}", human(a["params"]), f"{a['params'] / b['params']:.2f}", human(a["macs"]),
                     f"{b['macs'] / max(a['macs'], 1):.2f}x", f"{result.verify.max_abs_diff:.2g}", target.name])
        report.append({"ratio": ratio, **result.report(), "output": str(target)})
    click.echo(table(rows, ["ratio", "params", "of orig", "MACs", "MAC cut", "max|diff| vs ref", "file"]))
    write_json(str(out / "report.json"), report)
    click.echo(f"every result verified against its reference; files and report.json in {out}/")
