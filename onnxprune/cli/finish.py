"""`prune --slim` / `--optimize-for EP`: one more rewrite of the pruned graph (prune/finish.py), kept
only if it checks out; otherwise the pruned model is written and a one-line warning says why."""

from __future__ import annotations

import click

from ..prune import finish


def finish_options(f):
    f = click.option("--optimize-for", type=click.Choice(sorted(finish.PROVIDERS)), default=None,
                     help="Write the graph as onnxruntime optimizes it offline for this EP (BASIC level: portable), "
                          "checked against the pruned model.")(f)
    f = click.option("--slim", is_flag=True,
                     help=f"Simplify the pruned graph with OnnxSlim (MatMul+Add -> Gemm, constant folding), checked "
                          f"against the pruned model ({finish.INSTALL}).")(f)
    return f


def check_available(slim: bool) -> None:
    """Before any work: a missing OnnxSlim is a one-line error naming the install command."""
    if slim:
        try:
            import onnxslim  # noqa: F401
        except ImportError:
            from ..errors import UsageError

            raise UsageError(f"--slim needs OnnxSlim, which is not installed: {finish.INSTALL}") from None


def apply(result, slim: bool, optimize_for: str | None, *, atol: float, rtol: float) -> list[dict]:
    """Run the asked post-passes on `result.model` in order (slim, then ORT); each one that checks
    out replaces it. Returns their reports."""
    shapes = {k: list(v) for k, v in result.analysis.input_shapes.items()}
    for io in result.resized_io:  # the pruned model's inputs, not the original's
        if io["kind"] == "input":
            shapes[io["name"]][io["axis"]] = io["new"]
    steps = []
    for kind in (["slim"] if slim else []) + ([optimize_for] if optimize_for else []):
        kw = {"values": result.analysis.input_values, "atol": atol, "rtol": rtol}
        done = finish.slim(result.model, shapes, **kw) if kind == "slim" else \
            finish.ort_offline(result.model, shapes, ep=kind, **kw)
        label = "slim (OnnxSlim)" if kind == "slim" else f"optimize-for {kind} (onnxruntime offline, BASIC)"
        if done.kept:
            click.echo(f"{label}: {done.nodes_before} -> {done.nodes_after} nodes; interface, IR "
                       f"{done.model.ir_version} and opset kept; {done.message}")
            result.model = done.model
        else:
            click.echo(f"warning: {label} not applied, writing the model without it: {done.message}", err=True)
        steps.append(done.to_dict())
    return steps
