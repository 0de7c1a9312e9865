"""`If`: the analysis descends into both branches (they read outer values by name, so channels
flow in as anywhere else). Output k of the `If` is output k of whichever branch runs, so its
positions carry both branches' channels: they are coupled position by position. A channel axis
one branch tracks and the other does not cannot shrink in the other branch: blocked."""

from __future__ import annotations

from ...core.graph import attr, node_label
from ..reasons import Reason
from .base import Handler
from .registry import register


@register("If")
class IfHandler(Handler):
    def propagate(self, node, ctx):
        branches = [attr(node, "then_branch"), attr(node, "else_branch")]
        for body in branches:
            ctx.descend(body)
        for k, out in enumerate(node.output):
            if not out:
                continue
            results = [body.output[k].name for body in branches]
            for name in results:
                ctx.resolve_multi(name)
            axes = set(ctx.tracked(results[0])) | set(ctx.tracked(results[1]))
            for axis in sorted(axes):
                labels = [ctx.tracked(r).get(axis) for r in results]
                if any(lab is None for lab in labels):
                    for lab in labels:
                        if lab is not None:
                            ctx.block(lab, f"{node_label(node)}: only one branch carries channels on output "
                                           f"{k} axis {axis}")
                    continue
                ctx.couple(labels[0], labels[1], f"{node_label(node)} output {k} (then/else)")
                ctx.set_labels(out, axis, labels[0])
        if any(ctx.tracked(o) for o in node.output):
            ctx.needs_rewrite(node)

    def rewrite(self, node, ctx):
        """Branch outputs declare shapes: shrink the tracked dims so the declarations stay true."""
        for body in (attr(node, "then_branch"), attr(node, "else_branch")):
            for vi in body.output:
                if not vi.type.tensor_type.HasField("shape"):
                    continue
                for axis in ctx.tracked_axes(vi.name):
                    keep = ctx.kept(vi.name, axis)
                    dims = vi.type.tensor_type.shape.dim
                    if keep is not None and axis < len(dims) and dims[axis].HasField("dim_value"):
                        dims[axis].dim_value = int(keep.sum())


@register("Loop", "Scan")
class LoopHandler(Handler):
    """Loop and Scan bodies are not analysed: a body runs a number of times known only at run
    time, and a loop-carried value must keep its shape across iterations, so channels entering
    one cannot be traced. Say which input carries them and what the body does with it."""

    def propagate(self, node, ctx):
        body = attr(node, "body")
        ops = sorted({n.op_type for n in body.node}) if body is not None else []
        inner = f" (body ops: {', '.join(ops[:8])}{', ...' if len(ops) > 8 else ''})" if ops else ""
        first = 2 if node.op_type == "Loop" else 0  # Loop: trip count and condition come first
        for k, name in enumerate(node.input):
            if not name or not ctx.tracked(name):
                continue
            if node.op_type == "Loop" and k < first:
                what = "the trip count or condition"
            elif node.op_type == "Loop":
                what = f"loop-carried value {k - first}"
            else:
                n_state = len(node.input) - int(attr(node, "num_scan_inputs", 0))
                what = f"{'state variable' if k < n_state else 'scan input'} {k if k < n_state else k - n_state}"
            ctx.block_all(name, Reason(f"{node_label(node)}: channels enter its body as {what}; {node.op_type} "
                                       f"bodies are not analysed{inner}", "subgraph", node.name))
