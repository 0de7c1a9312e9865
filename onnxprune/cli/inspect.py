"""`onnxprune inspect`: the dependency groups of a model and why the others are blocked."""

from __future__ import annotations


import click

from ..api import analyze, model_stats
from ..core.io import load_model
from ..prune.plan import group_names
from ..core.shapes import parse_input_values
from .depth import print_blocks
from .hints import hint, with_hint
from .common import human, input_option, run_command, shape_option, table, verbose_option, write_json


@click.command("inspect")
@click.argument("model", type=click.Path(dir_okay=False))
@shape_option
@input_option
@click.option("--exclude", multiple=True, metavar="NAME", help="Node or initializer to leave alone (repeatable).")
@click.option("--allow-io-change", is_flag=True, help="Let groups that reach graph inputs/outputs be pruned.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the analysis as JSON.")
@click.option("--block-sensitivity", is_flag=True, help="Measure each removable block alone (nmse vs the original).")
@verbose_option
@run_command("inspect")
def inspect(model, shapes, inputs, exclude, allow_io_change, json_path, block_sensitivity, verbose):
    """Show the prunable groups of MODEL (and why the others are blocked)."""
    onnx_model = load_model(model)
    analysis = analyze(onnx_model, shapes=shapes, exclude=exclude, allow_io_change=allow_io_change,
                       inputs=parse_input_values(inputs))
    stats = model_stats(onnx_model, analysis.shapes)
    names = group_names(analysis)
    rows = []
    for g in analysis.groups:
        status = "prunable" if g.prunable else ("blocked: " + with_hint(g.blocked_by[0]) if g.blocked_by else "single channel")
        rows.append([names[g.id], g.size, g.unit, len(g.sources), status])
    click.echo(f"{model}: {len(onnx_model.graph.node)} nodes, {human(stats['params'])} params, "
               f"{human(stats['macs'])} MACs, opset {analysis.index.opset}, IR {onnx_model.ir_version}")
    click.echo(table(rows, ["group", "size", "unit", "sources", "status"]))
    n_ok = sum(1 for g in analysis.groups if g.prunable)
    click.echo(f"{n_ok} of {len(analysis.groups)} groups prunable")
    for note in analysis.notes:
        click.echo(f"note: {note}")
    click.echo("ops: " + ", ".join(f"{k} {v}" for k, v in stats["ops"].items()))
    blocks = print_blocks(onnx_model, analysis.input_shapes, analysis.input_values, sensitivity=block_sensitivity)
    if verbose:
        for g in analysis.groups:
            for reason in g.blocked_by[1:]:
                click.echo(f"  {names[g.id]}: also {reason}")
    if json_path:
        write_json(json_path, {
            "model": str(model), "params": stats["params"], "macs": stats["macs"], "ops": stats["ops"],
            "notes": analysis.notes, "opset": analysis.index.opset, "ir_version": onnx_model.ir_version, "input_shapes": analysis.input_shapes,
            "groups": [{"name": names[g.id], "unit": g.unit, "size": g.size, "prunable": g.prunable, "blocked_by": g.blocked_by or None,
                        "blocked": [dict(r.to_dict(), hint=hint(r)) for r in g.blocked_by] or None,
                        "sources": g.members()} for g in analysis.groups],
            "blocks": blocks,
        })
